"""One adapter per tool: how its users ingest, re-add, restore and verify.

Every adapter works on one fresh store per workload chain and per run. The
commands are the ones a user types (see docs/benchmarks.md "How each tool is
used"); ``ctx.timed`` measures one command with the page cache dropped first,
``ctx.untimed`` runs set-up work (creating stores, copying data into a
DVC/git-annex workspace) and raises if it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from benchmarks.measure import du_bytes

DVC = os.environ.get("BENCH_DVC", "/opt/peers/dvc/bin/dvc")

GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}


def _q(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def _version(cmd, env=None, cwd=None) -> str | None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    return (r.stdout or r.stderr).strip().splitlines()[0]


class Store:
    """A fresh store for one chain: ``base`` holds it, ``n`` counts ingests."""

    def __init__(self, base: str):
        self.base = base
        self.path = os.path.join(base, "store")
        self.n = 0
        self.env: dict = {}


class Tool:
    name = "?"

    def version(self) -> str | None:
        raise NotImplementedError

    def env(self, st: Store) -> dict:
        e = dict(os.environ)
        e.update(GIT_ENV)
        e.update(st.env)
        return e

    def new_store(self, ctx, base: str) -> Store:
        raise NotImplementedError

    def ingest(self, ctx, st: Store, src: str):
        raise NotImplementedError

    def readd(self, ctx, st: Store, src: str):
        return self.ingest(ctx, st, src)

    def ingest_version(self, ctx, st: Store, src: str, work_name: str = "data.csv"):
        """Ingest ``src`` as the next version of the one path ``work/data.csv``."""
        ws = os.path.join(st.base, "work")
        os.makedirs(ws, exist_ok=True)
        dst = os.path.join(ws, work_name)
        if os.path.lexists(dst):
            os.unlink(dst)
        shutil.copyfile(src, dst)
        return self.ingest(ctx, st, dst)

    def restore(self, ctx, st: Store, src: str, out: str):
        """Restore the latest stored ``src`` into the empty dir ``out``: (Measured, path)."""
        raise NotImplementedError

    def verify(self, ctx, st: Store):
        raise NotImplementedError

    def size(self, st: Store) -> int:
        return du_bytes(st.path)


# what `pip install <checkout>` needs from a checkout (copied, so the build never writes
# build/ or *.egg-info into the checkout and a stale build/ never leaks into the wheel)
_BUILD_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in", "README.md", "LICENSE")


def install_cas_venv(src_root: str, venv: str, python: str = sys.executable) -> dict:
    """Create the virtualenv ``venv`` and ``pip install`` the cas checkout ``src_root`` into it.

    A plain (non-editable) install, as a user does it: pip builds a wheel from a copy of
    the checkout's working tree (uncommitted edits included) and byte-compiles what it
    installs. Needs the package index for the build and runtime dependencies. Returns a
    description of the install (python, pip freeze) for the results.
    """
    build = venv + "-src"
    shutil.rmtree(build, ignore_errors=True)
    os.makedirs(build)
    for name in _BUILD_FILES:
        if os.path.exists(os.path.join(src_root, name)):
            shutil.copy2(os.path.join(src_root, name), build)
    shutil.copytree(os.path.join(src_root, "cas"), os.path.join(build, "cas"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([python, "-m", "venv", venv], check=True, capture_output=True)
    pip = [os.path.join(venv, "bin", "python"), "-m", "pip"]
    r = subprocess.run([*pip, "install", "--quiet", build], capture_output=True, text=True,
                       env=_clean_python_env(os.environ))
    shutil.rmtree(build, ignore_errors=True)
    if r.returncode != 0:
        raise RuntimeError("pip install of %s into %s failed (it needs the package index): %s"
                           % (src_root, venv, r.stderr[-2000:]))
    freeze = subprocess.run([*pip, "freeze", "--all"], capture_output=True, text=True,
                            env=_clean_python_env(os.environ)).stdout.splitlines()
    return {"mode": "venv", "venv": venv, "python": python, "packages": freeze}


def _clean_python_env(env) -> dict:
    """``env`` without the variables that would make a venv import something else."""
    e = dict(env)
    for k in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE"):
        e.pop(k, None)
    return e


class Cas(Tool):
    """cas as installed by pip into ``venv`` (``venv/bin/cas``), or, without a venv, run from
    the checkout ``src_root`` with ``python -m cas`` and the checkout on PYTHONPATH (used by
    ``--quick``: needs no package index)."""

    name = "cas"

    def __init__(self, src_root: str, venv: str | None = None):
        self.src_root = src_root
        self.venv = venv

    @property
    def python(self) -> str:
        """The interpreter cas runs on."""
        return os.path.join(self.venv, "bin", "python") if self.venv else sys.executable

    def _cmd(self, *args):
        if self.venv:
            return [os.path.join(self.venv, "bin", "cas"), *args]
        return [sys.executable, "-m", "cas", *args]

    def base_env(self) -> dict:
        """The environment every cas command (and its interpreter floors) runs in."""
        if self.venv:
            return _clean_python_env(os.environ)
        e = dict(os.environ)
        e["PYTHONPATH"] = os.pathsep.join(filter(None, [self.src_root, os.environ.get("PYTHONPATH")]))
        return e

    def env(self, st):
        e = self.base_env()
        e.update(GIT_ENV)
        e.update(st.env)
        e["CAS_HOME"] = st.path
        return e

    def version(self):
        return _version(self._cmd("--version"), env=self.env(Store("/nonexistent")), cwd="/")

    def new_store(self, ctx, base):
        st = Store(base)
        os.makedirs(base, exist_ok=True)
        ctx.untimed(self._cmd("init", st.path), cwd=base, env=self.env(st))
        return st

    def ingest(self, ctx, st, src):
        st.n += 1
        name = "w5" if os.path.basename(src) == "data.csv" else os.path.basename(src)
        return ctx.timed(self._cmd("--repo", st.path, "--json", "add", src, "--name", name),
                         cwd=st.base, env=self.env(st))

    def restore(self, ctx, st, src, out):
        name = "w5" if os.path.basename(src) == "data.csv" else os.path.basename(src)
        m = ctx.timed(self._cmd("--repo", st.path, "checkout", name, out), cwd=st.base,
                      env=self.env(st))
        return m, (out if os.path.isdir(src) else os.path.join(out, os.path.basename(src)))

    def verify(self, ctx, st):
        return ctx.timed(self._cmd("--repo", st.path, "fsck"), cwd=st.base, env=self.env(st))

    def packs_dir(self, st) -> str:
        """The directory of the store's sealed packs (docs/format.md §3): ``cas init P``
        makes the project P with its store in ``P/.cas``."""
        inner = os.path.join(st.path, ".cas", "packs")
        return inner if os.path.isdir(inner) else os.path.join(st.path, "packs")


class Restic(Tool):
    name = "restic"

    def version(self):
        return _version(["restic", "version"])

    def new_store(self, ctx, base):
        st = Store(base)
        st.env = {"RESTIC_REPOSITORY": st.path, "RESTIC_PASSWORD": "bench",
                  "RESTIC_CACHE_DIR": os.path.join(base, "restic-cache")}
        ctx.untimed(["restic", "init", "-q"], env=self.env(st))
        return st

    def ingest(self, ctx, st, src):
        st.n += 1
        return ctx.timed(["restic", "backup", "-q", "--host", "bench", src], env=self.env(st))

    def restore(self, ctx, st, src, out):
        m = ctx.timed(["restic", "restore", "-q", "latest", "--target", out], env=self.env(st))
        return m, os.path.join(out, os.path.abspath(src).lstrip("/"))

    def verify(self, ctx, st):
        return ctx.timed(["restic", "check", "-q", "--read-data"], env=self.env(st))


class Borg(Tool):
    name = "borg"

    def version(self):
        return _version(["borg", "--version"])

    def new_store(self, ctx, base):
        st = Store(base)
        st.env = {"BORG_BASE_DIR": os.path.join(base, "borg-base"),
                  "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
                  "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"}
        ctx.untimed(["borg", "init", "--encryption=none", st.path], env=self.env(st))
        return st

    def ingest(self, ctx, st, src):
        st.n += 1
        src = os.path.abspath(src)
        return ctx.timed(["borg", "create", "%s::a%03d" % (st.path, st.n), os.path.basename(src)],
                         cwd=os.path.dirname(src), env=self.env(st))

    def restore(self, ctx, st, src, out):
        os.makedirs(out, exist_ok=True)
        m = ctx.timed(["borg", "extract", "%s::a%03d" % (st.path, st.n)], cwd=out, env=self.env(st))
        return m, os.path.join(out, os.path.basename(src))

    def verify(self, ctx, st):
        return ctx.timed(["borg", "check", "--verify-data", st.path], env=self.env(st))


class _GitWorkspace(Tool):
    """Shared by DVC and git-annex: data must be inside the repo's work tree."""

    def _into_workspace(self, ctx, st, src) -> str:
        name = os.path.basename(src)
        dst = os.path.join(st.path, name)
        if os.path.abspath(src) != dst and not os.path.lexists(dst):
            if os.path.isdir(src):
                shutil.copytree(src, dst)
            else:
                shutil.copyfile(src, dst)
        return name

    def ingest_version(self, ctx, st, src, work_name="data.csv"):
        dst = os.path.join(st.path, work_name)
        if os.path.lexists(dst):
            os.unlink(dst)
        shutil.copyfile(src, dst)
        return self.ingest(ctx, st, dst)


