"""Restore pipeline: write the files of a tree walk under a root, every object verified.

A feeding thread walks the ``(path, entry)`` items and cuts them into tasks: a
batch of small files (up to ``BATCH_FILES`` files or ``BATCH_BYTES`` raw bytes)
or a ``SEGMENT`` of one large file. ``WORKERS`` threads (the caller's and
``WORKERS - 1`` more) take tasks from one bounded queue. For its task a worker
locates the objects in the index, reads them with coalesced ``pread``\\ s,
checks every object against its id (zstd releases the GIL while it
decompresses) and only then writes the bytes. Each thread has its own index
snapshot and pack handles; the store's shared ones are used by the feeding
thread (the walk) and, under a lock, for the rare retry of an id a snapshot
does not hold.

Files never appear under their target name before they are complete
(docs/decisions.md, "Restore pipeline"):

* into a new or empty root, everything is written under a private staging
  directory ``.cas-tmp-*`` inside the root, each file under its final name
  there (top-level directories under a random name), and the top-level entries
  are renamed into the root at the end (also after an error, once every
  unfinished file has been removed, so files that were complete stay, as before);
* into a root that has content, each file is written to a temporary name
  beside its target and renamed over it.

A large file is written with ``pwritev`` at each segment's offset by whichever
worker takes the segment; the last one to finish closes and places the file.
"""

from __future__ import annotations

import itertools
import os
import queue
import shutil
import stat as statmod
import threading
import uuid

from cas.api.fetch import Fetcher
from cas.errors import CasError, DownloadConflict, ReferenceChanged, ReferenceMissing, StorageError
from cas.format.nodes import KIND_REFERENCE
from cas.format.pack import KIND_CHUNK
from cas.storage.crash import crashpoint
from cas.storage.fsutil import mark_top_dir

