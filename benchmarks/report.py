"""Turn a results dict into the issue-3 target table, docs/benchmarks.md and a PNG plot.

The memory-and-scale section (written by ``benchmarks/bench_scale.py``) lives
between ``SCALE_BEGIN`` and ``SCALE_END`` and is kept when the main report is
rewritten.
"""

from __future__ import annotations

import os

SCALE_BEGIN = "<!-- scale:begin -->"
SCALE_END = "<!-- scale:end -->"
PEERS = ["dvc", "restic", "borg", "git-annex"]
ORDER = ["cas"] + PEERS


def _tools(res) -> list[str]:
    """Measured tools, cas first, then the peers in a fixed order."""
    return sorted(res["tools"], key=lambda t: ORDER.index(t) if t in ORDER else len(ORDER))
STEPS = [("w1", "W1 ingest 1 GiB random"), ("w2", "W2 ingest 1 GiB CSV"),
         ("w3", "W3 ingest 20k small files"), ("w4_w1", "W4 no-op re-add W1"),
         ("w4_w3", "W4 no-op re-add W3"), ("w5", "W5 ten shifted-edit versions (total)"),
         ("w6_w1", "W6 restore W1"), ("w6_w3", "W6 restore W3"),
         ("w7_w1", "W7 verify W1"), ("w7_w3", "W7 verify W3")]


def _s(res, tool, step):
    st = res["tools"].get(tool, {}).get(step)
    return st["median_s"] if st and st.get("status") == "ok" else None


def _store(res, tool, step):
    st = res["tools"].get(tool, {}).get(step)
    return st.get("store_bytes") if st and st.get("status") == "ok" else None


def _fastest_peer(res, step):
    vals = [(p, _s(res, p, step)) for p in PEERS if _s(res, p, step) is not None]
    return min(vals, key=lambda x: x[1]) if vals else (None, None)


def _t(name, ratio, op, bar, detail, bar_s=None, floor=None, cas_s=None):
    """One target: the measured ``ratio`` against ``bar`` (PASS/FAIL, n/a if not measured).

    ``bar_s`` is the bar in seconds (the time cas must reach; None if the target is not
    about time or its denominator was not measured) and ``floor`` a pair (what the floor
    is, its seconds or None) from the machine floors of the same run, or None if no floor
    applies. A bar below its floor is ``impossible`` on this machine.
    """
    if ratio is None:
        t = {"target": name, "ratio": None, "bar": "%s %s" % (op, bar), "result": "n/a",
             "detail": detail}
    else:
        ok = ratio <= bar if op == "<=" else ratio >= bar if op == ">=" else ratio > bar
        t = {"target": name, "ratio": round(ratio, 3), "bar": "%s %s" % (op, bar),
             "result": "PASS" if ok else "FAIL", "detail": detail}
    t.update(floor_verdict(bar_s, floor, cas_s))
    return t


def floor_verdict(bar_s, floor, cas_s=None) -> dict:
    """``bar_s`` (seconds) against ``floor`` = (what, seconds): the floor fields of a target.

    ``impossible`` is True if the bar is below the floor (no program can reach it on this
    machine), False if it is not, None if there is no floor or either figure is missing.
    """
    bar_s = None if bar_s is None else round(bar_s, 4)
    r = {"bar_s": bar_s, "floor": None, "floor_s": None, "impossible": None}
    if floor is None:
        r["limit"] = "no machine floor for this target"
        return r
    what, fs = floor
    fs = None if fs is None else round(fs, 4)
    r["floor"] = what
    r["floor_s"] = fs
    if fs is None:
        r["limit"] = "floor not measured in this run (%s)" % what
    elif bar_s is None:
        r["limit"] = "floor %s (%s); bar not measured" % (_fmt(fs), what)
    else:
        r["impossible"] = bar_s < fs
        r["limit"] = "bar %s %s floor %s (%s): %s" % (
            _fmt(bar_s), "<" if r["impossible"] else ">=", _fmt(fs), what,
            "**impossible here**" if r["impossible"] else "reachable")
    if fs and cas_s is not None:
        r["limit"] += "; cas at %.1fx the floor" % (cas_s / fs)
        if cas_s < fs:
            r["limit"] += " (below it: the two figures are noisy on a shared machine)"
    return r


