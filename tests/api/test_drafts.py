"""Artifact drafts: adding, removing and inspecting files before logging (API.md "Artifact")."""

from __future__ import annotations

import os
import warnings

import pytest

import cas
from cas.errors import (
    ArtifactFinalizedError,
    EntryNotFound,
    FileChangedError,
    NothingToRemove,
    PathConflict,
    UsageError,
)
from tests.api.helpers import draft, write
from tests.conftest import read_tree, write_tree


def logged_tree(version, tmp_path, name="out"):
    return read_tree(version.download(tmp_path / name))


# add_file ------------------------------------------------------------------------------
def test_add_file_default_name_and_explicit_name(repo, tmp_path):
    f = write(tmp_path / "src" / "weights.bin", b"w" * 5000)
    a = draft(repo)
    e1 = a.add_file(f)
    e2 = a.add_file(f, name="models/best.bin")
    assert e1.path == "weights.bin" and e2.path == "models/best.bin"
    assert e1.size == 5000 and e1.digest == e2.digest and e1.digest.startswith("blake3:")
    v = repo.log_artifact(a)
    assert logged_tree(v, tmp_path) == {"weights.bin": b"w" * 5000, "models/best.bin": b"w" * 5000}


def test_add_file_conflict_without_overwrite(repo, tmp_path):
    f1 = write(tmp_path / "one", b"one")
    f2 = write(tmp_path / "two", b"two")
    f3 = write(tmp_path / "three", b"one")
    a = draft(repo)
    a.add_file(f1, name="x")
    with pytest.raises(PathConflict):
        a.add_file(f2, name="x")
    assert a.add_file(f3, name="x").path == "x"  # same content: fine
    a.add_file(f2, name="x", overwrite=True)
    assert logged_tree(repo.log_artifact(a), tmp_path) == {"x": b"two"}


def test_same_content_is_not_a_conflict_whatever_the_policy(repo, tmp_path):
    f1 = write(tmp_path / "one", b"same bytes")
    f2 = write(tmp_path / "two", b"same bytes")
    f3 = write(tmp_path / "three", b"other bytes")
    a = draft(repo)
    a.add_file(f1, name="x", policy="immutable")
    a.add_file(f2, name="x", policy="mutable")
    a.add_file(f1, name="x", policy="immutable")
    with pytest.raises(PathConflict):
        a.add_file(f3, name="x", policy="immutable")
    with pytest.raises(PathConflict):
        a.add_file(f3, name="x")
    v = repo.log_artifact(a)
    assert logged_tree(v, tmp_path) == {"x": b"same bytes"}


def test_add_file_rejects_missing_files_and_bad_policy(repo, tmp_path):
    a = draft(repo)
    with pytest.raises(UsageError):
        a.add_file(tmp_path / "missing")
    with pytest.raises(UsageError):
        a.add_file(tmp_path, name="dir")
    f = write(tmp_path / "f", b"f")
    with pytest.raises(UsageError):
        a.add_file(f, policy="sometimes")
    with pytest.raises(UsageError):
        a.add_file(f, name="../escape")
    with pytest.raises(UsageError):
        a.add_file(f, name="/abs")
    assert a.file_count == 0


def test_file_and_directory_cannot_share_a_path(repo, tmp_path):
    f = write(tmp_path / "f", b"f")
    a = draft(repo)
    a.add_file(f, name="d/inner")
    with pytest.raises(PathConflict):
        a.add_file(f, name="d", overwrite=True)
    with pytest.raises(PathConflict):
        a.add_file(f, name="d/inner/deeper")
    assert list(a.manifest) == ["d/inner"]


def test_mutable_policy_logs_content_at_add_time(repo, tmp_path):
    f = write(tmp_path / "f.txt", b"before")
    a = draft(repo)
    a.add_file(f, policy="mutable")
    write(f, b"after, and longer")
    v = repo.log_artifact(a)
    assert logged_tree(v, tmp_path) == {"f.txt": b"before"}
    assert v.size == len(b"before")


