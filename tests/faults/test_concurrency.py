"""Several processes using one store at once.

Children start together (each polls for a ``go`` file after saying it is
ready) and record what they got; the test then checks the store against
those records.
"""

from __future__ import annotations

import json
import subprocess
import time

import cas
from tests.faults.helpers import (
    child_cmd,
    child_env,
    content,
    downloaded,
    drop_index_files,
    dump_state,
    findings,
    init_repo,
    log_src,
    write_src,
)

BARRIER = """
import time
from pathlib import Path
print("ready", flush=True)
while not Path(ARGS["go"]).exists():
    time.sleep(0.002)
"""

WRITER = BARRIER + """
from pathlib import Path
from tests.faults.helpers import content, write_src
repo = cas.Repo(ARGS["repo"])
got = {}
for k in range(ARGS["n"]):
    src = write_src(Path(ARGS["src_dir"]), content(k, ARGS["tag"]), f"{ARGS['tag']}-{k}")
    v = log_dir(repo, ARGS["collection"], src)
    got[v.version_index] = [k, v.digest]
repo.close()
print(json.dumps(got))
"""

READER = BARRIER + """
from pathlib import Path
from tests.faults.helpers import content
from tests.conftest import read_tree
checked = rounds = 0
stop = Path(ARGS["stop"])
while True:
    last = stop.exists()
    repo = cas.Repo(ARGS["repo"])
    for c in repo.collections():
        versions = repo.artifacts(c["name"])
        assert [v.version_index for v in versions] == list(range(len(versions)))[::-1]
        latest = repo.artifact(c["name"] + ":latest")
        assert latest.version_index >= len(versions) - 1  # a writer may have logged in between
        dest = Path(ARGS["out"]) / f"{rounds}-{c['name']}"
        latest.download(dest)
        assert read_tree(dest) == content(latest.version_index, c["name"]), latest.qualified_name
        checked += 1
    repo.close()
    rounds += 1
    if last:
        break
print(json.dumps({"rounds": rounds, "checked": checked}))
"""


