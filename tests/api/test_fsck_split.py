"""fsck with half of the packs scanned by a worker process finds exactly what one process finds."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cas.api import fsckshard
from cas.storage.packs import iter_pack_names, pack_path
from tests.api.helpers import draft
from tests.conftest import write_tree


@pytest.fixture
def versions(repo, tmp_path):
    """Six versions, each logged into its own pack."""
    for i in range(6):
        src = tmp_path / f"src{i}"
        write_tree(src, {f"f{j}.bin": os.urandom(3000 + 500 * j) for j in range(4)} | {"same": b"same" * 100})
        a = draft(repo, "data")
        a.add_dir(src)
        repo.log_artifact(a)
    return repo


@pytest.fixture
def started(monkeypatch):
    """Split whatever the size; record the packs each worker was given."""
    monkeypatch.setattr(fsckshard, "MIN_BYTES", 0)
    given = []
    real = fsckshard._start

    def start(store, names, indexed):
        given.append(list(names))
        return real(store, names, indexed)

    monkeypatch.setattr(fsckshard, "_start", start)
    return given


def _findings(repo) -> list[str]:
    return sorted(str(f) for f in repo.verify().findings)


def _flip(path, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x40]))


def test_a_clean_store_checks_clean(versions, started):
    report = versions.verify()
    assert report.ok and report.n_versions == 6
    assert len(started) == 1 and 1 <= len(started[0]) < len(list(iter_pack_names(versions.layout.packs)))


def test_damage_in_any_pack_is_found_whichever_process_reads_it(versions, started, monkeypatch):
    names = sorted(iter_pack_names(versions.layout.packs))
    for name in names:  # damage a payload byte of each pack in turn
        path = pack_path(versions.layout.packs, name)
        _flip(path, 200)
        split = _findings(versions)
        monkeypatch.setattr(fsckshard, "MIN_BYTES", 1 << 60)
        alone = _findings(versions)
        monkeypatch.setattr(fsckshard, "MIN_BYTES", 0)
        _flip(path, 200)  # repaired
        assert split == alone and split, name
    assert any(name in given for given in started for name in names)  # the worker did read some
    assert _findings(versions) == []


def test_a_worker_that_cannot_start_or_dies_leaves_its_packs_to_the_caller(versions, started, monkeypatch):
    name = sorted(iter_pack_names(versions.layout.packs))[0]
    _flip(pack_path(versions.layout.packs, name), 200)
    expected = _findings(versions)
    assert expected
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    assert _findings(versions) == expected
    monkeypatch.undo()

    def dying(store, names, indexed):
        rfd, wfd = os.pipe()
        proc = subprocess.Popen([sys.executable, "-c", "import os; os._exit(3)"], pass_fds=(wfd,))
        os.close(wfd)
        return fsckshard._Worker(proc, os.fdopen(rfd, "rb"))

    monkeypatch.setattr(fsckshard, "MIN_BYTES", 0)
    monkeypatch.setattr(fsckshard, "_start", dying)
    assert _findings(versions) == expected


def test_a_worker_refuses_an_index_that_numbers_packs_otherwise(versions, started, monkeypatch):
    real = fsckshard._start
    monkeypatch.setattr(fsckshard, "_start", lambda store, names, indexed: real(
        store, names, {n: no + 1000 for n, no in indexed.items()}))
    here = []
    scan = fsckshard.scan_packs
    monkeypatch.setattr(fsckshard, "scan_packs", lambda d, names, *a, **k: here.extend(names) or scan(d, names, *a, **k))
    assert versions.verify().ok
    assert sorted(here) == sorted(iter_pack_names(versions.layout.packs))  # the worker's packs too, here


def test_the_worker_is_stopped_when_the_callers_scan_fails(versions, started, monkeypatch):
    stopped = []
    real_stop = fsckshard._Worker.stop
    monkeypatch.setattr(fsckshard._Worker, "stop", lambda self: stopped.append(self.proc) or real_stop(self))

    def failing(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(fsckshard, "scan_packs", failing)
    with pytest.raises(KeyboardInterrupt):
        versions.verify()
    assert len(stopped) == 1 and stopped[0].returncode is not None
