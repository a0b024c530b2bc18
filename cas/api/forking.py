"""What worker processes need: how many may run, dying with the parent, errors that cross a pipe.

Used by the sharded ingest (``cas.api.sharded``) and fsck (``cas.api.fsckshard``).
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys

from cas.errors import StorageError, UsageError


def worker_processes(default: int) -> int:
    """How many worker processes cas may start: ``$CAS_WORKERS`` if set (0: none), else ``default``.

    Workers are new interpreters (``sys.executable``), so none are started
    where that is not a Python (an application embedding cas) or on a system
    without POSIX descriptor passing.

    Raises:
        UsageError: ``$CAS_WORKERS`` is not a whole number.
    """
    if os.name != "posix" or not sys.executable:
        return 0
    value = os.environ.get("CAS_WORKERS")
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"CAS_WORKERS={value!r} is not a whole number; use 0 to store and check in one process")
    if n < 0:
        raise UsageError(f"CAS_WORKERS={value!r} is negative; use 0 to store and check in one process")
    return n


def spawn_python(code: str, argv: list[str], pass_fds: tuple) -> subprocess.Popen:
    """Start ``sys.executable -c code *argv`` importing this very cas, with a pipe on its stdin.

    The worker runs in the directory that holds the ``cas`` package and gets it
    first on ``PYTHONPATH``: ``python -c`` puts its working directory first on
    ``sys.path``, where another cas could shadow this one.

    Raises:
        OSError: The interpreter cannot be started.
    """
    import cas

    top = os.path.dirname(os.path.dirname(os.path.abspath(cas.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = top + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.Popen([sys.executable, "-c", code, *argv], pass_fds=pass_fds, stdin=subprocess.PIPE,
                            env=env, cwd=top)


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
