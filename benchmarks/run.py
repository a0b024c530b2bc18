"""Run the benchmark workloads W1-W7 for cas and every installed peer.

    python -m benchmarks.run [--data DIR] [--runs 3] [--only w1,w3] [--tools cas,restic]
                             [--quick] [--out DIR] [--timeout S] [--runs-for git-annex:w3=1]
                             [--cas-src CHECKOUT] [--cas-install venv|pythonpath]

See docs/benchmarks.md for what each workload does and how every tool is
used (cas: pip-installed from ``--cas-src`` into a fresh virtualenv, except with
``--quick``).  Writes ``results.json`` (raw figures of every run) into ``--out``
and, unless ``--quick`` without ``--write-docs``, ``docs/benchmarks.md``
and ``docs/benchmarks.png``.  Exits 1 if any step of any tool failed or
produced wrong data (a timed-out step is reported, not a failure).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

from benchmarks import data as bdata
from benchmarks import measure
from benchmarks import report
from benchmarks.tools import all_tools, install_cas_venv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOADS = ["w1", "w2", "w3", "w4", "w5", "w6", "w7"]
# chain -> (source, steps it can produce)
STEP_BYTES = {"w1": "w1", "w2": "w2", "w3": "w3", "w4_w1": "w1", "w4_w3": "w3", "w5": "w5",
              "w6_w1": "w1", "w6_w3": "w3", "w7_w1": "w1", "w7_w3": "w3"}


class StepFailed(Exception):
    """A tool's command failed or produced wrong data."""


class Ctx:
    """Runs commands for the tool adapters: timed ones cold, untimed ones checked."""

    def __init__(self, drop: bool, timeout: float | None, log):
        self.drop = drop
        self.timeout = timeout
        self.log = log

    def timed(self, cmd, cwd=None, env=None):
        measure.drop_caches(self.drop)
        m = measure.run_cmd(cmd, cwd=cwd, env=env, timeout=self.timeout)
        self.log("      %s -> rc=%s %.2fs %d MiB%s" % (_short(cmd), m.rc, m.wall, m.rss_kib // 1024,
                                                     " TIMED OUT" if m.timed_out else ""))
        if not m.ok and not m.timed_out:
            raise StepFailed("%s exited %s: %s" % (_short(cmd), m.rc, (m.err or m.out)[-800:]))
        return m

    def untimed(self, cmd, cwd=None, env=None):
        r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise StepFailed("set-up %s exited %s: %s" % (_short(cmd), r.returncode, r.stderr[-800:]))
        return r


def _short(cmd) -> str:
    s = " ".join(shlex.quote(str(c)) for c in cmd) if isinstance(cmd, list) else str(cmd)
    return s if len(s) < 160 else s[:157] + "..."


# ---- floors ---------------------------------------------------------------------------------

