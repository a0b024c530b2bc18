"""Logging a draft reads small files ahead in threads with the same checks as direct reads."""

import os

import pytest

import cas
from cas.errors import FileChangedError
from tests.conftest import read_tree, write_tree


def _files(n):
    return {f"d{i % 3}/f{i:03d}.txt": (b"row %d\n" % i) * (i + 1) for i in range(n)}


def test_read_ahead_logs_every_file_exactly(repo, tmp_path):
    files = _files(60)
    write_tree(tmp_path / "src", files)
    art = cas.Artifact("data", "dataset", repo=repo)
    art.add_dir(tmp_path / "src", policy="immutable")
    v = repo.log_artifact(art)
    assert repo.ingester.n_read == 60
    assert read_tree(v.download(tmp_path / "out")) == files
    assert repo.verify().ok


@pytest.mark.parametrize("change", ["rewrite", "delete", "fifo"])
def test_read_ahead_detects_files_changed_after_add(repo, tmp_path, change):
    files = _files(60)
    write_tree(tmp_path / "src", files)
    art = cas.Artifact("data", "dataset", repo=repo)
    art.add_dir(tmp_path / "src", policy="immutable")
    victim = tmp_path / "src" / "d1" / "f040.txt"  # late in the order: read ahead, not first
    if change == "rewrite":
        victim.write_bytes(b"changed, and of another size")
        with pytest.raises(FileChangedError):
            repo.log_artifact(art)
    elif change == "fifo":
        # a FIFO at the path must not block the reader (nobody ever writes to it)
        victim.unlink()
        os.mkfifo(victim)
        with pytest.raises(FileChangedError, match="f040.txt"):
            repo.log_artifact(art)
    else:
        victim.unlink()
        with pytest.raises(cas.errors.CasError, match="f040.txt"):
            repo.log_artifact(art)
    with pytest.raises(cas.errors.CollectionNotFound):
        repo.artifact("data")
    assert repo.verify().ok
