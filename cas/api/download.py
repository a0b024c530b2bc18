"""Version -> files on disk: download (with overwrite strategies) and checkout.

Every file is written to a temporary file beside its target, each chunk
verified against its id on read, then renamed into place. Directories are
created one component at a time with ``lstat`` checks, so a symlink inside
the root is never followed out of it. Reading and verifying run in one
thread, writing in another (docs/decisions.md, "Restore pipeline").
"""

from __future__ import annotations

import os
import queue
import shutil
import stat as statmod
import threading
import uuid

from cas.api.fetch import Fetcher
from cas.api.ingest import walk_files
from cas.api.walk import iter_files
from cas.errors import CasError, DownloadConflict, ReferenceChanged, ReferenceMissing, StorageError, UsageError
from cas.format.nodes import KIND_REFERENCE, KIND_TREE
from cas.format.pack import KIND_CHUNK

STRATEGIES = ("FAIL", "PRESERVE", "OVERWRITE")
PROTECTED = ".cas"  # a store directory inside a checkout root is never removed
LARGE_FILE = 4 << 20  # files this big are streamed in segments, smaller ones are batched
BATCH_BYTES = 4 << 20  # raw bytes of small files read per batch
BATCH_FILES = 512  # small files per batch at most
QUEUE_DEPTH = 2  # batches waiting per writing thread
WRITERS = 2  # threads creating files: file creation is kernel time that overlaps on two cores
IOV_MAX = 1024  # buffers per writev (the Linux limit)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _same_file(ingester, path: str, entry, refs=None) -> bool:
    """True if the regular file at ``path`` has the entry's content.

    For a reference whose checksum cannot be computed locally (an ETag, a
    CRC32C, none), a file of the recorded size counts as the same.
    """
    st = os.lstat(path)
    if not statmod.S_ISREG(st.st_mode):
        return False
    if entry.kind == KIND_REFERENCE:
        return refs.check_local(entry.aux, path, st) is not False
    if st.st_size != entry.size:
        return False
    return ingester.file(path, store=False, st=st).id == entry.id


def _ensure_dirs(root: str, rel_dir: str, replace: bool) -> str:
    """Create ``root/rel_dir`` component by component without following symlinks.

    Args:
        replace: Replace a symlink or file standing where a directory must be;
            otherwise raise.
    """
    cur = root
    if not rel_dir:
        return cur
    for seg in rel_dir.split("/"):
        cur = os.path.join(cur, seg)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            try:
                os.mkdir(cur)
                continue
            except FileExistsError:  # made meanwhile (by another writer thread): check what it is
                st = os.lstat(cur)
        if statmod.S_ISDIR(st.st_mode):
            continue
        if not replace:
            kind = "a symlink" if statmod.S_ISLNK(st.st_mode) else "a file"
            raise DownloadConflict(root, [os.path.relpath(cur, root) + f" ({kind} where a directory belongs)"])
        os.unlink(cur)
        os.mkdir(cur)
    return cur


def _blocked_parent(root: str, path: str) -> bool:
    """True if a parent of ``path`` under root exists but is not a real directory."""
    cur = root
    for seg in path.split("/")[:-1]:
        cur = os.path.join(cur, seg)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            return False
        if not statmod.S_ISDIR(st.st_mode):
            return True
    return False


def _make_root(root: str) -> bool:
    """Create the target directory; refuse a path that is not a directory.

    Returns:
        True if ``root`` is new or empty (nothing in it can conflict).
    """
    try:
        os.mkdir(root)
        return True
    except FileExistsError:
        if not os.path.isdir(root):
            raise UsageError(f"{root} exists and is not a directory; choose another target") from None
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StorageError(f"cannot create {root}: {exc.strerror}") from exc
    try:
        os.makedirs(root, exist_ok=True)
        with os.scandir(root) as it:
            return next(it, None) is None
    except FileExistsError:
        raise UsageError(f"{root} exists and is not a directory; choose another target") from None
    except OSError as exc:
        raise StorageError(f"cannot create {root}: {exc.strerror}") from exc


