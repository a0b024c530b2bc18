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
import threading
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


class PeakSampler(threading.Thread):
    """Polls the memory of this process's descendants: peak anonymous and file-backed RSS.

    ``wait4``'s peak RSS counts the pages of files a process maps (the LMDB
    index, read through mmap) with its own memory; /proc's ``RssAnon`` and
    ``RssFile`` (summed over the descendants, every 50 ms) tell them apart.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.anon_kib = self.file_kib = 0
        self._done = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self._done.wait(0.05):
            parent = {}
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        with open("/proc/%s/stat" % pid) as f:
                            parent[int(pid)] = int(f.read().rsplit(")", 1)[1].split()[1])
                    except (OSError, ValueError, IndexError):
                        pass
            anon = file_ = 0
            for pid in parent:
                p = pid
                while p in parent and p != me:
                    p = parent[p]
                if p != me or pid == me:
                    continue
                try:
                    with open("/proc/%d/status" % pid) as f:
                        for line in f:
                            if line.startswith("RssAnon:"):
                                anon += int(line.split()[1])
                            elif line.startswith("RssFile:"):
                                file_ += int(line.split()[1])
                except OSError:
                    pass
            self.anon_kib = max(self.anon_kib, anon)
            self.file_kib = max(self.file_kib, file_)

    def stop(self) -> "PeakSampler":
        self._done.set()
        self.join()
        return self


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--changes", type=int, default=1000)
    ap.add_argument("--work", default=None, help="scratch dir (default: temp dir, removed)")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    ap.add_argument("--cas-src", default=ROOT)
    ap.add_argument("--timeout", type=float, default=None)
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--note", default="", help="markdown appended to the docs section")
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
        sampler = PeakSampler()
        sampler.start()
        m = measure.run_cmd(cas + args, cwd=work, env=env, timeout=a.timeout, stdout_path=stdout_path)
        sampler.stop()
        rec = {"step": name, "command": "cas " + " ".join(args).replace(work + "/", ""),
               "wall": round(m.wall, 3), "rss_mib": round(m.rss_kib / 1024, 1),
               "anon_mib": round(sampler.anon_kib / 1024, 1), "file_mib": round(sampler.file_kib / 1024, 1),
               "rc": m.rc, "timed_out": m.timed_out}
        print("  %-10s %8.2f s %7.1f MiB (anon %.1f, file-backed %.1f) rc=%s%s" % (
            name, m.wall, m.rss_kib / 1024, sampler.anon_kib / 1024, sampler.file_kib / 1024, m.rc,
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
           "index_bytes": _index_bytes(store), "note": a.note,
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


def _index_bytes(store: str) -> int:
    for d in (os.path.join(store, ".cas", "index"), os.path.join(store, "index")):
        if os.path.isdir(d):
            return measure.du_bytes(d)
    return 0


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
         "Peak RSS is what `wait4` reports; anonymous and file-backed are the peaks of `RssAnon` and "
         "`RssFile` in /proc, sampled every 50 ms: file-backed pages are the mmapped LMDB index (%.1f MB "
         "after the last step) and other mapped files, reclaimable by the kernel.\n"
         % (res.get("index_bytes", 0) / 1e6),
         "| step | command | seconds | peak RSS MiB | anonymous MiB | file-backed MiB | result check |",
         "|---|---|---|---|---|---|---|"]
    for s in res["steps"]:
        chk = {True: "ok", False: "**WRONG**", None: "not checked"}.get(s.get("check"), "–")
        if s.get("timed_out"):
            chk = "timed out"
        elif s.get("rc"):
            chk = "**exit %s**: %s" % (s["rc"], s.get("error", "")[:200].replace("\n", " ").replace("|", "/"))
        L.append("| %s | `%s` | %.2f | %.1f | %s | %s | %s |" % (
            s["step"], s["command"], s["wall"], s["rss_mib"], s.get("anon_mib", "–"), s.get("file_mib", "–"), chk))
    L.append("\nChecks: `add v0` reports %d files; `ls` prints one line per file; `diff` reports "
             "exactly %d modified files; the "
             "checkout holds %d files with the changed content.\n" % (res["files"], res["changes"], res["files"]))
    if res.get("note"):
        L.append(res["note"].strip() + "\n")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
