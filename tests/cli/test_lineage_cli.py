"""End-to-end CLI tests of lineage, runs, link, unlink and semantic versions (subprocesses)."""

import json

import cas
from tests.cli.test_cli import one_line_error, project, run  # noqa: F401  (fixture)


def _chain(proj):
    """ds logged by a prep run, used by a train run that logged model."""
    with cas.Repo(proj) as repo:
        with repo.run(job_type="prep", name="prep-1") as prep:
            a = cas.Artifact("ds", "dataset", repo=repo)
            a.add_dir(proj / "data")
            prep.log_artifact(a)
        with repo.run(job_type="train", name="train-1") as train:
            train.use_artifact("ds")
            m = cas.Artifact("model", "model", repo=repo)
            with m.new_file("w.bin", mode="w") as f:
                f.write("weights")
            train.log_artifact(m)
        return prep.id, train.id


def test_lineage_text_and_json(project):
    prep, train = _chain(project)
    out = run("lineage", "model", cwd=project, check=0).stdout
    assert "upstream (producers):" in out and "downstream (consumers):" in out
    assert "logged by run train-1" in out and "used default/ds:v0" in out and "logged by run prep-1" in out
    g = json.loads(run("--json", "lineage", "ds", "--direction", "down", cwd=project, check=0).stdout)
    assert g["upstream"] is None and g["root"] == "default/ds:v0"
    assert {"from": f"run:{train}", "to": "default/model:v0", "kind": "logged"} in g["edges"]
    shallow = json.loads(run("--json", "lineage", "model", "--depth", "0", cwd=project, check=0).stdout)
    assert [n["id"] for n in shallow["nodes"]] == ["default/model:v0"]
    p = run("lineage", "model", "--direction", "sideways", cwd=project)
    assert p.returncode == 2
    p = run("lineage", "model", "--depth", "-1", cwd=project)
    assert p.returncode == 2 and "depth" in one_line_error(p)
    p = run("lineage", "nope", cwd=project)
    assert p.returncode == 8 and "nope" in one_line_error(p)


def test_runs_lists_runs(project):
    assert "no runs" in run("runs", cwd=project, check=0).stdout
    prep, train = _chain(project)
    out = run("runs", cwd=project, check=0).stdout
    assert "prep-1" in out and "train-1" in out and "finished" in out
    runs = json.loads(run("--json", "runs", "--job-type", "train", cwd=project, check=0).stdout)
    assert [r["id"] for r in runs] == [train] and runs[0]["state"] == "finished"
    show = json.loads(run("--json", "show", "model", cwd=project, check=0).stdout)
    assert show["source_experiment_key"] == train
    assert f"run     {train}" in run("log", "model", cwd=project, check=0).stdout


def test_link_and_unlink(project):
    run("add", "data", "--name", "ds", cwd=project, check=0)
    out = run("link", "ds", "reg/golden", "--alias", "prod", cwd=project, check=0).stdout
    assert "linked default/ds:v0 as reg/golden:v0" in out and "prod" in out
    again = json.loads(run("--json", "link", "ds:v0", "reg/golden", cwd=project, check=0).stdout)
    assert again["version"] == "v0" and again["is_link"] and again["source_qualified_name"] == "default/ds:v0"
    show = run("show", "reg/golden:prod", cwd=project, check=0).stdout
    assert "link_of        default/ds:v0" in show
    got = run("get", "reg/golden", project / "out", cwd=project, check=0)
    assert (project / "out" / "a.txt").read_bytes() == b"alpha\n", got.stdout
    p = run("unlink", "ds", cwd=project)
    assert p.returncode == 2 and "not a link" in one_line_error(p)
    assert "source default/ds:v0 unchanged" in run("unlink", "reg/golden:v0", cwd=project, check=0).stdout
    p = run("get", "reg/golden:v0", project / "out2", cwd=project)
    assert p.returncode == 40 and "deleted" in one_line_error(p)
    run("get", "ds", project / "out3", cwd=project, check=0)
    listing = run("ls", cwd=project, check=0).stdout  # a collection with no live version still lists
    assert "reg/golden" in listing and "default/ds" in listing
    p = run("link", "ds", "golden:v1", cwd=project)
    assert p.returncode == 2 and "selector" in one_line_error(p)


def test_add_with_semver_and_bump(project):
    out = run("add", "data", "--name", "ds", "--version", "1.2.0", cwd=project, check=0).stdout
    assert "logged default/ds:v0 (1.2.0)" in out
    (project / "data" / "a.txt").write_bytes(b"changed")
    out = json.loads(run("--json", "add", "data", "--name", "ds", "--bump", "minor", cwd=project, check=0).stdout)
    assert out["semver"] == "1.3.0" and out["version"] == "v1"
    assert json.loads(run("--json", "show", "ds:1.2.0", cwd=project, check=0).stdout)["version"] == "v0"
    hist = run("log", "ds", cwd=project, check=0).stdout
    assert "semver  1.3.0" in hist and "semver  1.2.0" in hist
    assert "semver         1.3.0" in run("show", "ds", cwd=project, check=0).stdout
    (project / "data" / "a.txt").write_bytes(b"changed again")
    p = run("add", "data", "--name", "ds", "--version", "1.2.0", cwd=project)
    assert p.returncode == 10 and "1.2.0" in one_line_error(p)
    p = run("add", "data", "--name", "ds", "--version", "1.2", cwd=project)
    assert p.returncode == 2 and "semantic version" in one_line_error(p)
    p = run("add", "data", "--name", "ds", "--version", "1.4.0", "--bump", "patch", cwd=project)
    assert p.returncode == 2
    assert len(json.loads(run("--json", "log", "ds", cwd=project, check=0).stdout)) == 2
