"""ArtifactVersion: properties, named-state updates and saved fields (API.md "ArtifactVersion")."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

import cas
from cas.errors import InvalidMetadata, UsageError
from tests.api.helpers import log_files

FILES = {"a.txt": b"alpha", "d/b.bin": b"b" * 3000}


def parse_time(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def test_properties_have_sensible_values(repo, tmp_path):
    v = log_files(repo, tmp_path, FILES, aliases=["best"], tags=["raw"], description="d", metadata={"k": 1})
    assert v.name == "data:v0" and v.qualified_name == "default/data:v0"
    assert v.entity == "default" and v.project == "default"
    assert v.collection == "data" and v.type == "dataset" and v.version == "v0"
    assert v.description == "d" and v.metadata == {"k": 1}
    assert v.aliases == ["best", "latest"] and v.tags == ["raw"] and v.artifact_tags == []
    assert v.state == "COMMITTED"
    assert re.fullmatch(r"blake3:[0-9a-f]{64}", v.digest)
    assert v.size == 3005 and v.file_count == 2
    assert sorted(v.manifest) == ["a.txt", "d/b.bin"]
    assert v.manifest["a.txt"].size == 5
    assert re.fullmatch(r"[0-9a-f]{16,}", v.commit_hash) and v.id == v.commit_hash
    created = parse_time(v.created_at)
    now = dt.datetime.now(dt.timezone.utc)
    assert abs((now - created).total_seconds()) < 3600
    assert parse_time(v.updated_at) >= created
    assert v.ttl is None
    assets = v.assets
    assert [a.logical_path for a in assets] == ["a.txt", "d/b.bin"]
    assert all(not a.remote and a.link is None for a in assets)
    assert assets[1].size == 3000 and assets[1].digest == v.manifest["d/b.bin"].digest
    assert v.get_asset("a.txt").size == 5
    with pytest.raises(KeyError):
        v.get_asset("nope")
    assert v.wait() is v
    assert not v.is_draft()


def test_ids_differ_between_versions_and_survive_reopen(make_repo, tmp_path):
    repo = make_repo()
    v0 = log_files(repo, tmp_path, {"f": b"0"})
    v1 = log_files(repo, tmp_path, {"f": b"1"})
    assert v0.id != v1.id
    ids = (v0.id, v1.id, v0.digest, v0.created_at)
    repo.close()
    with cas.Repo(tmp_path / "repo") as r:
        w0, w1 = r.artifact("data:v0"), r.artifact("data:v1")
        assert (w0.id, w1.id, w0.digest, w0.created_at) == ids


def test_json_encode_is_json_serializable(repo, tmp_path):
    v = log_files(repo, tmp_path, FILES, aliases=["best"], metadata={"lr": 0.1, "l": [1, 2]})
    d = json.loads(json.dumps(v.json_encode()))
    assert d["name"] == "data:v0" and d["digest"] == v.digest and d["aliases"] == ["best", "latest"]
    assert d["metadata"] == {"lr": 0.1, "l": [1, 2]} and d["size"] == v.size


def test_update_aliases_adds_moves_and_removes(repo, tmp_path):
    v0 = log_files(repo, tmp_path, {"f": b"0"})
    v1 = log_files(repo, tmp_path, {"f": b"1"})
    assert v0.update_aliases(add=["best", "prod"]) == ["best", "prod"]
    v1.update_aliases(add="best")
    assert repo.artifact("data:best") == v1
    assert v0.aliases == ["prod"]
    assert v0.update_aliases(remove=["prod"]) == []
    with pytest.raises(cas.errors.VersionNotFound):
        repo.artifact("data:prod")
    assert v1.aliases == ["best", "latest"]


def test_version_shaped_or_invalid_aliases_are_refused(repo, tmp_path):
    v = log_files(repo, tmp_path, {"f": b"0"})
    for bad in ("v3", "has space", ""):
        with pytest.raises(UsageError):
            v.update_aliases(add=[bad])
        with pytest.raises(UsageError):
            log_files(repo, tmp_path, {"f": b"x"}, aliases=[bad])
    assert v.aliases == ["latest"] and len(repo.artifacts("data")) == 1


def test_version_tags_and_artifact_tags(repo, tmp_path):
    v0 = log_files(repo, tmp_path, {"f": b"0"}, tags=["raw"])
    v1 = log_files(repo, tmp_path, {"f": b"1"})
    assert v0.update_version_tags(add=["checked", "raw"]) == ["raw", "checked"]
    assert v0.update_version_tags(remove="raw") == ["checked"]
    assert v1.tags == []  # version tags are per version
    assert v0.update_artifact_tags(add=["vision"]) == ["vision"]
    assert v1.artifact_tags == ["vision"]  # collection tags are shared
    assert repo.collections()[0]["tags"] == ["vision"]
    v1.update_artifact_tags(remove=["vision"])
    assert v0.artifact_tags == []
    with pytest.raises(UsageError):
        v0.update_version_tags(add=["bad tag"])


def test_saved_fields_persist_and_content_never_changes(make_repo, tmp_path):
    repo = make_repo()
    v = log_files(repo, tmp_path, FILES, description="old", metadata={"k": 1})
    digest, manifest = v.digest, {p: e.digest for p, e in v.manifest.items()}
    v.description = "new description"
    v.metadata = {"k": 2, "acc": 0.9}
    v.ttl = 3600
    assert repo.artifact("data:v0").description == "old"  # not saved yet
    assert v.save() is v
    assert v.description == "new description"
    assert repo.artifact("data:v0").metadata == {"k": 2, "acc": 0.9}
    repo.close()
    with cas.Repo(tmp_path / "repo") as r:
        w = r.artifact("data:v0")
        assert (w.description, w.metadata, w.ttl) == ("new description", {"k": 2, "acc": 0.9}, 3600)
        assert w.digest == digest and {p: e.digest for p, e in w.manifest.items()} == manifest
        assert len(r.artifacts("data")) == 1
        assert w.version == "v0"
        assert parse_time(w.updated_at) >= parse_time(w.created_at)


def test_bad_saved_field_values_are_refused(repo, tmp_path):
    v = log_files(repo, tmp_path, {"f": b"0"})
    with pytest.raises(InvalidMetadata):
        v.metadata = {f"k{i}": i for i in range(101)}
    with pytest.raises(UsageError):
        v.ttl = -1
    with pytest.raises(UsageError):
        v.description = 42
    assert v.save().metadata == {} and v.ttl is None


def test_get_json_object_from_a_version(repo, tmp_path):
    a = cas.Artifact("objs", "config", repo=repo)
    a.add({"lr": 0.01}, "hparams")
    v = repo.log_artifact(a)
    assert repo.artifact("objs").get("hparams") == {"lr": 0.01}
    with pytest.raises(KeyError):
        v.get("other")
