"""CLI end to end: rm, log --all, ttl and gc."""

from __future__ import annotations

import json
import os

from tests.cli.test_cli import one_line_error, run
from tests.conftest import write_tree


def test_rm_gc_and_log_all(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    run("init", proj, check=0)
    for i in range(3):
        write_tree(proj / f"d{i}", {"f.bin": os.urandom(200_000 + i)})
        run("add", proj / f"d{i}", "--name", "ds", cwd=proj, check=0)
    run("alias", "ds:v0", "best", cwd=proj, check=0)
    err = one_line_error(run("rm", "ds:v0", cwd=proj, check=41))
    assert "best" in err and "--delete-aliases" in err
    out = run("rm", "ds:v0", "ds:v1", "--delete-aliases", cwd=proj, check=0).stdout
    assert "deleted default/ds:v0" in out and "cas gc" in out
    assert "v0" not in run("log", "ds", cwd=proj, check=0).stdout
    log_all = run("log", "ds", "--all", cwd=proj, check=0).stdout
    assert "default/ds:v0  [DELETED]" in log_all and "default/ds:v1  [DELETED]" in log_all
    assert "deleted" in one_line_error(run("get", "ds:v1", tmp_path / "x", cwd=proj, check=40))
    dry = json.loads(run("--json", "gc", "--dry-run", "--grace", "0", cwd=proj, check=0).stdout)
    assert dry["dry_run"] and dry["bytes_freed"] > 300_000
    assert "would free" in run("gc", "-n", "--grace", "0s", cwd=proj, check=0).stdout
    kept = run("gc", cwd=proj, check=0).stdout  # default grace: all of it is too young
    assert "freed 0 B" in kept or "freed 0" in kept
    done = json.loads(run("--json", "gc", "--grace", "0", cwd=proj, check=0).stdout)
    assert done["packs_deleted"] >= 2 and done["bytes_freed"] > 300_000
    run("get", "ds", tmp_path / "latest", cwd=proj, check=0)
    assert run("fsck", cwd=proj).returncode == 0


def test_ttl_command(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    run("init", proj, check=0)
    write_tree(proj / "d", {"f": b"x"})
    run("add", proj / "d", "--name", "ds", cwd=proj, check=0)
    assert "ttl 2592000 s" in run("ttl", "ds:v0", "30d", cwd=proj, check=0).stdout
    assert json.loads(run("--json", "show", "ds", cwd=proj, check=0).stdout)["ttl"] == 2592000
    run("ttl", "ds", "12h", "--collection", cwd=proj, check=0)
    run("ttl", "ds:v0", "none", cwd=proj, check=0)
    assert json.loads(run("--json", "show", "ds", cwd=proj, check=0).stdout)["ttl"] is None
    assert "bad duration" in one_line_error(run("ttl", "ds:v0", "soon", cwd=proj, check=2))