def test_immutable_policy_reads_at_log_time(repo, tmp_path):
    f = write(tmp_path / "f.txt", b"content")
    a = draft(repo)
    e = a.add_file(f, policy="immutable")
    assert e.size == 7
    v = repo.log_artifact(a)
    assert logged_tree(v, tmp_path) == {"f.txt": b"content"}


def test_immutable_file_changed_before_log_raises_and_store_stays_usable(repo, tmp_path):
    f = write(tmp_path / "f.txt", b"original")
    a = draft(repo)
    a.add_file(f, policy="immutable")
    a.add_file(write(tmp_path / "g.txt", b"other"))
    write(f, b"changed, and longer")  # a new size: detected even within one timestamp tick
    with pytest.raises(FileChangedError):
        repo.log_artifact(a)
    with pytest.raises(cas.errors.CollectionNotFound):
        repo.artifact("data")
    b = draft(repo)
    b.add_file(f)
    v = repo.log_artifact(b)
    assert v.version == "v0"
    assert logged_tree(v, tmp_path) == {"f.txt": b"changed, and longer"}
    assert repo.verify().ok


def test_immutable_file_readded_after_change_logs_new_content(repo, tmp_path):
    f = write(tmp_path / "f.txt", b"original")
    a = draft(repo)
    a.add_file(f, policy="immutable")
    write(f, b"changed, and longer")
    with pytest.raises(FileChangedError):
        repo.log_artifact(a)
    assert a.is_draft()
    a.add_file(f, policy="immutable", overwrite=True)
    v = repo.log_artifact(a)
    assert logged_tree(v, tmp_path) == {"f.txt": b"changed, and longer"}


# add_dir ----------------------------------------------------------------------------------
def test_add_dir_adds_all_files_under_a_prefix(repo, tmp_path):
    write_tree(tmp_path / "d", {"a.txt": b"a", "sub/b.txt": b"b", "sub/deep/c": b"c"})
    a = draft(repo)
    assert a.add_dir(tmp_path / "d", name="data") == 3
    assert sorted(a.manifest) == ["data/a.txt", "data/sub/b.txt", "data/sub/deep/c"]
    assert a.get_added_local_path_name(tmp_path / "d" / "sub" / "b.txt") == "data/sub/b.txt"


def test_add_dir_skips_symlinks(repo, tmp_path):
    write_tree(tmp_path / "d", {"a.txt": b"a"})
    write_tree(tmp_path / "outside", {"secret": b"s"})
    os.symlink(tmp_path / "outside", tmp_path / "d" / "link")
    os.symlink(tmp_path / "outside" / "secret", tmp_path / "d" / "flink")
    a = draft(repo)
    a.add_dir(tmp_path / "d")
    assert list(a.manifest) == ["a.txt"]


def test_add_dir_without_merge_refuses_changes_and_adds_nothing(repo, tmp_path):
    write_tree(tmp_path / "v1", {"same.txt": b"same", "x.txt": b"old"})
    write_tree(tmp_path / "v2", {"same.txt": b"same", "x.txt": b"new", "zz_new.txt": b"n"})
    a = draft(repo)
    a.add_dir(tmp_path / "v1")
    with pytest.raises(PathConflict):
        a.add_dir(tmp_path / "v2")
    assert {p: e.size for p, e in a.manifest.items()} == {"same.txt": 4, "x.txt": 3}
    a.add_dir(tmp_path / "v1")  # identical content: no conflict
    a.add_dir(tmp_path / "v2", merge=True)
    v = repo.log_artifact(a)
    assert logged_tree(v, tmp_path) == {"same.txt": b"same", "x.txt": b"new", "zz_new.txt": b"n"}


