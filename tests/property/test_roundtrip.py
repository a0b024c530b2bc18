"""Every encoding round-trips; every decoder turns garbage into a CasError, never a crash."""

import msgpack
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cas.errors import CasError
from cas.format import pack as P
from cas.format import records as R
from cas.format.nodes import (
    KIND_FILE,
    KIND_TREE,
    FileNode,
    TreeEntry,
    _decode_file_node,
    _decode_tree_node,
    decode_file_node,
    decode_file_rows,
    decode_tree_node,
    decode_tree_rows,
    encode_file_node,
    encode_tree_node,
)

ids = st.binary(min_size=32, max_size=32)
uints = st.integers(0, 2**64 - 1)
names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\x00"), min_size=1, max_size=20
).filter(lambda s: s not in (".", "..") and len(s.encode()) <= 255)
simple_names = st.from_regex(r"[A-Za-z0-9_.\-]{1,20}", fullmatch=True).filter(lambda s: s not in (".", ".."))
aliases = st.lists(simple_names, max_size=4)


@st.composite
def file_nodes(draw):
    return FileNode(draw(st.integers(0, 5)), tuple(draw(st.lists(st.tuples(ids, uints), max_size=30))))


@st.composite
def tree_entries(draw):
    kind = draw(st.sampled_from([KIND_FILE, KIND_TREE]))
    aux = draw(st.integers(0, 1)) if kind == KIND_FILE else draw(uints)
    return TreeEntry(draw(names), kind, draw(ids), draw(uints), aux)


tree_nodes = st.lists(tree_entries(), max_size=20, unique_by=lambda e: e.name)

metadata = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=8)
        | st.binary(max_size=8),
        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
        max_leaves=8,
    ),
    max_size=5,
)


@st.composite
def log_entries(draw):
    op = draw(st.sampled_from(sorted(R.KNOWN_OPS)))
    e = {"op": op, "collection": f"{draw(simple_names)}/{draw(simple_names)}", "time_ns": draw(uints)}
    if op == R.OP_VERSION:
        e.update(type=draw(simple_names), digest=draw(ids), size=draw(uints), n_files=draw(uints),
                 version=draw(uints), description=draw(st.none() | st.text(max_size=30)),
                 metadata=draw(metadata), aliases=draw(aliases), tags=draw(aliases),
                 packs=draw(st.lists(st.text("0123456789abcdef", min_size=64, max_size=64), max_size=2)),
                 ttl=draw(st.none() | uints))
    elif op == R.OP_COLLECTION_TAGS:
        e.update(set=draw(aliases))
    elif op == R.OP_UPDATE:
        fields = draw(st.fixed_dictionaries({}, optional={
            "description": st.none() | st.text(max_size=10), "metadata": st.none() | metadata,
            "ttl": st.none() | uints}))
        e.update(version=draw(uints), fields=fields)
    elif op == R.OP_COLLECTION_UPDATE:
        e.update(fields=draw(st.fixed_dictionaries({}, optional={"ttl": st.none() | uints})))
    elif op == R.OP_DELETE:
        e.update(version=draw(uints))
    elif op == R.OP_LINK:
        e.update(version=draw(uints), source_collection=f"{draw(simple_names)}/{draw(simple_names)}",
                 source_version=draw(uints), aliases=draw(aliases))
    elif op in (R.OP_RUN, R.OP_USE):
        e.update(run_id=draw(simple_names))
        if op == R.OP_USE:
            e.update(version=draw(uints))
        else:
            del e["collection"]
    elif op == R.OP_GC:
        del e["collection"]
        e.update(condemned=draw(st.lists(st.text("0123456789abcdef", min_size=64, max_size=64), max_size=2)))
    else:
        e.update(version=draw(uints), set=draw(aliases))
    return e


