"""The append-only log directory: one immutable file per entry.

Layout (docs/format.md §3): ``log/<seq as 16 decimal digits>``, seq from 1.
An entry is published with ``link(2)`` from a synced temporary file, so it is
either absent or complete, and two writers can never both create one seq.
"""

from __future__ import annotations

import os

from cas.errors import StorageError
from cas.storage.crash import crashpoint
from cas.storage.fsutil import fsync_dir, publish_exclusive


class LogDir:
    """Read and exclusively append numbered log entry files."""

    def __init__(self, log_dir: str, tmp_dir: str) -> None:
        self.log_dir = log_dir
        self.tmp_dir = tmp_dir

    def path(self, seq: int) -> str:
        """Return the file path of entry ``seq``."""
        return os.path.join(self.log_dir, f"{seq:016d}")

    def read(self, seq: int) -> bytes | None:
        """Return entry ``seq``'s bytes, or None if it does not exist yet."""
        try:
            with open(self.path(seq), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read log entry {seq}: {exc.strerror}") from exc

    def last_seq(self) -> int:
        """Return the highest seq present (0 for an empty log)."""
        best = 0
        for e in os.scandir(self.log_dir):
            if len(e.name) == 16 and e.name.isdigit():
                best = max(best, int(e.name))
        return best

    def append(self, seq: int, data: bytes) -> bool:
        """Create entry ``seq`` with ``data`` durably unless it exists.

        Returns:
            True if this call created it; False if another writer got there first.
        """
        tmp = os.path.join(self.tmp_dir, f"log-{os.urandom(16).hex()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise StorageError(f"cannot write log entry: {exc.strerror}") from exc
        crashpoint("log-entry-written")
        won = publish_exclusive(tmp, self.path(seq))
        if won:
            fsync_dir(self.log_dir)
            crashpoint("log-entry-linked")
        return won