class GitAnnex(_GitWorkspace):
    name = "git-annex"

    def version(self):
        v = _version(["git", "annex", "version", "--raw"])
        return ("git-annex " + v) if v else None

    def new_store(self, ctx, base):
        st = Store(base)
        os.makedirs(st.path)
        ctx.untimed(["/bin/sh", "-ec", "git init -q && git annex init -q bench"], cwd=st.path,
                    env=self.env(st))
        return st

    def ingest(self, ctx, st, src):
        st.n += 1
        name = self._into_workspace(ctx, st, src)
        return ctx.timed(["/bin/sh", "-ec", "git annex add -q %s && git commit -q -m v%d"
                          % (_q(name), st.n)], cwd=st.path, env=self.env(st))

    def readd(self, ctx, st, src):
        name = os.path.basename(src)
        return ctx.timed(["/bin/sh", "-ec", "git annex add -q %s; git diff --cached --quiet || "
                          "git commit -q -m re" % _q(name)], cwd=st.path, env=self.env(st))

    def restore(self, ctx, st, src, out):
        name = os.path.basename(src)
        m = ctx.timed(["/bin/sh", "-ec", "git clone -q %s %s && cd %s && git annex get -q %s"
                       % (_q(st.path), _q(out), _q(out), _q(name))], env=self.env(st))
        return m, os.path.join(out, name)

    def verify(self, ctx, st):
        return ctx.timed(["git", "annex", "fsck", "-q"], cwd=st.path, env=self.env(st))

    def size(self, st):
        return du_bytes(os.path.join(st.path, ".git"))