pack_entries = st.lists(
    st.builds(P.PackEntry, ids, st.sampled_from(sorted(P.OBJECT_KINDS)), st.integers(0, 255),
              st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    max_size=10,
)


# round trips ------------------------------------------------------------------------------------


@given(file_nodes())
def test_file_node_round_trip(node):
    enc = encode_file_node(node)
    assert decode_file_node(enc) == node
    assert encode_file_node(decode_file_node(enc)) == enc


@given(tree_nodes)
def test_tree_node_round_trip(entries):
    enc = encode_tree_node(entries)
    out = decode_tree_node(enc)
    assert sorted(out, key=lambda e: e.name) == sorted(entries, key=lambda e: e.name)
    assert [e.name.encode() for e in out] == sorted(e.name.encode() for e in entries)
    assert encode_tree_node(out) == enc
    assert encode_tree_node(list(reversed(entries))) == enc


@given(log_entries())
def test_log_entry_round_trip(entry):
    data = R.encode_entry(entry)
    assert R.decode_entry(data) == entry
    assert R.encode_entry(R.decode_entry(data)) == data


@given(pack_entries, st.integers(0, 2**20))
def test_pack_footer_round_trip(entries, data_size):
    footer = P.encode_footer(entries)
    body, trailer = footer[: -P.TRAILER_SIZE], footer[-P.TRAILER_SIZE :]
    file_size = P.HEADER_SIZE + data_size + len(footer)
    assert P.decode_trailer(trailer, file_size) == len(body) == len(entries) * P.FOOTER_ENTRY_SIZE
    data_end = P.HEADER_SIZE + data_size
    in_range = all(e.offset >= P.HEADER_SIZE + P.RECORD_SIZE and e.offset + e.stored_len <= data_end for e in entries)
    try:
        out = P.decode_footer(body, trailer, file_size)
    except CasError:
        assert not in_range
    else:
        assert in_range and out == entries


@given(st.lists(st.tuples(st.sampled_from(sorted(P.OBJECT_KINDS)), st.integers(0, 1), ids,
                          st.binary(max_size=300)), max_size=8))
def test_scan_records_recovers_what_was_written(objs):
    out = bytearray(P.encode_header())
    expected = []
    for kind, codec, oid, payload in objs:
        out += P.encode_record_header(kind, codec, len(payload) + 1, len(payload), oid)
        expected.append(P.PackEntry(oid, kind, codec, len(out), len(payload), len(payload) + 1))
        out += payload
    assert P.scan_records(bytes(out)) == expected


# garbage in: CasError out ----------------------------------------------------------------------

garbage = st.binary(max_size=400)


def _only_cas_errors(fn, *args):
    try:
        fn(*args)
    except CasError:
        pass


@settings(max_examples=200)
@given(garbage)
def test_garbage_into_node_decoders(data):
    _only_cas_errors(decode_file_node, data)
    _only_cas_errors(decode_tree_node, data)


# msgpack-shaped garbage gets past the parser and exercises the validators
any_msgpack = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=5)
    | st.binary(max_size=40),
    lambda kids: st.lists(kids, max_size=6) | st.dictionaries(st.text(max_size=4) | st.integers(-(2**63), 2**64 - 1), kids, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200)
@given(any_msgpack)
def test_structured_garbage_into_node_decoders(value):
    data = msgpack.packb(value, use_bin_type=True)
    _only_cas_errors(decode_file_node, data)
    _only_cas_errors(decode_tree_node, data)
    _only_cas_errors(decode_tree_node, msgpack.packb([1, value], use_bin_type=True))
    _only_cas_errors(decode_tree_node, msgpack.packb([1, [value]], use_bin_type=True))
    _only_cas_errors(decode_file_node, msgpack.packb([1, 0, [value]], use_bin_type=True))


@settings(max_examples=200)
@given(garbage)
def test_garbage_into_log_entry_decoder(data):
    _only_cas_errors(R.decode_entry, data)
    _only_cas_errors(R.decode_entry, R.LOG_MAGIC + data)


@settings(max_examples=200)
@given(log_entries(), st.sampled_from(["op", "collection", "digest", "set", "fields", "version", "metadata",
                                       "aliases", "packs", "ttl", "description", "time_ns"]), any_msgpack)
