"""Semantic versions (Comet): labels on logged versions, bumps, references, duplicates."""

import json
import subprocess

import pytest

import cas
from cas.errors import AlreadyExists, InvalidReference, InvalidSemver
from tests.api.helpers import draft, log_files
from tests.faults.helpers import child_cmd, child_env, init_repo


def test_explicit_semver_is_stored_and_resolves(repo, tmp_path):
    v = log_files(repo, tmp_path, {"a": b"1"}, version="1.2.0")
    assert v.semver == "1.2.0" and v.version == "v0"
    b = draft(repo)
    (tmp_path / "b").write_bytes(b"2")
    b.add_file(tmp_path / "b")
    w = repo.log_artifact(b, version="1.3.0-rc.1+build.5")
    assert repo.artifact("data:1.2.0") == v and repo.artifact("default/data:1.3.0-rc.1+build.5") == w
    assert v.json_encode()["semver"] == "1.2.0"
    with pytest.raises(cas.errors.VersionNotFound):
        repo.artifact("data:9.9.9")


def test_repo_version_argument_overrides_the_drafts(repo, tmp_path):
    a = draft(repo, version="1.0.0")
    (tmp_path / "a").write_bytes(b"1")
    a.add_file(tmp_path / "a")
    assert repo.log_artifact(a, version="2.0.0").semver == "2.0.0"


def test_bumps_increment_the_highest_semver(repo, tmp_path):
    assert log_files(repo, tmp_path, {"a": b"0"}, version="minor").semver == "0.1.0"
    assert log_files(repo, tmp_path, {"a": b"1"}, version="1.4.2").semver == "1.4.2"
    assert log_files(repo, tmp_path, {"a": b"2"}, version="0.9.0").semver == "0.9.0"  # not the highest
    assert log_files(repo, tmp_path, {"a": b"3"}, version="patch").semver == "1.4.3"
    assert log_files(repo, tmp_path, {"a": b"4"}, version="minor").semver == "1.5.0"
    assert log_files(repo, tmp_path, {"a": b"5"}, version="major").semver == "2.0.0"
    assert log_files(repo, tmp_path, {"a": b"6"}).semver is None  # no label unless asked
    assert [v.semver for v in repo.artifacts("data")][:3] == [None, "2.0.0", "1.5.0"]


def test_a_duplicate_semver_is_refused_and_nothing_is_published(repo, tmp_path):
    log_files(repo, tmp_path, {"a": b"1"}, version="1.0.0")
    seq = repo.log.last_seq()
    with pytest.raises(AlreadyExists, match=r"1\.0\.0.*v0"):
        log_files(repo, tmp_path, {"a": b"2"}, version="1.0.0")
    assert repo.log.last_seq() == seq and len(repo.artifacts("data")) == 1
    # another collection may use the same label
    assert log_files(repo, tmp_path, {"a": b"2"}, name="other", version="1.0.0").semver == "1.0.0"


@pytest.mark.parametrize("bad", ["1.0", "v1.0.0", "01.0.0", "1.0.0-", "latest", "Patch"])
def test_a_malformed_semver_is_refused_before_anything_is_stored(repo, tmp_path, bad):
    with pytest.raises(InvalidSemver, match="semantic version"):
        draft(repo, version=bad)
    with pytest.raises(InvalidSemver):
        log_files(repo, tmp_path, {"a": b"1"}, version=bad)
    assert repo.log.last_seq() == 0


def test_unchanged_content_and_semvers(repo, tmp_path):
    v = log_files(repo, tmp_path, {"a": b"1"}, version="1.0.0")
    assert log_files(repo, tmp_path, {"a": b"1"}, version="1.0.0") == v  # same content, same label: no-op
    assert log_files(repo, tmp_path, {"a": b"1"}, version="patch") == v  # nothing changed: nothing to bump
    w = log_files(repo, tmp_path, {"a": b"1"}, version="2.0.0")  # a new label is a new version
    assert (w.version, w.semver, w.digest) == ("v1", "2.0.0", v.digest)


def test_references_with_semvers_parse_and_bad_ones_fail(repo, tmp_path):
    from cas.api.refs import parse_ref

    assert parse_ref("p/x:1.2.3+b.1").semver == "1.2.3+b.1"
    assert parse_ref("x:best").semver is None and parse_ref("x:v3").semver is None
    with pytest.raises(InvalidReference):
        parse_ref("x:1.2.3+")
    # a semver selector wins over an alias spelled the same
    v0 = log_files(repo, tmp_path, {"a": b"1"}, aliases=["1.0.0"])
    v1 = log_files(repo, tmp_path, {"a": b"2"}, version="1.0.0")
    assert repo.artifact("data:1.0.0") == v1 and v0.aliases == ["1.0.0"]


def test_semvers_survive_an_index_rebuild(repo, tmp_path):
    log_files(repo, tmp_path, {"a": b"1"}, version="1.0.0")
    repo.rebuild_index()
    assert repo.artifact("data:1.0.0").version == "v0"
    assert log_files(repo, tmp_path, {"a": b"2"}, version="patch").semver == "1.0.1"


RACER = """
import time
from pathlib import Path
from cas.errors import AlreadyExists
repo = cas.Repo(ARGS["repo"])
src = Path(ARGS["src"])
src.mkdir()
(src / "f").write_text(ARGS["tag"])
d = cas.Artifact("model", "model", repo=repo)
d.add_dir(src)
print("ready", flush=True)
while not Path(ARGS["go"]).exists():
    time.sleep(0.002)
try:
    v = repo.log_artifact(d, version="1.2.0")
    out = {"ok": v.version}
except AlreadyExists as exc:
    out = {"error": str(exc)}
repo.close()
print(json.dumps(out))
"""


def test_two_processes_logging_the_same_semver_get_exactly_one_success(tmp_path):
    path = tmp_path / "repo"
    init_repo(path).close()
    go = tmp_path / "go"
    procs = [subprocess.Popen(child_cmd(RACER, {"repo": str(path), "go": str(go), "tag": f"w{i}",
                                                "src": str(tmp_path / f"src{i}")}),
                              env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    try:
        for p in procs:
            assert p.stdout.readline() == "ready\n", p.stderr.read()
        go.write_text("go")
        results = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert sorted("ok" in r for r in results) == [False, True], results
    assert "1.2.0" in next(r["error"] for r in results if "error" in r)
    with cas.Repo(path) as repo:
        assert [v.semver for v in repo.artifacts("model")] == ["1.2.0"]
