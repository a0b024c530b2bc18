"""Log entries, metadata and the repository config: canonical, validated encodings."""

import json

import msgpack
import pytest

from cas.errors import FormatError, InvalidMetadata, UnsupportedFormat, UsageError
from cas.format import records as R
from cas.format.chunker import ChunkerParams
from cas.format.digest import CONTEXT_LOG_ENTRY, keyed_id

DIGEST = bytes(range(32))


def version_entry(**over):
    e = {
        "op": R.OP_VERSION, "collection": "proj/data", "type": "dataset", "digest": DIGEST,
        "size": 123, "n_files": 4, "version": 0, "time_ns": 1_700_000_000_000_000_000,
        "description": "d", "metadata": {"b": 1, "a": [1, "x", None]}, "aliases": ["best"],
        "tags": ["t"], "packs": ["ab" * 32],
    }
    e.update(over)
    return e


OTHER_OPS = [
    {"op": R.OP_ALIASES, "collection": "p/a", "version": 3, "set": ["x", "y"], "time_ns": 5},
    {"op": R.OP_TAGS, "collection": "p/a", "version": 0, "set": [], "time_ns": 5},
    {"op": R.OP_COLLECTION_TAGS, "collection": "p/a", "set": ["z"], "time_ns": 0},
    {"op": R.OP_UPDATE, "collection": "p/a", "version": 1, "fields": {"description": None, "ttl": 5}, "time_ns": 1},
]


# log entries ------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", [version_entry()] + OTHER_OPS)
def test_entry_round_trips_canonically(entry):
    data = R.encode_entry(entry)
    assert data.startswith(R.LOG_MAGIC)
    assert R.decode_entry(data) == entry
    assert R.encode_entry(R.decode_entry(data)) == data


def test_entry_encoding_sorts_keys_at_every_depth():
    a = version_entry(metadata={"z": {"y": 1, "x": 2}, "a": 0})
    b = dict(reversed(list(a.items())))
    b["metadata"] = {"a": 0, "z": {"x": 2, "y": 1}}
    assert R.encode_entry(a) == R.encode_entry(b)
    body = R.encode_entry(a)[len(R.LOG_MAGIC):]
    assert list(msgpack.unpackb(body)) == sorted(a)


def test_entry_id_is_keyed_over_the_whole_file():
    data = R.encode_entry(version_entry())
    assert R.entry_id(data) == keyed_id(CONTEXT_LOG_ENTRY, data)
    assert R.entry_id(data) != R.entry_id(R.encode_entry(version_entry(time_ns=1)))


def test_unknown_extra_fields_are_kept_and_ignored():
    e = version_entry(future_field={"x": 1})
    assert R.decode_entry(R.encode_entry(e))["future_field"] == {"x": 1}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"CASLOG2\n" + msgpack.packb({"op": "version"}),
        R.LOG_MAGIC,
        R.LOG_MAGIC + b"\xc1",
        R.LOG_MAGIC + msgpack.packb([1, 2]),
        R.LOG_MAGIC + msgpack.packb({"no": "op"}),
    ],
)
def test_garbage_entries_are_format_errors(data):
    with pytest.raises(FormatError):
        R.decode_entry(data)


def test_unknown_op_needs_a_newer_cas():
    data = R.LOG_MAGIC + R.pack_canonical({"op": "rename", "collection": "p/a", "time_ns": 1})
    with pytest.raises(UnsupportedFormat):
        R.decode_entry(data)
    with pytest.raises(UnsupportedFormat):
        R.encode_entry({"op": "rename"})


@pytest.mark.parametrize(
    "over",
    [
        {"digest": b"short"},
        {"digest": "ab" * 32},
        {"size": -1},
        {"size": True},
        {"size": 1.5},
        {"version": None},
        {"collection": "noslash"},
        {"collection": "p/a/b"},
        {"collection": "p/bad name"},
        {"collection": "/a"},
        {"type": 3},
        {"aliases": "best"},
        {"tags": [1]},
        {"packs": [b"x"]},
        {"description": 5},
        {"metadata": [1]},
        {"ttl": -1},
        {"ttl": "1d"},
    ],
)
def test_malformed_version_entries_are_rejected(over):
    bad = version_entry(**over)
    with pytest.raises(FormatError):
        R.encode_entry(bad)
    with pytest.raises(FormatError):
        R.decode_entry(R.LOG_MAGIC + R.pack_canonical(bad))


