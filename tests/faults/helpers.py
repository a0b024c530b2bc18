"""Shared pieces of the fault tests: known content, child processes, store checks.

Children run ``python -c <script>`` with the hermetic environment of the test
(``os.environ`` already points HOME and CAS_HOME into tmp_path) and receive
their parameters as one JSON argument, bound to ``ARGS`` by the prelude.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.conftest import SMALL_CHUNKS, read_tree, write_tree

REPO_ROOT = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT = 120

PRELUDE = """
import json, os, sys
import cas
from cas.format.chunker import ChunkerParams
ARGS = json.loads(sys.argv[1])
SMALL = ChunkerParams(min_size=256, avg_size=1024, max_size=4096)


def log_dir(repo, name, src, **kwargs):
    draft = cas.Artifact(name, "dataset", repo=repo)
    draft.add_dir(src)
    return repo.log_artifact(draft, **kwargs)
"""

# Shared by every generated version, so logging dedups against stored chunks.
_COMMON = random.Random(12345).randbytes(6000)


def content(seed: int, tag: str = "") -> dict:
    """Known multi-file, multi-chunk content for version ``seed`` (bytes by path)."""
    rng = random.Random(f"{tag}:{seed}")
    return {
        "common.bin": _COMMON,
        "big.bin": rng.randbytes(9000 + rng.randrange(3000)),
        "sub/mid.bin": rng.randbytes(3000 + rng.randrange(2000)),
        f"sub/deep/note-{seed}.txt": f"{tag} version seed {seed}\n".encode(),
    }


def write_src(base: Path, files: dict, name: str) -> Path:
    """Write ``files`` into a fresh source directory ``base/name``; return it."""
    src = base / name
    write_tree(src, files)
    return src


def child_env(extra: dict | None = None) -> dict:
    """The test's (hermetic) environment for a child, without crash points."""
    env = dict(os.environ)
    env.pop("CAS_TEST_CRASH_AT", None)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def child_cmd(script: str, args: dict) -> list[str]:
    """The argv of a child running ``script`` after the prelude."""
    return [sys.executable, "-c", PRELUDE + textwrap.dedent(script), json.dumps(args)]


def kill_when_ready(script: str, args: dict, delay: float) -> tuple[int, str]:
    """Run ``script`` in a child, SIGKILL it ``delay`` s after it prints "ready"; return (exit code, stderr)."""
    child = subprocess.Popen(child_cmd(script, args), env=child_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n", child.stderr.read()
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
    finally:
        _out, err = child.communicate(timeout=60)
    return child.returncode, err


def run_child(script: str, args: dict, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    """Run ``script`` in a child process and wait for it."""
    return subprocess.run(child_cmd(script, args), env=child_env(env), cwd=cwd, capture_output=True,
                          text=True, timeout=CHILD_TIMEOUT)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """Assert a child exited 0, showing its output otherwise."""
    assert proc.returncode == 0, f"child exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def init_repo(path: Path):
    """Create a small-chunk repository at ``path`` and return it open."""
    import cas
    from cas.format.chunker import ChunkerParams

    return cas.Repo.init(path, chunker=ChunkerParams(**SMALL_CHUNKS))


def log_src(repo, name: str, src: Path, **kwargs):
    """Log the directory ``src`` as the next version of ``name``."""
    import cas

    draft = cas.Artifact(name, "dataset", repo=repo)
    draft.add_dir(src)
    return repo.log_artifact(draft, **kwargs)


def downloaded(version, dest: Path) -> dict:
    """Download ``version`` into the new directory ``dest``; return its files."""
    version.download(dest)
    return read_tree(dest)


def index_files(repo_path: Path) -> list[Path]:
    """The LMDB files of the repository at ``repo_path``."""
    return [repo_path / ".cas" / "index" / n for n in ("data.mdb", "lock.mdb")]


def drop_index_files(repo_path: Path) -> None:
    """Delete the LMDB index of a closed repository, as a user might."""
    files = index_files(repo_path)
    assert all(f.exists() for f in files), files
    for f in files:
        f.unlink()


def findings(report) -> list[str]:
    """Readable findings of an fsck report."""
    return [str(f) for f in report.findings]


def dump_state(repo) -> dict:
    """Everything a user can ask the index about, JSON-ready.

    Collections and types, every version's ``json_encode()`` and manifest,
    and what each alias of each collection resolves to.
    """
    state = {"collections": repo.collections(), "types": repo.types(), "versions": {}, "aliases": {}}
    for c in state["collections"]:
        coll = f"{c['project']}/{c['name']}"
        for v in repo.artifacts(coll):
            state["versions"][v.qualified_name] = {
                "json": v.json_encode(),
                "manifest": {p: [e.digest, e.size, e.executable] for p, e in v.manifest.items()},
            }
            for alias in v.aliases:
                state["aliases"][f"{coll}:{alias}"] = repo.artifact(f"{coll}:{alias}").qualified_name
    return state
