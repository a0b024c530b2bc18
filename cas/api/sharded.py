"""A large directory's files stored by forked worker processes, each with its own GIL; one tree.

Storing many small files is bound by per-file Python work that holds the GIL
(open, cut, hash, node, put, pack record), so threads cannot use a second
core; processes can. The listing's files are dealt out in blocks of ``BLOCK``
files in tree order: block ``b`` goes to worker ``b % workers``. Every worker
stores its files exactly as one process stores a whole listing (stat cache in
windows, read-ahead, chunking, compression, packs, stat-cache records). The
parent only builds the tree, so it never holds back the workers.

A worker sends the ``FileRef`` of each of its files through a pipe, a block at
a time; at the end it seals and indexes its packs, commits its stat-cache
records, releases its gc pin and sends the names of the packs it sealed. The
parent builds the tree in tree order from the workers' results and adopts
their packs (they are listed in the version's log entry as if it had sealed
them). Two workers may store the same new object twice (in two packs); the
first location indexed wins, as for concurrent writers.

A worker that fails sends the error after the files it stored, so the parent
raises it exactly where one process would have. A worker that ends without
its report makes the parent raise StorageError. If the parent leaves early,
for any reason, it kills its workers and deletes their pins; a worker dies
with its parent (PR_SET_PDEATHSIG on Linux). What a killed worker stored is
orphaned, like the objects of any interrupted writer (fsck reports it, gc
reclaims it).
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

# W3 (20,000 files, cold) on 2 CPUs: 1 worker + the parent storing too 2.7-3.4 s,
# 2 workers 2.3-2.8 s, 3 workers 2.1-2.2 s, 4 workers 2.2-2.3 s (docs/decisions.md)
MAX_WORKERS = 3
BLOCK = 256  # files per hand-out: one pipe message per block
MIN_FILES = 4 * BLOCK  # smaller listings: one process (a fork costs a few ms)


def workers() -> int:
    """How many worker processes store a large listing: one more than the CPUs, at most MAX_WORKERS."""
    return min(MAX_WORKERS, (os.cpu_count() or 1) + 1)


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


def build(listing, ingester, objects, builder, store_records) -> None:
    """Store a listing's files with worker processes, adding each to ``builder`` in tree order.

    Args:
        store_records: ``store_records(records)`` stores the given ``(rel, PendingFile)``
            records in order in the calling process and yields ``(rel, FileRef)`` for each.

    Raises:
        The first error of any file, where one process would have raised it;
        StorageError if a worker ends without reporting.
    """
    objects.flush()  # nothing queued or open crosses the fork (worth_sharding flushed already)
    ingester.commit_stat_cache()
    n = workers()
    children: list[_Child] = []
    parent = os.getpid()
    ok = False
    try:
        for k in range(n):
            rfd, wfd = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: never returns
                os.close(rfd)
                for c in children:
                    c.forget()
                _child(listing, ingester, objects, k, n, wfd, parent, store_records)
            os.close(wfd)
            children.append(_Child(pid, os.fdopen(rfd, "rb")))
        crashpoint("shard-forked")
        add = builder.add
        for i, (rel, _e) in enumerate(listing.records()):
            add(rel, children[(i // BLOCK) % n].take())
        for c in children:
            names, n_read, n_cached, nbytes = c.finish()
            objects.sealed.extend(names)
            ingester.n_read += n_read
            ingester.n_cached += n_cached
            ingester.bytes_read += nbytes
        objects.refresh()  # see what the workers indexed
        ok = True
    finally:
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

    def forget(self) -> None:
        """In a later sibling: close the inherited read end (it belongs to the parent)."""
        self._f.close()
        self._reaped = True

    def close(self, kill: bool, pins_dir: str) -> None:
        """Reap the child (killed first if ``kill``) and delete any pin it could not release."""
        self._f.close()
        if not self._reaped:
            forking.reap(self.pid, kill=kill)
            self._reaped = True
        remove_pins_of(pins_dir, self.pid)


def _child(listing, ingester, objects, k: int, n: int, wfd: int, parent: int, store_records) -> None:
    """Body of a forked child: store shard ``k`` of ``n``, report, end the process."""
    code = 0
    try:
        forking.die_with(parent)
        out = os.fdopen(wfd, "wb")
        ingester.progress = None
        sealed_before = len(objects.sealed)
        read0, cached0, bytes0 = ingester.n_read, ingester.n_cached, ingester.bytes_read
        refs: list = []
        try:
            for _rel, ref in store_records(shard(listing.records(), k, n)):
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
