"""Opening repositories, logging versions and resolving references (API.md "Repository", "References")."""

from __future__ import annotations

import os

import pytest

import cas
from cas.errors import (
    AlreadyExists,
    ArtifactFinalizedError,
    CasError,
    CollectionNotFound,
    InvalidMetadata,
    InvalidReference,
    RepoNotFound,
    UsageError,
    VersionNotFound,
)
from tests.api.helpers import draft, log_files, write
from tests.conftest import read_tree


# opening ----------------------------------------------------------------------------
def test_init_then_open_by_path(tmp_path):
    with cas.Repo.init(tmp_path / "proj") as r:
        v = log_files(r, tmp_path, {"a.txt": b"a"})
    with cas.Repo(tmp_path / "proj") as r2:
        assert r2.artifact("data").digest == v.digest
        assert os.path.samefile(r2.root, tmp_path / "proj" / ".cas")


def test_init_twice_raises_already_exists(tmp_path):
    cas.Repo.init(tmp_path / "proj").close()
    with pytest.raises(AlreadyExists):
        cas.Repo.init(tmp_path / "proj")


def test_open_missing_path_raises_repo_not_found(tmp_path):
    with pytest.raises(RepoNotFound) as ei:
        cas.Repo(tmp_path / "nonexistent")
    assert isinstance(ei.value, LookupError) and isinstance(ei.value, CasError)
    assert not (tmp_path / "nonexistent").exists()
    with pytest.raises(RepoNotFound):
        cas.Repo("/nonexistent")


def test_open_without_path_walks_up_from_cwd(tmp_path, monkeypatch):
    cas.Repo.init(tmp_path / "proj").close()
    deep = tmp_path / "proj" / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    with cas.Repo() as r:
        assert os.path.samefile(r.root, tmp_path / "proj" / ".cas")
    assert not os.path.exists(os.environ["CAS_HOME"])


