"""A large directory is stored by worker processes, with the same result as one process."""

from __future__ import annotations

import os
import threading

import pytest

from cas.api import listing, sharded
from cas.errors import FileChangedError, StorageError, UnsafePath, UsageError
from tests.api.helpers import draft, write
from tests.conftest import read_tree, write_tree

N_FILES = 70  # blocks of 4, dealt out in turn; the last one is short


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(sharded, "BLOCK", 4)
    monkeypatch.setattr(sharded, "MIN_FILES", 8)
    monkeypatch.setattr(listing, "WORKERS_AFTER", 8)


@pytest.fixture
def spawned(monkeypatch):
    """Record the worker processes started (their shard numbers)."""
    started = []
    real = sharded._start

    def start(fd, root, prefix, policy, store, k, n):
        started.append(k)
        return real(fd, root, prefix, policy, store, k, n)

    monkeypatch.setattr(sharded, "_start", start)
    return started


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
def test_two_processes_store_what_one_would(repo, tmp_path, small_blocks, spawned, monkeypatch, policy):
    files = _files()
    write_tree(tmp_path / "src", files)
    v = _add(repo, tmp_path / "src", policy=policy)
    assert spawned == list(range(sharded.workers())) and len(spawned) >= 2
    assert repo.ingester.n_read == len(files)  # every worker's files counted
    monkeypatch.setattr(sharded, "MIN_FILES", 10**9)
    monkeypatch.setattr(listing, "WORKERS_AFTER", 10**9)
    one = _add(repo, tmp_path / "src", "one")
    assert len(spawned) == sharded.workers() and one.digest == v.digest
    assert read_tree(v.download(tmp_path / "out")) == files
    assert repo.verify().findings == []
    assert os.listdir(repo.layout.pins) == []  # every worker released its pin


def test_the_workers_packs_are_in_the_log_entry(make_repo, tmp_path, small_blocks, spawned):
    import cas
    from tests.faults.helpers import drop_index_files

    files = _files()
    write_tree(tmp_path / "src", files)
    repo = make_repo()
    v = _add(repo, tmp_path / "src")
    assert spawned
    repo.close()
    drop_index_files(tmp_path / "repo")  # rebuilt from packs and log alone
    again = cas.Repo(tmp_path / "repo")
    try:
        assert read_tree(again.artifact(f"data:{v.version}").download(tmp_path / "out")) == files
        assert again.verify().findings == []
    finally:
        again.close()


@pytest.mark.parametrize("where", [0, 5])  # in the first and in the second worker's first block
def test_an_error_is_raised_at_the_file_that_caused_it(repo, tmp_path, small_blocks, spawned, where):
    files = _files()
    write_tree(tmp_path / "src", files)
    a = draft(repo)
    a.add_dir(tmp_path / "src", policy="immutable")
    victim = tmp_path / "src" / "d0" / f"f{where:03d}"
    write(victim, b"changed after add_dir")
    with pytest.raises(FileChangedError, match=f"f{where:03d}"):
        repo.log_artifact(a)
    assert spawned
    b = draft(repo, "vanished")
    b.add_dir(tmp_path / "src", policy="immutable")
    os.unlink(victim)
    with pytest.raises(UsageError, match="does not exist"):
        repo.log_artifact(b)
    # the drafts keep this process's pin; the child left none
    assert all(f"-{os.getpid()}-" in p for p in os.listdir(repo.layout.pins))


def test_a_worker_that_dies_fails_the_add_and_logs_nothing(repo, tmp_path, small_blocks, spawned, monkeypatch):
    files = _files()
    write_tree(tmp_path / "src", files)
    monkeypatch.setenv("CAS_TEST_CRASH_AT", "shard-worker-block")  # reached by workers only
    with pytest.raises(StorageError, match="worker process exited"):
        _add(repo, tmp_path / "src")
    assert repo.collections() == [] and spawned
    assert all(f"-{os.getpid()}-" in p for p in os.listdir(repo.layout.pins))  # no dead worker's pin left
    monkeypatch.delenv("CAS_TEST_CRASH_AT")
    v = _add(repo, tmp_path / "src")
    assert read_tree(v.download(tmp_path / "out")) == files
    assert repo.verify().findings == []