# new_file / add / get ---------------------------------------------------------------------
def test_new_file_modes(repo, tmp_path):
    a = draft(repo)
    with a.new_file("notes/readme.md") as f:
        f.write("hello\n")
    with pytest.raises(PathConflict):
        with a.new_file("notes/readme.md", mode="x") as f:
            f.write("again")
    with a.new_file("notes/readme.md", mode="w") as f:
        f.write("replaced\n")
    with a.new_file("blob.bin", mode="xb") as f:
        f.write(b"\x00\x01")
    with pytest.raises(UsageError):
        with a.new_file("bad", mode="r"):
            pass
    v = repo.log_artifact(a)
    assert logged_tree(v, tmp_path) == {"notes/readme.md": b"replaced\n", "blob.bin": b"\x00\x01"}


def test_new_file_not_added_if_block_raises(repo):
    a = draft(repo)
    with pytest.raises(RuntimeError):
        with a.new_file("x.txt") as f:
            f.write("partial")
            raise RuntimeError("boom")
    assert a.file_count == 0


def test_add_and_get_json_objects(repo, tmp_path):
    a = draft(repo)
    obj = {"classes": ["cat", "dog"], "n": 2, "ratio": 0.5, "ok": None}
    e = a.add(obj, "labels")
    assert e.path == "labels.json"
    a.add([1, 2, 3], "nums.json")
    assert a.get("labels") == obj
    assert a.get("nums.json") == [1, 2, 3]
    v = repo.log_artifact(a)
    assert v.get("labels") == obj
    with pytest.raises(UsageError):
        draft(repo, "other").add({"x": object()}, "bad")
    with pytest.raises(UsageError):
        draft(repo, "other").add({"x": float("nan")}, "bad")
    with pytest.raises(KeyError):
        draft(repo, "other").get("absent")


# remove ---------------------------------------------------------------------------------
def test_remove_file_and_directory(repo, tmp_path):
    write_tree(tmp_path / "d", {"a": b"a", "sub/b": b"b", "sub/c": b"c", "subway": b"w"})
    a = draft(repo)
    a.add_dir(tmp_path / "d")
    assert a.remove("a") == 1
    assert a.remove("sub") == 2  # a directory, not the prefix 'sub' of 'subway'
    assert list(a.manifest) == ["subway"]
    v = repo.log_artifact(a)
    assert logged_tree(v, tmp_path) == {"subway": b"w"}


def test_remove_entry_object(repo, tmp_path):
    a = draft(repo)
    e = a.add({"k": 1}, "obj")
    assert a.remove(e) == 1
    assert a.file_count == 0


def test_remove_nothing_raises_file_not_found(repo, tmp_path):
    a = draft(repo)
    a.add_file(write(tmp_path / "f", b"f"), name="dir/f")
    for path in ("nothing", "di", "dir/f/g", "dir/x"):
        with pytest.raises(FileNotFoundError) as ei:
            a.remove(path)
        assert isinstance(ei.value, NothingToRemove)
    assert list(a.manifest) == ["dir/f"]


# inspecting --------------------------------------------------------------------------
def test_get_entry_and_deprecated_get_path(repo, tmp_path):
    a = draft(repo)
    a.add_file(write(tmp_path / "f", b"12345"), name="d/f")
    e = a.get_entry("d/f")
    assert (e.path, e.size) == ("d/f", 5)
    with pytest.raises(KeyError):
        a.get_entry("d/absent")
    with pytest.raises(KeyError) as ei:
        a.get_entry("d")  # a directory is not an entry
    assert isinstance(ei.value, EntryNotFound)
    with pytest.warns(DeprecationWarning):
        assert a.get_path("d/f") == e
    v = repo.log_artifact(a)
    assert v.get_entry("d/f").digest == e.digest
    with pytest.raises(KeyError):
        v.get_entry("nope")
    with pytest.warns(DeprecationWarning):
        v.get_path("d/f")


def test_get_added_local_path_name(repo, tmp_path):
    f = write(tmp_path / "src" / "f.txt", b"f")
    a = draft(repo)
    a.add_file(f, name="renamed.txt")
    assert a.get_added_local_path_name(f) == "renamed.txt"
    assert a.get_added_local_path_name(str(f)) == "renamed.txt"
    assert a.get_added_local_path_name(tmp_path / "other") is None


