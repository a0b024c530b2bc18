"""``add_dir`` at any scale: a directory's file list spilled to disk, built into trees as a stream.

``DirListing.scan`` walks a local directory once, depth first in tree order
(each directory's entries sorted by name bytes, as tree nodes sort them), and
writes one fixed-layout record per regular file (its logical path below the
directory and its stat signature) to an unlinked temporary file in the
store's ``tmp`` directory. The walk holds only the listings of the
directories on its current path, so memory is bounded by the largest single
directory, not by the number of files.

``build_listing`` reads those records back in order and stores (or only
hashes) the files, building each tree node bottom-up as soon as its directory
is complete: again only the directories on the current path are in memory.
The stat cache answers unchanged files in bounded batches, small files are
read ahead from a second, independent reader of the same records, and
stat-cache records and queued objects are flushed in bounded batches too.

A listing is a snapshot: files created after the scan are not part of it,
and with policy='immutable' a file that changed or vanished since the scan
fails the log with the error ``FileIngester.file`` gives it, naming the file.
"""

from __future__ import annotations

import math
import os
import stat as statmod
import struct
import weakref
from collections import deque
from itertools import islice
from typing import Callable, Iterator

from cas.api.drafttree import FileRef, PendingFile
from cas.errors import StorageError
from cas.format.digest import blake3_hasher
from cas.format.names import MAX_PATH, MAX_SEGMENT, check_path
from cas.format.nodes import KIND_FILE, KIND_TREE, TreeEntry, encode_tree_node, tree_id

# size, mtime_ns, ctime_ns, ino, dev, executable, length of the UTF-8 path that follows
_REC = struct.Struct("<QqqQQBH")
READ_BLOCK = 1 << 16  # bytes of records read at a time
WINDOW = 4096  # files answered from the stat cache per batch
WORKERS_AFTER = 1024  # files a scan finds before it starts worker processes (also cas.api.sharded.MIN_FILES)
WINDOWS_AHEAD = 2  # windows the read-ahead may resolve beyond the one being built
FLUSH_OBJECTS = 50_000  # queued objects before a mid-build flush (about 20 MiB of pack entries)
STAT_BATCH = 20_000  # stat-cache records before a mid-build commit (about 7 MiB)
# Pages one index write transaction may change (LMDB copies each into memory until the
# commit): keys are random, so k new keys touch about P(1 - e^(-k/P)) of a table's P pages.
DIRTY_PAGES = 16_384  # 64 MiB


def batch_limit(pages: int, most: int) -> int:
    """The most random keys one transaction may add to a table of ``pages`` pages within DIRTY_PAGES."""
    if pages <= DIRTY_PAGES:
        return most
    return max(1000, min(most, int(-pages * math.log1p(-DIRTY_PAGES / pages))))