def measure_floors(w: bdata.Workloads, ctx: Ctx, scratch: str, only: set, cas=None) -> dict:
    """Machine floors of this run, each one timed command (cold where the page cache drops).

    cat/cp/b3sum of W1 and a durable ``dd`` copy of it (W1 ingest); tar of W3 (W3 ingest);
    the cold start of the interpreter cas runs on and a cold stat walk of W3 (W4); a cold
    ``tar -x`` of W3 with and without ``sync`` (W6); zstd -3 -T1 of W2 and of W5 v09. The
    pack floors of W7 are taken by ``run_chain`` from the cas store itself.
    """
    f = {}

    def t(key, script, **kw):
        cmd = ["/bin/sh", "-ec", script] if isinstance(script, str) else script
        m = ctx.timed(cmd, **kw)
        f[key] = {"wall": m.wall, "rss_kib": m.rss_kib}
        return m

    q = shlex.quote
    if only & {"w1", "w4", "w6", "w7"}:
        t("cat_w1_cold", "cat %s > /dev/null" % q(w.w1))
        m = measure.run_cmd(["/bin/sh", "-ec", "cat %s > /dev/null" % q(w.w1)])
        f["cat_w1_warm"] = {"wall": m.wall, "rss_kib": m.rss_kib}
        t("cp_w1", "cp %s %s && sync" % (q(w.w1), q(os.path.join(scratch, "cp.bin"))))
        os.unlink(os.path.join(scratch, "cp.bin"))
        if shutil.which("b3sum"):
            t("b3sum_w1", "b3sum %s > /dev/null" % q(w.w1))
    if "w1" in only:
        dd = os.path.join(scratch, "dd.bin")
        t("dd_w1_fsync", "dd if=%s of=%s bs=8M conv=fsync status=none" % (q(w.w1), q(dd)))
        os.unlink(dd)
    if "w4" in only and cas is not None:
        env = cas.base_env()
        t("py_start_cold", [cas.python, "-c", "pass"], env=env, cwd="/")
        t("py_import_cas_cli_cold", [cas.python, "-c", "import cas.cli.main"], env=env, cwd="/")
        t("cas_version_cold", cas._cmd("--version"), env=env, cwd="/")
    if only & {"w3", "w4", "w6", "w7"}:
        t("tar_w3", "tar -cf - -C %s %s | cat > /dev/null"
          % (q(os.path.dirname(w.w3)), q(os.path.basename(w.w3))))
    if "w4" in only:
        t("find_w3_cold", "find %s -printf '%%s %%T@ %%i\\n' > /dev/null" % q(w.w3))
    if "w6" in only:
        tarball = os.path.join(scratch, "w3.tar")
        if not os.path.exists(tarball):  # made once per harness run, untimed
            ctx.untimed(["tar", "-cf", tarball, "-C", os.path.dirname(w.w3), os.path.basename(w.w3)])
        dest = os.path.join(scratch, "tar-x")
        for key, tail in (("tar_x_w3", ""), ("tar_x_w3_sync", " && sync")):
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(dest)
            t(key, "tar -xf %s -C %s%s" % (q(tarball), q(dest), tail))
            shutil.rmtree(dest, ignore_errors=True)
    if shutil.which("zstd"):
        if "w2" in only:
            out = os.path.join(scratch, "w2.zst")
            t("zstd3_w2", "zstd -q -3 -T1 -f %s -o %s" % (q(w.w2), q(out)))
            f["zstd3_w2"]["bytes"] = os.path.getsize(out)
            os.unlink(out)
        if "w5" in only:
            out = os.path.join(scratch, "v09.zst")
            t("zstd3_w5_v09", "zstd -q -3 -T1 -f %s -o %s" % (q(w.w5[-1]), q(out)))
            f["zstd3_w5_v09"]["bytes"] = os.path.getsize(out)
            os.unlink(out)
    return f


def measure_pack_floors(tool, ctx: Ctx, st, chain: str, floors: dict) -> None:
    """Cold ``cat`` and ``b3sum`` of the packs of ``tool``'s store into ``floors`` (W7 floors):
    any check of the stored data reads at least these bytes."""
    d = tool.packs_dir(st)
    q = shlex.quote
    nbytes = measure.du_bytes(d)
    progs = [("cat", "cat")] + ([("b3sum", "b3sum")] if shutil.which("b3sum") else [])
    for key, prog in progs:
        m = ctx.timed(["/bin/sh", "-ec", "find %s -name '*.pack' -exec %s {} + > /dev/null"
                       % (q(d), prog)])
        floors["%s_packs_%s" % (key, chain)] = {"wall": m.wall, "rss_kib": m.rss_kib, "bytes": nbytes}


def measure_startup(cas, n: int) -> dict:
    """Median wall seconds of ``cas --help``, ``cas --version`` and the bare interpreter
    (``python -c pass``, the floor of both) over ``n`` warm runs each."""
    env = cas.base_env()
    res = {}
    for key, cmd in (("--help", cas._cmd("--help")), ("--version", cas._cmd("--version")),
                     ("python -c pass", [cas.python, "-c", "pass"])):
        walls, rss = [], 0
        for _ in range(n):
            m = measure.run_cmd(cmd, env=env, cwd="/")
            if not m.ok:
                raise StepFailed("%s exited %s: %s" % (_short(cmd), m.rc, m.err))
            walls.append(m.wall)
            rss = max(rss, m.rss_kib)
        res[key] = {"median_s": statistics.median(walls), "min_s": min(walls), "runs": n,
                    "rss_kib": rss}
    return res