def _write_all(fd: int, bufs) -> None:
    """Write all of ``bufs`` to ``fd`` with as few system calls as possible."""
    for i in range(0, len(bufs), IOV_MAX):
        part = bufs[i:i + IOV_MAX]
        left = sum(len(b) for b in part) - os.writev(fd, part)
        if left:  # a short write (rare on local files): finish with plain writes
            tail = memoryview(b"".join(bytes(b) for b in part))[-left:]
            while tail:
                tail = tail[os.write(fd, tail):]


class _FileWriter:
    """Write files under ``root`` through temporary names, one at a time."""

    def __init__(self, root: str, replace_parents: bool, tag: int = 0) -> None:
        self.root = root
        self.replace_parents = replace_parents
        self.dirs: dict[str, str] = {}  # logical dir -> absolute dir already made in this run
        mask = os.umask(0o022)
        os.umask(mask)
        self.fix_mode = bool(mask & 0o755)  # modes must be exactly 0644/0755 whatever the umask
        self.prefix = f".cas-tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}-{tag}-"
        self.n = 0
        self.fd: int | None = None
        self.tmp: str | None = None
        self.target = root
        self.mode = 0o644

    def begin(self, path: str, entry) -> None:
        self._aim(path, entry)
        self.fd = os.open(self.tmp, _CREATE, self.mode)

    def _aim(self, path: str, entry) -> None:
        # ``path`` joins names that decode_tree_node checked one by one (check_segment)
        rel_dir, _, name = path.rpartition("/")
        parent = self.dirs.get(rel_dir)
        if parent is None:
            try:
                parent = _ensure_dirs(self.root, rel_dir, self.replace_parents)
            except OSError as exc:
                raise StorageError(f"cannot create the directory of {path} in {self.root}: {exc.strerror}") from exc
            if len(self.dirs) >= 4096:
                self.dirs.clear()
            self.dirs[rel_dir] = parent
        self.target = f"{parent}/{name}"
        self.mode = 0o755 if entry.executable else 0o644
        self.n += 1
        self.tmp = f"{parent}/{self.prefix}{self.n}"

    def write(self, bufs) -> None:
        _write_all(self.fd, bufs)

    def place(self, path: str, entry, fetched: "_Fetched") -> None:
        """Move a file the reading thread already wrote (a reference's copy) into place."""
        self._aim(path, entry)
        os.chmod(fetched.path, self.mode)
        self.tmp, fetched.path = fetched.path, None
        self.finish()

    def finish(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            if self.fix_mode:
                os.fchmod(fd, self.mode)
            os.close(fd)
        try:
            os.replace(self.tmp, self.target)
        except OSError:
            if not (os.path.isdir(self.target) and not os.path.islink(self.target)):
                raise
            shutil.rmtree(self.target)
            os.replace(self.tmp, self.target)
        self.tmp = None

    def abort(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass
            self.tmp = None


class _Fetched:
    """A temporary file in the root that the reading thread filled (a reference's copy)."""

    def __init__(self, path: str) -> None:
        self.path: str | None = path

    def discard(self) -> None:
        if self.path is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self.path = None


class _Stopped(Exception):
    """A writer gave up; the reading thread stops."""


def write_files(objects, root: str, items, where: str, replace_parents: bool, progress=None,
                total: int | None = None, writers: int | None = None, refs=None) -> tuple[int, list, list]:
    """Write ``(path, entry)`` items under ``root``; return the number written.

    A reading thread walks ``items``, reads the chunks of a batch of files with
    coalesced pack reads and verifies them; ``writers`` threads (this one and
    ``writers - 1`` more) each take whole batches and write every file to a
    temporary name beside its target, then rename it into place. At most
    ``QUEUE_DEPTH`` batches wait per writer, so memory stays bounded. All
    segments of one large file go to one writer, in order. On an error the
    file being written is removed; files already renamed stay. References are
    copied from their source by the reading thread (``refs``, a
    ReferenceClient, uses the index too) into a temporary file in ``root``.

    Returns:
        ``(files written, missing references [(path, uri)], ReferenceChanged errors)``;
        a missing or changed reference does not stop the other files.

    Raises:
        DigestMismatch, ObjectNotFound: Stored data is corrupt or missing (named
            with the file and version).
        StorageError: A file cannot be written.
    """
    writers = writers or WRITERS
    queues = [queue.Queue(maxsize=QUEUE_DEPTH) for _ in range(writers)]
    stop = threading.Event()
    errors: list[BaseException] = []
    counts = [0] * writers
    missing: list = []
    changed: list = []

    def put(i: int, item) -> None:
        while not stop.is_set():
            try:
                queues[i].put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def read_side() -> None:
        try:
            _produce(Fetcher(objects), items, where, put, queues, _RefFetcher(root, refs, missing, changed))
        except _Stopped:
            return
        except BaseException as exc:  # raised by the caller once the writers have drained
            errors.append(exc)
        try:
            for i in range(writers):
                put(i, None)
        except _Stopped:
            pass

    def write_side(i: int) -> None:
        w = _FileWriter(root, replace_parents, i)
        q = queues[i]
        try:
            while not stop.is_set():
                try:
                    ops = q.get(timeout=0.1)
                except queue.Empty:
                    continue
                if ops is None:
                    return
                for path, entry, bufs, first, last in ops:
                    if isinstance(bufs, _Fetched):
                        w.place(path, entry, bufs)
                        counts[i] += 1
                        continue
                    if first:
                        w.begin(path, entry)
                    if bufs:
                        w.write(bufs)
                    if last:
                        w.finish()
                        counts[i] += 1
                if progress and i == 0:
                    progress(sum(counts), total)
        except BaseException as exc:
            w.abort()
            if isinstance(exc, OSError):
                exc = StorageError(f"cannot write {w.target}: {exc.strerror or exc}")
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=read_side, name="cas-restore-read", daemon=True)]
    threads += [threading.Thread(target=write_side, args=(i,), name=f"cas-restore-write-{i}", daemon=True)
                for i in range(1, writers)]
    for t in threads:
        t.start()
    try:
        write_side(0)
    finally:
        for t in threads[1:]:
            t.join()
        stop.set()
        threads[0].join()
        for q in queues:  # reference copies nobody placed (after an error)
            while not q.empty():
                for op in q.get_nowait() or ():
                    if isinstance(op, tuple) and isinstance(op[2], _Fetched):
                        op[2].discard()
    if errors:
        raise errors[0]
    return sum(counts), missing, changed


