"""LMDB environment lifecycle and transactions: the only lmdb importer.

LMDB forbids opening one environment twice in a process, so environments are
shared per real path with a reference count. An environment must not be used
across ``fork()`` either: before a fork every cached read snapshot is ended
(so the child inherits no live reader slot of the parent), and a child closes
the inherited environment and opens its own on first use. Errors are
translated to IndexDbError subclasses here.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterator

import lmdb

from cas.errors import IndexCorrupt, IndexDbError

DB_NAMES = (
    b"meta", b"objects", b"packs", b"pack_names", b"collections", b"versions",
    b"aliases", b"by_digest", b"statcache", b"condemned",
    b"runs", b"lineage", b"links", b"semvers",
)
MAP_SIZE = 1 << 38  # address space only; the file grows as data is written

_lock = threading.Lock()
_open: dict[str, "IndexDb"] = {}


class IndexDb:
    """One LMDB environment with its named databases."""

    def __init__(self, path: str, env) -> None:
        self.path = path
        self._bind(env)
        self.refs = 1

    def _bind(self, env) -> None:
        self.env = env
        self.dbs = {name.decode(): env.open_db(name) for name in DB_NAMES}
        self.pid = _PID
        self._snapshot = None

    def _live(self):
        """Return this process's environment, reopening it after a fork."""
        if self.pid != _PID:
            # no read transaction is live here (see _before_fork); closing only
            # clears reader slots that carry this process's pid
            self._snapshot = None
            self.env.close()
            self._bind(_open_env(self.path))
        return self.env

    @contextlib.contextmanager
    def read(self) -> Iterator:
        """Yield a read-only transaction."""
        try:
            with self._live().begin(buffers=False) as txn:
                yield txn
        except lmdb.Error as exc:
            raise _translate(exc, self.path) from exc

    def snapshot(self):
        """Return a shared long-lived read-only transaction (see ``drop_snapshot``)."""
        env = self._live()
        if self._snapshot is None:
            try:
                self._snapshot = env.begin(buffers=False)
            except lmdb.Error as exc:
                raise _translate(exc, self.path) from exc
        return self._snapshot

    def drop_snapshot(self) -> None:
        """End the shared snapshot so the next one sees newer commits."""
        if self._snapshot is not None and self.pid == _PID:
            self._snapshot.abort()
        self._snapshot = None

    @contextlib.contextmanager
    def write(self) -> Iterator:
        """Yield a write transaction, committed on success, aborted on error.

        Only one write transaction runs at a time across all processes.
        """
        try:
            with self._live().begin(write=True) as txn:
                yield txn
        except lmdb.Error as exc:
            raise _translate(exc, self.path) from exc

    def close(self) -> None:
        """Drop one reference; close the environment when none remain."""
        with _lock:
            self.refs -= 1
            if self.refs == 0:
                _open.pop(self.path, None)
                if self.pid == os.getpid():
                    self.drop_snapshot()
                else:
                    self._snapshot = None
                self.env.close()


def _translate(exc: Exception, path: str) -> IndexDbError:
    if isinstance(exc, (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.InvalidError, lmdb.BadValsizeError)):
        return IndexCorrupt(f"index at {path} is damaged ({exc}); run 'cas fsck --rebuild-index'")
    if isinstance(exc, lmdb.MapFullError):
        return IndexDbError(f"index at {path} is full; run 'cas fsck --rebuild-index'")
    return IndexDbError(f"index at {path} failed: {exc}")


def open_index(path: str) -> IndexDb:
    """Open (creating if needed) the LMDB index directory at ``path``.

    Raises:
        IndexDbError: LMDB cannot open it.
    """
    real = os.path.realpath(path)
    with _lock:
        db = _open.get(real)
        if db is not None:
            db.refs += 1
            return db
        os.makedirs(real, exist_ok=True)
        db = IndexDb(real, _open_env(real))
        _open[real] = db
        return db


def _open_env(path: str):
    try:
        env = lmdb.open(
            path, map_size=MAP_SIZE, max_dbs=len(DB_NAMES) + 4, metasync=False,
            readahead=False, max_readers=256, max_spare_txns=0,
        )
        # free reader slots of processes that died (killed) holding a read
        # transaction: they would pin old pages and, once all slots are
        # taken, make every open fail
        env.reader_check()
    except lmdb.Error as exc:
        raise _translate(exc, path) from exc
    return env


def _before_fork() -> None:
    """End cached snapshots so a forked child inherits no live read transaction."""
    for db in list(_open.values()):
        if db.pid == os.getpid():
            db.drop_snapshot()


def _after_fork_in_child() -> None:
    global _PID
    _PID = os.getpid()


# the pid as of the last fork: compared on every access, without a syscall each time
_PID = os.getpid()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def drop_index(path: str) -> None:
    """Delete the index files at ``path`` (the caller has closed it)."""
    for name in ("data.mdb", "lock.mdb"):
        try:
            os.unlink(os.path.join(path, name))
        except FileNotFoundError:
            pass