def _div(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def _fmt(x, unit="s"):
    return "–" if x is None else ("%.3f %s" % (x, unit) if x < 10 else "%.1f %s" % (x, unit))


def _fl(res, key):
    return res["floors"].get(key, {}).get("median_s")


def _sum(*xs):
    return None if any(x is None for x in xs) else sum(xs)


def _over(x, k):
    return None if x is None else x / k


def _times(x, k):
    return None if x is None else x * k


def evaluate_targets(res) -> list[dict]:
    """Every issue-3 part-2 target as a measured ratio with PASS/FAIL (n/a if not measured),
    each with its bar in seconds against the machine floor that bounds it (``floor_verdict``)."""
    T = []
    cas = lambda step: _s(res, "cas", step)  # noqa: E731
    fl = lambda key: _fl(res, key)  # noqa: E731
    cat = fl("cat_w1_cold")
    dd = ("`dd if=W1 bs=8M conv=fsync`, cold: any tool that makes W1 durable", fl("dd_w1_fsync"))
    T.append(_t("W1 ingest / cold cat of W1", _div(cas("w1"), cat), "<=", 1.25,
                "cas %s, cat %s" % (_fmt(cas("w1")), _fmt(cat)),
                bar_s=_times(cat, 1.25), floor=dd, cas_s=cas("w1")))
    p, ps = _fastest_peer(res, "w1")
    T.append(_t("W1: fastest peer / cas (speed-up)", _div(ps, cas("w1")), ">=", 1.7,
                "fastest peer %s %s" % (p, _fmt(ps)), bar_s=_over(ps, 1.7), floor=dd,
                cas_s=cas("w1")))
    b = _s(res, "borg", "w2")
    T.append(_t("W2 ingest: borg / cas (speed-up)", _div(b, cas("w2")), ">=", 2,
                "cas %s, borg %s" % (_fmt(cas("w2")), _fmt(b)), bar_s=_over(b, 2)))
    cs, rs = _store(res, "cas", "w2"), _store(res, "restic", "w2")
    T.append(_t("W2 store: cas / restic", _div(cs, rs), "<=", 1.05,
                "cas %s MB, restic %s MB" % (_mb(cs), _mb(rs))))
    p, ps = _fastest_peer(res, "w3")
    d = _s(res, "dvc", "w3")
    tar = fl("tar_w3")
    tar_floor = ("cold `tar -cf - tree | cat > /dev/null`: reading W3", tar)
    need = min(x for x in [ps / 4 if ps else None, d / 8 if d else None, float("inf")]
               if x is not None)
    floor_rule = tar is not None and need != float("inf") and tar > need
    T.append(_t("W3 ingest: fastest peer / cas (speed-up)", _div(ps, cas("w3")), ">=", 4,
                "fastest peer %s %s, cas %s" % (p, _fmt(ps), _fmt(cas("w3"))),
                bar_s=_over(ps, 4), floor=tar_floor, cas_s=cas("w3")))
    T.append(_t("W3 ingest: dvc / cas (speed-up)", _div(d, cas("w3")), ">=", 8,
                "dvc %s" % _fmt(d), bar_s=_over(d, 8), floor=tar_floor, cas_s=cas("w3")))
    T.append(_t("W3 ingest / cold tar floor (applies only if the floor is slower than the "
                "speed-up targets allow)", _div(cas("w3"), tar), "<=", 1.5,
                "tar %s; required time %s; floor rule %s" % (_fmt(tar), _fmt(need if need != float("inf") else None),
                                                         "APPLIES" if floor_rule else "does not apply"),
                bar_s=_times(tar, 1.5), floor=tar_floor, cas_s=cas("w3")))
    py = fl("py_start_cold")
    b = _s(res, "borg", "w4_w3")
    T.append(_t("W4 no-op W3: cas / borg", _div(cas("w4_w3"), b), "<=", 0.2,
                "cas %s, borg %s" % (_fmt(cas("w4_w3")), _fmt(b)), bar_s=_times(b, 0.2),
                floor=("cold stat walk `find tree -printf '%%s %%T@ %%i'` %s + cold `python -c pass` "
                       "%s" % (_fmt(fl("find_w3_cold")), _fmt(py)), _sum(fl("find_w3_cold"), py)),
                cas_s=cas("w4_w3")))
    g = _s(res, "git-annex", "w4_w1")
    T.append(_t("W4 no-op W1: cas / git-annex", _div(cas("w4_w1"), g), "<=", 1.0,
                "cas %s, git-annex %s" % (_fmt(cas("w4_w1")), _fmt(g)), bar_s=g,
                floor=("cold `python -c pass` of cas's interpreter; cold `import cas.cli.main` %s, "
                       "`cas --version` %s" % (_fmt(fl("py_import_cas_cli_cold")),
                                               _fmt(fl("cas_version_cold"))), py),
                cas_s=cas("w4_w1")))
    z = fl("zstd3_w5_v09") and res["floors"]["zstd3_w5_v09"].get("bytes")
    T.append(_t("W5 store: cas / one zstd -3 version", _div(_store(res, "cas", "w5"), z), "<=", 1.3,
                "cas %s MB, zstd -3 of v09 %s MB" % (_mb(_store(res, "cas", "w5")), _mb(z))))
    p, ps = _fastest_peer(res, "w5")
    T.append(_t("W5 ingest of ten: fastest peer / cas (speed-up)", _div(ps, cas("w5")), ">", 1.0,
                "fastest peer %s %s, cas %s" % (p, _fmt(ps), _fmt(cas("w5"))), bar_s=ps))
    d = _s(res, "dvc", "w6_w1")
    T.append(_t("W6 restore W1: cas / dvc", _div(cas("w6_w1"), d), "<=", 1.0,
                "cas %s, dvc %s; cold `cp W1 && sync` %s for reference (cas checkout does not "
                "fsync, so it is no floor)" % (_fmt(cas("w6_w1")), _fmt(d), _fmt(fl("cp_w1"))),
                bar_s=d))
    b = _s(res, "borg", "w6_w3")
    T.append(_t("W6 restore W3: borg / cas (speed-up)", _div(b, cas("w6_w3")), ">=", 3,
                "cas %s, borg %s" % (_fmt(cas("w6_w3")), _fmt(b)), bar_s=_over(b, 3),
                floor=("cold `tar -xf` of W3's tar, no sync (with `sync` %s)"
                       % _fmt(fl("tar_x_w3_sync")), fl("tar_x_w3")), cas_s=cas("w6_w3")))
    for step in ("w7_w1", "w7_w3"):
        p, ps = _fastest_peer(res, step)
        packs = res["floors"].get("cat_packs_" + step[3:], {})
        T.append(_t("W7 verify %s: fastest peer / cas (speed-up)" % step[3:].upper(),
                    _div(ps, cas(step)), ">=", 2,
                    "fastest peer %s %s, cas %s" % (p, _fmt(ps), _fmt(cas(step))),
                    bar_s=_over(ps, 2),
                    floor=("cold `cat` of cas's packs (%s MB); cold `b3sum` of them %s"
                           % (_mb(packs.get("bytes")), _fmt(fl("b3sum_packs_" + step[3:]))),
                           packs.get("median_s")), cas_s=cas(step)))
    rss = [(s, st["rss_mib"]) for s, st in res["tools"].get("cas", {}).items() if st.get("rss_mib")]
    if rss:
        worst = max(rss, key=lambda x: x[1])
        T.append(_t("peak RSS of cas, max over workloads (MiB)", worst[1], "<=", 150,
                    "worst: %s" % worst[0]))
    else:
        T.append(_t("peak RSS of cas, max over workloads (MiB)", None, "<=", 150, "not measured"))
    bare = res.get("startup", {}).get("python -c pass")
    for arg in ("--help", "--version"):
        su = res.get("startup", {}).get(arg)
        T.append(_t("cas %s start-up (ms)" % arg, su["median_s"] * 1000 if su else None, "<=", 150,
                    "median of %d" % su["runs"] if su else "not measured", bar_s=0.150,
                    floor=("warm `python -c pass` of cas's interpreter", bare and bare["median_s"]),
                    cas_s=su and su["median_s"]))
    return T


def _mb(b):
    return "–" if b is None else "%.1f" % (b / 1e6)


def _cell(st, key):
    if st is None:
        return "–"
    if st.get("status") != "ok":
        return st.get("status", "?")
    v = st.get(key)
    if v is None:
        return "–"
    if key == "median_s":
        return "%.2f" % v
    if key == "mib_s":
        return "%.0f" % v
    if key == "rss_mib":
        return "%.0f" % v
    if key == "store_bytes":
        return _mb(v)
    return str(v)


FLOOR_NOTES = {
    "cat_w1_cold": "`cat W1 > /dev/null`, cold: the W1 target denominator",
    "cat_w1_warm": "`cat W1 > /dev/null`, warm", "cp_w1": "`cp W1 scratch && sync`, cold",
    "b3sum_w1": "`b3sum W1`, cold",
    "dd_w1_fsync": "`dd if=W1 of=scratch bs=8M conv=fsync`, cold: a durable write of W1, the W1 "
                   "ingest floor",
    "py_start_cold": "`python -c pass` of cas's interpreter, cold: the W4 floor of a Python tool",
    "py_import_cas_cli_cold": "`python -c 'import cas.cli.main'` of cas's interpreter, cold",
    "cas_version_cold": "`cas --version`, cold",
    "tar_w3": "`tar -cf - tree | cat > /dev/null`, cold: reading W3, the W3 ingest floor",
    "find_w3_cold": "`find tree -printf '%s %T@ %i\\n' > /dev/null`, cold: the stat walk of W4 W3",
    "tar_x_w3": "`tar -xf W3.tar` into an empty dir, cold (tar made once, untimed): the W6 W3 floor",
    "tar_x_w3_sync": "the same followed by `sync`",
    "cat_packs_w1": "`cat` of the cas store's packs after the W1 chain, cold: the W7 W1 floor",
    "b3sum_packs_w1": "`b3sum` of the same packs, cold",
    "cat_packs_w3": "`cat` of the cas store's packs after the W3 chain, cold: the W7 W3 floor",
    "b3sum_packs_w3": "`b3sum` of the same packs, cold",
    "zstd3_w2": "`zstd -3 -T1` of W2",
    "zstd3_w5_v09": "`zstd -3 -T1` of W5 v09: the W5 denominator (one compressed version)",
}


RSS_METHOD = {
    "gnu-time": "GNU `time -f %M`, which forks the command from its own small process",
    "wait4": "`wait4` of the command; never below the harness's own RSS, see below",
    None: "`wait4` of the command, as every run before the harness recorded its method did; "
          "**such a figure is never below the RSS of the harness process that started it** "
          "(about 90 MiB in a full run: Linux keeps the high-water RSS of the process a child "
          "was forked from), so small figures here are the harness's, not the tool's",
}


def fail_line(t) -> str:
    """What a FAIL means against its floor: impossible here, reachable, or not known."""
    if t.get("impossible") is True:
        return ("**impossible on this machine**: the bar is %s, below the floor %s (%s)"
                % (_fmt(t["bar_s"]), _fmt(t["floor_s"]), t["floor"])) + _gap(t)
    if t.get("impossible") is False:
        return ("reachable: the bar %s is above the floor %s (%s)"
                % (_fmt(t["bar_s"]), _fmt(t["floor_s"]), t["floor"])) + _gap(t)
    return t.get("limit") or "no machine floor for this target"


def _gap(t) -> str:
    m = t.get("limit", "")
    i = m.find("; cas at ")
    return m[i:] if i >= 0 else ""


def render_md(res, png_name) -> str:
    """The markdown report (without the scale section)."""
    L = []
    quick = " (QUICK run: tiny data, not comparable figures)" if res.get("quick") else ""
    L.append("# Benchmarks%s\n" % quick)
    if res.get("note"):
        L.append("> %s\n" % res["note"])
    L.append("cas side by side with its peers on the workloads of "
             "`benchmarks/gen_workloads.py` (W1–W7, described below), all in one run on one "
             "machine. Produced by:\n")
    L.append("```\n%s\n```\n" % res["command"])
    L.append("Date %s; cas at commit `%s`; %d run(s)%s, median reported%s; %s; whole run took "
             "%.0f s.\n" % (res["date"], res.get("cas_commit"), res.get("runs_done", res["runs"]),
                            "" if res.get("runs_done", res["runs"]) == res["runs"]
                            else " **of %d planned (partial)**" % res["runs"],
                            (", fewer runs for %s" % ", ".join("%s=%d" % kv for kv in res["runs_for"].items()))
                            if res.get("runs_for") else "",
                            res["cache"], res.get("elapsed_s") or 0))
    if res.get("timeout_s"):
        L.append("A step that ran longer than %.0f s was stopped and is shown as *timed out*.\n"
                 % res["timeout_s"])
    if res.get("timeout_for"):
        L.append("Shorter per-step limits: %s (seconds); a step stopped at its limit is shown as "
                 "*timed out* and the rest of its chain is not run.\n"
                 % ", ".join("%s=%g" % kv for kv in res["timeout_for"].items()))
    if res.get("missing"):
        L.append("**Missing peers (not installed, no figures):** %s.\n" % ", ".join(res["missing"]))
    if res.get("failures"):
        L.append("**FAILED steps:**\n")
        for f in res["failures"]:
            L.append("- %s %s run %d: %s" % (f["tool"], f["chain"], f["run"], f["error"][:300].replace("\n", " ")))
        L.append("")
    L.append("![benchmark bar charts](%s)\n" % png_name)
    L.append("## Targets (issue 3)\n")
    L.append("The last column sets each bar, in seconds, against the machine floor of the same "
             "run that bounds it (see *Machine floors*): a bar below its floor is impossible on "
             "this machine, whatever cas does.\n")
    L.append("| target | measured | bar | result | detail | floor (limit on this machine) |\n"
             "|---|---|---|---|---|---|")
    for t in res["targets"]:
        L.append("| %s | %s | %s | **%s** | %s | %s |" % (
            t["target"], "–" if t["ratio"] is None else t["ratio"], t["bar"], t["result"],
            t["detail"], t.get("limit", "–")))
    L.append("")
    fails = [t for t in res["targets"] if t["result"] == "FAIL"]
    if fails:
        L.append("Every FAIL against its floor:\n")
        for t in fails:
            L.append("- %s: %s" % (t["target"], fail_line(t)))
        L.append("")
    L.append("## Results per workload\n")
    L.append("Seconds are wall-clock medians; MiB/s = workload bytes / median seconds; peak RSS is the "
             "maximum over runs of the command's own peak (%s), including children it waited for; "
             "store MB = 10^6 bytes of `du -sb` of the store after the step.\n" % RSS_METHOD.get(
                 res.get("rss_method"), RSS_METHOD[None]))
    tools = _tools(res)
    for step, title in STEPS:
        if not any(step in res["tools"][t] for t in tools):
            continue
        L.append("### %s\n" % title)
        L.append("| tool | seconds | MiB/s | peak RSS MiB | store MB | runs | checked |\n|---|---|---|---|---|---|---|")
        for t in tools:
            st = res["tools"][t].get(step)
            chk = "–"
            if st and "verified" in st:
                chk = "restored = source" if st["verified"] else "MISMATCH"
            elif st and step.startswith("w4"):
                chk = "store growth ≤ 2 %"
            elif st and step in ("w1", "w3"):
                chk = "by the W6 restore"
            elif st and step.startswith("w7"):
                chk = "exit 0"
            L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                "**cas**" if t == "cas" else t, _cell(st, "median_s"), _cell(st, "mib_s"),
                _cell(st, "rss_mib"), _cell(st, "store_bytes"),
                len(st["runs"]) if st else 0, chk))
        for m in res.get("missing", []):
            L.append("| %s | missing | | | | 0 | |" % m)
        L.append("")
    L.append("## Machine floors\n")
    L.append("| floor | seconds | note |\n|---|---|---|")
    for k, v in res["floors"].items():
        extra = (" (%s MB)" % _mb(v["bytes"])) if "bytes" in v else ""
        L.append("| %s | %.3f | %s%s |" % (k, v["median_s"], FLOOR_NOTES.get(k, ""), extra))
    for arg, v in res.get("startup", {}).items():
        L.append("| %s | %.3f | median of %d warm runs (min %.3f) |" % (
            ("cas " + arg) if arg.startswith("--") else arg, v["median_s"], v["runs"], v["min_s"]))
    L.append("")
    m = res["machine"]
    L.append("## Machine\n")
    L.append("- CPU: %s, %s cores; RAM %s GiB" % (m.get("cpu"), m.get("cores"), m.get("ram_gib")))
    L.append("- disk: %s; kernel %s; Python %s" % (m.get("disk"), m.get("kernel"), m.get("python")))
    L.append("- page cache: %s" % res["cache"])
    L.append("- cas: %s" % cas_install_line(res.get("cas_install")))
    L.append("- data: `%s`, sizes %s" % (res["data"], ", ".join("%s=%s" % kv for kv in res["sizes"].items())))
    L.append("- versions: %s" % "; ".join("%s: %s" % (k, v) for k, v in res["versions"].items() if v))
    L.append("- the machine is shared with other jobs: expect ±30 % noise between runs\n")
    L.append(how_section(res))
    return "\n".join(L) + "\n"


