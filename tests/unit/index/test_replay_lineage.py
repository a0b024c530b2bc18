"""Replaying run, use, link and delete entries and the semver/run_id fields of version entries."""

import pytest

from cas.format import records as R
from cas.index.db import open_index
from cas.index.replay import K_BAD_LOG, catch_up, noted, rebuild
from cas.index.tables import E_LOGGED, E_USED
from tests.unit.index.test_replay import D, Store, read, version

RUN = "a" * 32


def run(t, run_id=RUN, **kw):
    return {"op": R.OP_RUN, "run_id": run_id, "time_ns": t, **kw}


def use(t, coll, n, run_id=RUN):
    return {"op": R.OP_USE, "run_id": run_id, "collection": coll, "version": n, "time_ns": t}


def link(t, coll, src, n, **kw):
    return {"op": R.OP_LINK, "collection": coll, "version": 0, "source_collection": src, "source_version": n,
            "time_ns": t, **kw}


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "store")


def test_runs_edges_links_and_semvers_replay(store, db):
    log = [
        run(10, job_type="prep", name="prep-1", config={"lr": 1}),
        version("p/ds", D(1), 20, semver="1.0.0", run_id=RUN),
        run(30, state="finished"),
        run(40, run_id="b" * 32, job_type="train"),
        use(50, "p/ds", 0, run_id="b" * 32),
        use(51, "p/ds", 0, run_id="b" * 32),  # a repeated edge is one edge
        use(52, "p/ds", 5, run_id="b" * 32),  # unknown version: ignored
        use(53, "p/ds", 0, run_id="c" * 32),  # unknown run: ignored
        version("p/ds", D(2), 60, semver="1.0.0"),  # duplicate label: the earlier version keeps it
        version("p/m", D(3), 70, run_id="d" * 32, type="model"),  # unknown run: no producer recorded
        link(80, "p/reg", "p/ds", 0, aliases=["prod"]),
        link(90, "p/reg2", "p/reg", 0),  # a link to a link names the first source
        link(95, "p/reg3", "p/ds", 9),  # unknown source: ignored
        link(96, "p/m", "p/ds", 0),  # target holds another type: ignored
        {"op": R.OP_DELETE, "collection": "p/reg2", "version": 0, "time_ns": 99},
    ]
    for e in log:
        store.append(e)
    catch_up(db, store.log, store.packs)

    def check(t):
        r = t.get_run(RUN)
        assert (r["name"], r["job_type"], r["config"], r["state"]) == ("prep-1", "prep", {"lr": 1}, "finished")
        assert (r["created_ns"], r["ended_ns"]) == (10, 30)
        assert t.get_run("b" * 32)["state"] == "running" and t.get_run("b" * 32)["name"] == "b" * 32
        assert t.get_run("c" * 32) is None
        v0, v1 = t.get_version("p/ds", 0), t.get_version("p/ds", 1)
        assert (v0["semver"], v0["run_id"]) == ("1.0.0", RUN)
        assert "semver" not in v1 and "run_id" not in v1
        assert t.get_semver("p/ds", "1.0.0") == 0
        assert "run_id" not in t.get_version("p/m", 0)
        assert list(t.iter_run_edges(E_LOGGED, RUN)) == [("p/ds", 0)]
        assert list(t.iter_run_edges(E_USED, "b" * 32)) == [("p/ds", 0)]
        assert list(t.iter_version_edges(E_USED, "p/ds", 0)) == ["b" * 32]
        assert list(t.iter_version_edges(E_LOGGED, "p/ds", 0)) == [RUN]
        reg = t.get_version("p/reg", 0)
        assert reg["link"] == {"collection": "p/ds", "version": 0}
        assert (reg["digest"], reg["type"], reg["seq"]) == (D(1), "dataset", 11)
        assert t.get_alias("p/reg", "prod") == 0 and t.get_alias("p/reg", "latest") == 0
        reg2 = t.get_version("p/reg2", 0)
        assert reg2["link"] == {"collection": "p/ds", "version": 0} and reg2["state"] == "DELETED"
        assert t.get_alias("p/reg2", "latest") is None
        assert list(t.iter_links("p/ds", 0)) == [("p/reg", 0), ("p/reg2", 0)]
        assert t.get_collection("p/reg3") is None
        assert t.get_collection("p/m")["n_versions"] == 1
        return True

    assert read(db, check)
    # a rebuild from the log gives the same tables
    other = open_index(str(store.layout.root) + "/index2")
    try:
        rebuild(other, store.log, store.packs)
        assert read(other, check)
    finally:
        other.close()


def test_link_versions_are_numbered_in_log_order_with_versions(store, db):
    store.append(version("p/src", D(1), 1))
    store.append(version("p/reg", D(5), 2))
    store.append(link(3, "p/reg", "p/src", 0, version=0))  # the field is a hint; log order decides
    store.append(version("p/reg", D(6), 4))
    catch_up(db, store.log, store.packs)
    got = read(db, lambda t: [(r["version"], r["digest"], bool(r.get("link"))) for r in t.iter_versions("p/reg")])
    assert got == [(0, D(5), False), (1, D(1), True), (2, D(6), False)]


@pytest.mark.parametrize("bad", [
    run(1, state="paused"), run(1, config=[1]), run(1, name=5), run(1, run_id="has space"),
    version("p/a", D(1), 1, semver="1.0"), version("p/a", D(1), 1, semver=100), version("p/a", D(1), 1, run_id=""),
    {"op": R.OP_USE, "run_id": RUN, "collection": "p/a", "time_ns": 1},
    {"op": R.OP_LINK, "collection": "p/a", "version": 0, "source_collection": "nope", "source_version": 0,
     "time_ns": 1},
])
def test_malformed_lineage_entries_are_refused_and_skipped_as_damage(store, db, bad):
    from cas.errors import FormatError

    with pytest.raises(FormatError):
        R.encode_entry(bad)
    store.append(raw=R.LOG_MAGIC + R.pack_canonical(bad))
    catch_up(db, store.log, store.packs)
    assert read(db, lambda t: noted(t, K_BAD_LOG)) == [1]
