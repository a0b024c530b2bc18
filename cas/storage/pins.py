"""Writer pins: a file per process that may reuse stored objects in a draft.

A writer creates its pin before its first dedup lookup and records the log
seq its index had reached after that (``seen_seq``). gc deletes the packs a gc
entry at seq ``s`` condemned only when no active pin has ``seen_seq < s``:
such a writer may have decided to reuse an object before it learnt the object
was condemned (docs/format.md §10.4). A pin is active while its file was
touched within ``PIN_TTL`` and, on this host, its process is alive.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass


PIN_TTL_NS = 3600 * 10**9
REFRESH_NS = 60 * 10**9
def _hostname() -> str:
    if hasattr(os, "uname"):
        return os.uname().nodename  # what gethostname() returns, without importing socket
    import socket

    return socket.gethostname()


HOST = _hostname()


@dataclass(frozen=True)
class PinInfo:
    """What gc reads from a pin file."""

    path: str
    host: str
    pid: int
    started_ns: int
    seen_seq: int
    touched_ns: int


class Pin:
    """This process's pin in one store; ``create`` and ``touch`` are cheap to call often."""

    def __init__(self, pins_dir: str) -> None:
        self.dir = pins_dir
        self.path: str | None = None
        self._touched = 0

    def create(self, seen_seq_after) -> None:
        """Create the pin if absent: first with seen_seq 0, then with ``seen_seq_after()``.

        ``seen_seq_after`` must bring the caller's index view up to date and return
        its seq; it runs after the pin file exists, which is what makes the rule safe.
        """
        if self.path is not None:
            self.touch()
            if self.path is not None:
                return
        os.makedirs(self.dir, exist_ok=True)
        path = os.path.join(self.dir, f"{HOST}-{os.getpid()}-{os.urandom(6).hex()}")
        started = time.time_ns()
        self._write(path, started, 0)
        self.path = path
        self._write(path, started, int(seen_seq_after()))
        self._touched = time.monotonic_ns()

    def _write(self, path: str, started: int, seen_seq: int) -> None:
        # no fsync: a pin only matters while its process runs, and a crash of the
        # machine ends the process too; other processes see the file once it is closed
        data = json.dumps({"host": HOST, "pid": os.getpid(), "started_ns": started, "seen_seq": seen_seq})
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(data)
        os.replace(tmp, path)

    def touch(self) -> None:
        """Mark the pin as still in use (at most once per ``REFRESH_NS``)."""
        now = time.monotonic_ns()
        if self.path is not None and now - self._touched > REFRESH_NS:
            try:
                os.utime(self.path)
            except FileNotFoundError:
                self.path = None
            self._touched = now

    def release(self) -> None:
        """Remove the pin (the writer has published or given up)."""
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.path = None

    def forget_after_fork(self) -> None:
        """A forked child does not own its parent's pin."""
        self.path = None


def remove_pins_of(pins_dir: str, pid: int) -> None:
    """Delete the pins a process of this host left when it was killed (its parent reaped it)."""
    prefix = f"{HOST}-{pid}-"
    try:
        names = os.listdir(pins_dir)
    except FileNotFoundError:
        return
    for name in names:
        if name.startswith(prefix):
            try:
                os.unlink(os.path.join(pins_dir, name))
            except FileNotFoundError:
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def active_pins(pins_dir: str, now_ns: int | None = None) -> list[PinInfo]:
    """Return the pins gc must respect; stale pins (dead process, untouched for PIN_TTL) are skipped."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    out = []
    try:
        names = os.listdir(pins_dir)
    except FileNotFoundError:
        return out
    for name in names:
        if name.endswith(".tmp"):
            continue
        path = os.path.join(pins_dir, name)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        try:
            with open(path) as f:
                d = json.load(f)
            info = PinInfo(path, str(d["host"]), int(d["pid"]), int(d["started_ns"]), int(d["seen_seq"]),
                           st.st_mtime_ns)
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError):
            # unreadable: a pin that has seen nothing, until it expires
            info = PinInfo(path, "?", 0, st.st_mtime_ns, 0, st.st_mtime_ns)
        if now_ns - info.touched_ns > PIN_TTL_NS:
            continue
        if info.host == HOST and info.pid and not _alive(info.pid):
            continue
        out.append(info)
    return out


def remove_stale_pins(pins_dir: str) -> int:
    """Delete pin files of dead or expired writers; return how many."""
    live = {p.path for p in active_pins(pins_dir)}
    n = 0
    try:
        names = os.listdir(pins_dir)
    except FileNotFoundError:
        return 0
    for name in names:
        path = os.path.join(pins_dir, name)
        if path not in live and not name.endswith(".tmp"):
            try:
                os.unlink(path)
                n += 1
            except FileNotFoundError:
                pass
    return n