class Dvc(_GitWorkspace):
    name = "dvc"

    def env(self, st):
        e = super().env(st)
        e["DVC_NO_ANALYTICS"] = "1"
        e["DVC_SITE_CACHE_DIR"] = os.path.join(st.base, "dvc-site")
        return e

    def version(self):
        if not os.path.exists(DVC):
            return None
        v = _version([DVC, "--version"], env=dict(os.environ, DVC_NO_ANALYTICS="1"))
        return ("dvc " + v) if v else None

    def new_store(self, ctx, base):
        st = Store(base)
        os.makedirs(st.path)
        ctx.untimed(["/bin/sh", "-ec", "git init -q && %s init -q && git commit -q -m init" % DVC],
                    cwd=st.path, env=self.env(st))
        return st

    def ingest(self, ctx, st, src):
        st.n += 1
        name = self._into_workspace(ctx, st, src)
        return ctx.timed(["/bin/sh", "-ec", "%s add -q %s && git add %s.dvc .gitignore && "
                          "git commit -q -m v%d" % (DVC, _q(name), _q(name), st.n)],
                         cwd=st.path, env=self.env(st))

    def readd(self, ctx, st, src):
        name = os.path.basename(src)
        return ctx.timed(["/bin/sh", "-ec", "%s add -q %s && git add %s.dvc && "
                          "(git diff --cached --quiet || git commit -q -m re)"
                          % (DVC, _q(name), _q(name))], cwd=st.path, env=self.env(st))

    def restore(self, ctx, st, src, out):
        name = os.path.basename(src)
        cache = os.path.join(st.path, ".dvc", "cache")
        m = ctx.timed(["/bin/sh", "-ec", "git clone -q %s %s && cd %s && %s cache dir --local %s "
                       "&& %s checkout -q" % (_q(st.path), _q(out), _q(out), DVC, _q(cache), DVC)],
                      env=self.env(st))
        return m, os.path.join(out, name)

    def verify(self, ctx, st):
        # DVC has no command that re-hashes its cache; `dvc status` after deleting
        # its hash state re-hashes the workspace against the .dvc files.
        site = os.path.join(st.base, "dvc-site")
        return ctx.timed(["/bin/sh", "-ec", "rm -rf %s && %s status -q" % (_q(site), DVC)],
                         cwd=st.path, env=self.env(st))

    def size(self, st):
        return du_bytes(os.path.join(st.path, ".dvc", "cache"))


def all_tools(cas_src: str, cas_venv: str | None = None) -> list[Tool]:
    """Every tool the harness knows, cas first (from ``cas_venv`` if given, see ``Cas``)."""
    return [Cas(cas_src, cas_venv), Dvc(), Restic(), Borg(), GitAnnex()]
