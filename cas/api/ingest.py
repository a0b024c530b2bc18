"""Files -> chunks -> objects -> file ids, with the stat cache as the fast path.

``FileIngester`` reads a file once: cut by the chunker, hash each chunk, store
new chunks (or only hash, when computing a digest), then build the file node.
A stat-cache hit (same device, inode, size, mtime_ns, ctime_ns, and a record
taken well after the last modification) skips reading entirely.
"""

from __future__ import annotations

import os
import stat as statmod
import time
from typing import Iterator

from cas.api.drafttree import FileRef
from cas.errors import FileChangedError, StorageError, UsageError
from cas.format.chunker import Chunker
from cas.format.digest import chunk_id
from cas.format.nodes import build_file_nodes
from cas.format.pack import KIND_CHUNK, KIND_FILE_NODE
from cas.index.tables import StatEntry, Tables

# A file modified less than this before it was hashed may change again within
# the timestamp granularity without its stat changing ("racy" git): never trusted.
RACY_NS = 2_000_000_000
READ_ALL_LIMIT = 4 * 1024 * 1024
READ_BLOCK = 8 * 1024 * 1024


def stat_key(path: str) -> bytes:
    """Return the stat-cache key of an absolute path (fixed width for LMDB)."""
    return chunk_id(os.fsencode(path))


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
        self.n_read = 0
        self.bytes_read = 0
        self.n_cached = 0
        self.progress = None  # called as progress(files done, None, bytes read) when set

    def cached(self, path: str, st: os.stat_result) -> FileRef | None:
        """Return the stat-cache answer for an unchanged file, else None."""
        key = stat_key(path)
        e = self._stat_updates.get(key) or self.objects._tables().get_stat(key)
        if (
            e is None
            or e.size != st.st_size
            or e.mtime_ns != st.st_mtime_ns
            or e.ctime_ns != st.st_ctime_ns
            or e.ino != st.st_ino
            or e.dev != st.st_dev
            or st.st_mtime_ns + RACY_NS > e.recorded_ns
            or st.st_ctime_ns + RACY_NS > e.recorded_ns
        ):
            return None
        return FileRef(e.file_id, e.size, is_executable(st))

    def file(self, path: str, store: bool = True, st: os.stat_result | None = None,
             expect: tuple | None = None) -> FileRef:
        """Return the FileRef of a local file, storing its objects if ``store``.

        Args:
            path: Absolute path of a regular file.
            store: Write chunks and nodes; False only hashes.
            st: The file's stat if already known.
            expect: ``(size, mtime_ns, ctime_ns, ino, dev)`` the file must still have.

        Raises:
            FileChangedError: The file changed while read, or differs from ``expect``.
            StorageError: It cannot be read.
        """
        if st is None:
            st = _stat(path)
        if expect is not None and signature(st) != expect:
            raise FileChangedError(
                f"{path} changed after it was added with policy='immutable'; add it again or use policy='mutable'"
            )
        if store:
            self.objects.before_write()
        hit = self.cached(path, st)
        if hit is not None and (not store or self.objects.has_file(hit.id)):
            self.n_cached += 1
            return hit
        started = time.time_ns()
        fid = self._read_and_hash(path, st, store)
        after = _stat(path)
        if signature(after) != signature(st):
            raise FileChangedError(f"{path} changed while cas was reading it; retry when it is stable")
        ref = FileRef(fid, st.st_size, is_executable(st))
        if self.progress is not None:
            self.progress(self.n_read + self.n_cached, None, self.bytes_read)
        if st.st_mtime_ns + RACY_NS <= started and st.st_ctime_ns + RACY_NS <= started:
            self._stat_updates[stat_key(path)] = StatEntry(
                st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, started, ref.executable, fid
            )
        return ref

    def _read_and_hash(self, path: str, st: os.stat_result, store: bool) -> bytes:
        size = st.st_size
        self.n_read += 1
        self.bytes_read += size
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

    def commit_stat_cache(self) -> None:
        """Write the batched stat-cache records in one transaction."""
        if not self._stat_updates:
            return
        with self.db.write() as txn:
            t = Tables(self.db, txn)
            for k, e in self._stat_updates.items():
                t.put_stat(k, e)
        self._stat_updates.clear()
        self.objects.refresh()


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
