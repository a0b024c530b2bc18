"""Tree walks that visit only what a path prefix or a resume cursor asks for."""

from __future__ import annotations

from typing import Iterator

from cas.format.nodes import KIND_TREE, TreeEntry


def _bkey(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def iter_files(objects, root: bytes, prefix: str = "", after: str | None = None,
               where: str = "") -> Iterator[tuple[str, TreeEntry]]:
    """Yield ``(path, entry)`` for files under ``root`` in path byte order.

    Args:
        objects: The ObjectStore to read tree nodes from.
        root: Root tree id.
        prefix: Only paths starting with this string; subtrees that cannot
            match are not read.
        after: Only paths sorting strictly after this one (a resume cursor);
            subtrees entirely before it are not read.
        where: Context for error messages (the version).
    """
    def walk(tid: bytes, base: str):
        for e in objects.get_tree(tid, where=f"{where} {base or '/'}".strip()):
            p = base + e.name
            if e.kind == KIND_TREE:
                d = p + "/"
                if not (d.startswith(prefix) or prefix.startswith(d)):
                    continue
                # the largest path under d starts with d; skip if all are <= after
                if after is not None and not _could_follow(d, after):
                    continue
                yield from walk(e.id, d)
            else:
                if not p.startswith(prefix):
                    continue
                if after is not None and _bkey(p) <= _bkey(after):
                    continue
                yield p, e

    return walk(root, "")


def _could_follow(d: str, after: str) -> bool:
    """True if some path beginning with dir ``d`` sorts after ``after``."""
    bd, ba = _bkey(d), _bkey(after)
    if ba.startswith(bd):
        return True
    return bd > ba


def find_entry(objects, root: bytes, path: str, where: str = "") -> TreeEntry | None:
    """Return the tree entry at ``path`` (file or tree), reading one node per level."""
    tid = root
    segs = path.split("/")
    for i, seg in enumerate(segs):
        match = None
        for e in objects.get_tree(tid, where=where):
            if e.name == seg:
                match = e
                break
        if match is None:
            return None
        if i == len(segs) - 1:
            return match
        if match.kind != KIND_TREE:
            return None
        tid = match.id
    return None
