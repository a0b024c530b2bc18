"""Version -> files on disk: download (with overwrite strategies) and checkout.

The files themselves are written by the restore pipeline (``cas.api.restore``):
no file appears under its target name before it is complete and every object
is verified first. Into a root that has content, directories are created one
component at a time with ``lstat`` checks, so a symlink inside the root is
never followed out of it.
"""

from __future__ import annotations

import os
import shutil
import stat as statmod

from cas.api.ingest import walk_files
from cas.api.restore import write_files
from cas.api.walk import iter_files
from cas.errors import CasError, DownloadConflict, ReferenceMissing, StorageError, UsageError
from cas.format.nodes import KIND_REFERENCE, KIND_TREE

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
                             refs=refs, staged=True)
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
