"""A process that dies while worker processes store a directory never damages the store.

The directory is large enough (with small blocks) to be stored by forked
workers. Whichever process reaches a crash point first dies there; a parent
that dies takes its workers with it. Afterwards the store must
check clean, keep every committed version and log the next one, as in
test_crash_points.
"""

from __future__ import annotations

import random
import subprocess
import time

import pytest

from cas.storage.crash import CRASH_EXIT, CRASH_POINTS, SHARD_CRASH_POINTS
from tests.faults.helpers import content, drop_index_files, init_repo, kill_when_ready, log_src, run_child, write_src
from tests.faults.test_crash_points import check_store

LOG_SHARDED = """
from cas.api import sharded
sharded.BLOCK, sharded.MIN_FILES = 4, 8
repo = cas.Repo(ARGS["repo"])
print("ready", flush=True)
v = log_dir(repo, "data", ARGS["src"])
print(v.version)
repo.close()
"""


def _many(seed: int) -> dict:
    files = content(seed, "sharded")
    rng = random.Random(seed)
    files.update({f"many/{i:02d}.bin": rng.randbytes(200 + 50 * i) for i in range(40)})
    return files


def _prepare(tmp_path):
    path = tmp_path / "repo"
    contents = [_many(i) for i in range(4)]
    srcs = [write_src(tmp_path / "src", c, f"v{i}") for i, c in enumerate(contents)]
    with init_repo(path) as repo:
        for i in (0, 1):
            assert log_src(repo, "data", srcs[i]).version == f"v{i}"
    return path, contents, srcs


def _no_process_left(path) -> None:
    """The worker of a dead parent is gone within seconds (it dies with its parent)."""
    deadline = time.monotonic() + 10
    while True:
        left = subprocess.run(["pgrep", "-f", str(path)], capture_output=True, text=True).stdout.split()
        if not left:
            return
        assert time.monotonic() < deadline, f"processes still running after the parent died: {left}"
        time.sleep(0.05)


@pytest.mark.parametrize("drop_index", [False, True], ids=["index-kept", "index-deleted"])
@pytest.mark.parametrize("point", CRASH_POINTS + SHARD_CRASH_POINTS)
def test_crash_point_while_two_processes_store(tmp_path, point, drop_index):
    path, contents, srcs = _prepare(tmp_path)
    proc = run_child(LOG_SHARDED, {"repo": str(path), "src": str(srcs[2])}, env={"CAS_TEST_CRASH_AT": point})
    # the worker may reach a point first: the parent then reports it gone and fails (exit 1)
    assert proc.returncode in (CRASH_EXIT, 1), f"{point}: exit {proc.returncode}\n{proc.stderr}"
    if proc.returncode == 1:
        assert "worker process exited (77)" in proc.stderr, proc.stderr
    if point == "shard-started":  # the parent's own: proves the add does use workers
        assert proc.returncode == CRASH_EXIT, proc.stderr
    if point == "shard-worker-block":  # a worker's own: the parent reports it
        assert proc.returncode == 1, proc.stderr
    _no_process_left(path)
    if drop_index:
        drop_index_files(path)
    committed = point in ("log-entry-linked", "index-applied")
    n = check_store(path, contents, srcs, tmp_path / "out", must_have=3 if committed else 2)
    assert n == 3 if committed else n in (2, 3)


def test_sigkill_of_the_parent_takes_the_worker_with_it(tmp_path):
    path, contents, srcs = _prepare(tmp_path)
    kill_when_ready(LOG_SHARDED, {"repo": str(path), "src": str(srcs[2])}, random.uniform(0.0, 0.1))
    _no_process_left(path)
    n = check_store(path, contents, srcs, tmp_path / "out", must_have=2)
    assert n in (2, 3)
