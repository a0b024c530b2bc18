"""Files -> chunks -> objects -> file ids, with the stat cache as the fast path.

``FileIngester`` reads a file once: cut by the chunker, hash each chunk, store
new chunks (or only hash, when computing a digest), then build the file node.
A stat-cache hit (same device, inode, size, mtime_ns, ctime_ns, and a record
taken well after the last modification) skips reading entirely.
"""

from __future__ import annotations

import contextlib
import os
import stat as statmod
import time
from collections import deque
from typing import Iterable, Iterator

from cas.api.drafttree import FileRef
from cas.errors import FileChangedError, StorageError, UsageError
from cas.format.chunker import Chunker
from cas.format.digest import chunk_id
from cas.format.nodes import build_file_nodes
from cas.format.pack import KIND_CHUNK, KIND_FILE_NODE
from cas.index.replay import gc_count
from cas.index.tables import StatEntry, Tables

# A file modified less than this before it was hashed may change again within
# the timestamp granularity without its stat changing ("racy" git): never trusted.
RACY_NS = 2_000_000_000
READ_ALL_LIMIT = 4 * 1024 * 1024
READ_BLOCK = 8 * 1024 * 1024
# read-ahead of small files (cold-cache latency dominates many-small-files ingest)
# O_NONBLOCK: a path replaced by a FIFO since the walk must not block the open
_O_READ = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
PREFETCH_THREADS = 2
PREFETCH_FILES = 512
PREFETCH_BYTES = 16 * 1024 * 1024
# files per read-ahead job: one thread hand-off per batch, not per file
PREFETCH_BATCH_FILES = 32
PREFETCH_BATCH_BYTES = 512 * 1024
_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None) if hasattr(os, "posix_fadvise") else None


_END = object()


def stat_key(path: str) -> bytes:
    """Return the stat-cache key of an absolute path (fixed width for LMDB)."""
    return chunk_id(os.fsencode(path))


def listing_key(root: str) -> bytes:
    """Return the stat-cache key of the listing record of an absolute directory path."""
    return chunk_id(b"\x00listing\x00" + os.fsencode(root))


def is_executable(st: os.stat_result) -> bool:
    """True if the owner may execute the file."""
    return bool(st.st_mode & statmod.S_IXUSR)


