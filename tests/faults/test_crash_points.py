"""A process that dies while logging never damages the store.

Each test prepares a repository with two committed versions, then a child
process logs a third one and dies part way (at a named crash point, or by a
real SIGKILL). Afterwards the store must open, fsck must find nothing (orphan
packs are allowed), every committed version must download byte-identical,
the interrupted version must be fully there or absent (present once its log
entry is linked) and the next log must get the next version number. Each
check is also made after deleting the LMDB index, which is then rebuilt from
packs and log.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest

import cas
from cas.storage.crash import CRASH_EXIT, CRASH_POINTS
from tests.faults.helpers import (
    child_cmd,
    child_env,
    content,
    downloaded,
    drop_index_files,
    dump_state,
    findings,
    init_repo,
    kill_when_ready,
    log_src,
    ok,
    run_child,
    write_src,
)

# After these points the log entry exists: the version is committed.
COMMITTED_AFTER = ("log-entry-linked", "index-applied")

LOG_ONE = """
repo = cas.Repo(ARGS["repo"])
v = log_dir(repo, "data", ARGS["src"])
print(v.version)
repo.close()
"""


def _prepare(tmp_path, n_contents: int):
    """A repo with v0 and v1 committed; returns (repo path, contents, source dirs)."""
    path = tmp_path / "repo"
    contents = [content(i) for i in range(n_contents)]
    srcs = [write_src(tmp_path / "src", c, f"v{i}") for i, c in enumerate(contents)]
    with init_repo(path) as repo:
        for i in (0, 1):
            assert log_src(repo, "data", srcs[i]).version == f"v{i}"
    return path, contents, srcs


def check_store(path, contents, srcs, out_dir, must_have: int) -> int:
    """Check a store after a crash and log one more version; return the versions it had.

    Args:
        contents: ``contents[n]`` is what version vN was logged with.
        srcs: Source directories of ``contents``; one beyond the present
            versions is logged at the end.
        must_have: Versions v0..v(must_have-1) must be present.
    """
    with cas.Repo(path) as repo:
        report = repo.verify()
        assert report.findings == [], findings(report)
        versions = {v.version_index: v for v in repo.artifacts("data")}
        n = len(versions)
        assert sorted(versions) == list(range(n)), sorted(versions)
        assert n >= must_have
        for i, v in versions.items():
            got = downloaded(v, out_dir / f"check-{n}-{i}")
            assert got == contents[i], f"v{i} does not download as logged"
        assert repo.artifact("data:latest").version_index == n - 1
        # the store keeps working: the next log gets the next number
        nxt = log_src(repo, "data", srcs[n])
        assert nxt.version == f"v{n}"
        assert downloaded(repo.artifact(f"data:v{n}"), out_dir / f"next-{n}") == contents[n]
        report = repo.verify()
        assert report.findings == [], findings(report)
    return n


@pytest.mark.parametrize("drop_index", [False, True], ids=["index-kept", "index-deleted"])
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_point_while_logging(tmp_path, point, drop_index):
    path, contents, srcs = _prepare(tmp_path, 4)
    proc = run_child(LOG_ONE, {"repo": str(path), "src": str(srcs[2])}, env={"CAS_TEST_CRASH_AT": point})
    assert proc.returncode == CRASH_EXIT, f"crash point {point} not reached: {proc.returncode}\n{proc.stderr}"
    if drop_index:
        drop_index_files(path)
    committed = point in COMMITTED_AFTER
    n = check_store(path, contents, srcs, tmp_path / "out", must_have=3 if committed else 2)
    # the interrupted version is all there or absent; present once its entry is linked
    assert n in (2, 3)
    if committed:
        assert n == 3


def test_crash_then_index_deleted_then_reopened_by_another_process(tmp_path):
    """A crash, then a deleted index: a fresh process rebuilds it and sees everything."""
    path, contents, srcs = _prepare(tmp_path, 5)
    proc = run_child(LOG_ONE, {"repo": str(path), "src": str(srcs[2])}, env={"CAS_TEST_CRASH_AT": "log-entry-linked"})
    assert proc.returncode == CRASH_EXIT, proc.stderr
    drop_index_files(path)
    ok(run_child(LOG_ONE, {"repo": str(path), "src": str(srcs[3])}))
    assert check_store(path, contents, srcs, tmp_path / "out", must_have=4) == 4


LOG_LOOP = """
import sys
from pathlib import Path
from tests.faults.helpers import content, write_src
repo = cas.Repo(ARGS["repo"])
sys.stdout.write("ready\\n"); sys.stdout.flush()
with open(ARGS["progress"], "a") as progress:
    for i in range(ARGS["first"], ARGS["first"] + 1000):
        src = write_src(Path(ARGS["src_dir"]), content(i), f"loop{i}")
        v = log_dir(repo, "data", src)
        progress.write(f"{v.version_index} {i}\\n"); progress.flush()
