"""File and tree nodes: canonical encodings, one byte form per value, strict decoders."""

import msgpack
import pytest

from cas.errors import FormatError, UnsupportedFormat
from cas.format.digest import chunk_id, file_node_id, tree_node_id
from cas.format.nodes import (
    EMPTY_TREE,
    EMPTY_TREE_ID,
    FANOUT,
    KIND_FILE,
    KIND_TREE,
    FileNode,
    TreeEntry,
    build_file_nodes,
    decode_file_node,
    decode_tree_node,
    encode_file_node,
    encode_tree_node,
    tree_id,
)

ID_A = chunk_id(b"a")
ID_B = chunk_id(b"b")


def _entries():
    return [
        TreeEntry("b.txt", KIND_FILE, ID_A, 10, 1),
        TreeEntry("a", KIND_TREE, ID_B, 300, 2),
        TreeEntry("é", KIND_FILE, ID_B, 0, 0),
        TreeEntry("Z", KIND_FILE, ID_A, 2**40, 0),
    ]


# file nodes -----------------------------------------------------------------------------------


def test_file_node_round_trips_and_is_canonical():
    node = FileNode(0, ((ID_A, 1), (ID_B, 70000), (ID_A, 0)))
    enc = encode_file_node(node)
    assert decode_file_node(enc) == node
    assert encode_file_node(decode_file_node(enc)) == enc
    assert node.size == 70001


def test_empty_file_node_round_trips():
    enc = encode_file_node(FileNode(0, ()))
    assert decode_file_node(enc) == FileNode(0, ())


def test_file_node_with_non_minimal_int_is_rejected():
    node = FileNode(0, ((ID_A, 5),))
    enc = encode_file_node(node)
    # [1, 0, [[id, 5]]]: the trailing 0x05 is the length; re-encode it as uint8 0xcc 0x05
    assert enc.endswith(b"\x05")
    bad = enc[:-1] + b"\xcc\x05"
    assert msgpack.unpackb(bad) == msgpack.unpackb(enc)
    with pytest.raises(FormatError, match="canonical"):
        decode_file_node(bad)


def test_file_node_with_a_non_minimal_array_header_is_rejected():
    enc = encode_file_node(FileNode(0, ((ID_A, 5),)))
    assert enc[0] == 0x93
    bad = b"\xdc\x00\x03" + enc[1:]  # array16 header for 3 items
    assert msgpack.unpackb(bad) == msgpack.unpackb(enc)
    with pytest.raises(FormatError):
        decode_file_node(bad)


@pytest.mark.parametrize(
    "value",
    [
        [2, 0, []],  # unknown node version
        [1, 0],  # missing entries
        [1, -1, []],  # negative level
        [1, 0, [[ID_A]]],
        [1, 0, [[ID_A[:31], 1]]],  # short id
        [1, 0, [[ID_A, -1]]],  # negative length
        [1, 0, [["x" * 32, 1]]],  # id as str
        [1, 0, [[ID_A, 1.0]]],  # float length
        [1, 0, [[ID_A, True]]],  # bool is not an int here
        [1, "0", []],
        {"v": 1},
        [1, 0, [[ID_A, 1]], 4],
    ],
)
def test_malformed_file_nodes_are_rejected(value):
    with pytest.raises(FormatError):
        decode_file_node(msgpack.packb(value, use_bin_type=True))


def test_file_node_with_more_than_fanout_entries_is_rejected():
    enc = msgpack.packb([1, 0, [[ID_A, 1]] * (FANOUT + 1)], use_bin_type=True)
    with pytest.raises(FormatError):
        decode_file_node(enc)


def test_file_node_with_trailing_bytes_is_rejected():
    enc = encode_file_node(FileNode(0, ((ID_A, 1),)))
    with pytest.raises(FormatError):
        decode_file_node(enc + b"\x00")


def test_build_file_nodes_single_level():
    chunks = [(chunk_id(bytes([i])), 1) for i in range(10)]
    root, nodes = build_file_nodes(chunks)
    assert len(nodes) == 1
    nid, enc = nodes[0]
    assert nid == root == file_node_id(enc)
    assert decode_file_node(enc) == FileNode(0, tuple(chunks))


def test_build_file_nodes_splits_into_levels_children_first():
    n = FANOUT * 2 + 3
    chunks = [(chunk_id(i.to_bytes(4, "big")), i % 7 + 1) for i in range(n)]
    root, nodes = build_file_nodes(chunks)
    assert nodes[-1][0] == root
    top = decode_file_node(nodes[-1][1])
    assert top.level == 1 and len(top.entries) == 3
    assert top.size == sum(s for _, s in chunks)
    seen = set()
    for nid, enc in nodes:
        node = decode_file_node(enc)
        assert file_node_id(enc) == nid
        if node.level == 1:
            assert all(child in seen for child, _ in node.entries)
        seen.add(nid)
    leaves = [c for nid, enc in nodes[:-1] for c in decode_file_node(enc).entries]
    assert leaves == chunks


def test_empty_file_has_one_empty_node():
    root, nodes = build_file_nodes([])
    assert nodes == [(root, encode_file_node(FileNode(0, ())))]


# tree nodes -----------------------------------------------------------------------------------