def start(script: str, args: dict) -> subprocess.Popen:
    return subprocess.Popen(child_cmd(script, args), env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def release(procs, go) -> None:
    """Wait until every child is ready, then let them all go at once."""
    for p in procs:
        line = p.stdout.readline()
        if line != "ready\n":
            p.wait(timeout=60)
            raise AssertionError(f"child failed before the barrier: {line}{p.stderr.read()}")
    go.write_text("go")


def finish(p: subprocess.Popen):
    """Wait for a child; return its last stdout line parsed as JSON."""
    out, err = p.communicate(timeout=180)
    assert p.returncode == 0, f"child exited {p.returncode}\n{out}\n{err}"
    return json.loads(out.strip().splitlines()[-1])


def _new_repo(tmp_path):
    path = tmp_path / "repo"
    init_repo(path).close()
    return path


def test_four_writers_one_collection(tmp_path):
    path = _new_repo(tmp_path)
    go = tmp_path / "go"
    procs = [start(WRITER, {"repo": str(path), "go": str(go), "n": 5, "tag": f"w{w}", "collection": "data",
                            "src_dir": str(tmp_path / "src")}) for w in range(4)]
    try:
        release(procs, go)
        results = {f"w{w}": finish(p) for w, p in enumerate(procs)}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    got = {}  # version -> (writer tag, k, digest)
    for tag, res in results.items():
        assert sorted(v[0] for v in res.values()) == list(range(5)), f"{tag} logged {res}"
        for vi, (k, digest) in res.items():
            assert int(vi) not in got, f"v{vi} handed to both {got[int(vi)][0]} and {tag}"
            got[int(vi)] = (tag, k, digest)
    assert sorted(got) == list(range(20))

    with cas.Repo(path) as repo:
        versions = repo.artifacts("data")
        assert [v.version_index for v in versions] == list(range(20))[::-1]
        digests = set()
        for v in versions:
            tag, k, digest = got[v.version_index]
            assert v.digest == digest
            digests.add(v.digest)
            files = downloaded(v, tmp_path / "out" / v.version)
            assert files == content(k, tag), f"{v.version} is not what {tag} logged"
        assert len(digests) == 20
        assert repo.artifact("data:latest").version == "v19"
        report = repo.verify()
        assert report.findings == [], findings(report)
        before = json.loads(json.dumps(dump_state(repo)))
    # three processes open the store at once with its index deleted: each rebuilds or waits
    drop_index_files(path)
    go2 = tmp_path / "go2"
    procs = [start(DUMP, {"repo": str(path), "go": str(go2)}) for _ in range(3)]
    try:
        release(procs, go2)
        dumps = [finish(p) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert all(d == before for d in dumps)
    with cas.Repo(path) as repo:
        assert dump_state(repo) == before
        assert repo.verify().findings == []


DUMP = BARRIER + """
from tests.faults.helpers import dump_state
repo = cas.Repo(ARGS["repo"])
print(json.dumps(dump_state(repo)))
repo.close()
"""


LOG_ONE = """
repo = cas.Repo(ARGS["repo"])
print(log_dir(repo, "data", ARGS["src"]).version)
repo.close()
"""


def test_long_lived_repo_sees_what_other_processes_logged(tmp_path):
    """A Repo kept open (with cached index snapshots) while another process logs stays correct."""
    path = tmp_path / "repo"
    srcs = [write_src(tmp_path / "src", content(k), f"v{k}") for k in range(5)]
    with init_repo(path) as repo:
        log_src(repo, "data", srcs[0])
        assert downloaded(repo.artifact("data:v0"), tmp_path / "o0") == content(0)  # caches a snapshot
        assert repo.verify().findings == []
        for k in (1, 2):
            proc = subprocess.run(child_cmd(LOG_ONE, {"repo": str(path), "src": str(srcs[k])}), env=child_env(),
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0 and proc.stdout.strip() == f"v{k}", proc.stderr
            report = repo.verify()
            assert report.findings == [], findings(report)
            assert report.n_versions == k + 1
        assert repo.artifact("data:latest").version == "v2"
        assert downloaded(repo.artifact("data:v2"), tmp_path / "o2") == content(2)
        assert log_src(repo, "data", srcs[3]).version == "v3"
        assert repo.verify().findings == []


def test_two_writers_and_a_reader(tmp_path):
    path = _new_repo(tmp_path)
    go, stop = tmp_path / "go", tmp_path / "stop"
    writers = [start(WRITER, {"repo": str(path), "go": str(go), "n": 10, "tag": name, "collection": name,
                              "src_dir": str(tmp_path / "src")}) for name in ("alpha", "beta")]
    reader = start(READER, {"repo": str(path), "go": str(go), "stop": str(stop), "out": str(tmp_path / "read")})
    procs = writers + [reader]
    try:
        release(procs, go)
        results = {name: finish(p) for name, p in zip(("alpha", "beta"), writers)}
        stop.write_text("stop")
        seen = finish(reader)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for name, res in results.items():
        assert {int(v): k for v, (k, _d) in res.items()} == {k: k for k in range(10)}, res
    assert seen["rounds"] >= 1
    assert seen["checked"] >= 2  # the last round, after both writers finished, saw both
    with cas.Repo(path) as repo:
        for name in ("alpha", "beta"):
            for v in repo.artifacts(name):
                assert downloaded(v, tmp_path / "out" / name / v.version) == content(v.version_index, name)
        assert repo.verify().findings == []


MOVER = BARRIER + """
repo = cas.Repo(ARGS["repo"])
for i in range(ARGS["n"]):
    target = ARGS["targets"][i % len(ARGS["targets"])]
    repo.artifact(f"data:v{target}").update_aliases(add=["best"])
repo.close()
print(json.dumps({"moves": ARGS["n"]}))
"""


def test_concurrent_alias_moves_end_consistent(tmp_path):
    path = tmp_path / "repo"
    with init_repo(path) as repo:
        for k in range(4):
            log_src(repo, "data", write_src(tmp_path / "src", content(k), f"v{k}"), aliases=["best"] if k == 0 else ())
    go = tmp_path / "go"
    procs = [start(MOVER, {"repo": str(path), "go": str(go), "n": 12, "targets": targets})
             for targets in ([0, 1], [2, 3])]
    try:
        release(procs, go)
        for p in procs:
            finish(p)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def holders(repo):
        return [v.version_index for v in repo.artifacts("data") if "best" in v.aliases]

    with cas.Repo(path) as repo:
        have = holders(repo)
        assert len(have) == 1, f"'best' is on {have}"
        assert repo.artifact("data:best").version_index == have[0]
        assert repo.artifact("data:latest").version == "v3"
        assert repo.verify().findings == []
        before = dump_state(repo)
    # the log alone gives the same answer
    drop_index_files(path)
    with cas.Repo(path) as repo:
        assert holders(repo) == have
        assert dump_state(repo) == before