def test_digest_before_logging_equals_logged_digest(repo, tmp_path):
    files = {"a.txt": b"a" * 3000, "d/b.txt": b"b", "d/e/c.bin": os.urandom(6000)}
    write_tree(tmp_path / "src", files)
    a = draft(repo, description="one", metadata={"k": 1})
    for rel in sorted(files):
        a.add_file(tmp_path / "src" / rel, name=rel, policy="immutable")
    b = draft(repo, "other", "model", description="different", metadata={"k": 2})
    for rel in sorted(files, reverse=True):
        b.add_file(tmp_path / "src" / rel, name=rel)
    before = a.digest
    assert before == b.digest  # independent of insertion order, metadata, description, name, type
    assert a.size == sum(map(len, files.values())) and a.file_count == 3
    v = repo.log_artifact(a)
    assert v.digest == before == a.digest
    c = draft(repo)
    c.add_file(tmp_path / "src" / "a.txt", name="a.txt")
    assert c.digest != before


def test_empty_draft_has_a_digest_and_logs(repo):
    a = draft(repo)
    assert a.size == 0 and a.file_count == 0 and a.manifest == {}
    v = repo.log_artifact(a)
    assert v.digest == a.digest and v.file_count == 0


def test_size_file_count_manifest(repo, tmp_path):
    write_tree(tmp_path / "d", {"a": b"aa", "b/c": b"ccc"})
    a = draft(repo)
    a.add_dir(tmp_path / "d")
    assert a.size == 5 and a.file_count == 2
    man = a.manifest
    assert sorted(man) == ["a", "b/c"] and man["b/c"].size == 3
    v = repo.log_artifact(a)
    assert {p: (e.size, e.digest) for p, e in v.manifest.items()} == {p: (e.size, e.digest) for p, e in man.items()}


def test_logged_draft_refuses_changes(repo, tmp_path):
    f = write(tmp_path / "f", b"f")
    a = draft(repo)
    a.add_file(f)
    assert a.is_draft()
    v = repo.log_artifact(a)
    assert not a.is_draft()
    for change in (
        lambda: a.add_file(f, name="g"),
        lambda: a.add_dir(tmp_path),
        lambda: a.add({"x": 1}, "x"),
        lambda: a.remove("f"),
        lambda: a.new_file("n.txt").__enter__(),
        lambda: setattr(a, "description", "late"),
        lambda: setattr(a, "metadata", {"late": 1}),
    ):
        with pytest.raises(ArtifactFinalizedError):
            change()
    assert a.version == "v0" and a.digest == v.digest
    assert repo.artifact("data").file_count == 1


def test_finalized_draft_refuses_changes(repo, tmp_path):
    a = draft(repo)
    a.finalize()
    with pytest.raises(ArtifactFinalizedError):
        a.add({"x": 1}, "x")


def test_invalid_names_and_types_raise(repo):
    for name, typ in (("bad name", "dataset"), ("ok", "bad/type"), ("", "dataset")):
        with pytest.raises(UsageError):
            cas.Artifact(name, typ, repo=repo)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cas.Artifact("ok-name_1.2", "dataset", repo=repo)


def test_finalized_draft_refuses_changes_but_can_be_logged_once(repo, tmp_path):
    from cas.errors import ArtifactFinalizedError

    src = tmp_path / "f.txt"
    src.write_bytes(b"x")
    art = cas.Artifact("fin", "dataset", repo=repo)
    art.add_file(src)
    art.finalize()
    assert not art.is_draft()
    with pytest.raises(ArtifactFinalizedError, match="fin"):
        art.add_file(src, name="g.txt")
    assert art.logged_version is None
    v = repo.log_artifact(art)
    assert v.version == "v0" and art.logged_version == v and art.version == "v0"  # W&B reads it off the draft
    with pytest.raises(ArtifactFinalizedError, match="fin"):
        repo.log_artifact(art)
