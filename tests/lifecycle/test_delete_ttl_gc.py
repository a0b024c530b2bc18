"""Deleting versions, time to live and garbage collection (API.md "delete", issue: lifecycle)."""

from __future__ import annotations

import datetime
import json
import os
import time

import pytest

import cas
from cas.api import gc as gc_mod
from cas.errors import DeleteRefused, GcBusy, UsageError, VersionDeleted
import cas.storage.pins
from cas.storage.lease import Lease
from cas.storage.packs import iter_pack_names
from tests.api.helpers import log_files
from tests.conftest import read_tree


def _unique(seed: int, n: int = 40_000) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


def _pack_bytes(repo) -> int:
    return sum(os.path.getsize(os.path.join(repo.layout.packs, n[:2], n + ".pack")) for n in iter_pack_names(repo.layout.packs))


# delete --------------------------------------------------------------------------------
def test_delete_hides_the_version_but_keeps_its_history(repo, tmp_path):
    v0 = log_files(repo, tmp_path, {"a": b"zero"})
    v1 = log_files(repo, tmp_path, {"a": b"one"})
    v0.delete()
    assert v0.state == "DELETED"
    assert [v.version for v in repo.artifacts("data")] == ["v1"]
    assert [(v.version, v.state) for v in repo.artifacts("data", include_deleted=True)] == [
        ("v1", "COMMITTED"), ("v0", "DELETED")]
    with pytest.raises(VersionDeleted, match="v0 was deleted"):
        repo.artifact("data:v0")
    assert repo.artifact("data").version == v1.version


def test_delete_refuses_while_aliases_point_at_it_unless_asked(repo, tmp_path):
    v0 = log_files(repo, tmp_path, {"a": b"zero"}, aliases=["best", "prod"])
    log_files(repo, tmp_path, {"a": b"one"})
    with pytest.raises(DeleteRefused, match="best, prod"):
        v0.delete()
    assert repo.artifact("data:best").version == "v0"  # nothing changed
    v0.delete(delete_aliases=True)
    with pytest.raises(cas.errors.VersionNotFound):
        repo.artifact("data:best")


def test_deleting_latest_moves_latest_to_the_newest_live_version(repo, tmp_path):
    log_files(repo, tmp_path, {"a": b"zero"})
    log_files(repo, tmp_path, {"a": b"one"})
    v2 = log_files(repo, tmp_path, {"a": b"two"})
    v2.delete()  # 'latest' alone does not block a delete
    assert repo.artifact("data:latest").version == "v1"
    # the next version still gets the next number: numbers are never reused
    assert log_files(repo, tmp_path, {"a": b"three"}).version == "v3"


def test_deleting_every_version_says_so(repo, tmp_path):
    v0 = log_files(repo, tmp_path, {"a": b"zero"})
    v0.delete()
    with pytest.raises(VersionDeleted, match="every version"):
        repo.artifact("data")
    v0.delete()  # deleting twice is a no-op


def test_delete_is_a_logged_entry_visible_to_other_handles(repo, tmp_path):
    v0 = log_files(repo, tmp_path, {"a": b"zero"})
    log_files(repo, tmp_path, {"a": b"one"})
    with cas.Repo(repo.root) as other:
        other.artifact("data:v0").delete()
    with pytest.raises(VersionDeleted):
        repo.artifact("data:v0")
    with open(os.path.join(repo.root, "config")) as f:
        assert json.load(f)["features"]["read"] == ["lifecycle"]
    # and it survives an index rebuild
    repo.rebuild_index()
    with pytest.raises(VersionDeleted):
        repo.artifact(v0.qualified_name)


def test_a_deleted_version_cannot_seed_a_draft(repo, tmp_path):
    v0 = log_files(repo, tmp_path, {"a": b"zero"})
    log_files(repo, tmp_path, {"a": b"one"})
    v0.delete()
    with pytest.raises(VersionDeleted):
        v0.new_draft()


# ttl --------------------------------------------------------------------------------------
def test_ttl_accepts_seconds_timedelta_or_none(repo, tmp_path):
    v = log_files(repo, tmp_path, {"a": b"x"})
    v.ttl = datetime.timedelta(days=2)
    v.save()
    assert repo.artifact("data").ttl == 2 * 86400
    assert v.expires_at is not None
    v.ttl = None
    v.save()
    assert repo.artifact("data").ttl is None and v.expires_at is None
    with pytest.raises(UsageError, match="ttl"):
        v.ttl = -1
    with pytest.raises(UsageError, match="ttl"):
        v.ttl = "soon"


