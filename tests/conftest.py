"""Shared fixtures: a hermetic environment and small-chunk repositories.

Every test runs with HOME, XDG dirs and CAS_HOME inside its own tmp_path and
no CAS_* variable from the caller, so nothing touches the user's stores.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("nightly", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Small chunks so tests exercise multi-chunk files with a few KiB of data.
SMALL_CHUNKS = dict(min_size=256, avg_size=1024, max_size=4096)


@pytest.fixture(autouse=True)
def hermetic_env(tmp_path, monkeypatch):
    """Point HOME, XDG and CAS_HOME into tmp_path and drop other CAS_* variables."""
    for key in list(os.environ):
        if key.startswith("CAS_"):
            monkeypatch.delenv(key, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("CAS_HOME", str(home / "cas-default-store"))
    # subprocesses (CLI, crash and concurrency tests) import this checkout's cas,
    # whatever copy of cas is installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")])))
    yield


@pytest.fixture
def small_params():
    """Chunker parameters with ~1 KiB chunks."""
    from cas.format.chunker import ChunkerParams

    return ChunkerParams(**SMALL_CHUNKS)


@pytest.fixture
def make_repo(tmp_path, small_params):
    """Factory: ``make_repo(name="repo")`` creates and opens a small-chunk repo."""
    import cas

    opened = []

    def factory(name: str = "repo", **kwargs):
        kwargs.setdefault("chunker", small_params)
        repo = cas.Repo.init(tmp_path / name, **kwargs)
        opened.append(repo)
        return repo

    yield factory
    for r in opened:
        r.close()


@pytest.fixture
def repo(make_repo):
    """One open small-chunk repository."""
    return make_repo()


def write_tree(root, files: dict) -> None:
    """Create ``files`` ({relative path: bytes}) under ``root``."""
    for rel, data in files.items():
        p = os.path.join(str(root), rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)


def read_tree(root) -> dict:
    """Return {relative posix path: bytes} of regular files under ``root``."""
    out = {}
    for dirpath, _dirs, files in os.walk(str(root)):
        for n in files:
            p = os.path.join(dirpath, n)
            if os.path.islink(p):
                continue
            rel = os.path.relpath(p, str(root)).replace(os.sep, "/")
            with open(p, "rb") as f:
                out[rel] = f.read()
    return out
