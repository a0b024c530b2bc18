"""An expiring lease for maintenance jobs (docs/format.md §10.4).

The lease file ``locks/<name>`` is created with exclusive create and holds its
holder's id and expiry time. Correctness never depends on it: it only keeps
two gc runs from repacking the same packs at once. A holder that dies leaves a
lease that expires; the next taker breaks it by renaming it away.
"""

from __future__ import annotations

import json
import os
import socket
import time

from cas.errors import GcBusy, StorageError
from cas.storage.fsutil import fsync_dir


class Lease:
    """A held lease; ``renew`` pushes its expiry, ``release`` removes it."""

    def __init__(self, locks_dir: str, name: str, duration_s: float) -> None:
        self.path = os.path.join(locks_dir, name)
        self.dir = locks_dir
        self.duration_ns = int(duration_s * 1e9)
        self.holder = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(6).hex()}"
        self.held = False

    def _body(self) -> bytes:
        return json.dumps({"holder": self.holder, "expires_ns": time.time_ns() + self.duration_ns}).encode()

    def acquire(self) -> "Lease":
        """Take the lease.

        Raises:
            GcBusy: Another holder's lease has not expired.
        """
        os.makedirs(self.dir, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._break_if_expired()
                continue
            except OSError as exc:
                raise StorageError(f"cannot create lease {self.path}: {exc.strerror}") from exc
            try:
                os.write(fd, self._body())
                os.fsync(fd)
            finally:
                os.close(fd)
            fsync_dir(self.dir)
            self.held = True
            return self
        raise GcBusy(f"could not take the lease {self.path}; retry")

    def _break_if_expired(self) -> None:
        current = read_lease(self.path)
        if current is None:
            return
        if current.get("expires_ns", 0) > time.time_ns():
            until = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(current["expires_ns"] / 1e9))
            raise GcBusy(
                f"{current.get('holder', '?')} holds {self.path} until {until}; "
                "wait for it to finish (or for the lease to expire) and retry"
            )
        stale = f"{self.path}.stale-{os.urandom(6).hex()}"
        try:
            os.rename(self.path, stale)
        except FileNotFoundError:
            return
        if read_lease(stale) != current:  # someone re-took it between our read and rename
            try:
                os.link(stale, self.path)
            except FileExistsError:
                pass
        os.unlink(stale)

    def renew(self) -> None:
        """Push the expiry ``duration`` into the future (call during long work)."""
        if not self.held:
            return
        tmp = f"{self.path}.renew-{os.urandom(6).hex()}"
        with open(tmp, "wb") as f:
            f.write(self._body())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def release(self) -> None:
        """Give the lease up if we still hold it."""
        if self.held:
            self.held = False
            current = read_lease(self.path)
            if current is not None and current.get("holder") == self.holder:
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass

    def __enter__(self) -> "Lease":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def read_lease(path: str) -> dict | None:
    """Return a lease file's content, None if absent; an unreadable lease counts as expired."""
    try:
        with open(path, "rb") as f:
            d = json.loads(f.read() or b"{}")
        return d if isinstance(d, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