def cas_install_line(ci) -> str:
    """How the measured cas was installed, for the Machine section."""
    if not ci:
        return ("`python -m cas` from the checkout on PYTHONPATH (this run predates the record of "
                "how cas was installed; every such run used that mode, and only those from commit "
                "93724ec on byte-compiled cas first)")
    if ci.get("mode") == "venv":
        deps = ", ".join(p.split(" @ ")[0] for p in ci.get("packages", [])
                         if not p.startswith(("pip==", "setuptools==")))
        return ("`pip install <checkout>` (not editable, byte-compiled by pip) into a fresh venv of "
                "`%s`, run as `<venv>/bin/cas`; venv packages: %s" % (ci.get("python"), deps))
    return ("`%s -m cas` with the checkout `%s` on PYTHONPATH, byte-compiled first (the "
            "`--cas-install pythonpath` mode of `--quick`; start-up then includes whatever the "
            "interpreter's site-packages load)" % (ci.get("python"), ci.get("src")))


CAS_HOW_VENV = """cas is measured as a user installs it: the harness creates a fresh virtualenv in its work
dir from the interpreter it runs on, `pip install`s the checkout given by `--cas-src` into it (a
plain, non-editable install of a copy of the working tree; pip builds a wheel and byte-compiles
it; the dependencies come from the package index) and runs `<venv>/bin/cas` for every cas step,
the start-up figures and the interpreter floors, with PYTHONPATH unset. So no editable-install
finder or `.pth` file of the harness's own interpreter is paid at start-up. DVC runs the same
way from its own virtualenv (`/opt/peers/dvc`); the other peers are Debian packages."""

