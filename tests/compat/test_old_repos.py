"""Repositories written by earlier releases stay readable (frozen fixtures per format version)."""

import tarfile

import cas
from tests.compat.make_fixture import EXPECTED, FIXTURE
from tests.conftest import read_tree


def test_v1_fixture_opens_rebuilds_and_reads_back(tmp_path):
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    with cas.Repo(tmp_path / "repo") as repo:
        assert [v.version for v in repo.artifacts("data")] == ["v1", "v0"]
        assert repo.artifact("data:best").version == "v0"
        for version, files in EXPECTED.items():
            v = repo.artifact(f"data:{version}")
            assert v.metadata == {"v": version} and v.tags == [version]
            assert read_tree(v.download(tmp_path / version)) == files
        assert [(c.status, c.path) for c in repo.diff("data:v0", "data:v1")] == [
            ("modified", "a.txt"), ("removed", "dir/sub/c.json"), ("added", "new.txt")]
        assert repo.verify().ok