class FileIngester:
    """Hash and store files of one repo; batches stat-cache updates."""

    def __init__(self, objects, chunker: Chunker, db) -> None:
        self.objects = objects
        self.chunker = chunker
        self.db = db
        self._stat_updates: dict[bytes, StatEntry] = {}
        self._listing_updates: dict[bytes, tuple] = {}
        self.n_read = 0
        self.bytes_read = 0
        self.n_cached = 0
        self.progress = None  # called as progress(files done, None, bytes read) when set
        self._ahead: deque = deque()  # (path, future of (start ns, bytes)) in expected order
        self._ahead_bytes = 0
        self._ahead_todo: Iterator | None = None
        self._ahead_unresolved = False
        self._ahead_pool = None

    def cached(self, path: str, st: os.stat_result) -> FileRef | None:
        """Return the stat-cache answer for an unchanged file, else None."""
        e = self._cache_entry(path, signature(st))
        return None if e is None else FileRef(e.file_id, e.size, is_executable(st))

    def resolve_cached(self, pending: Iterable) -> dict:
        """Answer unchanged PendingFiles from the stat cache in one pass.

        Each file is stat'ed now and must still have the PendingFile's signature;
        the stat-cache record must match it (racy rule included) and its file id
        must be stored. Files that fail any check are left out: ``file`` then
        reads them or raises the error they deserve.

        Returns:
            ``{(local path, signature): FileRef}``.
        """
        out: dict = {}
        pending = list(pending)
        if not pending:
            return out
        self.objects.before_write()  # hold a gc pin before trusting stored objects
        t = self.objects._tables()
        if not self._stat_updates and t.stat_cache_empty():
            return out  # first add into this store: no file can be answered
        get_stat = t.get_stat_fields
        # after any gc a stored node may lack a descendant: check the whole file then
        has_file = self.objects.has if gc_count(t) == 0 else self.objects.has_file
        updates = self._stat_updates
        for e in pending:
            path, sig = e.local_path, e.signature
            try:
                st = os.stat(path)
            except OSError:
                continue
            if (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev) != sig:
                continue
            key = stat_key(path)
            u = updates.get(key)
            f = get_stat(key) if u is None else (
                u.dev, u.ino, u.size, u.mtime_ns, u.ctime_ns, u.recorded_ns, u.executable, u.file_id)
            if f is None:
                continue
            dev, ino, size, mtime_ns, ctime_ns, recorded_ns, _x, fid = f
            if (
                (size, mtime_ns, ctime_ns, ino, dev) != sig
                or mtime_ns + RACY_NS > recorded_ns
                or ctime_ns + RACY_NS > recorded_ns
                or not has_file(fid)
            ):
                continue
            out[(path, sig)] = FileRef(fid, size, bool(st.st_mode & statmod.S_IXUSR))
        self.n_cached += len(out)
        return out

    def cached_listing(self, root: str, digest: bytes, newest_ns: int) -> tuple | None:
        """Return ``(tree id, size, n_files)`` of a directory scanned exactly as before, else None.

        A listing record (docs/format.md §9.4) answers if the scan's records
        have the digest it holds (every file has the path and stat signature it
        had), no file was modified within ``RACY_NS`` before the record was
        taken, no gc ran since, and its tree is stored.
        """
        self.objects.before_write()  # hold a gc pin before trusting stored objects
        key = listing_key(root)
        rec = self._listing_updates.get(key)
        t = self.objects._tables()
        if rec is None:
            rec = t.get_listing(key)
        if rec is None:
            return None
        have, tid, size, n_files, recorded_ns, gcs = rec
        if have != digest or newest_ns + RACY_NS > recorded_ns or gcs != gc_count(t) or not self.objects.has(tid):
            return None
        return tid, size, n_files

    def has_listing_record(self, root: str) -> bool:
        """True if a listing record of the directory ``root`` exists (a re-add may be answered by it)."""
        key = listing_key(root)
        return key in self._listing_updates or self.objects._tables().get_listing(key) is not None

    def listing_start(self) -> tuple[int, int]:
        """Return ``(wall clock ns, gc runs applied)`` before a directory is built (``record_listing``)."""
        return time.time_ns(), gc_count(self.objects._tables())

    def record_listing(self, root: str, digest: bytes, newest_ns: int, started_ns: int, gcs: int,
                       tid: bytes, size: int, n_files: int) -> None:
        """Remember the tree of a directory built from a scan with ``digest`` (committed with the stat cache).

        Args:
            started_ns: Wall clock before any file of the build was read.
            gcs: The gc runs applied before the build started (``listing_start``).
        """
        if newest_ns + RACY_NS > started_ns:
            return  # a file modified just before: it may change again unseen
        self._listing_updates[listing_key(root)] = (digest, tid, size, n_files, started_ns, gcs)

    def _cache_entry(self, path: str, sig: tuple) -> StatEntry | None:
        """Return the stat-cache record of ``path`` if it matches ``signature`` ``sig``."""
        key = stat_key(path)
        e = self._stat_updates.get(key) or self.objects._tables().get_stat(key)
        if e is None:
            return None
        size, mtime_ns, ctime_ns, ino, dev = sig
        if (
            e.size != size
            or e.mtime_ns != mtime_ns
            or e.ctime_ns != ctime_ns
            or e.ino != ino
            or e.dev != dev
            or mtime_ns + RACY_NS > e.recorded_ns
            or ctime_ns + RACY_NS > e.recorded_ns
        ):
            return None
        return e

    def file(self, path: str, store: bool = True, st: os.stat_result | None = None,
             expect: tuple | None = None, asked: bool = False) -> FileRef:
        """Return the FileRef of a local file, storing its objects if ``store``.

        Args:
            path: Absolute path of a regular file.
            store: Write chunks and nodes; False only hashes.
            st: The file's stat if already known.
            expect: ``(size, mtime_ns, ctime_ns, ino, dev)`` the file must still have.
            asked: The caller asked the stat cache about this file (``resolve_cached``)
                and got no answer: read it without asking again.

        Raises:
            FileChangedError: The file changed while read, or differs from ``expect``.
            StorageError: It cannot be read.
        """
        ahead = self._take_ahead(path) if st is None and self._ahead else None
        if ahead is not None:
            st = ahead.before()  # stat taken by the reader just before it read
        elif st is None:
            st = _stat(path)
        if expect is not None and signature(st) != expect:
            raise FileChangedError(
                f"{path} changed after it was added with policy='immutable'; add it again or use policy='mutable'"
            )
        if store:
            self.objects.before_write()
        # a read-ahead file was checked against the stat cache with ``expect``,
        # which ``st`` equals here: no second lookup
        hit = self.cached(path, st) if not asked and (ahead is None or expect is None) else None
        if hit is not None and (not store or self.objects.has_file(hit.id)):
            self.n_cached += 1
            return hit
        self.n_read += 1
        self.bytes_read += st.st_size
        if ahead is not None:
            started, after, key = ahead.started, ahead.after, ahead.key
            fid = self._store_ahead(ahead, store)
        else:
            key = None
            started = time.time_ns()
            self._start_ahead(path)
            fid = self._read_and_hash(path, st, store)
            after = _stat(path)
        if signature(after) != signature(st):
            raise FileChangedError(f"{path} changed while cas was reading it; retry when it is stable")
        ref = FileRef(fid, st.st_size, is_executable(st))
        if self.progress is not None:
            self.progress(self.n_read + self.n_cached, None, self.bytes_read)
        if st.st_mtime_ns + RACY_NS <= started and st.st_ctime_ns + RACY_NS <= started:
            self._stat_updates[key or stat_key(path)] = StatEntry(
                st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, started, ref.executable, fid
            )
        return ref

    def _read_and_hash(self, path: str, st: os.stat_result, store: bool) -> bytes:
        size = st.st_size
        try:
            with open(path, "rb") as f:
                if size == 0:
                    return self._finish([], store)
                if size <= READ_ALL_LIMIT:
                    buf = f.read()
                    if len(buf) != size:
                        raise FileChangedError(f"{path} changed size while cas was reading it")
                    return self._chunks(memoryview(buf), store)
                return self._stream(f, store)
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from exc

    # read-ahead -------------------------------------------------------------------
    @contextlib.contextmanager
    def reading_ahead(self, files: Iterable[tuple[str, tuple]], unresolved: bool = False):
        """Read, cut and hash small files ahead in a thread pool while the block runs.

        Args:
            files: ``(path, signature)`` in the order ``file`` will be called for
                them (with ``st=None``). Read-ahead starts after the first file the
                stat cache does not answer and skips files that are empty, large or
                answered by the stat cache. A call out of this order reads
                synchronously, so the order only matters for speed.
            unresolved: The caller already asked the stat cache about every file
                (``resolve_cached``) and passes only those it did not answer.

        ``files`` may yield None for "none known yet" (a source that resolves
        files in bounded batches): filling stops and resumes when the next
        read-ahead file is taken, or at the next file read without one.

        At most PREFETCH_FILES files and PREFETCH_BYTES bytes are held ahead. The
        reader stats each file before and after reading it, exactly as ``file``
        does, so the change checks and the racy rule are unchanged.
        """
        self._ahead_todo = iter(files)
        self._ahead_unresolved = unresolved
        try:
            yield
        finally:
            for _p, fut, _i, _n in self._ahead:
                fut.cancel()
            self._ahead.clear()
            self._ahead_bytes = 0
            self._ahead_todo = None
            if self._ahead_pool is not None:
                self._ahead_pool.shutdown(wait=True)
                self._ahead_pool = None

    def _start_ahead(self, path: str) -> None:
        """On the first cache miss, skip the read-ahead list past ``path`` and fill it."""
        todo = self._ahead_todo
        if todo is None or self._ahead:
            return
        for item in todo:
            if item is None or item[0] == path:  # None: the source has nothing ready yet
                break
        self._fill_ahead()

    def _fill_ahead(self) -> None:
        todo = self._ahead_todo
        batch: list = []
        batch_bytes = 0
        while todo is not None and len(self._ahead) + len(batch) < PREFETCH_FILES \
                and self._ahead_bytes + batch_bytes < PREFETCH_BYTES:
            nxt = next(todo, _END)
            if nxt is _END:
                self._ahead_todo = todo = None
                break
            if nxt is None:  # nothing ready yet: asked again when a file is taken
                break
            path, sig = nxt
            size = sig[0]
            if not 0 < size <= READ_ALL_LIMIT or (
                    not self._ahead_unresolved and self._cache_entry(path, sig) is not None):
                continue
            batch.append((path, size))
            batch_bytes += size
            if len(batch) >= PREFETCH_BATCH_FILES or batch_bytes >= PREFETCH_BATCH_BYTES:
                self._submit_ahead(batch, batch_bytes)
                batch, batch_bytes = [], 0
        if batch:
            self._submit_ahead(batch, batch_bytes)

    def _submit_ahead(self, batch: list, nbytes: int) -> None:
        if self._ahead_pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._ahead_pool = ThreadPoolExecutor(PREFETCH_THREADS, thread_name_prefix="cas-read")
        fut = self._ahead_pool.submit(_read_ahead_batch, [p for p, _n in batch], self.chunker)
        self._ahead.extend((p, fut, i, n) for i, (p, n) in enumerate(batch))
        self._ahead_bytes += nbytes

    def _take_ahead(self, path: str) -> "_Ahead | None":
        """Return the read-ahead result for ``path`` if it is next, else None."""
        if self._ahead[0][0] != path:
            return None
        _p, fut, i, size = self._ahead.popleft()
        self._ahead_bytes -= size
        ahead = fut.result()[i]
        if len(self._ahead) <= PREFETCH_FILES // 2:
            self._fill_ahead()
        return ahead

    def _store_ahead(self, ahead: "_Ahead", store: bool) -> bytes:
        if ahead.error is not None:
            raise ahead.error
        if store:
            put = self.objects.put
            mv = memoryview(ahead.data)
            for cid, off, n in ahead.chunks:
                put(cid, KIND_CHUNK, mv[off : off + n])
            for nid, enc in ahead.nodes:
                put(nid, KIND_FILE_NODE, enc)
        return ahead.root

    def _chunks(self, mv: memoryview, store: bool) -> bytes:
        chunks: list = []
        self._emit(mv, self.chunker.cut(mv), chunks, store)
        return self._finish(chunks, store)

    def _emit(self, mv: memoryview, cuts, chunks: list, store: bool) -> None:
        put = self.objects.put
        for off, n in cuts:
            piece = mv[off : off + n]
            cid = chunk_id(piece)
            if store:
                put(cid, KIND_CHUNK, piece)
            chunks.append((cid, n))

    def _stream(self, f, store: bool) -> bytes:
        """Chunk a large file through fixed-size buffers, so memory stays bounded.

        All chunks of a buffer but the last are final: a FastCDC cut depends
        only on bytes from the chunk's start. The last one is carried over and
        cut again with the following bytes. Each buffer is new (never reused),
        because the object store may still be compressing chunks of the
        previous one; ``ObjectStore.put`` bounds how many are queued.
        """
        size = READ_BLOCK + self.chunker.params.max_size
        buf = bytearray(size)
        have = 0
        chunks: list = []
        while True:
            view = memoryview(buf)
            n = f.readinto(view[have:])
            have += n
            if n == 0:
                self._emit(view, self.chunker.cut(view[:have]), chunks, store)
                return self._finish(chunks, store)
            if have < size:
                continue  # short read: fill the buffer before cutting
            cuts = self.chunker.cut(view)
            self._emit(view, cuts[:-1], chunks, store)
            off, ln = cuts[-1]
            nxt = bytearray(size)
            nxt[:ln] = view[off : off + ln]
            buf, have = nxt, ln

    def _finish(self, chunks: list, store: bool) -> bytes:
        root, nodes = build_file_nodes(chunks)
        if store:
            for nid, enc in nodes:
                self.objects.put(nid, KIND_FILE_NODE, enc)
        return root

    def bytes_(self, data: bytes) -> FileRef:
        """Store in-memory bytes as a file; return its FileRef."""
        return FileRef(self._chunks(memoryview(data), True), len(data), False)

    @property
    def stat_pending(self) -> int:
        """Stat-cache records waiting for ``commit_stat_cache``."""
        return len(self._stat_updates)

    def commit_stat_cache(self) -> None:
        """Write the batched stat-cache and listing records in one transaction."""
        if not self._stat_updates and not self._listing_updates:
            return
        with self.db.write() as txn:
            t = Tables(self.db, txn)
            for k, e in self._stat_updates.items():
                t.put_stat(k, e)
            for k, rec in self._listing_updates.items():
                t.put_listing(k, rec)
        self._stat_updates.clear()
        self._listing_updates.clear()
        self.objects.refresh()


