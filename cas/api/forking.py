"""What a forked worker process needs: dying with its parent, and errors that cross the pipe.

Used by the sharded ingest (``cas.api.sharded``). A child never returns into
the caller's code: it ends with ``os._exit``, so no cleanup of the parent's
objects runs twice.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading

from cas.errors import StorageError


def can_fork() -> bool:
    """True if this process may fork workers: POSIX, two or more CPUs, and no other thread running.

    A fork copies only the calling thread; a lock another thread held at that
    moment would stay locked forever in the child, so a process with any other
    thread (an embedding application's, or cas's own pools) never forks.
    """
    return can_fork_but_for_threads() and threading.active_count() == 1


def can_fork_but_for_threads() -> bool:
    """True on a POSIX system with two or more CPUs."""
    return hasattr(os, "fork") and (os.cpu_count() or 1) >= 2


def die_with(parent: int) -> None:
    """Have the kernel kill this child when its parent dies (Linux ``PR_SET_PDEATHSIG``)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def portable(exc: BaseException) -> bytes:
    """Pickle an exception so that the parent can raise the same class with the same message.

    cas errors take their message's parts as arguments but keep only the message
    in ``args``, so they are rebuilt from class, args and attributes, not by
    pickle's default call of the class.
    """
    try:
        return pickle.dumps((type(exc), exc.args, dict(getattr(exc, "__dict__", {}))))
    except Exception:  # noqa: BLE001 - an attribute that does not pickle
        return pickle.dumps((StorageError, (str(exc),), {}))


def revive(blob: bytes) -> BaseException:
    """Return the exception ``portable`` pickled."""
    cls, args, state = pickle.loads(blob)
    exc = cls.__new__(cls)
    BaseException.__init__(exc, *args)
    exc.__dict__.update(state)
    return exc


def reap(pid: int, kill: bool) -> int | None:
    """Wait for a child (killing it first if ``kill``); return its exit code (negative: signal)."""
    if kill:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    while True:
        try:
            _pid, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            return None
        except InterruptedError:
            continue
