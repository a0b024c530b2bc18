"""Diff two trees, skipping subtrees whose ids are equal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from cas.format.nodes import KIND_REFERENCE, KIND_TREE, TreeEntry


@dataclass(frozen=True)
class Change:
    """One path that differs: status is 'added', 'removed' or 'modified'."""

    status: str
    path: str
    old: TreeEntry | None
    new: TreeEntry | None

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        def ent(e):
            if e is None:
                return None
            if e.kind == KIND_REFERENCE:
                return {"digest": e.aux.checksum_text, "size": e.aux.size, "ref": e.aux.uri}
            return {"digest": "blake3:" + e.id.hex(), "size": e.size}
        return {"status": self.status, "path": self.path, "old": ent(self.old), "new": ent(self.new)}


def diff_trees(objects, old: bytes, new: bytes) -> Iterator[Change]:
    """Yield file-level changes from tree ``old`` to tree ``new`` in path order."""
    yield from _diff(objects, old, new, "")


def _files(objects, e: TreeEntry, path: str):
    if e.kind != KIND_TREE:
        yield path, e
        return
    for c in objects.get_tree(e.id):
        yield from _files(objects, c, path + "/" + c.name)


def _diff(objects, old: bytes | None, new: bytes | None, base: str):
    if old == new:
        return
    a = {e.name: e for e in objects.get_tree(old)} if old else {}
    b = {e.name: e for e in objects.get_tree(new)} if new else {}
    for name in sorted(a.keys() | b.keys(), key=lambda s: s.encode("utf-8", "surrogatepass")):
        x, y = a.get(name), b.get(name)
        p = base + name
        if x is not None and y is not None and x.id == y.id and x.kind == y.kind and x.aux == y.aux:
            continue
        xt = x is not None and x.kind == KIND_TREE
        yt = y is not None and y.kind == KIND_TREE
        if xt and yt:
            yield from _diff(objects, x.id, y.id, p + "/")
            continue
        if x is not None and y is not None and not xt and not yt:
            yield Change("modified", p, x, y)
            continue
        if x is not None:
            for fp, fe in _files(objects, x, p):
                yield Change("removed", fp, fe, None)
        if y is not None:
            for fp, fe in _files(objects, y, p):
                yield Change("added", fp, None, fe)
