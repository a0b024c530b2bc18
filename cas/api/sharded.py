"""A large directory's files stored by worker processes, each with its own GIL; one tree.

Storing many small files is bound by per-file Python work that holds the GIL
(open, cut, hash, node, put, pack record), so threads cannot use a second
core; processes can. The listing's files are dealt out in blocks of ``BLOCK``
files in tree order: block ``b`` goes to worker ``b % workers``. Every worker
stores its files exactly as one process stores a whole listing (stat cache in
windows, read-ahead, chunking, compression, packs, stat-cache records). The
parent only builds the tree, so it never holds back the workers.

Workers are new interpreters (``python -c``, given the listing's file and a
pipe by descriptor), not forks: a forked child inherits the parent's LMDB
environment, and closing it there let two workers' snapshots lose their
reader slots (MDB_BAD_DBI, MDB_PAGE_NOTFOUND under load; docs/decisions.md).
A worker opens the store as any other process does.

A worker sends the ``FileRef`` of each of its files through its pipe, a block
at a time; at the end it seals and indexes its packs, commits its stat-cache
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

import json
import os
import pickle
import sys
from collections import deque
from typing import Iterator

from cas.api import forking
from cas.api.drafttree import FileRef
from cas.api.listing import WORKERS_AFTER
from cas.errors import StorageError
from cas.storage.crash import crashpoint
from cas.storage.pins import remove_pins_of

# W3 (20,000 files, cold) on 2 CPUs: 1 worker + the parent storing too 2.7-3.4 s,
# 2 workers 2.3-2.8 s, 3 workers 2.1-2.2 s, 4 workers 2.2-2.3 s (docs/decisions.md)
MAX_WORKERS = 3
BLOCK = 256  # files per hand-out: one pipe message per block
MIN_FILES = WORKERS_AFTER  # smaller listings: one process (a worker costs an interpreter's start)


def workers() -> int:
    """How many worker processes store a large listing: one more than the CPUs, at most MAX_WORKERS.

    ``$CAS_WORKERS`` overrides it (``forking.worker_processes``); a single CPU gets none.
    """
    cpus = os.cpu_count() or 1
    return forking.worker_processes(min(MAX_WORKERS, cpus + 1) if cpus >= 2 else 0)


def can_shard() -> bool:
    """True where worker processes may be started (see ``workers``)."""
    return workers() > 0


def worth_sharding(count: int) -> bool:
    """True if a listing of ``count`` files should be stored by worker processes."""
    return count >= MIN_FILES and can_shard()


def shard(records: Iterator, k: int, n: int) -> Iterator:
    """Yield the records of worker ``k`` of ``n``: blocks ``k``, ``k + n``, ... of BLOCK records."""
    for i, rec in enumerate(records):
        if (i // BLOCK) % n == k:
            yield rec


def build(listing, ingester, objects, builder, workers: "Workers") -> None:
    """Store a listing's files with ``workers`` (started for it), adding each to ``builder`` in tree order.

    Raises:
        The first error of any file, where one process would have raised it;
        StorageError if a worker ends without reporting.
    """
    ok = False
    try:
        workers.go(listing.count, listing.size)
        crashpoint("shard-started")
        children = workers.children
        n = len(children)
        add = builder.add
        progress = ingester.progress
        done = nbytes = 0
        for i, (rel, _e) in enumerate(listing.records()):
            ref = children[(i // BLOCK) % n].take()
            add(rel, ref)
            if i % BLOCK == 0:
                # a long-lived read snapshot would keep LMDB from reusing the pages the
                # workers' commits free, and the index file would grow with every commit
                objects.refresh()
            if progress is not None:
                done += 1
                nbytes += ref.size
                if done % BLOCK == 0:
                    progress(done, listing.count, nbytes)
        for c in children:
            names, n_read, n_cached, nbytes = c.finish()
            objects.sealed.extend(names)
            ingester.n_read += n_read
            ingester.n_cached += n_cached
            ingester.bytes_read += nbytes
        objects.refresh()  # see what the workers indexed
        ok = True
    finally:
        workers.close(kill=not ok)


class Workers:
    """Worker processes for one listing: started early, told its final size by ``go``."""

    def __init__(self, children: list, pins_dir: str) -> None:
        self.children = children
        self._pins_dir = pins_dir

    @classmethod
    def start(cls, fd: int, root: str, prefix: str, policy: str, store: str) -> "Workers":
        """Start ``workers()`` workers on the spill file ``fd`` of a listing of ``root`` (maybe still being written).

        Raises:
            StorageError: A worker cannot be started.
        """
        n = workers()
        started = cls([], os.path.join(store, "pins"))
        try:
            for k in range(n):
                started.children.append(_start(fd, root, prefix, policy, store, k, n))
        except BaseException:
            started.close(kill=True)
            raise
        return started

    @classmethod
    def try_start(cls, fd: int, root: str, prefix: str, policy: str, store: str) -> "Workers | None":
        """``start``, or None if a worker cannot be started (the caller stores in one process)."""
        try:
            return cls.start(fd, root, prefix, policy, store)
        except StorageError:
            return None

    def go(self, count: int, size: int) -> None:
        """Tell every worker the listing is complete: ``count`` files, ``size`` bytes."""
        line = (json.dumps({"count": count, "size": size}) + "\n").encode()
        for c in self.children:
            c.go(line)

    def discard(self) -> None:
        """Stop workers that were never told to go (the listing was answered, or the scan failed)."""
        self.close(kill=True)

    def close(self, kill: bool) -> None:
        """Reap every worker (killed first if ``kill``) and delete any pin a killed one left."""
        for c in self.children:
            c.close(kill=kill, pins_dir=self._pins_dir)
        self.children = []


def _start(fd: int, root: str, prefix: str, policy: str, store: str, k: int, n: int) -> "_Child":
    """Start worker ``k`` of ``n``; it opens the store, then waits for ``Workers.go``."""
    rfd, wfd = os.pipe()
    args = {"store": store, "listing_fd": fd, "out_fd": wfd, "parent": os.getpid(), "k": k, "n": n,
            "block": BLOCK, "root": root, "prefix": prefix, "policy": policy}
    try:
        proc = forking.spawn_python("from cas.api.sharded import worker_main; worker_main()", [json.dumps(args)],
                                    (fd, wfd))
    except OSError as exc:
        os.close(rfd)
        raise StorageError(f"cannot start a cas worker process ({sys.executable}): {exc.strerror}") from exc
    finally:
        os.close(wfd)
    return _Child(proc, os.fdopen(rfd, "rb"))


class _Child:
    """The parent's end of one child: its results, a block at a time."""

    def __init__(self, proc, f) -> None:
        self.proc = proc
        self.pid = proc.pid
        self._f = f
        self._refs: deque = deque()
        self._reaped = False

    def _recv(self):
        try:
            return pickle.load(self._f)
        except (EOFError, OSError, pickle.UnpicklingError):
            self.proc.kill()
            code = self.proc.wait()
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

    def go(self, line: bytes) -> None:
        """Send the listing's final size; the worker starts storing."""
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.close()
        except OSError:  # it died: ``take`` reports how
            pass

    def close(self, kill: bool, pins_dir: str) -> None:
        """Reap the child (killed first if ``kill``) and delete any pin it could not release."""
        if not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        self._f.close()
        if not self._reaped:
            if kill:
                self.proc.kill()
            self.proc.wait()
            self._reaped = True
        remove_pins_of(pins_dir, self.pid)