"""


class Sources:
    """``content(i)`` and its source directory, made on demand."""

    def __init__(self, base):
        self.base = base

    def __getitem__(self, i):
        src = self.base / f"v{i}"
        if not src.exists():
            write_src(self.base, content(i), f"v{i}")
        return src


class Contents:
    def __getitem__(self, i):
        return content(i)


@pytest.mark.parametrize("drop_index", [False, True], ids=["index-kept", "index-deleted"])
def test_sigkill_at_random_moments(tmp_path, drop_index):
    """Kill a child that logs versions in a loop, several times, at random moments."""
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    path, _contents, _srcs = _prepare(tmp_path, 2)
    contents, srcs = Contents(), Sources(tmp_path / "src")
    progress = tmp_path / "progress"
    progress.write_text("")
    have = 2
    for round_ in range(4):
        args = {"repo": str(path), "first": have, "progress": str(progress), "src_dir": str(tmp_path / "loop")}
        code, err = kill_when_ready(LOG_LOOP, args, rng.uniform(0.0, 0.15))
        assert code == -signal.SIGKILL, f"seed {seed}: child exited {code}: {err}"
        # every version the child saw returned is committed with its content
        reported = [tuple(map(int, line.split())) for line in progress.read_text().splitlines()]
        for vi, i in reported:
            assert vi == i, f"seed {seed}: content {i} was logged as v{vi}"
        if drop_index:
            drop_index_files(path)
        must = max([have] + [vi + 1 for vi, _ in reported])
        n = check_store(path, contents, srcs, tmp_path / f"out-{round_}", must_have=must)
        assert n in (must, must + 1), f"seed {seed}: {n} versions after the kill, expected {must} or one more"
        have = n + 1  # check_store logged one more
        with open(progress, "a") as f:
            f.write(f"{n} {n}\n")


OPEN = """
import sys
repo = cas.Repo(ARGS["repo"])
print("opened", flush=True)
repo.close()
"""


def test_killed_while_rebuilding_a_deleted_index(tmp_path):
    """SIGKILL a process at random moments while it rebuilds a deleted index on open."""
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    path, contents, srcs = _prepare(tmp_path, 9)
    with cas.Repo(path) as repo:
        for i in range(2, 8):
            log_src(repo, "data", srcs[i], aliases=["best"] if i == 5 else ())
        before = dump_state(repo)
    drop_index_files(path)
    for _ in range(3):
        child = subprocess.Popen(child_cmd(OPEN, {"repo": str(path)}), env=child_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.08, 0.3))
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=60)
        assert child.returncode in (-signal.SIGKILL, 0), f"seed {seed}: {child.returncode} {err}"
    with cas.Repo(path) as repo:
        assert dump_state(repo) == before
    assert check_store(path, contents, srcs, tmp_path / "out", must_have=8) == 8


def test_rebuilt_index_not_yet_marked_ready_is_rebuilt_again(tmp_path):
    """A kill after the rebuild committed but before the index was marked ready."""
    from cas.api.repo import K_INDEX_READY

    path, contents, srcs = _prepare(tmp_path, 4)
    with cas.Repo(path) as repo:
        before = dump_state(repo)
        with repo.db.write() as txn:
            txn.delete(K_INDEX_READY, db=repo.db.dbs["meta"])
    # the next process finds a complete index without the mark and rebuilds over it
    proc = ok(run_child(LOG_ONE, {"repo": str(path), "src": str(srcs[2])}))
    assert proc.stdout.strip() == "v2"

    def stable(state):  # v0 and v1 as they were, except that 'latest' moved on
        return {k: {**v, "json": {**v["json"], "aliases": sorted(set(v["json"]["aliases"]) - {"latest"})}}
                for k, v in state["versions"].items() if k in ("default/data:v0", "default/data:v1")}

    with cas.Repo(path) as repo:
        assert stable(dump_state(repo)) == stable(before)
    assert check_store(path, contents, srcs, tmp_path / "out", must_have=3) == 3


HOLD_SNAPSHOT = """
import time
repo = cas.Repo(ARGS["repo"])
repo.artifact("data:v0").download(ARGS["dest"])  # keeps a read snapshot of the index
print("ready", flush=True)
time.sleep(120)
"""


def test_killed_readers_do_not_pin_the_index(tmp_path):
    """Processes killed while holding a read transaction leave no reader slot behind once another opens."""
    path, contents, srcs = _prepare(tmp_path, 3)
    with cas.Repo(path) as repo:  # kept open, so LMDB's lock file is never reset
        killed = []
        for i in range(4):
            child = subprocess.Popen(child_cmd(HOLD_SNAPSHOT, {"repo": str(path), "dest": str(tmp_path / f"d{i}")}),
                                     env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                assert child.stdout.readline() == "ready\n", child.stderr.read()
            finally:
                child.kill()
                child.communicate(timeout=60)
            killed.append(child.pid)
        assert ok(run_child(LOG_ONE, {"repo": str(path), "src": str(srcs[2])})).stdout.strip() == "v2"
        readers = repo.db.env.readers().split("\n")[1:]
        pids = {int(line.split()[0]) for line in readers if line.strip()}
        assert not pids & set(killed), repo.db.env.readers()
        assert downloaded(repo.artifact("data:v2"), tmp_path / "v2") == contents[2]