@pytest.mark.parametrize("field", ["collection", "type", "digest", "size", "n_files", "version", "time_ns"])
def test_missing_required_field_is_rejected(field):
    e = version_entry()
    del e[field]
    with pytest.raises(FormatError, match=field):
        R.decode_entry(R.LOG_MAGIC + R.pack_canonical(e))


def test_update_fields_are_validated():
    e = dict(OTHER_OPS[3], fields={"metadata": "not a map"})
    with pytest.raises(FormatError):
        R.encode_entry(e)


def test_oversized_entry_is_rejected():
    with pytest.raises(FormatError):
        R.decode_entry(R.LOG_MAGIC + b"\x00" * R.MAX_ENTRY)


# metadata -----------------------------------------------------------------------------------


def test_metadata_with_100_keys_is_accepted():
    md = {f"k{i}": i for i in range(R.MAX_METADATA_KEYS)}
    assert R.check_metadata(md) == md


def test_metadata_with_101_keys_is_rejected():
    md = {f"k{i}": i for i in range(R.MAX_METADATA_KEYS + 1)}
    with pytest.raises(InvalidMetadata, match="101"):
        R.check_metadata(md)
    assert issubclass(InvalidMetadata, UsageError)


def test_nested_keys_do_not_count_towards_the_limit():
    md = {"nested": {f"k{i}": i for i in range(500)}}
    assert R.check_metadata(md) == md


@pytest.mark.parametrize(
    "md",
    [
        {"x": object()},
        {"x": {1, 2}},
        {"x": lambda: 0},
        {"x": 2**70},
        {1: "int key"},
        {"x": {"y": {2: "nested int key"}}},
        {"x": [{3: "in a list"}]},
        [("a", 1)],
        "string",
    ],
)
def test_unstorable_metadata_is_rejected(md):
    with pytest.raises(InvalidMetadata):
        R.check_metadata(md)


def test_metadata_is_normalized_to_what_is_stored():
    out = R.check_metadata({"t": (1, 2), "b": b"\x00", "f": 1.5, "n": None, "ok": True})
    assert out == {"t": [1, 2], "b": b"\x00", "f": 1.5, "n": None, "ok": True}
    assert R.check_metadata(None) == {}


# config -------------------------------------------------------------------------------------


def _config(**over):
    c = {"format_version": R.FORMAT_VERSION, "chunker": ChunkerParams().spec, "zstd_level": 3, "store_id": "ab" * 16}
    c.update(over)
    return c


def test_config_round_trips():
    c = _config()
    data = R.encode_config(c)
    assert R.decode_config(data) == c
    assert R.encode_config(R.decode_config(data)) == data


def test_config_from_a_newer_format_is_unsupported():
    with pytest.raises(UnsupportedFormat, match="newer"):
        R.decode_config(R.encode_config(_config(format_version=R.FORMAT_VERSION + 1)))


def test_config_with_unknown_features_is_unsupported():
    with pytest.raises(UnsupportedFormat, match="no-such-feature"):
        R.decode_config(R.encode_config(_config(features={"read": ["no-such-feature"]})))
    assert R.decode_config(R.encode_config(_config(features={"read": []})))["features"] == {"read": []}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"[]",
        b"\xff\xfe",
        json.dumps({"chunker": "x"}).encode(),
        json.dumps(_config(format_version="1")).encode(),
        json.dumps({k: v for k, v in _config().items() if k != "store_id"}).encode(),
        json.dumps(_config(features=["x"])).encode(),
        json.dumps(_config(features={"read": "x"})).encode(),
    ],
)
def test_malformed_configs_are_format_errors(data):
    with pytest.raises(FormatError):
        R.decode_config(data)


def test_chunker_spec_round_trips_and_rejects_unknown_forms():
    p = ChunkerParams(256, 1024, 4096, 2)
    assert ChunkerParams.parse(p.spec) == p
    with pytest.raises(FormatError):
        ChunkerParams.parse("fastcdc2016/min=1/avg=2/max=3/norm=1")
    with pytest.raises(UsageError):
        ChunkerParams.parse("fastcdc2020/min=1/avg=2/max=3/norm=1")


def test_every_new_op_has_a_known_feature_flag():
    for op, feature in R.FEATURE_OF_OP.items():
        assert op in R.KNOWN_OPS and feature in R.KNOWN_FEATURES
    assert R.decode_config(R.encode_config(_config(features={"read": sorted(R.KNOWN_FEATURES)})))
