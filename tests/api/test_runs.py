"""Runs and lineage: which runs used and produced each version."""

import pytest

import cas
from cas.errors import InvalidMetadata, InvalidName, NotFound, UsageError
from tests.api.helpers import draft, log_files


def _log(run, tmp_path, name, data, type="dataset", **kw):
    src = tmp_path / f"src-{name}-{data[:8].hex()}"
    src.mkdir()
    (src / "f.bin").write_bytes(data)
    a = draft(run._repo, name, type)
    a.add_dir(src)
    return run.log_artifact(a, **kw)


def test_a_run_records_what_it_used_and_logged(repo, tmp_path):
    with repo.run(job_type="prep", name="prep-1", config={"seed": 3}) as prep:
        raw = _log(prep, tmp_path, "raw", b"raw bytes")
        assert prep.state == "running"
    assert prep.state == "finished" and prep.ended_at is not None
    with repo.run(job_type="train") as train:
        used = train.use_artifact("raw:latest")
        assert used == raw and used.digest == raw.digest
        model = _log(train, tmp_path, "model", b"weights", type="model")

    assert raw.logged_by() == prep and model.logged_by() == train
    assert raw.source_experiment_key == prep.id and len(prep.id) == 32
    assert raw.used_by() == [train] and model.used_by() == []
    assert train.used_artifacts() == [raw] and train.logged_artifacts() == [model]
    assert (prep.name, prep.job_type, prep.config) == ("prep-1", "prep", {"seed": 3})
    assert train.name.startswith("train-") and train.config == {}
    assert repo.runs() == [prep, train] and repo.runs(job_type="train") == [train]
    assert repo.get_run(train.id[:6]) == train
    # a version logged outside a run has no producer
    plain = log_files(repo, tmp_path, {"x": b"x"}, name="plain")
    assert plain.logged_by() is None and plain.source_experiment_key is None


def test_state_survives_reopen_and_rebuild(make_repo, tmp_path):
    repo = make_repo()
    with repo.run(job_type="prep") as prep:
        raw = _log(prep, tmp_path, "raw", b"r")
    with repo.run(job_type="eval") as ev:
        ev.use_artifact(raw)
    root = repo.root
    repo.close()
    with cas.Repo(root) as again:
        again.rebuild_index()
        v = again.artifact("raw")
        assert v.logged_by().id == prep.id and [r.id for r in v.used_by()] == [ev.id]
        assert again.get_run(ev.id).state == "finished"


