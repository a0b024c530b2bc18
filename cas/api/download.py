"""Version -> files on disk: download (with overwrite strategies) and checkout.

Every file is written to a temporary file beside its target, each chunk
verified against its id on read, then renamed into place. Directories are
created one component at a time with ``lstat`` checks, so a symlink inside
the root is never followed out of it.
"""

from __future__ import annotations

import os
import shutil
import stat as statmod
import uuid

from cas.api.ingest import walk_files
from cas.api.walk import iter_files
from cas.errors import CasError, DownloadConflict, StorageError, UsageError
from cas.format.names import check_path
from cas.format.pack import KIND_CHUNK

STRATEGIES = ("FAIL", "PRESERVE", "OVERWRITE")
PROTECTED = ".cas"  # a store directory inside a checkout root is never removed


def _same_file(ingester, path: str, entry) -> bool:
    """True if the regular file at ``path`` has the entry's content."""
    st = os.lstat(path)
    if not statmod.S_ISREG(st.st_mode) or st.st_size != entry.size:
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
            os.mkdir(cur)
            continue
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


def _make_root(root: str) -> None:
    """Create the target directory; refuse a path that is not a directory."""
    try:
        os.makedirs(root, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"{root} exists and is not a directory; choose another target") from None
    except OSError as exc:
        raise StorageError(f"cannot create {root}: {exc.strerror}") from exc


def write_file(objects, root: str, path: str, entry, where: str, replace_parents: bool) -> None:
    """Write one file atomically from its chunks, verified on read."""
    check_path(path)
    try:
        parent = _ensure_dirs(root, path.rpartition("/")[0], replace_parents)
    except OSError as exc:
        raise StorageError(f"cannot create the directory of {path} in {root}: {exc.strerror}") from exc
    target = os.path.join(parent, path.rpartition("/")[2])
    tmp = os.path.join(parent, f".cas-tmp-{uuid.uuid4().hex[:12]}")
    try:
        with open(tmp, "wb", buffering=1 << 20) as f:
            for cid, _n in objects.iter_chunks(entry.id, where=where):
                f.write(objects.get(cid, KIND_CHUNK, where=where))
        os.chmod(tmp, 0o755 if entry.executable else 0o644)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise StorageError(f"cannot write {target}: {exc.strerror}") from exc
        raise


def download(objects, ingester, root_id: bytes, root: str, where: str, path_prefix: str = "",
             strategy: str = "FAIL", progress=None) -> int:
    """Write the files of a version (or those under ``path_prefix``) into ``root``.

    Existing identical files are left alone. With FAIL, nothing is written if
    any existing file differs; PRESERVE keeps differing files; OVERWRITE
    replaces them.

    Returns:
        The number of files written.

    Raises:
        DownloadConflict: FAIL and some existing file differs.
        DigestMismatch, ObjectNotFound: Stored data is corrupt or missing; the
            file being written is not left behind.
    """
    strategy = (strategy or "FAIL").upper()
    if strategy not in STRATEGIES:
        raise UsageError(f"invalid overwrite_strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    _make_root(root)
    todo, conflicts = [], []
    for path, entry in iter_files(objects, root_id, prefix=path_prefix, where=where):
        target = os.path.join(root, path)
        if _blocked_parent(root, path):
            conflicts.append(path)
            if strategy == "OVERWRITE":
                todo.append((path, entry))
            continue
        try:
            same = _same_file(ingester, target, entry)
        except FileNotFoundError:
            todo.append((path, entry))
            continue
        if same:
            continue
        conflicts.append(path)
        if strategy == "OVERWRITE":
            todo.append((path, entry))
    if conflicts and strategy == "FAIL":
        raise DownloadConflict(root, conflicts)
    for i, (path, entry) in enumerate(todo):
        write_file(objects, root, path, entry, f"{where} file {path}", replace_parents=strategy == "OVERWRITE")
        if progress:
            progress(i + 1, len(todo))
    ingester.commit_stat_cache()
    return len(todo)


def remove_extras(root: str, keep: set[str]) -> int:
    """Delete everything under ``root`` that is not a path in ``keep`` or a parent of one.

    Symlinks are removed, never followed. A top-level ``.cas`` is kept.

    Returns:
        Number of files and links removed.
    """
    dirs = {""}
    for p in keep:
        parts = p.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
    removed = 0

    def walk(absdir: str, rel: str):
        nonlocal removed
        for e in list(os.scandir(absdir)):
            r = rel + e.name
            if not rel and e.name == PROTECTED:
                continue
            if e.is_dir(follow_symlinks=False):
                if r in dirs:
                    walk(e.path, r + "/")
                else:
                    removed += sum(len(fs) for _, _, fs in os.walk(e.path))
                    shutil.rmtree(e.path)
            elif r not in keep or e.is_symlink():
                os.unlink(e.path)
                removed += 1

    try:
        walk(root, "")
    except OSError as exc:
        raise StorageError(f"cannot clean {root}: {exc.strerror}") from exc
    return removed


def checkout(objects, ingester, root_id: bytes, root: str, where: str, progress=None) -> int:
    """Make ``root`` hold exactly the version's files; return files written."""
    _make_root(root)
    keep = {p for p, _ in iter_files(objects, root_id, where=where)}
    remove_extras(root, keep)
    return download(objects, ingester, root_id, root, where, strategy="OVERWRITE", progress=progress)


def verify_dir(objects, ingester, root_id: bytes, root: str, where: str):
    """Compare ``root`` with a version; symlinks count as modified or unexpected.

    Returns:
        ``(missing, modified, unexpected)`` sorted lists of logical paths.
    """
    expected = dict(iter_files(objects, root_id, where=where))
    modified, unexpected = [], []
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
                ok = (statmod.S_ISREG(st.st_mode) and st.st_size == e.size
                      and ingester.file(absp, store=False, st=st).id == e.id)
            except CasError:
                ok = False
            if not ok:
                modified.append(rel)
    missing = [p for p in expected if p not in seen]
    ingester.commit_stat_cache()
    return sorted(missing), sorted(modified), sorted(unexpected)
