"""Rules of docs/format.md that readers and writers enforce (beyond the byte vectors)."""

from __future__ import annotations

import msgpack
import pytest

from cas.errors import FormatError, InvalidMetadata, UnsafePath, UnsupportedFormat, UsageError
from cas.format import records as R
from cas.format.chunker import ChunkerParams
from cas.format.names import check_path
from cas.format.nodes import decode_tree_node
from cas.format.pack import MAX_OBJECT, encode_record_header

GOOD = {"op": "version", "collection": "default/ds", "type": "dataset", "digest": b"\x01" * 32,
        "size": 1, "n_files": 1, "version": 0, "time_ns": 5}


def test_nested_metadata_keys_must_be_strings():  # §7.1
    with pytest.raises(InvalidMetadata):
        R.check_metadata({"a": {1: "x", "b": 2}})
    assert R.check_metadata({"a": [{"b": 1.5}]}) == {"a": [{"b": 1.5}]}


@pytest.mark.parametrize("change", [
    {"digest": b"\x01" * 5},
    {"aliases": [1, 2]},
    {"tags": "raw"},
    {"collection": "no-project"},
    {"collection": "p/a\x00b"},
    {"metadata": [1]},
    {"ttl": -1},
])
def test_malformed_log_entries_are_rejected(change):  # §7.2
    R.encode_entry(GOOD)
    data = R.LOG_MAGIC + msgpack.packb({**GOOD, **change}, use_bin_type=True)
    with pytest.raises(FormatError):
        R.decode_entry(data)


def test_update_fields_are_type_checked():  # §7.2
    e = {"op": "update", "collection": "default/ds", "version": 0, "time_ns": 1, "fields": {"description": 3}}
    with pytest.raises(FormatError):
        R.encode_entry(e)


def test_undecodable_file_names_are_unsafe_paths():  # §7.4
    with pytest.raises(UnsafePath):
        check_path("dir/\udcff.txt")


def test_chunker_params_outside_the_library_bounds_are_usage_errors():  # §5.2
    with pytest.raises(UsageError):
        ChunkerParams(2 * 1024 * 1024, 4 * 1024 * 1024, 16 * 1024 * 1024)
    with pytest.raises(UsageError):
        ChunkerParams(16 * 1024, 8 * 1024 * 1024, 16 * 1024 * 1024)


def test_unknown_tree_kind_needs_a_newer_reader():  # §8.2
    node = msgpack.packb([1, [["x", 4, b"\x00" * 32, 1, 0]]], use_bin_type=True)
    with pytest.raises(UnsupportedFormat):
        decode_tree_node(node)


def test_reference_entry_must_carry_its_record():  # §8.3
    node = msgpack.packb([1, [["x", 3, b"\x00" * 32, 1, 0]]], use_bin_type=True)
    with pytest.raises(FormatError):
        decode_tree_node(node)


def test_unknown_config_features_refuse_the_store():  # §1.2
    base = {"format_version": 1, "chunker": ChunkerParams().spec, "zstd_level": 3, "store_id": "0" * 32}
    assert R.decode_config(R.encode_config({**base, "features": {"read": []}}))["format_version"] == 1
    with pytest.raises(UnsupportedFormat):
        R.decode_config(R.encode_config({**base, "features": {"read": ["no-such-feature"]}}))


def test_objects_over_the_limit_are_refused():  # §6.5
    encode_record_header(0, 0, MAX_OBJECT, MAX_OBJECT, b"\x00" * 32)
    with pytest.raises(FormatError):
        encode_record_header(2, 0, MAX_OBJECT + 1, 10, b"\x00" * 32)


def test_replay_skips_a_malformed_log_entry_and_fsck_reports_it(repo):  # §7.2, §9.3
    import cas
    import os

    art = cas.Artifact("ds", type="dataset")
    with art.new_file("a.txt", mode="w") as f:
        f.write("hello")
    repo.log_artifact(art)  # v0 exists, so a malformed 'aliases' entry for it reaches the index
    bad = R.LOG_MAGIC + msgpack.packb({"op": "aliases", "collection": "default/ds", "version": 0,
                                       "set": [1, 2], "time_ns": 1}, use_bin_type=True)
    with open(repo.log.path(repo.log.last_seq() + 1), "wb") as f:
        f.write(bad)
    root = repo.root
    repo.close()
    reopened = cas.Repo(os.path.dirname(root))
    try:
        assert [c["versions"] for c in reopened.collections()] == [1]
        assert reopened.aliases_of("default/ds", 0) == ["latest"]
        kinds = [f.kind for f in reopened.verify().findings]
        assert "bad-log-entry" in kinds
    finally:
        reopened.close()
