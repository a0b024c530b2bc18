"""A process that dies while checking out never leaves a wrong file under a target name.

A child checks a version out into a new directory (files are staged in a private
``.cas-tmp-*`` directory) or over a directory that holds the previous version
(files go to temporary names and are renamed), and dies at a named crash point or
by a real SIGKILL. Afterwards every file under a target name is complete: the new
version's content or, over the previous version, that version's; and the next
checkout makes the directory exactly the version.
"""

from __future__ import annotations

import random
import signal

import pytest

import cas
from cas.api.restore import STAGE_PREFIX
from cas.storage.crash import CRASH_EXIT, RESTORE_CRASH_POINTS
from tests.faults.helpers import init_repo, kill_when_ready, log_src, run_child, write_src
from tests.conftest import read_tree

CHECKOUT = """
import sys
import cas.api.restore as restore
restore.BATCH_FILES = 4  # many small tasks
restore.LARGE_FILE = 20_000  # large files in several segments
restore.SEGMENT = 6_000
repo = cas.Repo(ARGS["repo"])
v = repo.artifact(ARGS["ref"])
print("ready", flush=True)
v.checkout(ARGS["dest"])
repo.close()
"""


def _content(seed: int) -> dict:
    rng = random.Random(seed)
    files = {f"d{i % 5}/s{i % 2}/f{i:03d}": rng.randbytes(rng.randrange(1, 2500)) for i in range(120)}
    files.update({f"big/{i}": rng.randbytes(30_000 + rng.randrange(20_000)) for i in range(3)})
    return files


@pytest.fixture
def store(tmp_path):
    """A repository with v0 and v1 of 'data' (same paths, other bytes); returns (path, [v0, v1])."""
    path = tmp_path / "repo"
    contents = [_content(0), _content(1)]
    with init_repo(path) as repo:
        for i, c in enumerate(contents):
            log_src(repo, "data", write_src(tmp_path / "src", c, f"v{i}"))
    return path, contents


def _targets(root) -> dict:
    """Files under their target names (everything outside temporary names)."""
    return {p: b for p, b in read_tree(root).items()
            if not any(seg.startswith(STAGE_PREFIX) for seg in p.split("/"))}


def _check_then_redo(path, root, allowed: list[dict], want: dict) -> None:
    for p, b in _targets(root).items():
        assert any(c.get(p) == b for c in allowed), f"{p} under its target name is not complete"
    with cas.Repo(path) as repo:
        repo.artifact("data:v1").checkout(root)
    assert read_tree(root) == want


@pytest.mark.parametrize("point", RESTORE_CRASH_POINTS)
@pytest.mark.parametrize("over", [False, True], ids=["new-dir", "over-v0"])
def test_crash_point_while_checking_out(store, tmp_path, point, over):
    path, contents = store
    dest = tmp_path / "out"
    if over:
        with cas.Repo(path) as repo:
            repo.artifact("data:v0").checkout(dest)
    proc = run_child(CHECKOUT, {"repo": str(path), "ref": "data:v1", "dest": str(dest)},
                     env={"CAS_TEST_CRASH_AT": point})
    assert proc.returncode == CRASH_EXIT, f"crash point {point} not reached: {proc.returncode}\n{proc.stderr}"
    if not over:  # staged: nothing is under a target name before the end
        assert _targets(dest) == {}
    _check_then_redo(path, dest, contents if over else contents[1:], contents[1])


def test_sigkill_at_random_moments_while_checking_out(store, tmp_path):
    path, contents = store
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    for round_ in range(4):
        over = round_ % 2 == 1
        dest = tmp_path / f"out-{round_}"
        if over:
            with cas.Repo(path) as repo:
                repo.artifact("data:v0").checkout(dest)
        code, _err = kill_when_ready(CHECKOUT, {"repo": str(path), "ref": "data:v1", "dest": str(dest)},
                                     rng.uniform(0.0, 0.08))
        assert code in (-signal.SIGKILL, 0), f"seed {seed}: {code}"
        try:
            _check_then_redo(path, dest, contents if over else contents[1:], contents[1])
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}, round {round_}: {exc}") from exc
