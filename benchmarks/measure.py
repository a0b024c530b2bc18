"""Process measurement helpers for the benchmark harness.

``run_cmd`` starts one command and returns wall seconds, peak RSS in KiB,
exit code and the tail of its output.  The peak RSS is that command's own,
including the children it waited for.  It is taken by GNU time
(``/usr/bin/time -f %M``) when installed, because the ``ru_maxrss`` that
``os.wait4`` returns for a direct child of this process is never below this
process's own RSS: Linux carries the high-water mark of the address space a
child leaves at ``exec``, and ``subprocess`` forks (or vforks) from the
harness.  GNU time forks the command from its own tiny address space.  ``drop_caches`` empties the page cache
when the machine allows it and reports whether it did.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

GNU_TIME = "/usr/bin/time"


@dataclass
class Measured:
    """One command's result: ``wall`` seconds, ``rss_kib`` peak, ``rc`` exit code."""

    cmd: list
    wall: float
    rss_kib: int
    rc: int
    timed_out: bool = False
    out: str = ""
    err: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True if the command exited 0 within its time limit."""
        return self.rc == 0 and not self.timed_out


def run_cmd(cmd, cwd=None, env=None, timeout=None, shell=False, stdout_path=None) -> Measured:
    """Run ``cmd`` and measure it; never raises on a non-zero exit (see ``rc``).

    Output is kept in temporary files and only its tail is returned, unless
    ``stdout_path`` names a file to receive the whole standard output.
    """
    rss_file = None
    if os.access(GNU_TIME, os.X_OK):
        fd, rss_file = tempfile.mkstemp(prefix="cas-bench-rss-")
        os.close(fd)
        argv = ["/bin/sh", "-c", cmd] if shell else list(cmd)
        cmd, shell = [GNU_TIME, "-f", "%M", "-o", rss_file, "--", *argv], False
    try:
        m = _run(cmd, cwd, env, timeout, shell, stdout_path)
        if rss_file:
            m.rss_kib = _gnu_time_rss(rss_file)
            m.cmd = m.cmd[6:]
    finally:
        if rss_file:
            os.unlink(rss_file)
    return m


def _gnu_time_rss(path: str) -> int:
    """The ``%M`` figure GNU time wrote (its last line), 0 if it wrote none (killed)."""
    try:
        with open(path) as f:
            lines = f.read().split()
        return int(lines[-1]) if lines else 0
    except (OSError, ValueError):
        return 0


def _run(cmd, cwd, env, timeout, shell, stdout_path) -> Measured:
    with (open(stdout_path, "w+b") if stdout_path else tempfile.TemporaryFile()) as fo, \
            tempfile.TemporaryFile() as fe:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fo, stderr=fe, shell=shell,
                                start_new_session=True)
        timed_out = threading.Event()

        def _kill():
            timed_out.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, _kill) if timeout else None
        if timer:
            timer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            if timer:
                timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        fe.seek(0)
        fo.seek(max(0, os.fstat(fo.fileno()).st_size - 4000))
        out = fo.read().decode("utf-8", "replace")
        err = fe.read()[-4000:].decode("utf-8", "replace")
    return Measured(cmd=cmd, wall=wall, rss_kib=int(ru.ru_maxrss), rc=proc.returncode,
                    timed_out=timed_out.is_set(), out=out, err=err)


def sh(script: str, cwd=None, env=None, timeout=None) -> Measured:
    """Run a POSIX shell script (``set -e``) as one measured command."""
    return run_cmd(["/bin/sh", "-ec", script], cwd=cwd, env=env, timeout=timeout)


_DROP = "/proc/sys/vm/drop_caches"


def can_drop_caches() -> bool:
    """True if this process may write ``/proc/sys/vm/drop_caches``."""
    try:
        os.sync()
        with open(_DROP, "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def drop_caches(enabled: bool) -> None:
    """``sync`` and, if ``enabled``, drop the page cache, dentries and inodes."""
    os.sync()
    if enabled:
        with open(_DROP, "w") as f:
            f.write("3\n")


def du_bytes(path: str) -> int:
    """Apparent size of every file under ``path`` (like ``du -sb``), links not followed.

    Entries that vanish during the walk (a tool's background ``git gc``) are skipped.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not os.path.isdir(path) or os.path.islink(path):
        return st.st_size
    total = st.st_size
    stack = [path]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        total += e.stat(follow_symlinks=False).st_size
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                    except FileNotFoundError:
                        continue
        except FileNotFoundError:
            continue
    return total