class _Ahead:
    """A small file read, cut and hashed by a read-ahead thread."""

    __slots__ = ("st", "started", "after", "data", "chunks", "root", "nodes", "error", "key")

    def before(self) -> os.stat_result:
        if self.st is None:
            raise self.error
        return self.st


def _read_ahead_batch(paths: list[str], chunker: Chunker) -> list[_Ahead]:
    """Read, cut and hash a batch of small files, in order.

    Every file of the batch is opened and announced to the kernel
    (``POSIX_FADV_WILLNEED``) before the first is read, so a cold batch is
    fetched with many reads in flight instead of one file's latency at a time.
    """
    opened: list = []
    try:
        for p in paths:
            try:
                fd = os.open(p, _O_READ)
            except OSError as exc:
                opened.append(exc)
                continue
            opened.append(fd)
            if _WILLNEED is not None:
                try:
                    os.posix_fadvise(fd, 0, 0, _WILLNEED)
                except OSError:  # a FIFO swapped in, or a file system without it: read plainly
                    pass
        out = []
        for i, p in enumerate(paths):
            fd = opened[i]
            opened[i] = None
            out.append(_read_ahead(p, fd, chunker))
        return out
    finally:
        for fd in opened:
            if isinstance(fd, int):
                os.close(fd)


def _read_ahead(path: str, fd, chunker: Chunker) -> _Ahead:
    """Read, cut and hash one small file from ``fd`` (or its open error): fstat, one read, fstat, close."""
    a = _Ahead()
    a.st = a.after = a.data = a.root = None
    a.chunks = a.nodes = ()
    a.error = a.key = None
    if isinstance(fd, FileNotFoundError):
        a.error = UsageError(f"{path} does not exist")
        return a
    if isinstance(fd, OSError):
        a.error = StorageError(f"cannot read {path}: {fd.strerror}")
        return a
    try:
        a.st = st = os.fstat(fd)
        if not statmod.S_ISREG(st.st_mode):
            a.error = FileChangedError(f"{path} is no longer a regular file; add it again")
            return a
        a.started = time.time_ns()
        # one byte more than the size: a file that grew reads longer
        a.data = os.read(fd, st.st_size + 1)
        a.after = os.fstat(fd)
    except OSError as exc:
        a.error = StorageError(f"cannot read {path}: {exc.strerror}")
        return a
    finally:
        os.close(fd)
    if len(a.data) != st.st_size:
        a.error = FileChangedError(f"{path} changed size while cas was reading it")
        return a
    mv = memoryview(a.data)
    a.chunks = [(chunk_id(mv[o : o + n]), o, n) for o, n in chunker.cut(mv)]
    a.root, a.nodes = build_file_nodes([(c, n) for c, _o, n in a.chunks])
    a.key = stat_key(path)
    return a


def _stat(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist") from None
    except OSError as exc:
        raise StorageError(f"cannot stat {path}: {exc.strerror}") from exc


def signature(st: os.stat_result) -> tuple:
    """Return the stat fields that must stay equal for a file to count as unchanged."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def walk_files(root: str, symlinks: bool = False) -> Iterator[tuple[str, str, os.stat_result]]:
    """Yield ``(relative posix path, absolute path, lstat)`` of regular files under ``root``.

    Traversal uses ``os.scandir`` and never follows a symlink; symlinks
    themselves are yielded only if ``symlinks`` is True.
    """
    stack = [("", root)]
    while stack:
        rel, absdir = stack.pop()
        try:
            entries = list(os.scandir(absdir))
        except OSError as exc:
            raise StorageError(f"cannot list {absdir}: {exc.strerror}") from exc
        for e in entries:
            r = rel + e.name
            if e.is_symlink():
                if symlinks:
                    yield r, e.path, e.stat(follow_symlinks=False)
            elif e.is_dir(follow_symlinks=False):
                stack.append((r + "/", e.path))
            elif e.is_file(follow_symlinks=False):
                yield r, e.path, e.stat(follow_symlinks=False)
