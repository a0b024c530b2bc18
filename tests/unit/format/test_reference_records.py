"""Reference records and tree entries of kind 3 (docs/format.md §8.3)."""

from __future__ import annotations

import msgpack
import pytest

from cas.errors import FormatError
from cas.format.digest import tree_node_id
from cas.format.nodes import (
    KIND_FILE,
    KIND_REFERENCE,
    Reference,
    TreeEntry,
    decode_tree_node,
    encode_tree_node,
    reference_entry,
    reference_from_map,
)

REF = Reference("s3://bkt/data/a.csv", 4, "etag", "0ba5b0d6e3f2c7d1a7d5b2c9c8f1e5a3",
                "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")


def test_known_answer_vector():  # docs/format.md §13
    assert REF.encode().hex() == (
        "85a8636865636b73756dd9203062613562306436653366326337643161376435623263396338663165356133"
        "ad636865636b73756d5f616c676fa465746167a473697a6504a3757269b373333a2f2f626b742f646174612f"
        "612e637376aa76657273696f6e5f6964d92133484c346b71744a6c637058726f4454446d4a2b726d53705864"
        "33644962724859")
    assert REF.id.hex() == "d43423ee800e8e54be6f1f0429be378fc4762dcd05d4fd1eac8ad36997f1ce26"
    enc = encode_tree_node([reference_entry("a.csv", REF)])
    assert tree_node_id(enc).hex() == "294d716a3709ffbc45b4a4a4d7f43aaef0ae9e5e6362808e943a91d25d0a083f"


def test_round_trip_with_files_and_unknown_record_keys():
    newer = reference_from_map({"uri": "https://h/x", "size": 3, "z_future": [1, {"b": 2, "a": 1}]})
    entries = [reference_entry("r", REF), TreeEntry("f", KIND_FILE, b"\x01" * 32, 3, 0),
               reference_entry("s", Reference("file:///x", 0)), reference_entry("t", newer)]
    enc = encode_tree_node(entries)
    back = decode_tree_node(enc)
    assert [e.kind for e in back] == [KIND_FILE, KIND_REFERENCE, KIND_REFERENCE, KIND_REFERENCE]
    assert back[1].reference == REF and back[1].size == 4 and back[1].n_files == 1
    assert back[3].reference.extra == {"z_future": [1, {"a": 1, "b": 2}]}
    assert encode_tree_node(back) == enc


def test_any_record_field_changes_the_id():
    ids = {REF.id, Reference(REF.uri, 5, REF.checksum_algo, REF.checksum, REF.version_id).id,
           Reference("s3://bkt/data/b.csv", 4, REF.checksum_algo, REF.checksum, REF.version_id).id,
           Reference(REF.uri, 4, "etag", "x", REF.version_id).id, Reference(REF.uri, 4, "etag", REF.checksum).id,
           Reference(REF.uri, 4).id}
    assert len(ids) == 6


def _raw(name, kind, rid, size, aux) -> bytes:
    return msgpack.packb([1, [[name, kind, rid, size, aux]]], use_bin_type=True)


@pytest.mark.parametrize("bad", [
    dict(rid=b"\x00" * 32),                                     # id is not the record's
    dict(size=5),                                               # size disagrees with the record
    dict(aux={"uri": "no-scheme", "size": 4}),                  # not a URI
    dict(aux={"uri": "s3://b/k", "size": 4, "checksum": "x"}),  # checksum without algo
    dict(aux={"size": 4}),                                      # no uri
    dict(aux={"uri": "s3://b/k", "size": -1}),                  # negative size
])
def test_damaged_reference_entries_are_format_errors(bad):
    m = REF.to_map()
    aux = bad.get("aux", m)
    rid = bad.get("rid", REF.id if "aux" not in bad else b"\x00" * 32)
    with pytest.raises(FormatError):
        decode_tree_node(_raw("a", KIND_REFERENCE, rid, bad.get("size", 4), aux))


def test_unsorted_record_map_is_not_canonical():
    m = REF.to_map()
    unsorted = dict(reversed(list(m.items())))
    with pytest.raises(FormatError):
        decode_tree_node(_raw("a", KIND_REFERENCE, REF.id, 4, unsorted))


def test_reference_vectors_in_the_json_are_reproduced():
    import json
    from pathlib import Path

    vec = json.loads((Path(__file__).resolve().parents[2] / "compat" / "vectors" / "format_v1.json").read_text())
    assert vec["references"]
    for v in vec["references"]:
        ref = reference_from_map(v["record"])
        assert ref.encode().hex() == v["encoded"] and ref.id.hex() == v["id"]
        tree = encode_tree_node([reference_entry(v["tree_entry_name"], ref)])
        assert tree.hex() == v["tree_encoded"] and tree_node_id(tree).hex() == v["tree_id"]
        assert decode_tree_node(tree)[0].reference == ref
