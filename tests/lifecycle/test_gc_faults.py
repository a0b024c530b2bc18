"""gc under concurrency and crashes: every committed, non-deleted version stays byte-identical."""

from __future__ import annotations

import subprocess

import pytest

from cas.storage.crash import CRASH_EXIT, GC_CRASH_POINTS
from tests.faults.helpers import child_cmd, child_env, content, downloaded, init_repo, log_src, ok, run_child, write_src

WRITER = """
import random
repo = cas.Repo(ARGS["repo"])
rng = random.Random(ARGS["seed"])
for i in range(ARGS["n"]):
    v = log_dir(repo, "data", ARGS["srcs"][i])
    print(v.version, ARGS["keys"][i], flush=True)
    # delete an older version now and then, so gc has garbage to collect while others write
    live = repo.artifacts("data")
    if len(live) > 3 and rng.random() < 0.6:
        rng.choice(live[2:]).delete(delete_aliases=True)
repo.close()
"""

GC_LOOP = """
import time
from cas.errors import GcBusy
repo = cas.Repo(ARGS["repo"])
deleted = 0
for _ in range(ARGS["rounds"]):
    try:
        r = repo.gc(grace=0)
        deleted += r.packs_deleted
    except GcBusy:
        pass
    time.sleep(0.05)
print("deleted", deleted)
repo.close()
"""

GC_ONCE = """
repo = cas.Repo(ARGS["repo"])
repo.gc(grace=0)
"""


def test_gc_running_while_writers_log_and_delete(tmp_path):
    path = tmp_path / "store"
    init_repo(path).close()
    writers = []
    expected = {}
    for w in range(2):
        srcs, keys = [], []
        for i in range(8):
            key = f"w{w}-{i}"
            # versions share chunks with each other and with deleted versions (dedup against garbage)
            files = content(i % 3 + w, tag=key if i % 2 else f"shared-{i % 3}")
            expected[key] = files
            srcs.append(str(write_src(tmp_path / "src", files, key)))
            keys.append(key)
        writers.append(subprocess.Popen(
            child_cmd(WRITER, {"repo": str(path), "srcs": srcs, "keys": keys, "n": len(srcs), "seed": w}),
            env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    collector = subprocess.Popen(child_cmd(GC_LOOP, {"repo": str(path), "rounds": 25}), env=child_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    version_key = {}
    for p in writers:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        for line in out.split("\n"):
            if line:
                v, key = line.split()
                version_key[v] = key
    out, err = collector.communicate(timeout=240)
    assert collector.returncode == 0, err
    ok(run_child(GC_ONCE, {"repo": str(path)}))  # and once more with every writer gone
    import cas

    with cas.Repo(path) as repo:
        live = repo.artifacts("data")
        assert len(version_key) == 16 and len(live) >= 3
        for v in live:
            assert downloaded(v, tmp_path / "out" / v.version) == expected[version_key[v.version]], v.version
        report = repo.verify()
        assert report.findings == [], report.findings
        assert any(v.state == "DELETED" for v in repo.artifacts("data", include_deleted=True))


@pytest.mark.parametrize("point", GC_CRASH_POINTS)
def test_a_crash_during_gc_leaves_the_store_consistent(tmp_path, point):
    import cas

    path = tmp_path / "store"
    repo = init_repo(path)
    contents = [content(i, tag=f"crash-{i}") for i in range(4)]
    for i, files in enumerate(contents):
        log_src(repo, "data", write_src(tmp_path / "src", files, f"v{i}"))
    repo.artifact("data:v0").delete()
    repo.artifact("data:v1").delete()
    repo.close()
    proc = run_child(GC_ONCE, {"repo": str(path)}, env={"CAS_TEST_CRASH_AT": point})
    assert proc.returncode == CRASH_EXIT, proc.stderr
    with cas.Repo(path) as repo:
        for i in (2, 3):
            assert downloaded(repo.artifact(f"data:v{i}"), tmp_path / "a" / str(i)) == contents[i]
        # the crashed gc's lease expires; a later gc (after it) finishes the job
        import os
        lease = os.path.join(repo.layout.locks, "gc")
        if os.path.exists(lease):
            os.unlink(lease)  # as if its expiry had passed
        repo.gc(grace=0)
        assert repo.verify().findings == []
        for i in (2, 3):
            assert downloaded(repo.artifact(f"data:v{i}"), tmp_path / "b" / str(i)) == contents[i]
        again = repo.gc(grace=0)
        assert again.packs_condemned == 0