# ---- one chain of one tool in one run -------------------------------------------------------

def _rec(m, nbytes=None, **extra) -> dict:
    r = {"wall": m.wall, "rss_kib": m.rss_kib, "timed_out": m.timed_out}
    if nbytes is not None:
        r["bytes"] = nbytes
    r.update(extra)
    return r


def _check_restored(tool, ctx, st, src, base, expect):
    out = os.path.join(base, "restore")
    m, path = tool.restore(ctx, st, src, out)
    if m.timed_out:
        return m, None
    if not os.path.exists(path):
        raise StepFailed("%s restore produced no %s" % (tool.name, path))
    got = bdata.tree_digest(path) if os.path.isdir(path) else bdata.file_digest(path)
    if got != expect:
        raise StepFailed("%s restored %s with digest %s, source has %s" % (tool.name, path, got, expect))
    shutil.rmtree(out, ignore_errors=True)
    return m, True


def run_chain(tool, chain, w, ctx, base, only, digests, sizes, verify_extra, floors=None) -> dict:
    """Run one chain (w1, w2, w3 or w5) of ``tool`` on a fresh store; return {step: record}.

    With ``floors`` (a dict) and a tool that names its packs (cas), the W7 pack floors of
    this store are added to it after the W7 step.
    """
    os.makedirs(base)
    st = tool.new_store(ctx, base)
    rec = {}
    if chain in ("w1", "w3"):
        src = w.w1 if chain == "w1" else w.w3
        m = tool.ingest(ctx, st, src)
        size0 = tool.size(st)
        rec[chain] = _rec(m, sizes[chain], store_bytes=size0)
        if m.timed_out:
            return rec
        if size0 <= 0:
            raise StepFailed("%s stored nothing for %s" % (tool.name, chain))
        if "w4" in only:
            m = tool.readd(ctx, st, src)
            grown = tool.size(st) - size0
            rec["w4_" + chain] = _rec(m, sizes[chain], store_growth=grown)
            if not m.timed_out and grown > max(2 << 20, sizes[chain] // 50):
                raise StepFailed("%s re-add of unchanged %s grew the store by %d bytes"
                                 % (tool.name, chain, grown))
            if tool.name == "cas" and not m.timed_out and '"unchanged": true' not in m.out:
                raise StepFailed("cas re-add of unchanged %s did not report unchanged" % chain)
        if "w6" in only:
            m, ok = _check_restored(tool, ctx, st, src, base, digests[chain])
            rec["w6_" + chain] = _rec(m, sizes[chain], verified=ok)
        if "w7" in only:
            m = tool.verify(ctx, st)
            rec["w7_" + chain] = _rec(m, sizes[chain])
            if floors is not None and hasattr(tool, "packs_dir"):
                measure_pack_floors(tool, ctx, st, chain, floors)
    elif chain == "w2":
        m = tool.ingest(ctx, st, w.w2)
        rec["w2"] = _rec(m, sizes["w2"], store_bytes=tool.size(st))
        if not m.timed_out and verify_extra:
            _, ok = _check_restored(tool, ctx, st, w.w2, base, digests["w2"])
            rec["w2"]["verified"] = ok
    elif chain == "w5":
        walls, rss, per = 0.0, 0, []
        for p in w.w5:
            m = tool.ingest_version(ctx, st, p)
            walls += m.wall
            rss = max(rss, m.rss_kib)
            per.append(round(m.wall, 3))
            if m.timed_out:
                rec["w5"] = {"wall": walls, "rss_kib": rss, "timed_out": True, "per_version": per}
                return rec
        rec["w5"] = {"wall": walls, "rss_kib": rss, "timed_out": False, "bytes": sizes["w5"],
                     "store_bytes": tool.size(st), "per_version": per}
        if verify_extra:
            _, ok = _check_restored(tool, ctx, st, os.path.join(st.base, "work", "data.csv"),
                                    base, digests["w5"])
            rec["w5"]["verified"] = ok
    shutil.rmtree(base, ignore_errors=True)
    return rec


def summarize(runs: list[dict]) -> dict:
    """Median over runs of one step; a step that timed out in any run is 'timed out'."""
    if any(r.get("timed_out") for r in runs):
        return {"status": "timed out", "runs": runs,
                "median_s": None, "min_timed_out_after_s": min(r["wall"] for r in runs)}
    s = {"status": "ok", "runs": runs, "n": len(runs),
         "median_s": statistics.median(r["wall"] for r in runs),
         "rss_mib": max(r["rss_kib"] for r in runs) / 1024}
    if runs[0].get("bytes"):
        s["bytes"] = runs[0]["bytes"]
        s["mib_s"] = runs[0]["bytes"] / (1 << 20) / s["median_s"] if s["median_s"] > 0 else None
    if "store_bytes" in runs[0]:
        s["store_bytes"] = statistics.median(r["store_bytes"] for r in runs)
    if any("verified" in r for r in runs):
        s["verified"] = all(r.get("verified") for r in runs if "verified" in r)
    return s


def machine_info(data_dir: str) -> dict:
    """CPU, cores, RAM, disk/filesystem, kernel, Python."""
    info = {"kernel": platform.release(), "python": sys.version.split()[0],
            "cores": os.cpu_count(), "platform": platform.platform()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                info["ram_gib"] = round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    try:
        r = subprocess.run(["df", "-T", "-P", data_dir], capture_output=True, text=True)
        dev, fstype = r.stdout.splitlines()[1].split()[:2]
        info["disk"] = "%s (%s)" % (dev, fstype)
        blk = os.path.basename(os.path.realpath(dev))
        rot = "/sys/block/%s/queue/rotational" % blk
        if os.path.exists(rot):
            info["disk"] += ", rotational=%s" % open(rot).read().strip()
    except Exception:  # noqa: BLE001 - description only
        pass
    return info


def git_commit(path: str) -> str | None:
    r = subprocess.run(["git", "-C", path, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or None


def build_results(a, w, sizes, digests, drop, versions, missing, floors_runs, startup, raw,
                  failures, only, runs_for, timeout_for, runs_done, started, cas_install=None) -> dict:
    """The results dict from what has been measured so far."""
    floors = {}
    keys = list(dict.fromkeys(k for f in floors_runs for k in f))
    for k in keys:
        vals = [f[k] for f in floors_runs if k in f]
        floors[k] = {"median_s": statistics.median(v["wall"] for v in vals), "n": len(vals)}
        if "bytes" in vals[0]:
            floors[k]["bytes"] = vals[0]["bytes"]
    results = {
        "command": "python -m benchmarks.run " + " ".join(shlex.quote(x) for x in a.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": a.quick, "runs": a.runs, "runs_done": runs_done, "runs_for": runs_for,
        "timeout_s": a.timeout, "timeout_for": timeout_for,
        "cache": "cold (page cache dropped before each timed step)"
        if drop else ("warm (--warm)" if a.warm else "warm (dropping the page cache is not permitted here)"),
        "data": w.root, "sizes": sizes, "digests": digests, "machine": machine_info(w.root),
        "versions": versions, "missing": missing, "cas_commit": git_commit(a.cas_src),
        "cas_install": cas_install,
        "rss_method": "gnu-time" if os.access(measure.GNU_TIME, os.X_OK) else "wait4",
        "floors": floors, "floors_runs": floors_runs, "startup": startup,
        "tools": {t: {s: summarize(v) for s, v in steps.items()} for t, steps in raw.items()},
        "failures": failures, "only": sorted(only), "note": a.note,
    }
    results["targets"] = report.evaluate_targets(results)
    results["elapsed_s"] = round(time.time() - started, 1)
    return results


def save(a, out, results, log) -> None:
    """Write results.json and the report (docs/ unless --quick or --no-docs)."""
    path = os.path.join(out, "results.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    docs = os.path.join(ROOT, "docs") if not a.no_docs and (not a.quick or a.write_docs) else out
    md, png = report.write_docs(results, docs)
    log("wrote %s, %s and %s" % (path, md, png))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.environ.get("BENCH_DATA", "/tmp/cas-bench-data"),
                    help="workload data dir (default $BENCH_DATA or /tmp/cas-bench-data; "
                    "generated there if missing)")
    ap.add_argument("--runs", type=int, default=3, help="runs per step; the median is reported")
    ap.add_argument("--only", default=",".join(WORKLOADS), help="workloads, e.g. w1,w3")
    ap.add_argument("--tools", default="cas,dvc,restic,borg,git-annex")
    ap.add_argument("--quick", action="store_true",
                    help="tiny generated data (4 MiB, 300 files), 1 run; docs untouched")
    ap.add_argument("--out", default=None, help="results dir (default: benchmarks/results, "
                    "with --quick a temporary dir)")
    ap.add_argument("--write-docs", action="store_true", help="write docs/ even with --quick")
    ap.add_argument("--no-docs", action="store_true", help="never write docs/")
    ap.add_argument("--timeout", type=float, default=None, help="per-step time limit (s)")
    ap.add_argument("--runs-for", default="", help="fewer runs for a slow tool/chain, e.g. "
                    "git-annex:w3=1,dvc=2 (chains: w1 w2 w3 w5)")
    ap.add_argument("--warm", action="store_true", help="never drop the page cache (faster; "
                    "figures are then warm-cache)")
    ap.add_argument("--timeout-for", default="", help="per-step time limit for a tool/chain, "
                    "e.g. git-annex:w3=120")
    ap.add_argument("--startup-runs", type=int, default=21)
    ap.add_argument("--work", default=None, help="scratch dir for stores (default: a temp dir "
                    "in $TMPDIR, removed at the end)")
    ap.add_argument("--note", default=None, help="a paragraph shown at the top of the report")
    ap.add_argument("--cas-src", default=ROOT, help="checkout whose cas is measured")
    ap.add_argument("--cas-install", choices=["venv", "pythonpath"], default=None,
                    help="venv (default): pip install the checkout into a fresh virtualenv in "
                    "the work dir and run its bin/cas, as a user does (needs the package "
                    "index); pythonpath (default with --quick): python -m cas with the "
                    "checkout on PYTHONPATH, byte-compiled first")
    a = ap.parse_args(argv)
    a.argv = list(sys.argv[1:] if argv is None else argv)
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    started = time.time()
    only = {x.strip() for x in a.only.split(",") if x.strip()}
    bad = only - set(WORKLOADS)
    if bad:
        raise SystemExit("unknown workload(s) %s; known: %s" % (",".join(sorted(bad)), ",".join(WORKLOADS)))
    if a.quick:
        a.runs = 1 if "--runs" not in " ".join(a.argv) else a.runs
        a.startup_runs = min(a.startup_runs, 5)
    out = a.out or (tempfile.mkdtemp(prefix="cas-bench-quick-") if a.quick
                    else os.path.join(ROOT, "benchmarks", "results"))
    os.makedirs(out, exist_ok=True)
    work = a.work or tempfile.mkdtemp(prefix="cas-bench-work-")
    os.makedirs(work, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    if a.quick:
        w = bdata.make_quick(os.path.join(out, "quick-data"))
    else:
        w = bdata.Workloads(a.data)
        if w.missing():
            log("generating workloads %s into %s" % (",".join(w.missing()), a.data))
            bdata.generate_full(a.data, ",".join(w.missing()))
    sizes = w.sizes()
    log("data %s: %s" % (w.root, sizes))
    log("digesting sources ...")
    digests = {"w1": bdata.file_digest(w.w1), "w2": bdata.file_digest(w.w2),
               "w3": bdata.tree_digest(w.w3), "w5": bdata.file_digest(w.w5[-1])}

    drop = False if a.warm else measure.can_drop_caches()
    log("page cache: %s" % ("dropped before each timed step" if drop else "WARM (drop not permitted)"))
    ctx = Ctx(drop, a.timeout, log)

    wanted = [t.strip() for t in a.tools.split(",") if t.strip()]
    mode = a.cas_install or ("pythonpath" if a.quick else "venv")
    cas_venv, cas_install = None, None
    if "cas" in wanted and mode == "venv":
        # cas as a user has it: its own venv, a plain pip install (byte-compiled), bin/cas
        cas_venv = os.path.join(os.path.abspath(work), "cas-venv")
        shutil.rmtree(cas_venv, ignore_errors=True)
        log("installing cas from %s into a fresh venv %s ..." % (a.cas_src, cas_venv))
        cas_install = install_cas_venv(a.cas_src, cas_venv)
    elif "cas" in wanted:
        # byte-compile first (PYTHONDONTWRITEBYTECODE, set on some machines, would otherwise
        # make every cas start compile its modules)
        subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(a.cas_src, "cas")],
                       check=True)
        cas_install = {"mode": "pythonpath", "python": sys.executable, "src": a.cas_src}

    tools, versions, missing = [], {}, []
    for t in all_tools(a.cas_src, cas_venv):
        if t.name not in wanted:
            continue
        v = t.version()
        if v is None:
            missing.append(t.name)
            log("%s: MISSING (not installed; see benchmarks/install_peers.sh)" % t.name)
        else:
            versions[t.name] = v
            tools.append(t)
    unknown = set(wanted) - {t.name for t in all_tools(a.cas_src, cas_venv)}
    if unknown:
        raise SystemExit("unknown tool(s): %s" % ",".join(sorted(unknown)))
    for prog in ("b3sum", "zstd", "tar", "git"):
        versions.setdefault(prog, (subprocess.run([prog, "--version"], capture_output=True, text=True)
                                   .stdout.strip().splitlines() or ["?"])[0] if shutil.which(prog) else None)

    runs_for, timeout_for = {}, {}
    for item in filter(None, (x.strip() for x in a.runs_for.split(","))):
        k, n = item.split("=")
        runs_for[k] = int(n)
    for item in filter(None, (x.strip() for x in a.timeout_for.split(","))):
        k, n = item.split("=")
        timeout_for[k] = float(n)

    chains = []
    if only & {"w1", "w4", "w6", "w7"}:
        chains.append("w1")
    if "w2" in only:
        chains.append("w2")
    if only & {"w3", "w4", "w6", "w7"}:
        chains.append("w3")
    if "w5" in only:
        chains.append("w5")

    raw = {t.name: {} for t in tools}
    floors_runs, failures, startup = [], [], {}
    for r in range(a.runs):
        log("== run %d/%d" % (r + 1, a.runs))
        cas_tool = next((t for t in tools if t.name == "cas"), None)
        floors_runs.append(measure_floors(w, ctx, work, only, cas_tool))
        log("   floors: %s" % {k: round(v["wall"], 3) for k, v in floors_runs[-1].items()})
        for t in tools:
            for ch in chains:
                limit = runs_for.get("%s:%s" % (t.name, ch), runs_for.get(t.name, a.runs))
                if r >= limit:
                    continue
                log("   %s %s" % (t.name, ch))
                ctx.timeout = timeout_for.get("%s:%s" % (t.name, ch), timeout_for.get(t.name, a.timeout))
                base = os.path.join(work, "%s-%s-%d" % (t.name, ch, r))
                try:
                    rec = run_chain(t, ch, w, ctx, base, only, digests, sizes, verify_extra=(r == 0),
                                    floors=floors_runs[-1])
                except Exception as e:  # noqa: BLE001 - a broken run is reported, the rest goes on
                    msg = str(e) if isinstance(e, StepFailed) else traceback.format_exc()
                    log("   FAILED: %s %s: %s" % (t.name, ch, msg))
                    failures.append({"tool": t.name, "chain": ch, "run": r, "error": msg})
                    shutil.rmtree(base, ignore_errors=True)
                    continue
                finally:
                    ctx.timeout = a.timeout
                for step, v in rec.items():
                    if step in only or step.split("_")[0] in only:
                        raw[t.name].setdefault(step, []).append(v)
        if r == 0 and "cas" in versions:
            startup = measure_startup(cas_tool, a.startup_runs)
        results = build_results(a, w, sizes, digests, drop, versions, missing, floors_runs, startup,
                                raw, failures, only, runs_for, timeout_for, r + 1, started,
                                cas_install)
        save(a, out, results, log)
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    for fl in failures:
        log("FAILED: %s" % fl)
    log("elapsed %.0f s" % results["elapsed_s"])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
