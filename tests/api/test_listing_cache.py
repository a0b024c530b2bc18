"""A directory scanned exactly as before is answered by one listing record, never wrongly."""

from __future__ import annotations

import os
import time

import pytest

import cas
from cas.api import ingest
from cas.api.ingest import FileIngester, listing_key
from cas.errors import FileChangedError, UnsafePath
from tests.api.helpers import draft, write
from tests.conftest import read_tree, write_tree

FILES = {"a.txt": b"a" * 3000, "d/b.bin": os.urandom(9000), "d/e/c": b"c", "empty": b""}


@pytest.fixture
def later(monkeypatch):
    """Build as if 5 s had passed since the files were written (ctime cannot be set back)."""

    class Clock:
        @staticmethod
        def time_ns():
            return time.time_ns() + 5_000_000_000

    monkeypatch.setattr(ingest, "time", Clock)


def _add(repo, src, name="data", policy="mutable"):
    a = draft(repo, name)
    a.add_dir(src, policy=policy)
    return repo.log_artifact(a)


def _no_per_file_work(monkeypatch):
    def fail(*_a, **_k):
        raise AssertionError("a file was read one by one")

    def no_lookups(_self, pending):
        assert not list(pending), "files were looked up in the stat cache one by one"
        return {}

    monkeypatch.setattr(FileIngester, "resolve_cached", no_lookups)
    monkeypatch.setattr(FileIngester, "file", fail)


@pytest.mark.parametrize("policy", ["mutable", "immutable"])
def test_an_unchanged_directory_is_answered_without_touching_its_files(repo, tmp_path, later, monkeypatch,
                                                                       policy):
    write_tree(tmp_path / "src", FILES)
    first = _add(repo, tmp_path / "src")
    with monkeypatch.context() as m:
        _no_per_file_work(m)
        again = _add(repo, tmp_path / "src", "again", policy)
    assert again.digest == first.digest and again.file_count == len(FILES)
    assert read_tree(again.download(tmp_path / "out")) == FILES


@pytest.mark.parametrize("change", ["content", "added", "removed", "renamed", "chmod"])
def test_any_change_in_the_directory_misses(repo, tmp_path, later, change):
    src = tmp_path / "src"
    write_tree(src, FILES)
    _add(repo, src)
    expected = dict(FILES)
    if change == "content":
        write(src / "d" / "e" / "c", b"C")  # same size
        expected["d/e/c"] = b"C"
    elif change == "added":
        write(src / "d" / "new", b"new")
        expected["d/new"] = b"new"
    elif change == "removed":
        os.unlink(src / "a.txt")
        del expected["a.txt"]
    elif change == "renamed":
        os.rename(src / "d" / "e" / "c", src / "d" / "e" / "c2")
        expected["d/e/c2"] = expected.pop("d/e/c")
    else:
        os.chmod(src / "a.txt", 0o755)
    v = _add(repo, src, "after")
    assert read_tree(v.download(tmp_path / "out")) == expected
    if change != "removed":
        assert v.get_entry("a.txt").executable == (change == "chmod")
    assert repo.ingester.n_read >= 1 + len(FILES) or change in ("removed", "renamed", "chmod")


def test_a_directory_with_a_recently_modified_file_is_not_recorded(repo, tmp_path):
    write_tree(tmp_path / "src", FILES)  # just written: racy, without the later clock
    _add(repo, tmp_path / "src")
    assert repo.objects._tables().get_listing(listing_key(str(tmp_path / "src"))) is None


def test_a_record_is_trusted_only_while_no_gc_ran(repo, tmp_path, later, monkeypatch):
    write_tree(tmp_path / "src", FILES)
    first = _add(repo, tmp_path / "src")
    assert repo.objects._tables().get_listing(listing_key(str(tmp_path / "src"))) is not None
    write_tree(tmp_path / "junk", {"j": os.urandom(5000)})
    _add(repo, tmp_path / "junk", "junk").delete()
    assert repo.gc(grace=0).packs_condemned >= 1
    looked_up = []

    def resolve_cached(self, pending, real=FileIngester.resolve_cached):
        pending = list(pending)
        looked_up.extend(pending)
        return real(self, pending)

    monkeypatch.setattr(FileIngester, "resolve_cached", resolve_cached)
    again = _add(repo, tmp_path / "src", "again")
    assert len(looked_up) == len(FILES) and again.digest == first.digest  # each file checked again
    assert read_tree(again.download(tmp_path / "out")) == FILES