class DirListing:
    """The regular files under a local directory as ``scan`` found them (symlinks are skipped)."""

    def __init__(self, root: str, prefix: str, policy: str, f, count: int, size: int,
                 digest: bytes, newest_ns: int) -> None:
        self.root = root  # absolute local directory
        self.prefix = prefix  # logical directory it was added under: '' or 'a/b/'
        self.policy = policy
        self.count = count
        self.size = size
        self.digest = digest  # BLAKE3 of every record, in order: equal digests, equal stat signatures
        self.newest_ns = newest_ns  # the largest mtime_ns or ctime_ns of any file
        self.workers = None  # worker processes started during the scan (cas.api.sharded.Workers)
        self._f = f
        self._closer = weakref.finalize(self, f.close)  # the file goes with the listing

    @classmethod
    def scan(cls, root: str, prefix: str, policy: str, tmp_dir: str, on_many=None,
             many: int = 0) -> "DirListing":
        """Walk ``root`` and spill its files' records.

        Args:
            on_many: Called with the spill file's descriptor once ``many`` files are
                found (to start worker processes while the walk goes on); what it
                returns becomes the listing's ``workers``.

        Raises:
            UnsafePath: A file's logical path ``prefix + relative path`` is invalid.
            StorageError: A directory cannot be listed or a file cannot be stat'ed.
        """
        import tempfile

        try:
            f = tempfile.TemporaryFile(dir=tmp_dir if os.path.isdir(tmp_dir) else None)
        except OSError as exc:
            raise StorageError(f"cannot create a temporary file in {tmp_dir}: {exc.strerror}") from exc
        count = size = newest = 0
        workers = None
        hasher = blake3_hasher()
        buf = bytearray()
        pack = _REC.pack
        room = MAX_PATH - len(prefix.encode("utf-8"))
        try:
            for rel, st in _walk(root, b"", prefix):
                if len(rel) > room:
                    check_path(prefix + rel.decode("utf-8"))  # raises: too long
                buf += pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev,
                            1 if st.st_mode & statmod.S_IXUSR else 0, len(rel))
                buf += rel
                count += 1
                size += st.st_size
                newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
                if count == many and on_many is not None:
                    workers = on_many(f.fileno())
                if len(buf) >= READ_BLOCK:
                    hasher.update(buf)
                    f.write(buf)
                    buf.clear()
            hasher.update(buf)
            f.write(buf)
            f.flush()
        except OSError as exc:
            _discard(workers)
            f.close()
            raise StorageError(f"cannot write the file list of {root} to {tmp_dir}: {exc.strerror}") from exc
        except BaseException:
            _discard(workers)
            f.close()
            raise
        listing = cls(root, prefix, policy, f, count, size, hasher.digest(), newest)
        listing.workers = workers
        return listing

    def fileno(self) -> int:
        """The descriptor of the spilled records (a worker process reads them through it)."""
        return self._f.fileno()

    def close(self) -> None:
        """Delete the spilled records (the temporary file is unlinked already); stop unused workers."""
        _discard(self.workers)
        self.workers = None
        self._closer()

    def records(self) -> Iterator[tuple[str, PendingFile]]:
        """Yield ``(path below the directory, PendingFile)`` in tree order; readers are independent."""
        base = self.root if self.root.endswith(os.sep) else self.root + os.sep
        sep = None if os.sep == "/" else os.sep
        for size, mtime, ctime, ino, dev, x, rel in self._raw():
            local = base + (rel if sep is None else rel.replace("/", sep))
            yield rel, PendingFile(local, size, mtime, ctime, ino, dev, bool(x))

    def path_signatures(self) -> Iterator[tuple[str, tuple]]:
        """Yield ``(local path, signature)`` in the order of ``records`` (for read-ahead)."""
        for _rel, e in self.records():
            yield e.local_path, e.signature

    def unchanged(self) -> bool:
        """True if every file still has the stat signature the scan recorded (one ``stat`` each)."""
        base = self.root if self.root.endswith(os.sep) else self.root + os.sep
        sep = None if os.sep == "/" else os.sep
        stat = os.stat
        for size, mtime, ctime, ino, dev, _x, rel in self._raw():
            try:
                st = stat(base + (rel if sep is None else rel.replace("/", sep)))
            except OSError:
                return False
            if (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev) != (size, mtime, ctime, ino, dev):
                return False
        return True

    def contains(self, rel: str) -> bool:
        """True if the scan found a file at ``rel`` (a linear read of the records)."""
        return any(r[6] == rel for r in self._raw())

    def _raw(self) -> Iterator[tuple]:
        fd = self._f.fileno()
        unpack, hsize = _REC.unpack_from, _REC.size
        low = hsize + MAX_PATH  # a whole record is always buffered above this
        off, buf, pos, eof = 0, b"", 0, False
        while True:
            if not eof and len(buf) - pos < low:
                more = os.pread(fd, READ_BLOCK, off)
                off += len(more)
                eof = not more
                buf = buf[pos:] + more
                pos = 0
            if pos + hsize > len(buf):
                return
            *fields, n = unpack(buf, pos)
            pos += hsize
            fields.append(buf[pos:pos + n].decode("utf-8"))
            pos += n
            yield fields


def _discard(workers) -> None:
    if workers is not None:
        workers.discard()


