"""add_dir keeps a directory's file list on disk, yet behaves like adding every file one by one."""

from __future__ import annotations

import os
import stat
import tracemalloc

import pytest

import cas
from cas.api import ingest, listing
from cas.errors import FileChangedError, PathConflict
from tests.api.helpers import draft, write
from tests.conftest import read_tree, write_tree

FILES = {
    "a.txt": b"a" * 3000,
    "a-b/x": b"dash sorts before the dot and the slash",
    "a/b/c.bin": os.urandom(9000),
    "a/b/empty": b"",
    "a/z": b"z",
    "a.b/y": b"y",
    "\u00e9t\u00e9/caf\u00e9": b"accents",
    "zz/deep/er/still/f": b"deep",
}


def _one_by_one(repo, root, files, prefix=""):
    a = draft(repo, "ref")
    for rel in files:
        a.add_file(os.path.join(root, rel), name=prefix + rel, policy="immutable")
    return a


@pytest.mark.parametrize("policy", ["immutable", "mutable"])
def test_tree_ids_equal_those_of_adding_each_file(repo, tmp_path, policy):
    write_tree(tmp_path / "src", FILES)
    os.makedirs(tmp_path / "src" / "empty" / "dir")  # no files below: not in the tree
    exe = tmp_path / "src" / "a" / "z"
    os.chmod(exe, os.stat(exe).st_mode | stat.S_IXUSR)
    a = draft(repo)
    assert a.add_dir(tmp_path / "src", name="data", policy=policy) == len(FILES)
    expected = _one_by_one(repo, str(tmp_path / "src"), FILES, "data/").digest
    assert a.digest == expected
    assert a.file_count == len(FILES) and a.size == sum(map(len, FILES.values()))
    v = repo.log_artifact(a)
    assert v.digest == expected and v.file_count == len(FILES)
    assert v.get_entry("data/a/z").executable and not v.get_entry("data/a.txt").executable
    assert read_tree(v.download(tmp_path / "out")) == {"data/" + k: d for k, d in FILES.items()}


def test_manifest_names_and_removal_before_logging(repo, tmp_path):
    write_tree(tmp_path / "src", FILES)
    a = draft(repo)
    a.add_dir(tmp_path / "src", policy="immutable")
    assert sorted(a.manifest) == sorted(FILES)
    assert a.get_added_local_path_name(tmp_path / "src" / "a" / "b" / "c.bin") == "a/b/c.bin"
    assert a.get_added_local_path_name(tmp_path / "src" / "a" / "b") is None
    assert a.get_added_local_path_name(tmp_path / "elsewhere") is None
    assert a.remove("a") == 3
    assert a.get_entry("zz/deep/er/still/f").size == 4
    v = repo.log_artifact(a)
    assert sorted(v.manifest) == sorted(k for k in FILES if not k.startswith("a/"))


def test_a_later_add_decides_the_added_name(repo, tmp_path):
    write_tree(tmp_path / "src", {"f": b"f"})
    a = draft(repo)
    a.add_file(tmp_path / "src" / "f", name="first")
    a.add_dir(tmp_path / "src", name="dir")
    assert a.get_added_local_path_name(tmp_path / "src" / "f") == "dir/f"
    a.add_file(tmp_path / "src" / "f", name="last")
    assert a.get_added_local_path_name(tmp_path / "src" / "f") == "last"


def test_files_added_inside_an_added_directory_keep_conflict_rules(repo, tmp_path):
    write_tree(tmp_path / "src", {"d/f": b"old", "g": b"g"})
    other = write(tmp_path / "other", b"new")
    a = draft(repo)
    a.add_dir(tmp_path / "src", name="data", policy="immutable")
    with pytest.raises(PathConflict):
        a.add_file(other, name="data/d/f")
    with pytest.raises(PathConflict):
        a.add_file(other, name="data/g/below-a-file")
    a.add_file(other, name="data/d/f", overwrite=True)
    a.add_file(other, name="data/d/new")
    v = repo.log_artifact(a)
    assert read_tree(v.download(tmp_path / "out")) == {"data/d/f": b"new", "data/d/new": b"new", "data/g": b"g"}