LARGE_FILE = 4 << 20  # files this big are written in segments, smaller ones are batched
SEGMENT = 4 << 20  # raw bytes of a large file per task
BATCH_BYTES = 4 << 20  # raw bytes of small files per task
BATCH_FILES = 512  # small files per task at most
WORKERS = 2  # threads reading, verifying and writing: file creation is kernel time that overlaps on two cores
QUEUE_DEPTH = 2  # tasks waiting per worker
IOV_MAX = 1024  # buffers per writev (the Linux limit)
STAGE_PREFIX = ".cas-tmp-"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def ensure_dirs(root: str, rel_dir: str, replace: bool) -> str:
    """Create ``root/rel_dir`` component by component without following symlinks.

    Args:
        replace: Replace a symlink or file standing where a directory must be;
            otherwise raise DownloadConflict.
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
            except FileExistsError:  # made meanwhile (by another worker): check what it is
                st = os.lstat(cur)
        if statmod.S_ISDIR(st.st_mode):
            continue
        if not replace:
            kind = "a symlink" if statmod.S_ISLNK(st.st_mode) else "a file"
            raise DownloadConflict(root, [os.path.relpath(cur, root) + f" ({kind} where a directory belongs)"])
        os.unlink(cur)
        os.mkdir(cur)
    return cur


def _write_all(fd: int, bufs, size: int, offset: int | None = None) -> None:
    """Write all of ``bufs`` (``size`` bytes in all) to ``fd``, at ``offset`` if given."""
    if len(bufs) <= IOV_MAX:
        done = os.writev(fd, bufs) if offset is None else os.pwritev(fd, bufs, offset)
        if done == size:
            return
        rest = memoryview(b"".join(bufs))[done:]
    else:  # more buffers than one call takes (rare): one joined copy
        done = 0
        rest = memoryview(b"".join(bufs))
    pos = (offset or 0) + done
    while rest:  # a short write (rare on local files)
        n = os.write(fd, rest) if offset is None else os.pwrite(fd, rest, pos)
        rest = rest[n:]
        pos += n


def _unlink(path: str | None) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass


class _Places:
    """Where files go: a private staging directory, or a temporary name beside the target.

    Shared by all threads of one restore; directory creation is idempotent and
    its cache is a dict (single operations on it are atomic).
    """

    def __init__(self, root: str, staged: bool, replace_parents: bool) -> None:
        self.root = root
        self.replace_parents = replace_parents
        self.stage = None
        if staged:
            self.stage = os.path.join(root, f"{STAGE_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}")
            os.mkdir(self.stage, 0o700)  # nobody else can add or swap anything inside
            # its subdirectories go to block groups with free inodes (docs/decisions.md, "Restore pipeline")
            mark_top_dir(self.stage)
        self.base = self.stage or root
        self.dirs: dict[str, str] = {"": self.base}  # logical dir -> absolute dir made in this run
        mask = os.umask(0o022)
        os.umask(mask)
        self.fix_mode = bool(mask & 0o755)  # modes must be exactly 0644/0755 whatever the umask
        self.tmp_prefix = f"{STAGE_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}-"
        self._n = itertools.count()
        self.top: dict[str, str] = {}  # staged name of a top-level directory -> its name

    def _dir(self, rel_dir: str) -> str:
        parent = self.dirs.get(rel_dir)
        if parent is not None:
            return parent
        if self.stage is None:
            parent = ensure_dirs(self.root, rel_dir, self.replace_parents)
        else:
            up, _, name = rel_dir.rpartition("/")
            if not up:
                # a new name each time: ext4 places a subdirectory of a FS_TOPDIR_FL directory by a
                # hash of its name, and the same name would land where the last checkout was deleted
                staged = f"{STAGE_PREFIX}d-{uuid.uuid4().hex}"
                self.top[staged] = name
                name = staged
            parent = f"{self._dir(up)}/{name}"
            try:
                os.mkdir(parent)
            except FileExistsError:  # another worker made it (only this process writes here)
                pass
        if len(self.dirs) >= 4096:
            self.dirs.clear()
            self.dirs[""] = self.base
        self.dirs[rel_dir] = parent
        return parent

    def dir_for(self, rel_dir: str, path: str) -> str:
        """Return the directory that files of ``rel_dir`` are created in, making it if needed."""
        parent = self.dirs.get(rel_dir)
        if parent is not None:
            return parent
        try:
            return self._dir(rel_dir)
        except OSError as exc:
            raise StorageError(f"cannot create the directory of {path} in {self.root}: {exc.strerror}") from exc

    def temp_in(self, parent: str) -> str:
        """Return a new temporary name in ``parent`` (names never repeat: next() on a count is atomic)."""
        return f"{parent}/{self.tmp_prefix}{next(self._n)}"

    def aim(self, path: str) -> tuple[str, str | None]:
        """Return ``(file to create, target to rename it to or None)`` for a logical path.

        ``path`` joins names that decode_tree_node checked one by one (check_segment).
        """
        rel_dir, _, name = path.rpartition("/")
        parent = self.dir_for(rel_dir, path)
        if self.stage is not None:
            return f"{parent}/{name}", None
        return self.temp_in(parent), f"{parent}/{name}"

    def temp_file(self) -> str:
        """Return a new temporary path directly in the staging directory or the root."""
        return f"{self.base}/{self.tmp_prefix}ref-{next(self._n)}"

    def place(self, made: str, target: str | None) -> None:
        """Rename a finished temporary file over its target (a directory there is removed)."""
        if target is None:
            return
        try:
            os.replace(made, target)
        except OSError:
            if not (os.path.isdir(target) and not os.path.islink(target)):
                raise
            shutil.rmtree(target)
            os.replace(made, target)

    def publish(self) -> None:
        """Move everything staged into the root and remove the staging directory.

        Only complete files may be left in the stage when this runs.
        """
        if self.stage is None:
            return
        try:
            _merge(self.stage, self.root, self.root, self.top)
        finally:
            shutil.rmtree(self.stage, ignore_errors=True)


def _merge(src: str, dst: str, root: str, names: dict | None = None) -> None:
    """Rename every entry of ``src`` into ``dst``; merge into directories that appeared meanwhile.

    ``names`` maps an entry's name in ``src`` to its name in ``dst`` where they differ.
    """
    with os.scandir(src) as it:
        entries = list(it)
    for d in entries:
        target = os.path.join(dst, names.get(d.name, d.name) if names else d.name)
        try:
            os.rename(d.path, target)
            continue
        except OSError:
            pass
        # something appeared at the target since the root was found empty
        st = os.lstat(target)
        if d.is_dir(follow_symlinks=False):
            if not statmod.S_ISDIR(st.st_mode):
                kind = "a symlink" if statmod.S_ISLNK(st.st_mode) else "a file"
                raise DownloadConflict(root, [os.path.relpath(target, root) + f" ({kind} where a directory belongs)"])
            _merge(d.path, target, root)
        else:
            if statmod.S_ISDIR(st.st_mode):
                shutil.rmtree(target)
            os.replace(d.path, target)


class _Large:
    """A large file being written in segments by several workers."""

    def __init__(self, path: str, entry, made: str, target: str | None, fd: int) -> None:
        self.path = path
        self.entry = entry
        self.made: str | None = made
        self.target = target
        self.fd: int | None = fd
        self.pending = 0  # segments handed out and not yet written
        self.fed = False  # every segment has been handed out
        self.lock = threading.Lock()


class _Ref:
    """A reference's bytes that the feeding thread copied to a temporary file."""

    def __init__(self, path: str, entry, tmp: str) -> None:
        self.path = path
        self.entry = entry
        self.tmp: str | None = tmp