def test_gc_deletes_expired_versions_but_keeps_aliased_ones(repo, tmp_path):
    log_files(repo, tmp_path, {"a": _unique(1)}, aliases=["prod"])
    log_files(repo, tmp_path, {"a": _unique(2)})
    log_files(repo, tmp_path, {"a": _unique(3)})
    repo.set_collection_ttl("data", 3600)
    assert repo.collection_ttl("data") == 3600
    v2 = repo.artifact("data:v2")
    v2.ttl = 10 * 86400  # its own ttl wins over the collection default
    v2.save()
    future = time.time_ns() + 2 * 3600 * 10**9
    dry = gc_mod.gc(repo, dry_run=True, grace_s=0, now_ns=future)
    assert dry.expired == ["default/data:v1"] and dry.expired_kept == ["default/data:v0"]
    assert len(repo.artifacts("data")) == 3  # a dry run changes nothing
    report = gc_mod.gc(repo, grace_s=0, now_ns=future)
    assert report.expired == ["default/data:v1"]
    assert [v.version for v in repo.artifacts("data")] == ["v2", "v0"]
    assert repo.artifacts("data", include_deleted=True)[1].state == "DELETED"


# gc ---------------------------------------------------------------------------------------
def test_gc_frees_what_deleted_versions_alone_used_and_keeps_the_rest(repo, tmp_path):
    shared = _unique(99, 6000)
    kept = {}
    for i in range(4):
        files = {"uniq.bin": _unique(i), "shared.bin": shared}
        v = log_files(repo, tmp_path, files)
        kept[v.version] = files
    repo.artifact("data:v0").delete()
    repo.artifact("data:v1").delete()
    before = _pack_bytes(repo)
    dry = repo.gc(dry_run=True, grace=0)
    assert dry.bytes_freed > 60_000 and _pack_bytes(repo) == before
    report = repo.gc(grace=0)
    assert report.packs_deleted >= 2 and report.bytes_freed > 60_000
    assert _pack_bytes(repo) < before - 60_000
    for v in repo.artifacts("data"):
        assert read_tree(v.download(tmp_path / "out" / v.version)) == kept[v.version]
    assert repo.verify().findings == []
    # a second gc has nothing to do
    again = repo.gc(grace=0)
    assert again.packs_condemned == 0 and again.packs_deleted == 0


def test_gc_respects_the_grace_period(repo, tmp_path):
    log_files(repo, tmp_path, {"a": _unique(1)})
    log_files(repo, tmp_path, {"a": _unique(2)})
    repo.artifact("data:v0").delete()
    before = _pack_bytes(repo)
    report = repo.gc()  # default grace: 24 h; everything here is younger
    assert report.packs_condemned == 0 and _pack_bytes(repo) == before


def test_gc_repacks_mostly_garbage_packs_and_keeps_live_objects(make_repo, tmp_path):
    repo = make_repo()
    # one draft, one pack: a big unique file and a small one that a later version keeps
    keep = _unique(7, 3000)
    log_files(repo, tmp_path, {"big.bin": _unique(8, 80_000), "keep.bin": keep})
    log_files(repo, tmp_path, {"keep.bin": keep})
    repo.artifact("data:v0").delete()
    report = repo.gc(grace=0)
    assert report.packs_repacked == 1 and report.bytes_copied > 0
    assert read_tree(repo.artifact("data").download(tmp_path / "out")) == {"keep.bin": keep}
    # the rebuilt index agrees: condemned packs are never indexed again
    repo.rebuild_index()
    assert read_tree(repo.artifact("data").download(tmp_path / "out2")) == {"keep.bin": keep}
    assert repo.verify().findings == []


def test_objects_of_a_gc_d_version_are_stored_again_when_the_content_comes_back(repo, tmp_path):
    files = {"a.bin": _unique(5)}
    log_files(repo, tmp_path, files)
    log_files(repo, tmp_path, {"b.bin": _unique(6)})
    repo.artifact("data:v0").delete()
    repo.gc(grace=0)
    v = log_files(repo, tmp_path, files)  # same bytes again: dedup must not reuse reclaimed chunks
    assert read_tree(v.download(tmp_path / "out")) == files
    assert repo.verify().findings == []


def test_a_second_gc_waits_for_the_lease(repo):
    with Lease(repo.layout.locks, "gc", 60):
        with pytest.raises(GcBusy, match="holds"):
            repo.gc(grace=0)
    repo.gc(grace=0)


