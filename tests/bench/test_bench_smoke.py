"""The benchmark harness keeps working: a --quick run on tiny data measures every workload.

Runs ``python -m benchmarks.run --quick`` for cas only (peers are exercised by the
real benchmark run, not here, so the test passes with none installed and stays fast),
with a warm cache so it never needs root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT

STEPS = ["w1", "w2", "w3", "w4_w1", "w4_w3", "w5", "w6_w1", "w6_w3", "w7_w1", "w7_w3"]


def test_quick_run_measures_every_workload_and_verifies_restores(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--warm", "--tools", "cas",
         "--startup-runs", "2", "--out", str(out), "--work", str(tmp_path / "work")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["failures"] == []
    cas = res["tools"]["cas"]
    for step in STEPS:
        st = cas[step]
        assert st["status"] == "ok", (step, st)
        assert st["median_s"] > 0 and st["rss_mib"] > 0, (step, st)
        assert st["mib_s"] > 0, (step, st)
    for step in ("w1", "w2", "w3", "w5"):
        assert cas[step]["store_bytes"] > 0, step
    for step in ("w6_w1", "w6_w3", "w2", "w5"):
        assert cas[step]["verified"] is True, step
    for floor in ("cat_w1_cold", "tar_w3", "dd_w1_fsync", "py_start_cold", "py_import_cas_cli_cold",
                  "cas_version_cold", "find_w3_cold", "tar_x_w3", "tar_x_w3_sync",
                  "cat_packs_w1", "cat_packs_w3"):
        assert res["floors"][floor]["median_s"] > 0, floor
    assert res["floors"]["cat_packs_w1"]["bytes"] > 0
    assert res["startup"]["--help"]["median_s"] > 0
    assert res["startup"]["python -c pass"]["median_s"] > 0
    # --quick runs cas from the checkout (no package index needed)
    assert res["cas_install"]["mode"] == "pythonpath"
    names = {t["target"] for t in res["targets"]}
    assert len(names) == len(res["targets"]) >= 18
    # the targets whose floor was measured say how their bar compares with it
    judged = {t["target"] for t in res["targets"] if t["impossible"] is not None}
    assert any(n.startswith("W1 ingest") for n in judged), judged
    assert all(t["limit"] for t in res["targets"])
    # a --quick run reports into --out and leaves docs/ alone
    assert (out / "benchmarks.md").exists() and (out / "benchmarks.png").stat().st_size > 0
    assert "QUICK" in (out / "benchmarks.md").read_text()


def test_broken_tool_run_fails_loudly(tmp_path):
    """A restore that does not match the source is a failure, never a figure."""
    from benchmarks import run as brun

    from benchmarks.tools import Cas

    class Lying(Cas):
        def restore(self, ctx, st, src, out):
            m, path = super().restore(ctx, st, src, out)
            with open(path, "r+b") as f:
                f.write(b"X")
            return m, path

    from benchmarks import data as bdata

    w = bdata.make_quick(str(tmp_path / "data"), mib=1, files=20)
    sizes = w.sizes()
    digests = {"w1": bdata.file_digest(w.w1)}
    ctx = brun.Ctx(False, None, lambda m: None)
    tool = Lying(REPO_ROOT)
    try:
        brun.run_chain(tool, "w1", w, ctx, str(tmp_path / "b"), {"w1", "w6"}, digests, sizes, False)
    except brun.StepFailed as e:
        assert "digest" in str(e)
    else:
        raise AssertionError("a corrupted restore was accepted")