class _Stopped(Exception):
    """Another thread failed; this one stops."""


class _Restore:
    """State shared by the feeding thread and the workers of one ``write_files`` call."""

    def __init__(self, objects, places: _Places, where: str, workers: int, refs, progress, total) -> None:
        self.objects = objects
        self.places = places
        self.where = where
        self.workers = workers
        self.refs = refs
        self.progress = progress
        self.total = total
        self.tasks: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH * workers)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.counts = [0] * workers
        self.missing: list = []
        self.changed: list = []
        self.shared = threading.Lock()  # guards the store's shared snapshot and pack handles
        self.large: set = set()  # _Large files not finished yet
        self.mode_of = {False: 0o644, True: 0o755}

    def fail(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.stop.set()

    def put(self, task) -> None:
        while not self.stop.is_set():
            try:
                self.tasks.put(task, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    # feeding thread --------------------------------------------------------
    def feed(self, items) -> None:
        fetcher = Fetcher(self.objects, self.shared)
        try:
            self._feed(fetcher, items)
            for _ in range(self.workers):
                self.put(None)
        except _Stopped:
            pass
        except BaseException as exc:  # raised by the caller once the workers have stopped
            self.fail(exc)
        finally:
            fetcher.close()

    def _feed(self, fetcher: Fetcher, items) -> None:
        it = iter(items)
        batch: list = []
        size = 0
        while True:
            with self.shared:
                item = next(it, None)
            if item is None:
                break
            if self.stop.is_set():
                raise _Stopped
            path, entry = item
            if entry.kind == KIND_REFERENCE:
                ref = self._fetch_ref(path, entry)
                if ref is not None:
                    try:
                        self.put(ref)
                    except BaseException:
                        _unlink(ref.tmp)
                        raise
                continue
            if entry.size >= LARGE_FILE:
                self._feed_large(fetcher, path, entry)
                continue
            batch.append(item)
            size += entry.size
            if size >= BATCH_BYTES or len(batch) >= BATCH_FILES:
                self.put(batch)
                batch, size = [], 0
        if batch:
            self.put(batch)

    def _feed_large(self, fetcher: Fetcher, path: str, entry) -> None:
        made, target = self.places.aim(path)
        fd = os.open(made, _CREATE, self.mode_of[bool(entry.executable)])
        big = _Large(path, entry, made, target, fd)
        self.large.add(big)
        where = f"{self.where} file {path}"
        seg: list = []
        start = pos = 0
        for cid, length in fetcher.iter_chunks(entry.id, where):
            seg.append((cid, length))
            pos += length
            if pos - start >= SEGMENT:
                self._put_segment(big, start, seg)
                seg, start = [], pos
        if seg:
            self._put_segment(big, start, seg)
        with big.lock:
            big.fed = True
            done = big.pending == 0
        if done:
            self._finish_large(big)

    def _put_segment(self, big: _Large, offset: int, chunks: list) -> None:
        with big.lock:
            big.pending += 1
        self.put((big, offset, chunks))

    def _fetch_ref(self, path: str, entry) -> _Ref | None:
        tmp = self.places.temp_file()
        try:
            with self.shared:
                self.refs.fetch(entry.aux, tmp, path)
        except ReferenceMissing:
            self.missing.append((path, entry.aux.uri))
        except ReferenceChanged as exc:
            self.changed.append(exc)
        except BaseException:
            _unlink(tmp)
            raise
        else:
            return _Ref(path, entry, tmp)
        _unlink(tmp)
        return None

    # workers -----------------------------------------------------------------
    def work(self, i: int) -> None:
        fetcher = Fetcher(self.objects, self.shared)
        try:
            while not self.stop.is_set():
                try:
                    task = self.tasks.get(timeout=0.1)
                except queue.Empty:
                    continue
                if task is None:
                    return
                if isinstance(task, list):
                    self._write_batch(fetcher, task, i)
                elif isinstance(task, tuple):
                    self._write_segment(fetcher, *task, i)
                else:
                    self._place_ref(task, i)
                crashpoint("restore-task-written")
                if self.progress and i == 0:
                    self.progress(sum(self.counts), self.total)
        except _Stopped:
            pass
        except BaseException as exc:
            self.fail(exc)
        finally:
            fetcher.close()

    def _write_batch(self, fetcher: Fetcher, batch: list, i: int) -> None:
        try:
            datas = self._batch_data(fetcher, batch)
        except CasError:
            if len(batch) == 1:
                raise
            # one at a time: the good files before the bad one are written
            for item in batch:
                self._write_batch(fetcher, [item], i)
            return
        places = self.places
        stage, fix_mode, stop, write = places.stage, places.fix_mode, self.stop, os.write
        last_dir = parent = None
        n = 0
        try:
            for (path, entry), bufs in zip(batch, datas):
                if stop.is_set():
                    raise _Stopped
                rel_dir, _, name = path.rpartition("/")
                if rel_dir != last_dir:
                    parent = places.dir_for(rel_dir, path)
                    last_dir = rel_dir
                if stage is not None:
                    made, target = f"{parent}/{name}", None
                else:
                    made, target = places.temp_in(parent), f"{parent}/{name}"
                mode = 0o755 if entry.executable else 0o644
                try:
                    fd = os.open(made, _CREATE, mode)
                except OSError as exc:
                    raise _storage_error(exc, path) from exc
                try:
                    if len(bufs) == 1:
                        buf = bufs[0]
                        done = write(fd, buf)
                        if done != len(buf):  # a short write (rare on local files)
                            _write_all(fd, [memoryview(buf)[done:]], len(buf) - done)
                    elif bufs:
                        _write_all(fd, bufs, entry.size)
                    if fix_mode:
                        os.fchmod(fd, mode)
                except BaseException as exc:
                    os.close(fd)
                    _unlink(made)
                    raise _storage_error(exc, path) from exc
                os.close(fd)
                if target is not None:
                    try:
                        places.place(made, target)
                    except OSError as exc:
                        _unlink(made)
                        raise _storage_error(exc, path) from exc
                n += 1
        finally:
            self.counts[i] += n

    def _batch_data(self, fetcher: Fetcher, batch: list) -> list:
        """Return the verified chunk buffers of every file of a batch, in order."""
        where = self.where
        wheres = [f"{where} file {p}" for p, _e in batch]
        lists = fetcher.chunk_lists([(e.id, w) for (_p, e), w in zip(batch, wheres)])
        chunks = fetcher.fetch([(cid, KIND_CHUNK, w) for cl, w in zip(lists, wheres) for cid, _n in cl])
        return [[chunks[cid] for cid, _n in cl] for cl in lists]

    def _write_segment(self, fetcher: Fetcher, big: _Large, offset: int, chunks: list, i: int) -> None:
        where = f"{self.where} file {big.path}"
        got = fetcher.fetch([(cid, KIND_CHUNK, where) for cid, _n in chunks])
        bufs = [got[cid] for cid, _n in chunks]
        try:
            _write_all(big.fd, bufs, sum(n for _c, n in chunks), offset)
        except OSError as exc:
            raise _storage_error(exc, big.path) from exc
        with big.lock:
            big.pending -= 1
            done = big.fed and big.pending == 0
        if done:
            self._finish_large(big, i)

    def _finish_large(self, big: _Large, i: int = 0) -> None:
        fd, big.fd = big.fd, None
        try:
            if self.places.fix_mode:
                os.fchmod(fd, self.mode_of[bool(big.entry.executable)])
        finally:
            os.close(fd)
        try:
            self.places.place(big.made, big.target)
        except OSError as exc:
            raise _storage_error(exc, big.path) from exc
        big.made = None
        self.large.discard(big)
        self.counts[i] += 1

    def _place_ref(self, ref: _Ref, i: int) -> None:
        made, target = self.places.aim(ref.path)
        try:
            os.chmod(ref.tmp, self.mode_of[bool(ref.entry.executable)])
            if target is None:  # staged: the reference's copy takes the file's place in the stage
                os.replace(ref.tmp, made)
            else:
                self.places.place(ref.tmp, target)
        except OSError as exc:
            raise _storage_error(exc, ref.path) from exc
        ref.tmp = None
        self.counts[i] += 1

    # after all threads have stopped ---------------------------------------
    def clean_up(self) -> None:
        """Remove every unfinished file: large files and reference copies not placed."""
        for big in list(self.large):
            if big.fd is not None:
                os.close(big.fd)
                big.fd = None
            _unlink(big.made)
        self.large.clear()
        while True:
            try:
                task = self.tasks.get_nowait()
            except queue.Empty:
                break
            if isinstance(task, _Ref):
                _unlink(task.tmp)


def _storage_error(exc: BaseException, path: str) -> BaseException:
    if isinstance(exc, OSError):
        return StorageError(f"cannot write {path}: {exc.strerror or exc}")
    return exc


def write_files(objects, root: str, items, where: str, replace_parents: bool, progress=None,
                total: int | None = None, workers: int | None = None, refs=None,
                staged: bool = False) -> tuple[int, list, list]:
    """Write ``(path, entry)`` items under ``root``; return the number written.

    Every object is checked against its id before any of its bytes is written.
    With ``staged`` (``root`` is new or empty), files are written under a
    private staging directory and moved into ``root`` at the end; otherwise
    each file goes to a temporary name beside its target and is renamed over
    it. On an error every unfinished file is removed; finished files stay.
    References are copied from their source by the feeding thread (``refs``,
    a ReferenceClient, uses the store's index too).

    Returns:
        ``(files written, missing references [(path, uri)], ReferenceChanged errors)``;
        a missing or changed reference does not stop the other files.

    Raises:
        DigestMismatch, ObjectNotFound: Stored data is corrupt or missing (named
            with the file and version).
        StorageError: A file cannot be written.
    """
    workers = workers or WORKERS
    try:
        places = _Places(root, staged, replace_parents)
    except OSError as exc:
        raise StorageError(f"cannot write into {root}: {exc.strerror}") from exc
    run = _Restore(objects, places, where, workers, refs, progress, total)
    feeder = threading.Thread(target=run.feed, args=(items,), name="cas-restore-feed", daemon=True)
    threads = [threading.Thread(target=run.work, args=(i,), name=f"cas-restore-{i}", daemon=True)
               for i in range(1, workers)]
    feeder.start()
    for t in threads:
        t.start()
    try:
        run.work(0)  # returns once the work is done or some thread failed
        for t in threads:
            t.join()
        feeder.join()
    except BaseException as exc:  # interrupted while waiting
        run.fail(exc)
    finally:
        run.stop.set()
        for t in threads:
            t.join()
        feeder.join()
        run.clean_up()
        if not run.errors:
            crashpoint("restore-staged")
        try:
            places.publish()
        except OSError as exc:
            run.errors.append(StorageError(f"cannot move the files into {root}: {exc.strerror}"))
        except CasError as exc:
            run.errors.append(exc)
    if run.errors:
        raise run.errors[0]
    return sum(run.counts), run.missing, run.changed