def test_workers_are_used_while_another_thread_runs(repo, tmp_path, small_blocks, spawned):
    files = _files()
    write_tree(tmp_path / "src", files)
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        v = _add(repo, tmp_path / "src")
    finally:
        stop.set()
        t.join()
    assert spawned and read_tree(v.download(tmp_path / "out")) == files


def test_a_small_directory_is_stored_by_one_process(repo, tmp_path, small_blocks, spawned):
    write_tree(tmp_path / "src", {f"f{i}": b"%d" % i for i in range(7)})
    _add(repo, tmp_path / "src")
    assert spawned == []


def test_a_first_add_starts_its_workers_during_the_scan(repo, tmp_path, small_blocks, spawned, monkeypatch):
    files = _files()
    write_tree(tmp_path / "src", files)
    at_go = []
    real = sharded.Workers.go
    monkeypatch.setattr(sharded.Workers, "go", lambda self, count, size: at_go.append(list(spawned))
                        or real(self, count, size))
    a = draft(repo, "first")
    a.add_dir(tmp_path / "src")  # mutable: built right after the scan
    assert at_go == [list(range(sharded.workers()))]  # started before the scan ended, told once
    assert read_tree(repo.log_artifact(a).download(tmp_path / "out")) == files


def test_workers_started_for_a_scan_that_fails_are_stopped(repo, tmp_path, small_blocks, spawned):
    files = _files()
    write_tree(tmp_path / "src", files)
    write(tmp_path / "src" / "zz" / "bad\\name", b"x")  # found after the workers started
    with pytest.raises(UnsafePath):
        draft(repo).add_dir(tmp_path / "src")
    assert spawned and os.listdir(repo.layout.pins) == []


def test_shards_deal_out_blocks_in_turn(monkeypatch):
    monkeypatch.setattr(sharded, "BLOCK", 3)
    records = list(range(20))
    parts = [list(sharded.shard(iter(records), k, 2)) for k in (0, 1)]
    assert parts == [[0, 1, 2, 6, 7, 8, 12, 13, 14, 18, 19], [3, 4, 5, 9, 10, 11, 15, 16, 17]]


def test_cas_workers_sets_or_disables_the_workers(repo, tmp_path, small_blocks, spawned, monkeypatch):
    from cas.errors import UsageError as Usage

    files = _files()
    write_tree(tmp_path / "src", files)
    monkeypatch.setenv("CAS_WORKERS", "0")
    v = _add(repo, tmp_path / "src", "none")
    assert spawned == [] and read_tree(v.download(tmp_path / "o0")) == files
    monkeypatch.setenv("CAS_WORKERS", "2")
    assert _add(repo, tmp_path / "src", "two").digest == v.digest and spawned == [0, 1]
    monkeypatch.setenv("CAS_WORKERS", "many")
    with pytest.raises(Usage, match="CAS_WORKERS"):
        _add(repo, tmp_path / "src", "bad")


def test_workers_import_this_cas_whatever_the_working_directory(repo, tmp_path, small_blocks, spawned,
                                                                monkeypatch):
    files = _files()
    write_tree(tmp_path / "src", files)
    shadow = tmp_path / "elsewhere" / "cas"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('a different cas in the working directory')\n")
    monkeypatch.chdir(tmp_path / "elsewhere")
    v = _add(repo, tmp_path / "src")
    assert spawned and read_tree(v.download(tmp_path / "out")) == files


def test_workers_that_cannot_start_leave_the_add_to_one_process(repo, tmp_path, small_blocks, spawned, monkeypatch):
    import sys

    files = _files()
    write_tree(tmp_path / "src", files)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    v = _add(repo, tmp_path / "src")  # both chances: during the scan and after it
    assert spawned and read_tree(v.download(tmp_path / "out")) == files


def test_progress_is_reported_while_workers_store(repo, tmp_path, small_blocks, spawned):
    files = _files()
    write_tree(tmp_path / "src", files)
    seen = []
    repo.ingester.progress = lambda done, total=None, nbytes=None: seen.append((done, total))
    try:
        _add(repo, tmp_path / "src")
    finally:
        repo.ingester.progress = None
    assert spawned and len(seen) >= 10 and seen == sorted(seen) and seen[-1][1] == len(files)
