"""The Targets table sets every bar against the machine floor that bounds it.

A bar below its floor is reported as impossible on this machine (with both figures), a
bar above it as reachable, and a target whose floor was not measured says so.
"""

from __future__ import annotations

from benchmarks import report
from benchmarks.tools import Cas


def _ok(s, **kw):
    return dict({"status": "ok", "median_s": s, "rss_mib": 10, "runs": [{}]}, **kw)


def _res(floors, tools):
    return {"command": "python -m benchmarks.run", "date": "2026-01-01", "runs": 1, "runs_done": 1,
            "cache": "cold", "machine": {}, "data": "/d", "sizes": {}, "versions": {},
            "floors": {k: {"median_s": v, "n": 1} for k, v in floors.items()},
            "tools": tools, "startup": {}}


def _target(targets, prefix):
    (t,) = [t for t in targets if t["target"].startswith(prefix)]
    return t


def test_a_bar_below_its_floor_is_reported_as_impossible_with_both_figures():
    # cold cat 1.0 s -> the W1 bar is 1.25 s; a durable write of W1 takes 2.0 s
    res = _res({"cat_w1_cold": 1.0, "dd_w1_fsync": 2.0},
               {"cas": {"w1": _ok(3.0)}, "borg": {"w1": _ok(4.0)}})
    res["targets"] = report.evaluate_targets(res)
    t = _target(res["targets"], "W1 ingest / cold cat")
    assert t["result"] == "FAIL"
    assert t["impossible"] is True
    assert (t["bar_s"], t["floor_s"]) == (1.25, 2.0)
    # the speed-up bar (4.0 / 1.7 = 2.35 s) is above the same floor: reachable, still a FAIL
    t = _target(res["targets"], "W1: fastest peer")
    assert t["result"] == "FAIL" and t["impossible"] is False
    md = report.render_md(res, "x.png")
    line = next(x for x in md.splitlines() if x.startswith("- W1 ingest / cold cat"))
    assert "impossible on this machine" in line and "1.250 s" in line and "2.000 s" in line
    line = next(x for x in md.splitlines() if x.startswith("- W1: fastest peer"))
    assert "reachable" in line and "impossible" not in line


def test_floors_of_w4_add_the_stat_walk_to_the_interpreter_start():
    res = _res({"find_w3_cold": 0.5, "py_start_cold": 0.25},
               {"cas": {"w4_w3": _ok(1.0), "w4_w1": _ok(0.3)},
                "borg": {"w4_w3": _ok(3.0)}, "git-annex": {"w4_w1": _ok(0.2)}})
    T = report.evaluate_targets(res)
    t = _target(T, "W4 no-op W3")
    assert t["floor_s"] == 0.75 and t["bar_s"] == 0.6 and t["impossible"] is True
    t = _target(T, "W4 no-op W1")
    assert t["floor_s"] == 0.25 and t["bar_s"] == 0.2 and t["impossible"] is True


def test_a_floor_not_measured_is_said_not_guessed():
    res = _res({}, {"cas": {"w6_w3": _ok(2.0)}, "borg": {"w6_w3": _ok(9.0)}})
    t = _target(report.evaluate_targets(res), "W6 restore W3")
    assert t["impossible"] is None and "not measured" in t["limit"]
    assert t["result"] == "PASS"


def test_a_bar_equal_to_its_floor_is_reachable():
    v = report.floor_verdict(1.0, ("x", 1.0))
    assert v["impossible"] is False


def test_installed_cas_runs_its_venv_script_without_the_checkout_on_pythonpath(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/some/checkout")
    cas = Cas("/some/checkout", venv="/v")
    assert cas._cmd("--version") == ["/v/bin/cas", "--version"]
    assert cas.python == "/v/bin/python"
    assert "PYTHONPATH" not in cas.base_env()
    from benchmarks.tools import Store
    assert "PYTHONPATH" not in cas.env(Store("/b"))
    # without a venv the checkout is what runs
    assert Cas("/some/checkout").base_env()["PYTHONPATH"].split(":")[0] == "/some/checkout"