CAS_HOW_PYTHONPATH = """In this run cas ran from the checkout: `python -m cas` with the checkout first on
PYTHONPATH, byte-compiled first, on the harness's own interpreter (so start-up includes whatever
that interpreter's site-packages load: an editable-install finder, `.pth` files). This is what
`--quick` (or `--cas-install pythonpath`) does, because it needs no package index; a full run
installs cas with pip into a fresh virtualenv and runs `<venv>/bin/cas`, as a user does. DVC
runs from its own virtualenv (`/opt/peers/dvc`); the other peers are Debian packages."""


def how_section(res) -> str:
    """The "How each tool is used" section, saying how this run's cas was installed."""
    ci = res.get("cas_install")
    text = CAS_HOW_VENV if (ci or {}).get("mode") == "venv" else CAS_HOW_PYTHONPATH
    if not ci:
        text = text.replace("byte-compiled first, ", "byte-compiled first only since commit 93724ec "
                            "(this run did not record it), ")
    return HOW.replace("{cas_how}", text)


HOW = """## How each tool is used

Every run of every tool starts from a fresh store; one store per chain (W1; W3; W2; W5), so
W4, W6 and W7 act on the store that holds only W1 (or only W3). Before every timed command
the harness runs `sync` and drops the page cache (if permitted). Set-up (creating the store,
copying data into a DVC or git-annex work tree, copying W5's next version into place) is not
timed.

{cas_how}

| tool | ingest (W1–W3, W5 per version) | W4 re-add | W6 restore into an empty dir | W7 check |
|---|---|---|---|---|
| cas | `cas --repo S add SRC --name N` (reads the data in place) | same again | `cas --repo S checkout N OUT` | `cas --repo S fsck` (reads and hashes every object) |
| dvc | data copied into a git+dvc repo, `dvc add X && git add X.dvc .gitignore && git commit` | `dvc add X`, commit if changed | `git clone R OUT && dvc cache dir --local R/.dvc/cache && dvc checkout` (copy checkout from the shared cache) | DVC has no command that re-hashes its cache: `dvc status` after deleting its hash state (site cache dir), which re-hashes the work tree |
| restic | `restic backup SRC` (repo v2, default compression) | same again (parent snapshot) | `restic restore latest --target OUT` | `restic check --read-data` |
| borg | `borg create R::aNNN X` (`--encryption=none`, default lz4) | same again (files cache) | `borg extract R::aNNN` in OUT | `borg check --verify-data` |
| git-annex | data copied into a git-annex repo, `git annex add X && git commit` | `git annex add X`, commit if changed | `git clone R OUT && git annex get X` | `git annex fsck` |

W5 ingests v00..v09 as ten versions of the one path `data.csv` (ten `cas add`, ten
commits, ten snapshots, ten archives); the figure is the sum of the ten timed ingests, the
store is measured after the tenth. Every step checks its result: W6 compares a digest of the
restored file/tree with the source (so does an untimed restore of W2 and W5's last version in
the first run); W4 fails if the store grew by more than 2 %; a non-zero exit fails the step.
Store size: `du -sb` of the cas/restic/borg repository, of `.git` for git-annex (objects live
in `.git/annex`), of `.dvc/cache` for DVC (its work-tree copy is not counted).
"""