def _walk(absdir: str, rel: bytes, prefix: str, bad: bool = False) -> Iterator[tuple[bytes, os.stat_result]]:
    """Yield ``(relative path as UTF-8, lstat)`` of regular files under ``absdir`` in tree order.

    Names are checked once each; ``bad`` marks a directory whose own path is
    not a valid logical path, which fails only once a file below it is found.

    Raises:
        UnsafePath: A file's logical path ``prefix`` + its relative path is invalid.
    """
    try:
        with os.scandir(absdir) as it:
            named = sorted(((e.name.encode("utf-8", "surrogatepass"), e) for e in it), key=_first)
    except OSError as exc:
        raise StorageError(f"cannot list {absdir}: {exc.strerror}") from exc
    for key, e in named:
        try:
            if e.is_symlink():
                continue
            unsafe = bad or not _safe_name(e.name, key)
            if e.is_dir(follow_symlinks=False):
                yield from _walk(e.path, rel + key + b"/", prefix, unsafe)
            elif e.is_file(follow_symlinks=False):
                if unsafe:
                    check_path(prefix + (rel + key).decode("utf-8", "surrogatepass"))  # raises
                yield rel + key, e.stat(follow_symlinks=False)
        except OSError as exc:
            raise StorageError(f"cannot stat {e.path}: {exc.strerror}") from exc


def _safe_name(name: str, encoded: bytes) -> bool:
    """True if a directory entry's name is a valid path segment (``check_path``'s rules for one name)."""
    if b"\\" in encoded or len(encoded) > MAX_SEGMENT:
        return False
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in the name (surrogate escapes)
        return False
    return True


def _first(item: tuple) -> bytes:
    return item[0]


class TreeBuilder:
    """Build tree nodes bottom-up from files given in tree order (depth first, contiguous directories).

    Holds the entries of the directories on the current path only. A directory
    with no files below it gets no node, as in a tree built from a draft.
    """

    def __init__(self, put_tree: Callable[[bytes, bytes], None] | None) -> None:
        self._put = put_tree
        self._names: list[str] = []  # the open directories below the root
        self._entries: list[list[TreeEntry]] = [[]]  # root first

    def add(self, rel: str, ref: FileRef) -> None:
        """Add the file at ``rel`` (relative to the root being built)."""
        *dirs, name = rel.split("/")
        names = self._names
        i = 0
        while i < len(names) and i < len(dirs) and names[i] == dirs[i]:
            i += 1
        while len(names) > i:
            self._close()
        for d in dirs[i:]:
            names.append(d)
            self._entries.append([])
        self._entries[-1].append(TreeEntry(name, KIND_FILE, ref.id, ref.size, 1 if ref.executable else 0))

    def _close(self) -> None:
        name = self._names.pop()
        node = self._node(self._entries.pop())
        self._entries[-1].append(TreeEntry(name, KIND_TREE, node.id, node.size, node.aux))

    def _node(self, entries: list[TreeEntry]) -> TreeEntry:
        data = encode_tree_node(entries)
        tid = tree_id(data)
        if self._put is not None:
            self._put(tid, data)
        return TreeEntry("", KIND_TREE, tid, sum(e.size for e in entries), sum(e.n_files for e in entries))

    def finish(self) -> TreeEntry:
        """Close every open directory and return the root's entry (``aux`` = number of files)."""
        while self._names:
            self._close()
        return self._node(self._entries[0])