def test_an_expired_lease_is_broken(repo):
    lease = Lease(repo.layout.locks, "gc", -1).acquire()  # a crashed gc's lease, already expired
    assert lease.held
    repo.gc(grace=0)
    assert not os.path.exists(os.path.join(repo.layout.locks, "gc"))


def test_logging_bytes_identical_to_a_reclaimed_pack_again(repo, tmp_path):
    # the same single file logged alone twice writes a byte-identical pack, whose name
    # gc condemned in between: the new pack must get another name or its objects are lost
    src = tmp_path / "same"
    src.mkdir()
    (src / "a.bin").write_bytes(_unique(11))

    def log_it():
        a = cas.Artifact("solo", "dataset", repo=repo)
        a.add_file(str(src / "a.bin"))
        return repo.log_artifact(a)

    log_it()
    log_files(repo, tmp_path, {"b": _unique(12)}, name="solo")
    first = set(iter_pack_names(repo.layout.packs))
    repo.artifact("solo:v0").delete()
    assert repo.gc(grace=0).packs_deleted >= 1
    os.utime(src / "a.bin")  # no stat-cache shortcut: the bytes are read and stored again
    v = log_it()
    assert read_tree(v.download(tmp_path / "out")) == {"a.bin": _unique(11)}
    assert repo.verify().findings == []
    assert set(iter_pack_names(repo.layout.packs)) - first


def test_a_writer_that_reused_condemned_objects_keeps_them_and_publishes(repo, tmp_path):
    x = _unique(21)
    log_files(repo, tmp_path, {"x.bin": x})
    log_files(repo, tmp_path, {"y.bin": _unique(22)})
    src = tmp_path / "w"
    src.mkdir()
    (src / "x-again.bin").write_bytes(x)
    with cas.Repo(repo.root) as writer:
        draft = cas.Artifact("other", "dataset", repo=writer)
        draft.add_file(str(src / "x-again.bin"))  # dedups against v0's chunks: writer's pin is taken
        repo.artifact("data:v0").delete()
        report = repo.gc(grace=0)
        assert report.packs_condemned >= 1
        assert report.packs_deleted == 0 and report.packs_waiting >= 1  # the writer's pin keeps them
        v = writer.log_artifact(draft)  # finds the condemned chunks and stores them again
        assert read_tree(v.download(tmp_path / "out")) == {"x-again.bin": x}
        # with no draft in progress the writer holds no pin: the condemned packs go
        report = repo.gc(grace=0)
        assert report.packs_deleted >= 1 and report.packs_waiting == 0 and report.pins_active == 0
    assert read_tree(repo.artifact("other").download(tmp_path / "out2")) == {"x-again.bin": x}
    assert repo.verify().findings == []


def test_a_killed_writer_does_not_block_gc_forever(repo, tmp_path):
    import json as _json

    log_files(repo, tmp_path, {"a": _unique(1)})
    log_files(repo, tmp_path, {"a": _unique(2)})
    repo.artifact("data:v0").delete()
    # the pin of a process that no longer exists, which had seen nothing
    with open(os.path.join(repo.layout.pins, "ghost"), "w") as f:
        _json.dump({"host": cas.storage.pins.HOST, "pid": 2**22 + 12345, "started_ns": 0, "seen_seq": 0}, f)
    report = repo.gc(grace=0)
    assert report.pins_active == 0 and report.packs_deleted >= 1
    assert not os.path.exists(os.path.join(repo.layout.pins, "ghost"))


def test_a_draft_that_only_reuses_stored_objects_is_protected_too(repo, tmp_path):
    # the draft's only object already exists (dedup hit, nothing written): its reuse
    # decision must still be covered by a pin, or gc could reclaim it before the log
    obj = {"k": list(range(50))}
    first = cas.Artifact("cfg", "config", repo=repo)
    first.add(obj, "c")
    repo.log_artifact(first)
    log_files(repo, tmp_path, {"other": b"x"}, name="cfg", type="config")
    with cas.Repo(repo.root) as writer:
        draft = cas.Artifact("again", "config", repo=writer)
        draft.add(obj, "c")  # a dedup hit
        repo.artifact("cfg:v0").delete()
        repo.gc(grace=0, repack_threshold=0.0)
        v = writer.log_artifact(draft)
        assert v.get("c") == obj
    repo.gc(grace=0, repack_threshold=0.0)
    assert repo.artifact("again").get("c") == obj
    assert repo.verify().findings == []
