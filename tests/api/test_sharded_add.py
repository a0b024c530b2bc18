"""A large directory is stored by worker processes, with the same result as one process."""

from __future__ import annotations

import os
import threading

import pytest

from cas.api import forking, ingest, sharded
from cas.errors import FileChangedError, StorageError, UsageError
from tests.api.helpers import draft, write
from tests.conftest import read_tree, write_tree

N_FILES = 70  # blocks of 4, dealt out in turn; the last one is short


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(sharded, "BLOCK", 4)
    monkeypatch.setattr(sharded, "MIN_FILES", 8)


@pytest.fixture
def may_fork(monkeypatch, small_blocks):
    """Fork although the test process has other, idle threads (fsspec's loop, other tests' pools).

    A CLI process has none; tests/faults/test_sharded_crash.py runs the add in such a process.
    """
    monkeypatch.setattr(forking, "can_fork", lambda: True)


@pytest.fixture
def forks(monkeypatch):
    """Count the forks of this process (the child's own calls are not seen here)."""
    made = []
    real = os.fork

    def fork():
        pid = real()
        if pid:
            made.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    return made


def _files(n: int = N_FILES) -> dict:
    files = {f"d{i // 10}/f{i:03d}": os.urandom(100 + 37 * i) for i in range(n)}
    files["same/a"] = files["same/b"] = b"identical content in two shards" * 50
    files["d0/empty"] = b""
    return files


def _add(repo, src, name="data", policy="mutable"):
    a = draft(repo, name)
    a.add_dir(src, policy=policy)
    return repo.log_artifact(a)


@pytest.mark.parametrize("policy", ["mutable", "immutable"])
def test_two_processes_store_what_one_would(repo, tmp_path, may_fork, forks, monkeypatch, policy):
    files = _files()
    write_tree(tmp_path / "src", files)
    v = _add(repo, tmp_path / "src", policy=policy)
    assert len(forks) == sharded.workers() >= 2
    assert repo.ingester.n_read == len(files)  # every worker's files counted
    monkeypatch.setattr(sharded, "MIN_FILES", 10**9)
    one = _add(repo, tmp_path / "src", "one")
    assert len(forks) == sharded.workers() and one.digest == v.digest
    assert read_tree(v.download(tmp_path / "out")) == files
    assert repo.verify().findings == []
    assert os.listdir(repo.layout.pins) == []  # the child released its pin


def test_the_workers_packs_are_in_the_log_entry(make_repo, tmp_path, may_fork, forks):
    import cas
    from tests.faults.helpers import drop_index_files

    files = _files()
    write_tree(tmp_path / "src", files)
    repo = make_repo()
    v = _add(repo, tmp_path / "src")
    assert forks
    repo.close()
    drop_index_files(tmp_path / "repo")  # rebuilt from packs and log alone
    again = cas.Repo(tmp_path / "repo")
    try:
        assert read_tree(again.artifact(f"data:{v.version}").download(tmp_path / "out")) == files
        assert again.verify().findings == []
    finally:
        again.close()


@pytest.mark.parametrize("where", [0, 5])  # in the first and in the second worker's first block
def test_an_error_is_raised_at_the_file_that_caused_it(repo, tmp_path, may_fork, forks, where):
    files = _files()
    write_tree(tmp_path / "src", files)
    a = draft(repo)
    a.add_dir(tmp_path / "src", policy="immutable")
    victim = tmp_path / "src" / "d0" / f"f{where:03d}"
    write(victim, b"changed after add_dir")
    with pytest.raises(FileChangedError, match=f"f{where:03d}"):
        repo.log_artifact(a)
    assert forks
    b = draft(repo, "vanished")
    b.add_dir(tmp_path / "src", policy="immutable")
    os.unlink(victim)
    with pytest.raises(UsageError, match="does not exist"):
        repo.log_artifact(b)
    # the drafts keep this process's pin; the child left none
    assert all(f"-{os.getpid()}-" in p for p in os.listdir(repo.layout.pins))


def test_a_child_that_dies_fails_the_add_and_logs_nothing(repo, tmp_path, may_fork, forks, monkeypatch):
    files = _files()
    write_tree(tmp_path / "src", files)
    real = ingest._read_ahead_batch

    def dying(paths, chunker):
        if any(p.endswith("f033") for p in paths):  # one worker dies, the others go on
            os._exit(3)
        return real(paths, chunker)

    monkeypatch.setattr(ingest, "_read_ahead_batch", dying)
    with pytest.raises(StorageError, match="worker process exited"):
        _add(repo, tmp_path / "src")
    assert repo.collections() == []
    monkeypatch.setattr(ingest, "_read_ahead_batch", real)
    v = _add(repo, tmp_path / "src")
    assert read_tree(v.download(tmp_path / "out")) == files
    assert repo.verify().findings == []


def test_no_fork_while_another_thread_runs(repo, tmp_path, small_blocks, forks):
    write_tree(tmp_path / "src", _files())
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not forking.can_fork()
        _add(repo, tmp_path / "src")
    finally:
        stop.set()
        t.join()
    assert forks == []


def test_a_small_directory_is_stored_by_one_process(repo, tmp_path, may_fork, forks):
    write_tree(tmp_path / "src", {f"f{i}": b"%d" % i for i in range(7)})
    _add(repo, tmp_path / "src")
    assert forks == []


def test_shards_deal_out_blocks_in_turn(monkeypatch):
    monkeypatch.setattr(sharded, "BLOCK", 3)
    records = list(range(20))
    parts = [list(sharded.shard(iter(records), k, 2)) for k in (0, 1)]
    assert parts == [[0, 1, 2, 6, 7, 8, 12, 13, 14, 18, 19], [3, 4, 5, 9, 10, 11, 15, 16, 17]]