class _RefFetcher:
    """Copy referenced objects into temporary files in the root (reading thread only)."""

    def __init__(self, root: str, refs, missing: list, changed: list) -> None:
        self.root = root
        self.refs = refs
        self.missing = missing
        self.changed = changed
        self.n = 0

    def __call__(self, path: str, entry) -> "_Fetched | None":
        self.n += 1
        tmp = os.path.join(self.root, f".cas-tmp-ref-{os.getpid()}-{uuid.uuid4().hex[:8]}-{self.n}")
        try:
            self.refs.fetch(entry.aux, tmp, path)
        except ReferenceMissing:
            self.missing.append((path, entry.aux.uri))
        except ReferenceChanged as exc:
            self.changed.append(exc)
        except BaseException:
            _Fetched(tmp).discard()
            raise
        else:
            return _Fetched(tmp)
        _Fetched(tmp).discard()
        return None


def _produce(fetcher, items, where: str, put, queues, fetch_ref) -> None:
    """Read side of ``write_files``: put lists of ``(path, entry, bufs, first, last)``.

    A batch goes to the writer with the shortest queue; all segments of a large
    file go to the same writer.
    """
    def pick() -> int:
        return min(range(len(queues)), key=lambda i: queues[i].qsize())

    batch: list = []
    size = 0
    for path, entry in items:
        if entry.kind == KIND_REFERENCE:
            fetched = fetch_ref(path, entry)
            if fetched is not None:
                try:
                    put(pick(), [(path, entry, fetched, True, True)])
                except BaseException:
                    fetched.discard()
                    raise
            continue
        if entry.size >= LARGE_FILE:
            if batch:
                _put_small(fetcher, batch, where, put, pick())
                batch, size = [], 0
            wf = f"{where} file {path}"
            i = pick()
            prev, first = None, True
            for bufs in fetcher.iter_segments(entry.id, wf):
                if prev is not None:
                    put(i, [(path, entry, prev, first, False)])
                    first = False
                prev = bufs
            put(i, [(path, entry, prev or [], first, True)])
            continue
        batch.append((path, entry))
        size += entry.size
        if size >= BATCH_BYTES or len(batch) >= BATCH_FILES:
            _put_small(fetcher, batch, where, put, pick())
            batch, size = [], 0
    if batch:
        _put_small(fetcher, batch, where, put, pick())