def test_a_record_whose_tree_is_not_stored_is_not_trusted(repo, tmp_path, later):
    src = tmp_path / "src"
    write_tree(src, FILES)
    first = _add(repo, src)
    ing = repo.ingester
    key = listing_key(str(src))
    digest, _tid, size, n, recorded, gcs = repo.objects._tables().get_listing(key)
    ing.record_listing(str(src), digest, 0, recorded, gcs, b"\x07" * 32, size, n)  # a tree never stored
    ing.commit_stat_cache()
    again = _add(repo, src, "again")
    assert again.digest == first.digest
    assert read_tree(again.download(tmp_path / "out")) == FILES


def test_an_immutable_file_changed_after_add_dir_still_fails_the_log(repo, tmp_path, later):
    src = tmp_path / "src"
    write_tree(src, FILES)
    _add(repo, src)
    a = draft(repo, "imm")
    a.add_dir(src, policy="immutable")  # the listing record would answer this scan
    write(src / "a.txt", b"b" * 3000)
    with pytest.raises(FileChangedError, match="a.txt"):
        repo.log_artifact(a)


def test_the_record_survives_reopening_the_store(make_repo, tmp_path, later, monkeypatch):
    write_tree(tmp_path / "src", FILES)
    repo = make_repo()
    first = _add(repo, tmp_path / "src")
    repo.close()
    again = cas.Repo(tmp_path / "repo")
    try:
        _no_per_file_work(monkeypatch)
        assert _add(again, tmp_path / "src", "again").digest == first.digest
    finally:
        again.close()


# names checked once per directory entry -------------------------------------------------


def test_a_file_name_with_a_backslash_is_refused(repo, tmp_path):
    write_tree(tmp_path / "src", {"ok": b"1", "sub/bad\\name": b"2"})
    with pytest.raises(UnsafePath, match="backslash"):
        draft(repo).add_dir(tmp_path / "src")


def test_a_directory_with_a_bad_name_fails_only_if_it_holds_a_file(repo, tmp_path):
    src = tmp_path / "src"
    write_tree(src, {"ok": b"1"})
    os.makedirs(src / "bad\\dir" / "deeper")
    os.symlink(src / "ok", src / "bad\\dir" / "link")  # symlinks are skipped, so nothing to name
    os.symlink(src / "ok", src / "bad\\link")
    a = draft(repo)
    assert a.add_dir(src) == 1
    write(src / "bad\\dir" / "deeper" / "f", b"f")
    with pytest.raises(UnsafePath, match=r"bad\\\\dir/deeper/f"):
        draft(repo, "second").add_dir(src)


def test_an_undecodable_file_name_is_refused(repo, tmp_path):
    src = tmp_path / "src"
    os.makedirs(src)
    with open(os.path.join(os.fsencode(src), b"caf\xe9"), "wb") as f:
        f.write(b"latin-1 name")
    with pytest.raises(UnsafePath, match="UTF-8"):
        draft(repo).add_dir(src)


def test_a_path_longer_than_the_limit_is_refused(repo, tmp_path):
    write_tree(tmp_path / "src", {"n" * 100 + "/f": b"f"})
    under = "/".join(["x" * 200] * 20)  # 4,019 bytes: a valid directory name on its own
    with pytest.raises(UnsafePath, match="longer than"):
        draft(repo).add_dir(tmp_path / "src", name=under)


def test_each_file_of_a_directory_is_looked_up_in_the_stat_cache_once(repo, tmp_path, later, monkeypatch):
    write_tree(tmp_path / "src", FILES)
    _add(repo, tmp_path / "src")
    write(tmp_path / "src" / "d" / "e" / "c", b"C")  # the directory misses; one file is read
    looked_up, asked_again = [], []

    def resolve_cached(self, pending, real=FileIngester.resolve_cached):
        pending = list(pending)
        looked_up.extend(e.local_path for e in pending)
        return real(self, pending)

    def cached(self, path, st, real=FileIngester.cached):
        asked_again.append(path)
        return real(self, path, st)

    monkeypatch.setattr(FileIngester, "resolve_cached", resolve_cached)
    monkeypatch.setattr(FileIngester, "cached", cached)
    v = _add(repo, tmp_path / "src", "again")
    assert sorted(looked_up) == sorted(str(tmp_path / "src" / p) for p in FILES)
    assert asked_again == [] and repo.ingester.n_read == len(FILES) + 1
    assert read_tree(v.download(tmp_path / "out")) == {**FILES, "d/e/c": b"C"}