def test_open_without_path_and_no_project_uses_cas_home(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    home = os.environ["CAS_HOME"]
    assert not os.path.exists(home)
    with cas.Repo() as r:  # created on first use
        assert os.path.samefile(r.root, home)
        log_files(r, tmp_path, {"x": b"x"})
    with cas.Repo() as r:
        assert r.artifact("data").file_count == 1
    assert not (elsewhere / ".cas").exists()


def test_unbound_draft_binds_to_the_repo_found_from_cwd(tmp_path, monkeypatch):
    cas.Repo.init(tmp_path / "proj").close()
    monkeypatch.chdir(tmp_path / "proj")
    write(tmp_path / "proj" / "f.txt", b"hello")
    a = cas.Artifact("data", "dataset")
    a.add_file("f.txt")
    v = a.save()
    assert v.version == "v0"
    with cas.Repo(tmp_path / "proj") as r:
        assert r.artifact("data:v0").digest == v.digest
    assert not os.path.exists(os.environ["CAS_HOME"])


def test_two_handles_on_one_store_see_each_others_versions(repo, tmp_path):
    with cas.Repo(tmp_path / "repo") as other:
        log_files(repo, tmp_path, {"f": b"0"})
        assert other.artifact("data").version == "v0"
        log_files(other, tmp_path, {"f": b"1"})
        assert [v.version for v in repo.artifacts("data")] == ["v1", "v0"]
        v2 = log_files(repo, tmp_path, {"f": b"2"})
        assert v2.version == "v2"
        assert other.artifact("data:latest") == v2
        assert read_tree(other.artifact("data:v2").download(tmp_path / "out")) == {"f": b"2"}


# logging ----------------------------------------------------------------------------
def test_versions_count_up_and_latest_follows(repo, tmp_path):
    vs = [log_files(repo, tmp_path, {"f": bytes([i])}) for i in range(3)]
    assert [v.version for v in vs] == ["v0", "v1", "v2"]
    assert repo.artifact("data").version == "v2"
    assert repo.artifact("data:latest") == vs[2]
    assert "latest" in vs[2].aliases and "latest" not in vs[1].reload().aliases
    assert [v.version for v in repo.artifacts("data")] == ["v2", "v1", "v0"]


def test_aliases_and_tags_at_log_time_and_aliases_move(repo, tmp_path):
    v0 = log_files(repo, tmp_path, {"f": b"0"}, aliases=["best", "prod"], tags=["raw"])
    assert v0.aliases == ["best", "latest", "prod"]
    assert v0.tags == ["raw"]
    v1 = log_files(repo, tmp_path, {"f": b"1"}, aliases=["best"])
    assert repo.artifact("data:best") == v1
    assert repo.artifact("data:prod") == v0
    assert v0.reload().aliases == ["prod"]
    assert v1.tags == []


def test_relogging_same_content_is_a_noop_that_applies_new_aliases_and_tags(repo, tmp_path):
    v0 = log_files(repo, tmp_path, {"a": b"a", "d/b": b"b"})
    again = log_files(repo, tmp_path, {"d/b": b"b", "a": b"a"}, aliases=["best"], tags=["again"])
    assert again == v0 and again.version == "v0"
    assert len(repo.artifacts("data")) == 1
    assert "best" in repo.artifact("data:v0").aliases
    assert "again" in repo.artifact("data:v0").tags


def test_same_content_as_an_older_version_is_a_new_version(repo, tmp_path):
    log_files(repo, tmp_path, {"a": b"1"})
    log_files(repo, tmp_path, {"a": b"2"})
    v2 = log_files(repo, tmp_path, {"a": b"1"})
    assert v2.version == "v2" and v2.digest == repo.artifact("data:v0").digest


def test_logging_a_logged_draft_again_raises(repo, tmp_path):
    a = draft(repo)
    a.add({"k": 1}, "obj")
    repo.log_artifact(a)
    with pytest.raises(ArtifactFinalizedError):
        repo.log_artifact(a)


def test_metadata_and_description_are_stored(repo, tmp_path):
    meta = {"lr": 0.1, "layers": [1, 2], "nested": {"ok": True}, "name": "x"}
    v = log_files(repo, tmp_path, {"f": b"1"}, metadata=meta, description="first cut")
    v = repo.artifact("data:v0")
    assert v.metadata == meta
    assert v.description == "first cut"


def test_metadata_has_at_most_100_keys(repo):
    ok = {f"k{i}": i for i in range(100)}
    a = draft(repo, metadata=ok)
    a.add([1], "x")
    assert len(repo.log_artifact(a).metadata) == 100
    with pytest.raises(InvalidMetadata):
        draft(repo, metadata={f"k{i}": i for i in range(101)})
    b = draft(repo)
    with pytest.raises(InvalidMetadata):
        b.metadata = {f"k{i}": i for i in range(101)}


def test_unserializable_metadata_raises(repo):
    with pytest.raises(InvalidMetadata):
        draft(repo, metadata={"obj": object()})
    with pytest.raises(InvalidMetadata):
        draft(repo, metadata=["not", "a", "dict"])
    assert issubclass(InvalidMetadata, UsageError)


def test_collection_type_mismatch_raises_usage_error(repo, tmp_path):
    log_files(repo, tmp_path, {"f": b"1"}, type="dataset")
    with pytest.raises(UsageError):
        log_files(repo, tmp_path, {"f": b"2"}, type="model")
    assert len(repo.artifacts("data")) == 1
    assert repo.artifact("data").type == "dataset"


# references ---------------------------------------------------------------------------
@pytest.fixture
def three(repo, tmp_path):
    """data:v0..v2 with 'best' on v1."""
    vs = [log_files(repo, tmp_path, {"f": bytes([i])}) for i in range(3)]
    vs[1].update_aliases(add=["best"])
    return vs


def test_reference_forms_resolve(repo, three):
    assert repo.artifact("data") == three[2]
    assert repo.artifact("data:latest") == three[2]
    assert repo.artifact("data:v1") == three[1]
    assert repo.artifact("data:best") == three[1]
    assert repo.artifact("default/data:v0") == three[0]
    assert repo.artifact("default/data").qualified_name == "default/data:v2"
    assert repo.artifact("data:v1").qualified_name == "default/data:v1"


def test_projects_are_separate_collections(repo, tmp_path):
    a = draft(repo)
    a.add([1], "x")
    v = repo.log_artifact(a, project="vision")
    assert v.qualified_name == "vision/data:v0" and v.project == "vision"
    assert repo.artifact("vision/data:v0") == v
    with pytest.raises(CollectionNotFound):
        repo.artifact("data")


@pytest.mark.parametrize("ref", ["", "data:", "a/b/c/d", "da ta", "data:v1:x", "/data", "data/", "proj/da*ta"])
def test_bad_references_raise_invalid_reference(repo, three, ref):
    with pytest.raises(InvalidReference):
        repo.artifact(ref)


@pytest.mark.parametrize("ref,err", [
    ("nosuch", CollectionNotFound),
    ("other/data:v0", CollectionNotFound),
    ("data:v3", VersionNotFound),
    ("data:nosuchalias", VersionNotFound),
])
def test_unknown_references_raise_not_found(repo, three, ref, err):
    with pytest.raises(err) as ei:
        repo.artifact(ref)
    assert isinstance(ei.value, CasError) and isinstance(ei.value, LookupError)


def test_artifacts_of_unknown_collection_raises(repo):
    with pytest.raises(CollectionNotFound):
        repo.artifacts("nosuch")


def test_unbound_draft_binds_to_the_only_open_repo(tmp_path, monkeypatch):
    """A script that opened one repo logs into it without passing repo= and never touches the default store."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    write(elsewhere / "f.txt", b"hello")
    with cas.Repo.init(tmp_path / "proj") as repo:
        a = cas.Artifact("data", "dataset")
        a.add_file("f.txt")
        assert a._repo is repo
        assert repo.log_artifact(a).version == "v0"
    assert not os.path.exists(os.environ["CAS_HOME"])


def test_rebuild_index_refuses_while_another_handle_is_open(repo, tmp_path):
    from cas.errors import UsageError

    log_files(repo, tmp_path, {"f": b"0"})
    other = cas.Repo(tmp_path / "repo")
    with pytest.raises(UsageError, match="close them"):
        repo.rebuild_index()
    assert other.artifact("data:v0").version == "v0"  # nothing was dropped
    other.close()
    assert repo.rebuild_index()[1] == 1
    assert repo.artifact("data:v0").version == "v0"
