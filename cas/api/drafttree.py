"""The mutable tree of a draft: logical paths to file entries over an optional base.

A draft made from a logged version starts as that version's root id; only
directories on the path of a change are loaded and re-encoded, so logging an
incremental draft writes nodes for the changed subtrees only.

A directory may also be a *source*: the spilled file list of an ``add_dir``
(``cas.api.listing.DirListing``) that is built as a stream when the draft is
logged, so a million files never sit in this tree. Reading a path inside a
source, or changing one, expands the source into ordinary entries first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from cas.errors import PathConflict
from cas.format.names import check_path
from cas.format.nodes import (
    KIND_FILE,
    KIND_REFERENCE,
    KIND_TREE,
    Reference,
    TreeEntry,
    encode_tree_node,
    reference_entry,
    tree_id,
)


@dataclass(frozen=True)
class FileRef:
    """A file whose content is stored (or hashed) under ``id``."""

    id: bytes
    size: int
    executable: bool = False


@dataclass(frozen=True)
class PendingFile:
    """A file added with policy='immutable': read at log time, must be unchanged."""

    local_path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    dev: int
    executable: bool

    @property
    def signature(self) -> tuple:
        """The stat fields the file must still have when it is read (see ``ingest.signature``)."""
        return (self.size, self.mtime_ns, self.ctime_ns, self.ino, self.dev)


class _Dir:
    __slots__ = ("base", "children", "dirty", "source")

    def __init__(self, base: TreeEntry | None = None, source=None) -> None:
        self.base = base  # the stored tree entry this dir came from, if unchanged so far
        self.source = source  # a DirListing not expanded yet (then children is None)
        self.children: dict[str, object] | None = None if base is not None or source is not None else {}
        self.dirty = base is None


Loader = Callable[[bytes], list]


class DraftTree:
    """Logical path -> FileRef/PendingFile/Reference mapping with lazily loaded base subtrees."""

    def __init__(self, load_tree: Loader, base_root: bytes | None = None, base_size: int = 0,
                 base_files: int = 0) -> None:
        self._load_tree = load_tree
        if base_root is None:
            self.root = _Dir()
        else:
            self.root = _Dir(TreeEntry("", KIND_TREE, base_root, base_size, base_files))

    def _children(self, d: _Dir) -> dict:
        if d.children is None and d.source is not None:
            d.children = self._expand(d.source)
            d.source = None
        elif d.children is None:
            kids: dict[str, object] = {}
            for e in self._load_tree(d.base.id):
                if e.kind == KIND_TREE:
                    kids[e.name] = _Dir(e)
                elif e.kind == KIND_REFERENCE:
                    kids[e.name] = e.aux
                else:
                    kids[e.name] = FileRef(e.id, e.size, e.executable)
            d.children = kids
        return d.children

    @staticmethod
    def _expand(source) -> dict:
        """Return the children of a source's directory, read from its listing."""
        root = _Dir()
        last_parent, kids = None, root.children
        for rel, e in source.records():
            parent, _, name = rel.rpartition("/")
            if parent != last_parent:
                d = root
                for seg in parent.split("/") if parent else ():
                    nxt = d.children.get(seg)
                    if nxt is None:
                        nxt = d.children[seg] = _Dir()
                    d = nxt
                last_parent, kids = parent, d.children
            kids[name] = e
        return root.children

    def _walk_dir(self, segs: list[str], create: bool) -> tuple[list[_Dir], bool]:
        """Return the dirs along ``segs`` (root first); False if one is missing."""
        chain = [self.root]
        d = self.root
        for i, seg in enumerate(segs):
            kids = self._children(d)
            nxt = kids.get(seg)
            if nxt is None:
                if not create:
                    return chain, False
                nxt = _Dir()
                kids[seg] = nxt
            elif not isinstance(nxt, _Dir):
                if not create:
                    return chain, False
                raise PathConflict(
                    f"cannot add below {'/'.join(segs[: i + 1])!r}: it is a file in this draft; remove it first"
                )
            chain.append(nxt)
            d = nxt
        return chain, True

    def get(self, path: str):
        """Return the entry at ``path`` or None (directories are not entries)."""
        segs = path.split("/")
        chain, ok = self._walk_dir(segs[:-1], create=False)
        if not ok:
            return None
        e = self._children(chain[-1]).get(segs[-1])
        return None if isinstance(e, _Dir) else e

    def set(self, path: str, entry) -> None:
        """Put ``entry`` at ``path``, creating directories.

        Raises:
            PathConflict: A parent is a file, or ``path`` is a directory.
        """
        check_path(path)
        segs = path.split("/")
        chain, _ = self._walk_dir(segs[:-1], create=True)
        kids = self._children(chain[-1])
        if isinstance(kids.get(segs[-1]), _Dir):
            raise PathConflict(f"cannot add file {path!r}: it is a directory in this draft; remove it first")
        kids[segs[-1]] = entry
        for d in chain:
            d.dirty = True

    def is_empty(self) -> bool:
        """True for a new draft with no base and no entries (nothing can conflict)."""
        return self.root.base is None and self.root.source is None and not self.root.children

    def is_free(self, path: str) -> bool:
        """True if nothing is at directory ``path`` ('' = the root) and no file is above it."""
        if not path:
            return self.is_empty()
        d = self.root
        for seg in path.split("/"):
            nxt = self._children(d).get(seg)
            if nxt is None:
                return True
            if not isinstance(nxt, _Dir):
                return False
            d = nxt
        return False

    def put_dir(self, path: str, *, source=None, stored: TreeEntry | None = None) -> None:
        """Put a source (a DirListing) or a stored subtree at the free directory ``path``.

        Raises:
            PathConflict: ``path`` is not free (see ``is_free``).
        """
        if not self.is_free(path):
            raise PathConflict(f"cannot add a directory at {path or '/'!r}: something is already there in this draft")
        node = _Dir(base=stored, source=source)
        if not path:
            self.root = node
            return
        segs = path.split("/")
        chain, _ = self._walk_dir(segs[:-1], create=True)
        self._children(chain[-1])[segs[-1]] = node
        for d in chain:
            d.dirty = True

    def sources(self) -> Iterator[object]:
        """Yield the sources not expanded yet, in the order ``build`` meets them."""
        def walk(d: _Dir):
            if d.source is not None and d.children is None:
                yield d.source
                return
            if not d.dirty or d.children is None:
                return
            for e in d.children.values():
                if isinstance(e, _Dir):
                    yield from walk(e)

        return walk(self.root)

    def set_many(self, items) -> None:
        """Put many ``(path, entry)`` pairs, walking each parent directory once.

        The paths must already have passed ``check_path``; a path under the same
        parent as the one before costs one dict store.

        Raises:
            PathConflict: As ``set``; entries before the conflicting one are kept.
        """
        dirs: dict[str, dict] = {}
        for path, entry in items:
            parent, _, name = path.rpartition("/")
            kids = dirs.get(parent)
            if kids is None:
                chain, _ = self._walk_dir(parent.split("/") if parent else [], create=True)
                for d in chain:
                    d.dirty = True
                kids = dirs[parent] = self._children(chain[-1])
            if isinstance(kids.get(name), _Dir):
                raise PathConflict(f"cannot add file {path!r}: it is a directory in this draft; remove it first")
            kids[name] = entry

    def check_settable(self, path: str) -> None:
        """Raise PathConflict if ``set(path, ...)`` would fail, changing nothing."""
        check_path(path)
        segs = path.split("/")
        d = self.root
        for i, seg in enumerate(segs):
            nxt = self._children(d).get(seg)
            if nxt is None:
                return
            last = i == len(segs) - 1
            if isinstance(nxt, _Dir) == last:
                what = "a directory" if last else "a file"
                raise PathConflict(f"cannot add {path!r}: {'/'.join(segs[: i + 1])!r} is {what} in this draft")
            if last:
                return
            d = nxt

    def remove(self, path: str) -> int:
        """Remove the file or directory at ``path``; return the number of files removed."""
        path = path.rstrip("/")
        check_path(path)
        segs = path.split("/")
        chain, ok = self._walk_dir(segs[:-1], create=False)
        if not ok:
            return 0
        kids = self._children(chain[-1])
        e = kids.get(segs[-1])
        if e is None:
            return 0
        n = sum(1 for _ in self._iter(e, "")) if isinstance(e, _Dir) else 1
        del kids[segs[-1]]
        for d in chain:
            d.dirty = True
        # prune directories left empty
        for i in range(len(chain) - 1, 0, -1):
            if not self._children(chain[i]):
                del self._children(chain[i - 1])[segs[i - 1]]
            else:
                break
        return n

    def _iter(self, d: _Dir, prefix: str) -> Iterator[tuple[str, object]]:
        if d.children is None and d.source is not None:
            for rel, e in d.source.records():
                yield prefix + rel, e
            return
        kids = self._children(d)  # a stored subtree stays loaded: gc may reclaim an old base meanwhile
        for name in sorted(kids, key=lambda s: s.encode("utf-8", "surrogatepass")):
            e = kids[name]
            p = prefix + name
            if isinstance(e, _Dir):
                yield from self._iter(e, p + "/")
            else:
                yield p, e

    def items(self) -> Iterator[tuple[str, object]]:
        """Yield ``(path, entry)`` for every file, in path byte order."""
        return self._iter(self.root, "")

    def pending_files(self) -> Iterator[PendingFile]:
        """Yield the PendingFiles in the order ``build`` resolves them."""
        def walk(d: _Dir):
            if not d.dirty or d.children is None:  # stored, or a source (see ``sources``)
                return
            for e in d.children.values():
                if isinstance(e, _Dir):
                    yield from walk(e)
                elif isinstance(e, PendingFile):
                    yield e

        return walk(self.root)

    def build(self, put_tree: Callable[[bytes, bytes], None] | None,
              resolve: Callable[[str, PendingFile], FileRef],
              on_reference: Callable[[], None] | None = None,
              build_source: Callable[[object], TreeEntry] | None = None) -> tuple[bytes, int, int]:
        """Encode changed directories bottom-up.

        Args:
            put_tree: Called with ``(id, encoded)`` for each tree node of a changed
                directory; None to only compute ids.
            resolve: Turns a PendingFile into a FileRef (reads and hashes the file).
            on_reference: Called before ``put_tree`` stores a node that holds a
                reference entry (to require the ``tree-reference`` feature).
            build_source: Returns the tree entry of a source (see ``sources``);
                without it a source is expanded and built like other entries.

        Returns:
            ``(root id, total size, number of files)``.
        """
        def enc(d: _Dir, prefix: str) -> TreeEntry:
            if d.source is not None and d.children is None and build_source is not None:
                return build_source(d.source)
            if not d.dirty:
                return d.base
            entries = []
            for name, e in self._children(d).items():
                if isinstance(e, _Dir):
                    sub = enc(e, prefix + name + "/")
                    entries.append(TreeEntry(name, KIND_TREE, sub.id, sub.size, sub.aux))
                elif isinstance(e, Reference):
                    entries.append(reference_entry(name, e))
                else:
                    if isinstance(e, PendingFile):
                        e = resolve(prefix + name, e)
                    entries.append(TreeEntry(name, KIND_FILE, e.id, e.size, 1 if e.executable else 0))
            data = encode_tree_node(entries)
            tid = tree_id(data)
            if put_tree is not None and on_reference is not None and any(
                    x.kind == KIND_REFERENCE for x in entries):
                on_reference()
            if put_tree is not None:
                put_tree(tid, data)
            return TreeEntry("", KIND_TREE, tid, sum(x.size for x in entries), sum(x.n_files for x in entries))

        root = enc(self.root, "")
        return root.id, root.size, root.aux