def _share_budgets(n: int) -> None:
    """Give this worker 1/n of one process's memory budgets, so n workers hold about what one would.

    The budgets are the bytes queued for compression and read ahead, and the
    objects, stat-cache records and index pages one write transaction may hold.
    """
    from cas.api import ingest, listing, objects

    objects.MAX_INFLIGHT = max(4 << 20, objects.MAX_INFLIGHT // n)
    ingest.PREFETCH_BYTES = max(2 << 20, ingest.PREFETCH_BYTES // n)
    ingest.PREFETCH_FILES = max(64, ingest.PREFETCH_FILES // n)
    listing.FLUSH_OBJECTS = max(5_000, listing.FLUSH_OBJECTS // n)
    listing.STAT_BATCH = max(2_000, listing.STAT_BATCH // n)
    listing.DIRTY_PAGES = max(2_048, listing.DIRTY_PAGES // n)


def worker_main() -> None:
    """Entry point of a worker process (see ``_start``): store one shard, report, exit."""
    global BLOCK
    args = json.loads(sys.argv[1])
    forking.die_with(args["parent"])
    out = os.fdopen(args["out_fd"], "wb")
    code = 0
    repo = None
    refs: list = []
    try:
        BLOCK = args["block"]
        from cas.api.listing import DirListing, store_records
        from cas.api.repo import Repo

        _share_budgets(args["n"])

        repo = Repo(args["store"])
        repo.objects._tables()  # the index is open and read before the listing is complete
        line = sys.stdin.buffer.readline()
        if not line:  # not needed after all (Workers.discard)
            return
        final = json.loads(line)
        listing = DirListing(args["root"], args["prefix"], args["policy"], os.fdopen(args["listing_fd"], "rb"),
                             final["count"], final["size"], b"", 0)
        ingester, objects = repo.ingester, repo.objects
        first = True
        for _rel, ref in store_records(shard(listing.records(), args["k"], args["n"]), ingester, objects,
                                       listing.policy == "immutable"):
            refs.append((ref.id, ref.size, ref.executable))
            if len(refs) == BLOCK:
                pickle.dump(("refs", refs), out)
                out.flush()
                refs = []
                objects.refresh()  # see ``build``: no snapshot outlives a block while others commit
                if first:
                    crashpoint("shard-worker-block")
                    first = False
        if refs:
            pickle.dump(("refs", refs), out)
            refs = []
        sealed = objects.take_sealed()
        ingester.commit_stat_cache()
        pickle.dump(("done", (sealed, ingester.n_read, ingester.n_cached, ingester.bytes_read)), out)
    except BaseException as exc:  # noqa: BLE001 - everything goes to the parent
        code = 1
        try:
            if refs:
                pickle.dump(("refs", refs), out)
            pickle.dump(("error", forking.portable(exc)), out)
        except BaseException:  # noqa: BLE001 - the parent sees the closed pipe
            pass
    finally:
        try:
            out.close()
        except OSError:
            pass
        if repo is not None:
            repo.pin.release()  # the parent's pin covers the version until it is published
            repo.close()
    sys.exit(code)
