"""Diffs, listings, stats, incremental drafts and logging across repositories."""

from __future__ import annotations

import os
import shutil

import pytest

import cas
from cas.errors import CollectionNotFound
from tests.api.helpers import draft, log_files, write
from tests.conftest import read_tree

TREE = {
    "top.txt": b"top level",
    "a/x.txt": b"x" * 2000,
    "a/b/y.txt": b"y" * 2500,
    "a/b/c/f.txt": b"f" * 3000,
    "a/b/c/g.txt": b"g",
    "other/z.txt": b"z" * 1500,
}


def test_diff_between_versions(repo, tmp_path):
    log_files(repo, tmp_path, {"same": b"s", "gone": b"g", "d/changed": b"old", "d/e/gone2": b"x"})
    log_files(repo, tmp_path, {"same": b"s", "d/changed": b"new!", "d/added": b"a", "n/new": b"n"})
    changes = {(c.status, c.path) for c in repo.diff("data:v0", "data:v1")}
    assert changes == {
        ("removed", "gone"), ("removed", "d/e/gone2"), ("modified", "d/changed"),
        ("added", "d/added"), ("added", "n/new"),
    }
    back = {(c.status, c.path) for c in repo.diff("data:v1", "data:v0")}
    assert ("added", "gone") in back and ("removed", "n/new") in back
    assert repo.diff("data:v0", "data:v0") == []
    mod = next(c for c in repo.diff("data:v0", "data:v1") if c.status == "modified")
    assert mod.to_dict()["old"]["size"] == 3 and mod.to_dict()["new"]["size"] == 4


def test_collections_types_and_stats(repo, tmp_path):
    log_files(repo, tmp_path, {"f": b"1" * 100}, name="train", type="dataset")
    log_files(repo, tmp_path, {"f": b"2" * 100}, name="train", type="dataset")
    log_files(repo, tmp_path, {"w": b"w" * 50}, name="net", type="model")
    names = [(c["name"], c["type"], c["versions"]) for c in repo.collections()]
    assert sorted(names) == [("net", "model", 1), ("train", "dataset", 2)]
    assert [c["name"] for c in repo.collections(type="model")] == ["net"]
    assert repo.collections(type="nothing") == []
    assert repo.types() == ["dataset", "model"]
    s = repo.stats()
    assert (s["collections"], s["versions"]) == (2, 3)
    assert s["logical_bytes"] == 250
    assert s["objects"] > 0 and s["packs"] > 0 and s["pack_bytes"] > 0


def test_stats_of_an_empty_repo(repo):
    s = repo.stats()
    assert (s["collections"], s["versions"], s["objects"], s["logical_bytes"]) == (0, 0, 0, 0)
    assert repo.collections() == [] and repo.types() == []


def test_new_draft_writes_only_the_changed_path(repo, tmp_path):
    v0 = log_files(repo, tmp_path, TREE)
    before = repo.stats()["objects"]
    d = v0.new_draft()
    assert d.is_draft() and d.file_count == len(TREE) and d.name == "data" and d.type == "dataset"
    d.add_file(write(tmp_path / "new-f", b"a small new file"), name="a/b/c/f.txt", overwrite=True)
    v1 = repo.log_artifact(d)
    assert v1.version == "v1"
    # 4 tree nodes (/, a, a/b, a/b/c) + the new file's single chunk and its file node
    assert repo.stats()["objects"] - before == 6
    expected = {**TREE, "a/b/c/f.txt": b"a small new file"}
    assert read_tree(v1.download(tmp_path / "v1")) == expected
    assert read_tree(v0.download(tmp_path / "v0")) == TREE  # the base is unchanged
    assert [(c.status, c.path) for c in repo.diff("data:v0", "data:v1")] == [("modified", "a/b/c/f.txt")]
    # the same content built from scratch has the same digest and writes nothing
    after = repo.stats()["objects"]
    full = log_files(repo, tmp_path, expected)
    assert full == v1 and repo.stats()["objects"] == after


def test_new_draft_keeps_metadata_and_can_remove(repo, tmp_path):
    v0 = log_files(repo, tmp_path, TREE, description="base", metadata={"k": 1})
    d = v0.new_draft()
    assert d.description == "base" and d.metadata == {"k": 1}
    d.metadata = {"k": 2}
    assert d.remove("a/b") == 3
    d.add({"n": 1}, "a/b")
    v1 = repo.log_artifact(d)
    assert sorted(v1.manifest) == ["a/b.json", "a/x.txt", "other/z.txt", "top.txt"]
    assert v1.metadata == {"k": 2} and repo.artifact("data:v0").metadata == {"k": 1}


def test_unchanged_new_draft_of_latest_is_a_noop(repo, tmp_path):
    v0 = log_files(repo, tmp_path, TREE)
    again = repo.log_artifact(v0.new_draft(), aliases=["best"])
    assert again == v0 and len(repo.artifacts("data")) == 1
    assert "best" in v0.aliases


def test_logging_a_draft_of_another_repo_copies_its_objects(make_repo, tmp_path):
    repo_a, repo_b = make_repo("a"), make_repo("b")
    files = {"big.bin": os.urandom(9000), "d/small.txt": b"small", "d/imm.txt": b"immutable one"}
    for rel, data in files.items():
        write(tmp_path / "src" / rel, data)
    a = cas.Artifact("x", "dataset", repo=repo_a)
    a.add_file(tmp_path / "src" / "big.bin")
    a.add_file(tmp_path / "src" / "d" / "small.txt", name="d/small.txt")
    a.add_file(tmp_path / "src" / "d" / "imm.txt", name="d/imm.txt", policy="immutable")
    a.add({"k": [1, 2]}, "obj")
    v = repo_b.log_artifact(a)
    with pytest.raises(CollectionNotFound):
        repo_a.artifact("x")
    repo_a.close()
    shutil.rmtree(tmp_path / "a")
    expected = {**files, "obj.json": b'{"k":[1,2]}'}
    assert read_tree(v.download(tmp_path / "out")) == expected
    repo_b.close()
    with cas.Repo(tmp_path / "b") as r:
        assert read_tree(r.artifact("x:v0").download(tmp_path / "out2")) == expected
        assert r.artifact("x").get("obj") == {"k": [1, 2]}
        assert r.verify().ok


def test_draft_save_logs_to_its_repo(repo, tmp_path):
    d = draft(repo)
    d.add({"a": 1}, "a")
    v = d.save(aliases=["best"])
    assert v.version == "v0" and "best" in repo.artifact("data:best").aliases
