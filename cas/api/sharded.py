"""A large directory's files stored by two processes: each its own GIL, one tree.

Storing many small files is bound by per-file Python work that holds the GIL
(open, cut, hash, node, put, pack record), so threads cannot use a second
core; a second process can. The listing's files are dealt out in blocks of
``BLOCK`` files in tree order: block ``b`` goes to process ``b % PROCESSES``,
the parent being process 0. Every process stores its own files exactly as one
process stores a whole listing (stat cache in windows, read-ahead, chunking,
compression, packs, stat-cache records).

A child sends the ``FileRef`` of each of its files through a pipe, a block at
a time; at the end it seals and indexes its packs, commits its stat-cache
records, releases its gc pin and sends the names of the packs it sealed. The
parent builds the tree in tree order from its own files and the children's,
and adopts the children's packs (they are listed in the version's log entry
as if it had sealed them). Two processes may store the same new object twice
(in two packs); the first location indexed wins, as for concurrent writers.

A child that fails sends the error after the files it stored, so the parent
raises it exactly where one process would have. A child that ends without
its report makes the parent raise StorageError. If the parent leaves early,
for any reason, it kills its children; a child dies with its parent
(PR_SET_PDEATHSIG on Linux). What a killed child stored is orphaned, like
the objects of any interrupted writer (fsck reports them, gc reclaims them).
"""

from __future__ import annotations

import os
import pickle
from collections import deque
from typing import Iterator

from cas.api import forking
from cas.api.drafttree import FileRef
from cas.errors import StorageError
from cas.storage.crash import crashpoint
from cas.storage.pins import remove_pins_of

PROCESSES = 2
BLOCK = 256  # files per hand-out: one pipe message per block
MIN_FILES = 4 * BLOCK  # smaller listings: one process (a fork costs a few ms)


def worth_sharding(count: int, objects) -> bool:
    """True if a listing of ``count`` files should be stored by several processes.

    cas's own compression and sealing threads are ended first (they are
    started again when needed); any other thread in the process rules the
    fork out (``forking.can_fork``).
    """
    if count < MIN_FILES or not forking.can_fork_but_for_threads():
        return False
    objects.stop_threads()
    return forking.can_fork()


def shard(records: Iterator, k: int, n: int) -> Iterator:
    """Yield the records of process ``k`` of ``n``: blocks ``k``, ``k + n``, ... of BLOCK records."""
    for i, rec in enumerate(records):
        if (i // BLOCK) % n == k:
            yield rec


_END = object()


def build(listing, ingester, objects, builder, store_records) -> None:
    """Store a listing's files with PROCESSES processes, adding each to ``builder`` in tree order.

    Args:
        store_records: ``store_records(records)`` stores the given ``(rel, PendingFile)``
            records in order in this process and yields ``(rel, FileRef)`` for each.

    Raises:
        The first error of any file, where one process would have raised it;
        StorageError if a child process ends without reporting.
    """
    objects.flush()  # nothing queued or open crosses the fork (worth_sharding flushed already)
    ingester.commit_stat_cache()
    children: list[_Child] = []
    parent = os.getpid()
    mine = None
    ok = False
    try:
        for k in range(1, PROCESSES):
            rfd, wfd = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: never returns
                os.close(rfd)
                _child(listing, ingester, objects, k, wfd, parent, store_records)
            os.close(wfd)
            children.append(_Child(pid, os.fdopen(rfd, "rb")))
        crashpoint("shard-forked")
        mine = store_records(shard(listing.records(), 0, PROCESSES))
        add = builder.add
        for i, (rel, _e) in enumerate(listing.records()):
            k = (i // BLOCK) % PROCESSES
            if k == 0:
                _rel, ref = next(mine)
            else:
                ref = children[k - 1].take()
            add(rel, ref)
        if next(mine, _END) is not _END:
            raise StorageError("the file list of an added directory changed while it was read; add again")
        for c in children:
            names, n_read, n_cached, nbytes = c.finish()
            objects.sealed.extend(names)
            ingester.n_read += n_read
            ingester.n_cached += n_cached
            ingester.bytes_read += nbytes
        objects.refresh()  # see what the children indexed
        ok = True
    finally:
        if mine is not None:
            mine.close()
        for c in children:
            c.close(kill=not ok, pins_dir=objects.layout.pins)


class _Child:
    """The parent's end of one child: its results, a block at a time."""

    def __init__(self, pid: int, f) -> None:
        self.pid = pid
        self._f = f
        self._refs: deque = deque()
        self._reaped = False

    def _recv(self):
        try:
            return pickle.load(self._f)
        except (EOFError, OSError, pickle.UnpicklingError):
            code = forking.reap(self.pid, kill=True)
            self._reaped = True
            how = "was killed by signal %d" % -code if code is not None and code < 0 else f"exited ({code})"
            raise StorageError(f"a cas worker process {how} before it reported; nothing was logged, add again"
                               ) from None

    def take(self) -> FileRef:
        """Return the FileRef of the child's next file; raise the error it reported there."""
        if not self._refs:
            kind, value = self._recv()
            if kind == "error":
                raise forking.revive(value)
            if kind != "refs" or not value:
                raise StorageError(f"a cas worker process sent {kind!r} where files were expected; add again")
            self._refs = deque(value)
        fid, size, executable = self._refs.popleft()
        return FileRef(fid, size, executable)

    def finish(self) -> tuple:
        """Return ``(sealed pack names, files read, files cached, bytes read)`` once the child is done."""
        kind, value = ("refs", None) if self._refs else self._recv()
        if kind == "error":
            raise forking.revive(value)
        if kind != "done":
            raise StorageError(f"a cas worker process sent {kind!r} where its report was expected; add again")
        return value

    def close(self, kill: bool, pins_dir: str) -> None:
        """Reap the child (killed first if ``kill``) and delete any pin it could not release."""
        self._f.close()
        if not self._reaped:
            forking.reap(self.pid, kill=kill)
            self._reaped = True
        remove_pins_of(pins_dir, self.pid)


def _child(listing, ingester, objects, k: int, wfd: int, parent: int, store_records) -> None:
    """Body of a forked child: store shard ``k``, report, end the process."""
    code = 0
    try:
        forking.die_with(parent)
        out = os.fdopen(wfd, "wb")
        ingester.progress = None
        sealed_before = len(objects.sealed)
        read0, cached0, bytes0 = ingester.n_read, ingester.n_cached, ingester.bytes_read
        refs: list = []
        try:
            for _rel, ref in store_records(shard(listing.records(), k, PROCESSES)):
                refs.append((ref.id, ref.size, ref.executable))
                if len(refs) == BLOCK:
                    pickle.dump(("refs", refs), out)
                    out.flush()
                    refs = []
            if refs:
                pickle.dump(("refs", refs), out)
            objects.flush()
            ingester.commit_stat_cache()
            report = (objects.sealed[sealed_before:], ingester.n_read - read0,
                      ingester.n_cached - cached0, ingester.bytes_read - bytes0)
            pickle.dump(("done", report), out)
        except BaseException as exc:  # noqa: BLE001 - everything goes to the parent
            if refs:
                pickle.dump(("refs", refs), out)
            pickle.dump(("error", forking.portable(exc)), out)
        out.flush()
        _release_pins()
    except BaseException:  # noqa: BLE001 - the parent sees the closed pipe
        code = 1
    finally:
        os._exit(code)


def _release_pins() -> None:
    """Remove the gc pins this child created (the parent keeps its own until it publishes)."""
    from cas.api.repo import release_pins_in_child

    release_pins_in_child()