def plot(res, path) -> None:
    """One bar-chart panel per step, cas highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [(s, t) for s, t in STEPS if any(s in res["tools"][x] for x in res["tools"])]
    n = max(1, len(steps))
    cols = 2
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.6 * rows), squeeze=False)
    tools = _tools(res)
    for i, (step, title) in enumerate(steps):
        ax = axes[i // cols][i % cols]
        vals, labels, colors = [], [], []
        for t in tools:
            st = res["tools"][t].get(step)
            if not st:
                continue
            labels.append(t)
            if st.get("status") == "ok":
                vals.append(st["median_s"])
            else:
                vals.append(st.get("min_timed_out_after_s") or 0)
                labels[-1] += " (timed out)"
            colors.append("#d62728" if t == "cas" else "#9e9e9e")
        ax.barh(labels, vals, color=colors)
        for y, v in enumerate(vals):
            ax.text(v, y, " %.2f s" % v, va="center", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.invert_yaxis()
        ax.set_xlabel("seconds (lower is better)", fontsize=8)
        ax.margins(x=0.25)
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].axis("off")
    fig.suptitle("cas (red) vs peers, %s" % res["cache"].split(" (")[0], fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_docs(res, docs_dir) -> tuple[str, str]:
    """Write benchmarks.md and benchmarks.png into ``docs_dir``, keeping the scale section."""
    os.makedirs(docs_dir, exist_ok=True)
    md_path = os.path.join(docs_dir, "benchmarks.md")
    png_path = os.path.join(docs_dir, "benchmarks.png")
    plot(res, png_path)
    scale = ""
    if os.path.exists(md_path):
        old = open(md_path).read()
        if SCALE_BEGIN in old and SCALE_END in old:
            scale = old[old.index(SCALE_BEGIN):old.index(SCALE_END) + len(SCALE_END)]
    if not scale:
        scale = "%s\n## Memory and scale\n\nNot measured yet: run `python benchmarks/bench_scale.py`.\n%s" % (
            SCALE_BEGIN, SCALE_END)
    with open(md_path, "w") as f:
        f.write(render_md(res, "benchmarks.png") + "\n" + scale + "\n")
    return md_path, png_path


def write_scale_section(section_md: str, docs_dir: str) -> str:
    """Replace (or append) the scale section of docs_dir/benchmarks.md."""
    md_path = os.path.join(docs_dir, "benchmarks.md")
    block = "%s\n%s\n%s" % (SCALE_BEGIN, section_md.strip(), SCALE_END)
    old = open(md_path).read() if os.path.exists(md_path) else "# Benchmarks\n"
    if SCALE_BEGIN in old and SCALE_END in old:
        new = old[:old.index(SCALE_BEGIN)] + block + old[old.index(SCALE_END) + len(SCALE_END):]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    with open(md_path, "w") as f:
        f.write(new)
    return md_path


def main(argv=None) -> int:
    """Re-render the docs from a results.json.

    python -m benchmarks.report RESULTS.json [DOCS_DIR] [--note TEXT]
    """
    import json
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    note = None
    if "--note" in args:
        i = args.index("--note")
        note = args[i + 1]
        del args[i:i + 2]
    res = json.load(open(args[0]))
    if note is not None:
        res["note"] = note
    res["targets"] = evaluate_targets(res)
    docs = args[1] if len(args) > 1 else os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "docs")
    print(*write_docs(res, docs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