def test_two_directories_and_a_version_based_draft(repo, tmp_path):
    write_tree(tmp_path / "one", {"x": b"1", "s/y": b"2"})
    write_tree(tmp_path / "two", {"x": b"3"})
    a = draft(repo)
    a.add_dir(tmp_path / "one", name="one")
    a.add_dir(tmp_path / "two", name="two/inner", policy="immutable")
    v0 = repo.log_artifact(a)
    assert read_tree(v0.download(tmp_path / "o0")) == {"one/x": b"1", "one/s/y": b"2", "two/inner/x": b"3"}
    b = v0.new_draft()
    b.add_dir(tmp_path / "two", name="three", policy="immutable")
    write(tmp_path / "one" / "x", b"changed")
    with pytest.raises(PathConflict):
        b.add_dir(tmp_path / "one", name="one")  # one/x is in the version with other content
    b.add_dir(tmp_path / "one", name="one", merge=True)
    v1 = repo.log_artifact(b)
    assert v1.file_count == 4 and v1.get_entry("three/x").digest == v0.get_entry("two/inner/x").digest
    assert read_tree(v1.download(tmp_path / "o1")) == {"one/x": b"changed", "one/s/y": b"2", "two/inner/x": b"3",
                                                       "three/x": b"3"}


def test_the_directory_is_a_snapshot(repo, tmp_path):
    write_tree(tmp_path / "src", {"a": b"a", "b": b"b"})
    imm = draft(repo, "imm")
    imm.add_dir(tmp_path / "src", policy="immutable")
    mut = draft(repo, "mut")
    mut.add_dir(tmp_path / "src", policy="mutable")
    write(tmp_path / "src" / "c-later", b"not added")
    write(tmp_path / "src" / "a", b"changed after add_dir")
    v = repo.log_artifact(mut)  # stored when added
    assert read_tree(v.download(tmp_path / "out")) == {"a": b"a", "b": b"b"}
    with pytest.raises(FileChangedError, match="a"):
        repo.log_artifact(imm)


def test_an_empty_directory_adds_nothing(repo, tmp_path):
    os.makedirs(tmp_path / "empty" / "sub")
    a = draft(repo)
    assert a.add_dir(tmp_path / "empty", name="e") == 0
    assert a.manifest == {} and a.file_count == 0


def _log_peak(repo, src, name, policy) -> int:
    tracemalloc.start()
    try:
        a = draft(repo, name)
        a.add_dir(src, policy=policy)
        repo.log_artifact(a)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _tiny_files(root, n: int) -> None:
    for d in range(0, n, 100):
        os.makedirs(root / f"d{d:05d}")
        for i in range(d, d + 100):
            with open(root / f"d{d:05d}" / f"f{i:05d}", "wb") as f:
                f.write(b"%d" % i if i % 3 else b"")


@pytest.mark.parametrize("policy", ["immutable", "mutable"])
def test_memory_does_not_grow_with_the_number_of_files(repo, tmp_path, monkeypatch, policy):
    # every batch is made small (files per stat-cache lookup, objects per flush,
    # stat-cache records per commit, files read ahead), so the memory of a log
    # is bounded far below what the state of thousands of files would take
    monkeypatch.setattr(listing, "WINDOW", 100)
    monkeypatch.setattr(listing, "FLUSH_OBJECTS", 300)
    monkeypatch.setattr(listing, "STAT_BATCH", 300)
    monkeypatch.setattr(ingest, "PREFETCH_FILES", 32)
    monkeypatch.setattr(listing, "READ_BLOCK", 8192)
    _tiny_files(tmp_path / "warm", 100)
    _log_peak(repo, tmp_path / "warm", "warm", policy)  # imports and pools: not per file
    peaks = {}
    for n in (400, 2400):
        _tiny_files(tmp_path / f"src{n}", n)
        peaks[n] = _log_peak(repo, tmp_path / f"src{n}", f"n{n}", policy)
    # holding the 2,000 extra files' records at once takes over 2 MiB (the old draft far more)
    assert peaks[2400] - peaks[400] < 2**20 / 2, peaks