def test_tree_node_round_trips_sorted_by_utf8_bytes():
    enc = encode_tree_node(_entries())
    out = decode_tree_node(enc)
    assert [e.name for e in out] == ["Z", "a", "b.txt", "é"]
    assert sorted(out, key=lambda e: e.name) == sorted(_entries(), key=lambda e: e.name)
    assert encode_tree_node(out) == enc


def test_tree_node_encoding_is_independent_of_input_order():
    e = _entries()
    assert encode_tree_node(e) == encode_tree_node(list(reversed(e)))


def test_empty_tree_vector():
    assert EMPTY_TREE == b"\x92\x01\x90"
    assert EMPTY_TREE_ID.hex() == "bf02ae2a08cf8620c1a6f2c2ec4b07782fcc61f59bf88ba11a9703cd08acb30c"
    assert decode_tree_node(EMPTY_TREE) == []
    assert tree_id(EMPTY_TREE) == tree_node_id(EMPTY_TREE) == EMPTY_TREE_ID


def test_encoder_refuses_duplicate_names():
    with pytest.raises(FormatError, match="two entries"):
        encode_tree_node([TreeEntry("a", KIND_FILE, ID_A, 1, 0), TreeEntry("a", KIND_FILE, ID_B, 1, 0)])


def _raw_tree(entries):
    return msgpack.packb([1, [list(e) for e in entries]], use_bin_type=True)


def test_unsorted_tree_entries_are_rejected():
    good = [("a", 1, ID_A, 1, 0), ("b", 1, ID_B, 2, 0)]
    assert decode_tree_node(_raw_tree(good))
    with pytest.raises(FormatError, match="canonical"):
        decode_tree_node(_raw_tree(list(reversed(good))))


def test_tree_order_is_utf8_bytes_not_code_units():
    # U+FF5E sorts before U+1F600 by code point and UTF-8 bytes, but after it in UTF-16
    a, b = "\uff5e", "\U0001f600"
    good = [(a, 1, ID_A, 1, 0), (b, 1, ID_B, 1, 0)]
    assert [e.name for e in decode_tree_node(_raw_tree(good))] == [a, b]
    with pytest.raises(FormatError):
        decode_tree_node(_raw_tree(list(reversed(good))))


def test_duplicate_tree_names_are_rejected():
    with pytest.raises(FormatError):
        decode_tree_node(_raw_tree([("a", 1, ID_A, 1, 0), ("a", 1, ID_A, 1, 0)]))


def test_tree_node_with_non_minimal_int_is_rejected():
    enc = _raw_tree([("a", 1, ID_A, 5, 0)])
    assert enc.endswith(b"\x05\x00")
    bad = enc[:-2] + b"\xcd\x00\x05\x00"
    assert msgpack.unpackb(bad) == msgpack.unpackb(enc)
    with pytest.raises(FormatError):
        decode_tree_node(bad)


def test_tree_node_with_non_minimal_str_header_is_rejected():
    enc = _raw_tree([("a", 1, ID_A, 5, 0)])
    assert b"\xa1a" in enc
    bad = enc.replace(b"\xa1a", b"\xd9\x01a", 1)
    assert msgpack.unpackb(bad) == msgpack.unpackb(enc)
    with pytest.raises(FormatError):
        decode_tree_node(bad)


def test_tree_node_with_bin16_id_is_rejected():
    enc = _raw_tree([("a", 1, ID_A, 5, 0)])
    bad = enc.replace(b"\xc4\x20", b"\xc5\x00\x20", 1)
    assert msgpack.unpackb(bad) == msgpack.unpackb(enc)
    with pytest.raises(FormatError):
        decode_tree_node(bad)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\x00", "a\\b"])
def test_tree_node_with_unsafe_names_is_rejected(name):
    with pytest.raises(FormatError):
        decode_tree_node(_raw_tree([(name, 1, ID_A, 1, 0)]))


@pytest.mark.parametrize(
    "entry",
    [
        ("a", 1, ID_A, 1, 2),  # file aux must be 0/1
        ("a", 1, ID_A[:31], 1, 0),
        ("a", 1, ID_A, -1, 0),
        ("a", 2, ID_A, 1, -1),
        (b"a", 1, ID_A, 1, 0),  # name as bin
        ("a", 1, ID_A, 1),
        ("a", "1", ID_A, 1, 0),
    ],
)
def test_malformed_tree_entries_are_rejected(entry):
    with pytest.raises(FormatError):
        decode_tree_node(_raw_tree([entry]))


@pytest.mark.parametrize("kind", [4, 200])
def test_unknown_entry_kinds_need_a_newer_cas(kind):
    with pytest.raises(UnsupportedFormat):
        decode_tree_node(_raw_tree([("a", kind, ID_A, 1, 0)]))


@pytest.mark.parametrize("value", [[2, []], [1], [1, {}], [1, [], 0], {"a": 1}])
def test_malformed_tree_nodes_are_rejected(value):
    with pytest.raises(FormatError):
        decode_tree_node(msgpack.packb(value, use_bin_type=True))


def test_tree_entry_properties():
    f = TreeEntry("x", KIND_FILE, ID_A, 3, 1)
    d = TreeEntry("d", KIND_TREE, ID_B, 30, 4)
    assert f.executable and f.n_files == 1
    assert not d.executable and d.n_files == 4
