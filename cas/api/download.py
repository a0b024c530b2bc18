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
from cas.errors import CasError, DownloadConflict, ReferenceChanged, ReferenceMissing, StorageError, UsageError
from cas.format.names import check_path
from cas.format.nodes import KIND_REFERENCE
from cas.format.pack import KIND_CHUNK

STRATEGIES = ("FAIL", "PRESERVE", "OVERWRITE")
PROTECTED = ".cas"  # a store directory inside a checkout root is never removed


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


def write_file(objects, root: str, path: str, entry, where: str, replace_parents: bool, refs=None) -> None:
    """Write one file atomically from its chunks (or its reference's source), verified on read."""
    check_path(path)
    try:
        parent = _ensure_dirs(root, path.rpartition("/")[0], replace_parents)
    except OSError as exc:
        raise StorageError(f"cannot create the directory of {path} in {root}: {exc.strerror}") from exc
    target = os.path.join(parent, path.rpartition("/")[2])
    tmp = os.path.join(parent, f".cas-tmp-{uuid.uuid4().hex[:12]}")
    try:
        if entry.kind == KIND_REFERENCE:
            refs.fetch(entry.aux, tmp, path)
        else:
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
             strategy: str = "FAIL", progress=None, refs=None, allow_missing_references: bool = False) -> int:
    """Write the files of a version (or those under ``path_prefix``) into ``root``.

    Existing identical files are left alone. With FAIL, nothing is written if
    any existing file differs; PRESERVE keeps differing files; OVERWRITE
    replaces them. References are fetched from their source through ``refs``
    (a ReferenceClient) and checked against their record; every other file is
    still written when some references are missing or changed.

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
            same = _same_file(ingester, target, entry, refs)
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
    missing, changed, written = [], [], 0
    for i, (path, entry) in enumerate(todo):
        try:
            write_file(objects, root, path, entry, f"{where} file {path}",
                       replace_parents=strategy == "OVERWRITE", refs=refs)
            written += 1
        except ReferenceMissing:
            missing.append((path, entry.aux.uri))
        except ReferenceChanged as exc:
            changed.append(exc)
        if progress:
            progress(i + 1, len(todo))
    ingester.commit_stat_cache()
    if changed:
        raise changed[0]
    if missing and not allow_missing_references:
        raise ReferenceMissing(missing)
    return written


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


def checkout(objects, ingester, root_id: bytes, root: str, where: str, progress=None, refs=None,
             allow_missing_references: bool = False) -> int:
    """Make ``root`` hold exactly the version's files; return files written."""
    _make_root(root)
    keep = {p for p, _ in iter_files(objects, root_id, where=where)}
    remove_extras(root, keep)
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