class _Resolved:
    """A listing's records, answered from the stat cache a window at a time, for the build and the read-ahead.

    Both consumers take windows from one queue, so every file is looked up
    once. The read-ahead runs at most ``WINDOWS_AHEAD`` windows beyond the one
    being built; past that it yields None ("none known yet") until the build
    catches up, so memory stays bounded when changed files are sparse.
    """

    def __init__(self, records: Iterator[tuple[str, PendingFile]], ingester) -> None:
        self._records = records
        self._ingester = ingester
        self._windows: deque = deque()  # resolved windows, the one being built first
        self._first = 0  # number of windows[0]
        self._pos = 0  # index of the file being built in windows[0]
        self._done = False

    def _resolve_next(self) -> bool:
        batch = list(islice(self._records, WINDOW))
        if not batch:
            self._done = True
            return False
        known = self._ingester.resolve_cached(e for _rel, e in batch)
        self._windows.append([(rel, e, known.get((e.local_path, e.signature))) for rel, e in batch])
        return True

    def files(self) -> Iterator[tuple[str, PendingFile, FileRef | None]]:
        """Yield ``(path, PendingFile, stat-cache answer or None)`` in tree order."""
        while self._windows or self._resolve_next():
            window = self._windows[0]
            for i, item in enumerate(window):
                self._pos = i
                yield item
            self._windows.popleft()
            self._first += 1
            self._pos = 0

    def unanswered(self) -> Iterator[tuple[str, tuple] | None]:
        """Yield ``(local path, signature)`` of the files the stat cache did not answer, in build order."""
        wno, i = 0, 0
        while True:
            if (wno, i) < (self._first, self._pos):  # never behind the build
                wno, i = self._first, self._pos
            k = wno - self._first
            if k >= len(self._windows):
                if self._done:
                    return
                if k > WINDOWS_AHEAD:
                    yield None
                    continue
                self._resolve_next()
                continue
            window = self._windows[k]
            if i >= len(window):
                wno, i = wno + 1, 0
                continue
            _rel, e, ref = window[i]
            i += 1
            if ref is None:
                yield e.local_path, e.signature


def build_listing(listing: DirListing, ingester, objects, put_tree: Callable[[bytes, bytes], None] | None,
                  store: bool = True) -> TreeEntry:
    """Store (or with ``store`` False only hash) a listing's files; return its root tree entry.

    With policy='immutable' every file must still have the signature it had
    when scanned; a 'mutable' listing reads each file as it is now.

    Raises:
        FileChangedError: An immutable file changed since the scan, or any file while read.
        UsageError: A file vanished.
        StorageError: A file cannot be read.
    """
    expect = listing.policy == "immutable"
    b = TreeBuilder(put_tree)
    if not store:
        for rel, e in listing.records():
            b.add(rel, ingester.file(e.local_path, store=False, expect=e.signature if expect else None))
        return b.finish()
    if put_tree is not None:
        started, gcs = ingester.listing_start()
        hit = ingester.cached_listing(listing.root, listing.digest, listing.newest_ns)
        if hit is not None and (not expect or listing.unchanged()):
            tid, size, n_files = hit
            ingester.n_cached += listing.count
            _discard(listing.workers)
            listing.workers = None
            return TreeEntry("", KIND_TREE, tid, size, n_files)

    from cas.api import sharded  # only for a directory that is built (not for a no-op)

    workers, listing.workers = listing.workers, None
    if workers is None and sharded.worth_sharding(listing.count):
        workers = sharded.Workers.try_start(listing.fileno(), listing.root, listing.prefix, listing.policy,
                                            objects.layout.root)
    if workers is not None:
        sharded.build(listing, ingester, objects, b, workers)
    else:
        for rel, ref in store_records(listing.records(), ingester, objects, expect):
            b.add(rel, ref)
    root = b.finish()
    if put_tree is not None:
        ingester.record_listing(listing.root, listing.digest, listing.newest_ns, started, gcs,
                                root.id, root.size, root.aux)
    return root


def store_records(records: Iterator, ingester, objects, expect: bool) -> Iterator[tuple[str, FileRef]]:
    """Store ``(rel, PendingFile)`` records in order; yield ``(rel, FileRef)`` of each."""
    stream = _Resolved(records, ingester)
    n = 0
    with ingester.reading_ahead(stream.unanswered(), unresolved=True):
        for rel, e, ref in stream.files():
            if ref is None:
                ref = ingester.file(e.local_path, store=True, expect=e.signature if expect else None, asked=True)
            yield rel, ref
            n += 1
            if n % WINDOW == 0:
                _flush_bounded(ingester, objects)


def _flush_bounded(ingester, objects) -> None:
    """Flush queued objects and stat-cache records once a batch would dirty too many index pages."""
    if objects.queued() >= batch_limit(objects.index_pages("objects"), FLUSH_OBJECTS):
        objects.flush()
    if ingester.stat_pending >= batch_limit(objects.index_pages("statcache"), STAT_BATCH):
        ingester.commit_stat_cache()
