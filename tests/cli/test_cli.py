"""End-to-end tests of the ``cas`` command line, run as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import read_tree, write_tree


def run(*args, cwd=None, check=None):
    """Run ``python -m cas ARGS``; return CompletedProcess (text)."""
    p = subprocess.run([sys.executable, "-m", "cas", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                       timeout=120)
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
    return p


def one_line_error(p):
    """The failure printed exactly one line, no traceback."""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("cas: error: ")
    assert "Traceback" not in p.stderr
    return lines[0]


@pytest.fixture
def project(tmp_path):
    """A project dir with a repo and a data dir."""
    proj = tmp_path / "proj"
    proj.mkdir()
    run("init", proj, check=0)
    write_tree(proj / "data", {"a.txt": b"alpha\n", "sub/b.bin": os.urandom(9000), "sub/c.txt": b"gamma"})
    return proj


def test_add_ls_log_show_roundtrip(project):
    p = run("add", "data", "--name", "ds", "--alias", "best", "--tag", "raw", "-m", "first",
            "--metadata", "rows=3", "--metadata", "src=lab", cwd=project, check=0)
    assert "logged default/ds:v0" in p.stdout
    ls = json.loads(run("--json", "ls", cwd=project, check=0).stdout)
    assert ls == [{"project": "default", "name": "ds", "type": "dataset", "versions": 1, "tags": []}]
    show = json.loads(run("--json", "show", "ds:best", cwd=project, check=0).stdout)
    assert show["version"] == "v0" and show["metadata"] == {"rows": 3, "src": "lab"}
    assert show["description"] == "first" and show["tags"] == ["raw"]
    assert sorted(show["aliases"]) == ["best", "latest"]
    files = json.loads(run("--json", "ls", "ds", cwd=project, check=0).stdout)
    assert [f["path"] for f in files] == ["a.txt", "sub/b.bin", "sub/c.txt"]
    hist = run("log", "ds", cwd=project, check=0).stdout
    assert "default/ds:v0" in hist and "first" in hist


def test_readd_unchanged_is_noop(project):
    run("add", "data", "--name", "ds", cwd=project, check=0)
    p = run("--json", "add", "data", "--name", "ds", cwd=project, check=0)
    out = json.loads(p.stdout)
    assert out["unchanged"] is True and out["version"] == "v0"
    (project / "data" / "a.txt").write_bytes(b"changed\n")
    out = json.loads(run("--json", "add", "data", "--name", "ds", cwd=project, check=0).stdout)
    assert out["unchanged"] is False and out["version"] == "v1"
    diff = run("diff", "ds:v0", "ds:v1", cwd=project, check=0).stdout.split("\n")
    assert "M  a.txt" in diff


def test_get_checkout_verify(project, tmp_path):
    run("add", "data", "--name", "ds", cwd=project, check=0)
    dest = tmp_path / "dl"
    run("get", "ds", dest, cwd=project, check=0)
    assert read_tree(dest) == read_tree(project / "data")
    run("verify", "ds", dest, cwd=project, check=0)
    (dest / "a.txt").write_bytes(b"tampered")
    (dest / "extra.txt").write_bytes(b"x")
    p = run("verify", "ds", dest, cwd=project, check=1)
    line = one_line_error(p)
    assert "a.txt" in line and "extra.txt" in line
    # FAIL (default) refuses, --preserve keeps, --overwrite replaces
    p = run("get", "ds", dest, cwd=project)
    assert p.returncode != 0 and "a.txt" in one_line_error(p)
    run("get", "ds", dest, "--preserve", cwd=project, check=0)
    assert (dest / "a.txt").read_bytes() == b"tampered"
    run("get", "ds", dest, "--overwrite", cwd=project, check=0)
    assert (dest / "a.txt").read_bytes() == b"alpha\n"
    run("checkout", "ds", dest, cwd=project, check=0)
    assert read_tree(dest) == read_tree(project / "data")
    run("verify", "ds", cwd=project, check=0)


def test_get_prefix(project, tmp_path):
    run("add", "data", "--name", "ds", cwd=project, check=0)
    dest = tmp_path / "part"
    run("get", "ds", dest, "--prefix", "sub/", cwd=project, check=0)
    assert sorted(read_tree(dest)) == ["sub/b.bin", "sub/c.txt"]


def test_alias_and_tag(project):
    run("add", "data", "--name", "ds", cwd=project, check=0)
    (project / "data" / "a.txt").write_bytes(b"v1")
    run("add", "data", "--name", "ds", cwd=project, check=0)
    run("alias", "ds:v0", "prod", cwd=project, check=0)
    assert json.loads(run("--json", "show", "ds:prod", cwd=project, check=0).stdout)["version"] == "v0"
    run("alias", "ds:v1", "prod", cwd=project, check=0)  # moves
    assert json.loads(run("--json", "show", "ds:prod", cwd=project, check=0).stdout)["version"] == "v1"
    run("alias", "ds:v1", "prod", "--remove", cwd=project, check=0)
    p = run("show", "ds:prod", cwd=project)
    assert p.returncode != 0 and "prod" in one_line_error(p)
    run("tag", "ds:v0", "gold", cwd=project, check=0)
    run("tag", "ds", "team-a", "--collection", cwd=project, check=0)
    show = json.loads(run("--json", "show", "ds:v0", cwd=project, check=0).stdout)
    assert show["tags"] == ["gold"] and show["artifact_tags"] == ["team-a"]


def test_fsck_stats_and_rebuild(project):
    run("add", "data", "--name", "ds", cwd=project, check=0)
    assert json.loads(run("--json", "fsck", cwd=project, check=0).stdout)["ok"] is True
    p = run("fsck", "--rebuild-index", cwd=project, check=0)
    assert "rebuilt index" in p.stdout
    stats = json.loads(run("--json", "stats", cwd=project, check=0).stdout)
    assert stats["versions"] == 1 and stats["collections"] == 1 and stats["objects"] > 0


def test_default_store_without_init(tmp_path):
    """With no .cas upward, the CLI uses $CAS_HOME (created on first use)."""
    work = tmp_path / "w"
    write_tree(work / "docs", {"x.md": b"# x"})
    run("add", "docs", "--name", "docs", cwd=work, check=0)
    assert os.path.isfile(os.path.join(os.environ["CAS_HOME"], "config"))
    assert "default/docs" in run("ls", cwd=work, check=0).stdout


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["show", "nope"], 8, "nope"),
        (["show", "bad name!"], 2, "bad name!"),
        (["add", "missing-dir", "--name", "x"], 2, "missing-dir"),
        (["add", "data", "--name", "../evil"], 2, "../evil"),
        (["add", "data", "--name", "ds", "--alias", "v3"], 2, "v3"),
        (["add", "data", "--name", "ds", "--metadata", "novalue"], 2, "novalue"),
        (["diff", "ds:v0", "ds:v9"], 7, "v9"),
    ],
)
def test_errors_are_one_line(project, args, code, needle):
    run("add", "data", "--name", "ds", cwd=project, check=0)
    p = run(*args, cwd=project)
    assert p.returncode == code, (p.returncode, p.stderr)
    assert needle in one_line_error(p)


def test_type_mismatch_and_init_twice(project):
    run("add", "data", "--name", "ds", cwd=project, check=0)
    p = run("add", "data", "--name", "ds", "--type", "model", cwd=project)
    assert p.returncode == 2 and "dataset" in one_line_error(p)
    p = run("init", project)
    assert p.returncode != 0 and "already" in one_line_error(p)


def test_repo_option_and_missing_repo(project, tmp_path):
    run("--repo", project, "add", project / "data", "--name", "ds", cwd=tmp_path, check=0)
    assert "default/ds" in run("--repo", project, "ls", cwd=tmp_path, check=0).stdout
    p = run("--repo", tmp_path / "nowhere", "ls", cwd=tmp_path)
    assert p.returncode == 9 and "nowhere" in one_line_error(p)


def test_help_and_version():
    assert run("--version", check=0).stdout.startswith("cas ")
    assert "checkout" in run("--help", check=0).stdout
    assert run(check=2).returncode == 2


def test_cli_start_imports_no_heavy_modules():
    """``cas --help`` must stay fast: no lmdb, zstd, blake3, msgpack or fsspec at start-up."""
    code = (
        "import sys; from cas.cli.main import build_parser; build_parser();"
        "print(','.join(m for m in ('lmdb','zstandard','blake3','msgpack','fsspec','pyfastcdc') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_fsck_reports_leftovers_of_interrupted_writers_without_failing(project):
    """Unsealed data of a killed writer is not damage: fsck counts it and still exits 0."""
    run("add", "data", "--name", "ds", cwd=project, check=0)
    (project / ".cas" / "tmp" / "0123.pack.tmp").write_bytes(b"CASPACK\x00partial")
    report = json.loads(run("--json", "fsck", cwd=project, check=0).stdout)
    assert report["ok"] is True and report["tmp_files"] == 1 and report["orphan_packs"] == 0
    assert "1 temporary files" in run("fsck", cwd=project, check=0).stdout


def test_the_verb_list_of_the_lazy_parser_is_complete():
    """main() builds only the named verb's parser: its verb list must name every verb."""
    import argparse

    from cas.cli.main import _VERBS, _verb, build_parser

    full = build_parser()
    subs = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subs.choices) == _VERBS
    assert _verb(["--repo", "x", "--json", "add", "p"]) == "add"
    assert _verb(["--repo=x", "ls"]) == "ls"
    assert _verb(["--help", "add"]) is None and _verb(["nonsense"]) is None and _verb([]) is None
    only = build_parser("add")
    assert only.parse_args(["add", "p", "--name", "n"]).name == "n"