def test_an_exception_marks_the_run_failed_and_propagates(repo, tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with repo.run(job_type="train") as r:
            _log(r, tmp_path, "half", b"partial")
            raise RuntimeError("boom")
    assert r.state == "failed" and repo.get_run(r.id).state == "failed"
    assert repo.artifact("half").logged_by().state == "failed"  # what it logged stays


def test_an_ended_run_refuses_more_work(repo, tmp_path):
    log_files(repo, tmp_path, {"a": b"a"})
    run = repo.run(job_type="x")
    run.finish()
    run.finish(exit_code=1)  # a second finish changes nothing
    assert run.state == "finished"
    with pytest.raises(UsageError, match="finished"):
        run.use_artifact("data")
    with pytest.raises(UsageError, match="finished"):
        run.log_artifact(draft(repo))


def test_using_the_same_version_twice_records_one_edge(repo, tmp_path):
    log_files(repo, tmp_path, {"a": b"a"})
    with repo.run() as r:
        r.use_artifact("data:v0")
        r.use_artifact("default/data")
        seq = repo.log.last_seq()
        r.use_artifact("data:latest")
        assert repo.log.last_seq() == seq  # no new log entry
    assert len(repo.artifact("data").used_by()) == 1


def test_bad_run_arguments_and_references_fail_clearly(repo, tmp_path):
    with pytest.raises(InvalidName):
        repo.run(job_type="has space")
    with pytest.raises(InvalidMetadata):
        repo.run(config={"f": object()})
    with pytest.raises(NotFound, match="cas runs"):
        repo.get_run("0" * 32)
    with repo.run() as r:
        with pytest.raises(NotFound):
            r.use_artifact("missing:v0")
    assert r.used_artifacts() == []


def _chain(repo, tmp_path):
    """raw -(prep)-> clean -(train)-> model; eval uses model."""
    with repo.run(job_type="ingest") as ingest:
        raw = _log(ingest, tmp_path, "raw", b"raw")
    with repo.run(job_type="prep") as prep:
        prep.use_artifact(raw)
        clean = _log(prep, tmp_path, "clean", b"clean")
    with repo.run(job_type="train") as train:
        train.use_artifact(clean)
        model = _log(train, tmp_path, "model", b"model", type="model")
    with repo.run(job_type="eval") as ev:
        ev.use_artifact(model)
    return raw, clean, model, (ingest, prep, train, ev)


def test_lineage_follows_producers_and_consumers_with_depth(repo, tmp_path):
    raw, clean, model, (ingest, prep, train, ev) = _chain(repo, tmp_path)
    g = repo.lineage("model", direction="up")
    ids = {n["id"] for n in g["nodes"]}
    assert ids == {"default/model:v0", "default/clean:v0", "default/raw:v0",
                   f"run:{train.id}", f"run:{prep.id}", f"run:{ingest.id}"}
    assert {"from": f"run:{train.id}", "to": "default/model:v0", "kind": "logged"} in g["edges"]
    assert {"from": "default/clean:v0", "to": f"run:{train.id}", "kind": "used"} in g["edges"]
    assert g["downstream"] is None

    one = repo.lineage("model", direction="up", depth=1)
    assert {n["id"] for n in one["nodes"]} == {"default/model:v0", f"run:{train.id}", "default/clean:v0"}
    assert {n["id"] for n in repo.lineage("model", depth=0)["nodes"]} == {"default/model:v0"}

    down = repo.lineage("raw", direction="down")
    assert {n["id"] for n in down["nodes"]} == {"default/raw:v0", f"run:{prep.id}", "default/clean:v0",
                                                f"run:{train.id}", "default/model:v0", f"run:{ev.id}"}
    tree = down["downstream"]
    assert tree["node"] == "default/raw:v0" and tree["children"][0]["node"] == f"run:{prep.id}"
    both = repo.lineage("clean", depth=1)
    assert {n["id"] for n in both["nodes"]} == {"default/clean:v0", f"run:{prep.id}", "default/raw:v0",
                                                f"run:{train.id}", "default/model:v0"}


def test_lineage_survives_a_cycle_of_runs(repo, tmp_path):
    a = repo.run(job_type="a")
    va = _log(a, tmp_path, "va", b"1")
    with repo.run(job_type="b") as b:
        b.use_artifact(va)
        vb = _log(b, tmp_path, "vb", b"2")
    a.use_artifact(vb)  # a used what b made from a's output
    a.finish()
    g = repo.lineage("va")
    assert {n["id"] for n in g["nodes"]} == {"default/va:v0", "default/vb:v0", f"run:{a.id}", f"run:{b.id}"}


def test_lineage_refuses_bad_arguments(repo, tmp_path):
    log_files(repo, tmp_path, {"a": b"a"})
    with pytest.raises(UsageError, match="direction"):
        repo.lineage("data", direction="sideways")
    with pytest.raises(UsageError, match="depth"):
        repo.lineage("data", depth=-1)


def test_runs_and_versions_of_another_repository_are_refused(make_repo, tmp_path):
    one, two = make_repo("one"), make_repo("two")
    v_other = log_files(two, tmp_path, {"a": b"other"})
    log_files(one, tmp_path, {"a": b"mine"})
    with one.run() as r:
        with pytest.raises(UsageError, match="another repository"):
            r.use_artifact(v_other)
        with two.run() as foreign:
            with pytest.raises(UsageError, match="not a run"):
                one.log_artifact(draft(one, "x"), run=foreign)
