"""A Repo opened before fork() keeps working in the parent and in the child.

ML data loaders fork worker processes that inherit an open Repo. LMDB handles
must not cross fork(): the child opens its own; the parent's are untouched.
"""

import multiprocessing
import os

import cas
from tests.conftest import read_tree, write_tree


def _child(repo, src, out, result):
    try:
        v0 = repo.artifact("data:v0")
        v0.download(out)
        # the child's read snapshot sits in a reader slot under its own pid, not the
        # parent's (an inherited LMDB handle would register the parent's pid)
        if f" {os.getpid()} " not in repo.db.env.readers():
            raise AssertionError("child reads through the parent's LMDB handle")
        write_tree(src, {"child.txt": b"from the child"})
        art = cas.Artifact("data", "dataset", repo=repo)
        art.add_dir(src)
        result.put(repo.log_artifact(art).version)
    except BaseException as exc:  # report, never hang the parent
        result.put(f"error: {exc!r}")
    finally:
        os._exit(0)


def test_repo_survives_fork(repo, tmp_path):
    src = tmp_path / "src"
    write_tree(src, {"a.txt": b"alpha", "b/c.bin": os.urandom(5000)})
    art = cas.Artifact("data", "dataset", repo=repo)
    art.add_dir(src)
    v0 = repo.log_artifact(art)
    assert repo.artifact("data:latest") == v0  # the parent holds a read snapshot now

    ctx = multiprocessing.get_context("fork")
    result = ctx.SimpleQueue()  # put() is synchronous: the child ends with os._exit
    child = ctx.Process(target=_child, args=(repo, str(src), str(tmp_path / "child-out"), result))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 0
    got = result.get()
    assert got == "v1"
    assert read_tree(tmp_path / "child-out") == {"a.txt": b"alpha", "b/c.bin": (src / "b" / "c.bin").read_bytes()}

    # the parent sees the child's version and keeps reading and writing
    v1 = repo.artifact("data:latest")
    assert v1.version == "v1" and read_tree(v1.download(tmp_path / "p1"))["child.txt"] == b"from the child"
    write_tree(src, {"parent.txt": b"p"})
    art = cas.Artifact("data", "dataset", repo=repo)
    art.add_dir(src)
    assert repo.log_artifact(art).version == "v2"
    assert repo.verify().ok
