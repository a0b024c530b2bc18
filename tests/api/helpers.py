"""Small helpers shared by the API behaviour tests."""

from __future__ import annotations

import os

import cas
from tests.conftest import write_tree


def draft(repo, name="data", type="dataset", **kwargs):
    """A draft bound to ``repo``."""
    return cas.Artifact(name, type, repo=repo, **kwargs)


def log_files(repo, tmp_path, files: dict, name="data", type="dataset", aliases=(), tags=(), **kwargs):
    """Log ``files`` ({logical path: bytes}) as the next version of ``name``; return the version."""
    src = tmp_path / f"src-{name}-{len(os.listdir(tmp_path))}"
    write_tree(src, files)
    a = draft(repo, name, type, **kwargs)
    a.add_dir(src)
    return repo.log_artifact(a, aliases=aliases, tags=tags)


def write(path, data: bytes):
    """Write ``data`` to ``path`` (creating parents); return the path."""
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path