def test_mutated_log_entries_decode_or_raise_cas_errors(entry, field, value):
    entry[field] = value
    try:
        data = R.LOG_MAGIC + msgpack.packb(entry, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        assume(False)
    _only_cas_errors(R.decode_entry, data)


@settings(max_examples=200)
@given(garbage)
def test_garbage_into_config_decoder(data):
    _only_cas_errors(R.decode_config, data)


@given(any_msgpack.filter(lambda v: not isinstance(v, float)), st.sampled_from(["format_version", "chunker", "features"]))
def test_structured_garbage_into_config_decoder(value, field):
    import json

    config = {"format_version": 1, "chunker": "x", "zstd_level": 3, "store_id": "s"}
    try:
        config[field] = value
        data = json.dumps(config).encode()
    except (TypeError, ValueError):
        assume(False)
    _only_cas_errors(R.decode_config, data)


@settings(max_examples=200)
@given(garbage, st.integers(0, 2**40))
def test_garbage_into_pack_decoders(data, file_size):
    _only_cas_errors(P.decode_header, data)
    _only_cas_errors(P.decode_trailer, data, file_size)
    _only_cas_errors(P.decode_trailer, data[: P.TRAILER_SIZE], file_size)
    _only_cas_errors(P.decode_footer, data, data[-P.TRAILER_SIZE :], file_size)
    _only_cas_errors(P.decode_footer, data, data, file_size)
    _only_cas_errors(P.scan_records, data)
    _only_cas_errors(P.scan_records, P.encode_header() + data)


def _outcome(fn, data):
    try:
        return fn(data)
    except CasError as exc:
        return type(exc)


def _full_file_node(data):
    return _decode_file_node(data, msgpack.unpackb(data, raw=False, strict_map_key=True))


def _full_tree_node(data):
    return _decode_tree_node(data, msgpack.unpackb(data, raw=False, strict_map_key=True))


def _agree(data):
    """The fast paths accept exactly what the full checks accept, with the same result."""
    try:
        msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception:  # noqa: BLE001 - not msgpack: both decoders refuse it (tested above)
        return
    node = _outcome(decode_file_node, data)
    assert node == _outcome(_full_file_node, data)
    rows = _outcome(decode_file_rows, data)
    assert rows == node if isinstance(node, type) else rows == (node.level, [list(e) for e in node.entries])
    entries = _outcome(decode_tree_node, data)
    assert entries == _outcome(_full_tree_node, data)
    rows = _outcome(decode_tree_rows, data)
    assert rows == entries if isinstance(entries, type) else rows == [
        [e.name, e.kind, e.id, e.size, e.aux] for e in entries]


@settings(max_examples=200)
@given(tree_nodes, st.integers(0, 10**6), st.integers(0, 255))
def test_fast_tree_decoding_agrees_with_the_full_checks(entries, where, byte):
    enc = encode_tree_node(entries)
    _agree(enc)
    i = where % len(enc)
    _agree(enc[:i] + bytes([byte]) + enc[i + 1:])


@settings(max_examples=200)
@given(file_nodes(), st.integers(0, 10**6), st.integers(0, 255))
def test_fast_file_node_decoding_agrees_with_the_full_checks(node, where, byte):
    enc = encode_file_node(node)
    _agree(enc)
    i = where % len(enc)
    _agree(enc[:i] + bytes([byte]) + enc[i + 1:])


@settings(max_examples=200)
@given(any_msgpack)
def test_fast_node_decoding_agrees_with_the_full_checks_on_garbage(value):
    for v in (value, [1, value], [1, [value]], [1, 0, [value]], [1, [[value, 1, b"x" * 32, 0, 0]]],
              [1, [["a", value, b"x" * 32, 0, 0]]], [1, [["a", 1, b"x" * 32, value, value]]]):
        _agree(msgpack.packb(v, use_bin_type=True))