def _put_small(fetcher, batch, where: str, put, i: int) -> None:
    """Fetch and put a batch of small files; on an error put the files before the bad one."""
    try:
        ops = _small_ops(fetcher, batch, where)
    except CasError:
        if len(batch) == 1:
            raise
        for item in batch:  # one at a time: the good files before the bad one are written
            put(i, _small_ops(fetcher, [item], where))
        return
    put(i, ops)


def _small_ops(fetcher, batch, where: str) -> list:
    wheres = [f"{where} file {p}" for p, _e in batch]
    lists = fetcher.chunk_lists([(e.id, w) for (_p, e), w in zip(batch, wheres)])
    chunks = fetcher.fetch([(cid, KIND_CHUNK, w) for cl, w in zip(lists, wheres) for cid, _n in cl])
    return [(p, e, [chunks[cid] for cid, _n in cl], True, True) for (p, e), cl in zip(batch, lists)]


def download(objects, ingester, root_id: bytes, root: str, where: str, path_prefix: str = "",
             strategy: str = "FAIL", progress=None, refs=None, allow_missing_references: bool = False) -> int:
    """Write the files of a version (or those under ``path_prefix``) into ``root``.

    Existing identical files are left alone. With FAIL, nothing is written if
    any existing file differs; PRESERVE keeps differing files; OVERWRITE
    replaces them. Into a new or empty directory the files are streamed
    without any check; otherwise FAIL first walks the tree once to look for
    conflicts. Memory does not grow with the number of files. References are
    fetched from their source through ``refs`` (a ReferenceClient) and checked
    against their record; every other file is still written when some
    references are missing or changed.

    Returns:
        The number of files written.

    Raises:
        DownloadConflict: FAIL and some existing file differs.
        DigestMismatch, ObjectNotFound: Stored data is corrupt or missing; the
            file being written is not left behind.
        ReferenceChanged: A referenced object differs from its record (the first one).
        ReferenceMissing: Referenced objects are gone (all of them are named),
            unless ``allow_missing_references``.
        ReferenceUnreachable: A source cannot be reached.
    """
    strategy = (strategy or "FAIL").upper()
    if strategy not in STRATEGIES:
        raise UsageError(f"invalid overwrite_strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    fresh = _make_root(root)

    def files():
        return iter_files(objects, root_id, prefix=path_prefix, where=where)

    if fresh:
        total = None if path_prefix else sum(e.n_files for e in objects.get_tree(root_id, where))
        result = write_files(objects, root, files(), where, replace_parents=False, progress=progress, total=total,
                             refs=refs)
        return _finish(ingester, result, allow_missing_references)
    if strategy == "FAIL":
        conflicts = [p for p, e in files() if _differs(ingester, root, p, e, refs, missing=False)]
        if conflicts:
            raise DownloadConflict(root, conflicts)
    late: list[str] = []

    def wanted():
        for path, entry in files():
            if not _differs(ingester, root, path, entry, refs, missing=True):
                continue
            if strategy == "OVERWRITE" or not _exists(root, path):
                yield path, entry
            elif strategy == "FAIL":
                late.append(path)  # appeared since the check above: left alone

    result = write_files(objects, root, wanted(), where, replace_parents=strategy == "OVERWRITE", progress=progress,
                         refs=refs)
    n = _finish(ingester, result, allow_missing_references)
    if late:
        raise DownloadConflict(root, late)
    return n


def _finish(ingester, result, allow_missing_references: bool) -> int:
    """Save stat-cache records, then raise for changed or missing references."""
    n, missing, changed = result
    ingester.commit_stat_cache()
    if changed:
        raise changed[0]
    if missing and not allow_missing_references:
        raise ReferenceMissing(missing)
    return n


def _differs(ingester, root: str, path: str, entry, refs, missing: bool) -> bool:
    """True if something other than the entry's content stands at ``path`` under root.

    A missing file counts as differing only if ``missing`` (it needs writing,
    but is no conflict).
    """
    if _blocked_parent(root, path):
        return True
    try:
        return not _same_file(ingester, os.path.join(root, path), entry, refs)
    except FileNotFoundError:
        return missing


def _exists(root: str, path: str) -> bool:
    """True if anything (even a dangling symlink) stands at ``path`` or blocks its parent."""
    if _blocked_parent(root, path):
        return True
    try:
        os.lstat(os.path.join(root, path))
        return True
    except FileNotFoundError:
        return False


def remove_extras(objects, root_id: bytes, root: str, where: str = "") -> int:
    """Delete everything under ``root`` that is not a file or directory of the tree.

    The directory and the tree are walked side by side, one directory (and one
    tree node) at a time, so memory does not grow with the number of files.
    Symlinks are removed, never followed. A top-level ``.cas`` is kept.

    Returns:
        Number of files and links removed.
    """
    removed = 0

    def walk(absdir: str, tid: bytes, top: bool) -> None:
        nonlocal removed
        entries = {e.name: e for e in objects.get_tree(tid, where)}
        with os.scandir(absdir) as it:
            found = list(it)
        for d in found:
            if top and d.name == PROTECTED:
                continue
            e = entries.get(d.name)
            if d.is_dir(follow_symlinks=False):
                if e is not None and e.kind == KIND_TREE:
                    walk(d.path, e.id, False)
                else:
                    removed += sum(len(fs) for _, _, fs in os.walk(d.path))
                    shutil.rmtree(d.path)
            elif e is None or e.kind == KIND_TREE or d.is_symlink():
                os.unlink(d.path)
                removed += 1

    try:
        walk(root, root_id, True)
    except OSError as exc:
        raise StorageError(f"cannot clean {root}: {exc.strerror}") from exc
    return removed


def checkout(objects, ingester, root_id: bytes, root: str, where: str, progress=None, refs=None,
             allow_missing_references: bool = False) -> int:
    """Make ``root`` hold exactly the version's files; return files written."""
    _make_root(root)
    remove_extras(objects, root_id, root, where)
    return download(objects, ingester, root_id, root, where, strategy="OVERWRITE", progress=progress, refs=refs,
                    allow_missing_references=allow_missing_references)


def verify_dir(objects, ingester, root_id: bytes, root: str, where: str, refs=None):
    """Compare ``root`` with a version; symlinks count as modified or unexpected.

    A reference's local copy is checked against its record: by content for
    ``blake3-file`` and ``md5`` checksums, by size only otherwise; those are
    returned as ``unchecked``.

    Returns:
        ``(missing, modified, unexpected, unchecked)`` sorted lists of logical paths.
    """
    expected = dict(iter_files(objects, root_id, where=where))
    modified, unexpected, unchecked = [], [], []
    seen = set()
    if os.path.isdir(root):
        for rel, absp, st in walk_files(root, symlinks=True):
            if rel.split("/")[0] == PROTECTED:
                continue
            e = expected.get(rel)
            if e is None:
                unexpected.append(rel)
                continue
            seen.add(rel)
            try:
                if not statmod.S_ISREG(st.st_mode):
                    ok = False
                elif e.kind == KIND_REFERENCE:
                    ok = refs.check_local(e.aux, absp, st)
                    if ok is None:
                        unchecked.append(rel)
                        ok = True
                else:
                    ok = st.st_size == e.size and ingester.file(absp, store=False, st=st).id == e.id
            except (CasError, OSError):
                ok = False
            if not ok:
                modified.append(rel)
    missing = [p for p in expected if p not in seen]
    ingester.commit_stat_cache()
    return sorted(missing), sorted(modified), sorted(unexpected), sorted(unchecked)
