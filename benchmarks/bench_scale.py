"""Memory and scale: one artifact of N tiny files (default 1,000,000), step by step.

    python benchmarks/bench_scale.py [--files N] [--changes 1000] [--work DIR] [--no-docs]

Creates N files of 0-16 bytes spread over directories of 1,000 files, then times
each step as its own ``cas`` process (so the peak RSS is per step):

  add v0 (log the artifact), log, ls (list all files), add v1 after changing
  ``--changes`` files, diff v0 v1, checkout v1 into an empty directory,

and checks the results (ls lists N files, diff reports exactly the changes, the
checkout has N files and the changed content).  Writes ``scale-results.json``
into ``--out`` and the "Memory and scale" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import measure, report  # noqa: E402


def make_tree(root: str, n: int, per_dir: int = 1000) -> list[str]:
    """Write ``n`` tiny files (0-16 bytes) under ``root``; return their relative paths."""
    rng = random.Random(1)
    rels = []
    for i in range(n):
        d = "d%04d/e%02d" % (i // (per_dir * 10), (i // per_dir) % 10)
        if i % per_dir == 0:
            os.makedirs(os.path.join(root, d), exist_ok=True)
        rel = "%s/f%07d" % (d, i)
        with open(os.path.join(root, rel), "wb") as f:
            f.write(b"%d" % i if i % 3 else b"")
        rels.append(rel)
    rng.shuffle(rels)
    return rels


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--changes", type=int, default=1000)
    ap.add_argument("--work", default=None, help="scratch dir (default: temp dir, removed)")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    ap.add_argument("--cas-src", default=ROOT)
    ap.add_argument("--timeout", type=float, default=None)
    ap.add_argument("--no-docs", action="store_true")
    a = ap.parse_args(argv)
    work = a.work or tempfile.mkdtemp(prefix="cas-scale-")
    os.makedirs(work, exist_ok=True)
    tree = os.path.join(work, "big")
    store = os.path.join(work, "store")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [a.cas_src, env.get("PYTHONPATH")]))
    cas = [sys.executable, "-m", "cas", "--repo", store]
    t0 = time.time()
    print("creating %d files in %s ..." % (a.files, tree), flush=True)
    rels = make_tree(tree, a.files)
    made = time.time() - t0
    steps = []

    def step(name, args, check=None, stdout_path=None):
        m = measure.run_cmd(cas + args, cwd=work, env=env, timeout=a.timeout, stdout_path=stdout_path)
        rec = {"step": name, "command": "cas " + " ".join(args).replace(work + "/", ""),
               "wall": round(m.wall, 3), "rss_mib": round(m.rss_kib / 1024, 1),
               "rc": m.rc, "timed_out": m.timed_out}
        print("  %-10s %8.2f s %7.1f MiB rc=%s%s" % (name, m.wall, m.rss_kib / 1024, m.rc,
                                                    " TIMED OUT" if m.timed_out else ""), flush=True)
        if not m.ok:
            rec["error"] = (m.err or m.out)[-500:]
        elif check:
            rec["check"] = check(m)
        steps.append(rec)
        return m

    ok = True
    measure.run_cmd([sys.executable, "-m", "cas", "init", store], cwd=work, env=env)
    step("add v0", ["--json", "add", tree, "--name", "big"],
         lambda m: json.loads(m.out)["file_count"] == a.files)
    ls_out = os.path.join(work, "ls.txt")
    step("log", ["log", "big"])
    step("ls", ["ls", "big:v0"], lambda m: _lines(ls_out) == a.files + 1, stdout_path=ls_out)
    dpath = os.path.join(work, "diff.json")
    changed = rels[:a.changes]
    for rel in changed:
        with open(os.path.join(tree, rel), "ab") as f:
            f.write(b"+changed")
    step("add v1", ["--json", "add", tree, "--name", "big"],
         lambda m: json.loads(m.out)["version"] == "v1")
    step("diff", ["--json", "diff", "big:v0", "big:v1"], lambda m: _diff_ok(dpath, a.changes),
         stdout_path=dpath)
    out = os.path.join(work, "co")
    step("checkout", ["checkout", "big:v1", out], lambda m: _co_ok(out, a.files, changed[:50]))
    for s in steps:
        if s.get("rc") != 0 or s.get("timed_out") or s.get("check") is False:
            ok = False
    res = {"files": a.files, "changes": a.changes, "steps": steps, "ok": ok,
           "tree_creation_s": round(made, 1), "store_bytes": measure.du_bytes(store),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "command": "python benchmarks/bench_scale.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "scale-results.json"), "w") as f:
        json.dump(res, f, indent=1)
    if not a.no_docs:
        print("wrote", report.write_scale_section(render(res), os.path.join(ROOT, "docs")))
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    print("ok" if ok else "FAILED", flush=True)
    return 0 if ok else 1


def _lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def _diff_ok(path: str, n: int) -> bool:
    """True if the JSON diff reports exactly ``n`` entries, all modified."""
    with open(path) as f:
        d = json.load(f)
    return len(d) == n and all(e.get("status") == "modified" for e in d)


def _co_ok(out: str, n: int, sample: list[str]) -> bool:
    count = sum(len(fns) for _, _, fns in os.walk(out))
    return count == n and all(open(os.path.join(out, r), "rb").read().endswith(b"+changed")
                              for r in sample)


def render(res) -> str:
    L = ["## Memory and scale\n",
         "One artifact of %d tiny files (0–16 bytes, 1,000 per directory); each step is its own "
         "`cas` process, so peak RSS is per step (`wait4`); `ls` and `diff` write to a file. Produced by `%s` on %s; store %.1f MB.%s\n"
         % (res["files"], res["command"].strip(), res["date"], res["store_bytes"] / 1e6,
            "" if res["ok"] else " **Some step FAILED or its check did not hold.**"),
         "| step | command | seconds | peak RSS MiB | result check |", "|---|---|---|---|---|"]
    for s in res["steps"]:
        chk = {True: "ok", False: "**WRONG**", None: "not checked"}.get(s.get("check"), "–")
        if s.get("timed_out"):
            chk = "timed out"
        elif s.get("rc"):
            chk = "**exit %s**: %s" % (s["rc"], s.get("error", "")[:200].replace("\n", " ").replace("|", "/"))
        L.append("| %s | `%s` | %.2f | %.1f | %s |" % (s["step"], s["command"], s["wall"], s["rss_mib"], chk))
    L.append("\nChecks: `add v0` reports %d files; `ls` prints one line per file; `diff` reports "
             "exactly %d modified files; the "
             "checkout holds %d files with the changed content.\n" % (res["files"], res["changes"], res["files"]))
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
