"""Find and restore objects of a draft that gc condemned while the draft was built.

A writer decides to reuse a stored object (dedup, stat cache, an incremental
draft) before it publishes. If gc condemned that object in between, the
writer's pin keeps the condemned pack on disk; at publish the writer finds the
object missing from the index (``first_missing``) and copies it back from the
condemned pack into a new pack (``rescue_tree``), docs/format.md §10.4.
"""

from __future__ import annotations

import os

from cas.errors import CasError, ObjectNotFound
from cas.format.digest import to_text
from cas.format.nodes import KIND_FILE, KIND_TREE, decode_file_node, decode_tree_node
from cas.format.pack import KIND_CHUNK, KIND_FILE_NODE, KIND_TREE_NODE, object_id
from cas.index.tables import Tables
from cas.storage.packs import pack_path, read_pack_index



def _children(kind: int, raw: bytes):
    """Yield ``(id, kind)`` of the objects a node refers to."""
    if kind == KIND_TREE_NODE:
        for e in decode_tree_node(raw):
            if e.kind == KIND_TREE:
                yield e.id, KIND_TREE_NODE
            elif e.kind == KIND_FILE:
                yield e.id, KIND_FILE_NODE
    elif kind == KIND_FILE_NODE:
        node = decode_file_node(raw)
        for cid, _n in node.entries:
            yield cid, KIND_CHUNK if node.level == 0 else KIND_FILE_NODE


def first_missing(objects, t: Tables, root: bytes) -> bytes | None:
    """Return an object reachable from tree ``root`` that ``t`` does not hold, or None.

    Reads nodes at the locations ``t`` gives, without retries or index writes, so
    it may run inside the publishing write transaction.
    """
    seen: set[bytes] = set()
    stack = [(root, KIND_TREE_NODE)]
    while stack:
        oid, kind = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        loc = t.locate(oid)
        if loc is None:
            return oid
        if kind == KIND_CHUNK:
            continue
        stored = objects.reader.read(loc.pack, loc.offset, loc.stored_len)
        raw = objects.codec.decode(loc.codec, stored, loc.raw_len)
        stack.extend(_children(kind, raw))
    return None


def rescue_tree(repo, root: bytes) -> int:
    """Store again every object of tree ``root`` that only a condemned pack holds.

    Returns:
        How many objects were copied.

    Raises:
        ObjectNotFound: No pack holds the object any more (the draft was idle past
            its pin's lifetime while gc ran); add the files again.
    """
    objects = repo.objects
    condemned: dict[bytes, tuple[str, object]] | None = None
    seen: set[bytes] = set()
    stack = [(root, KIND_TREE_NODE)]
    copied = 0
    while stack:
        oid, kind = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        if objects.has(oid):
            raw = objects.get(oid, kind) if kind != KIND_CHUNK else None
        else:
            if condemned is None:
                condemned = _condemned_objects(repo)
            hit = condemned.get(oid)
            if hit is None:
                raise ObjectNotFound(
                    to_text(oid),
                    "gc reclaimed it while the draft that reuses it was idle; add the files again and log",
                )
            name, e = hit
            stored = objects.reader.read(name, e.offset, e.stored_len)
            raw = objects.codec.decode(e.codec, stored, e.raw_len)
            if object_id(e.kind, raw) != oid:
                raise ObjectNotFound(to_text(oid), f"its only copy in condemned pack {name} is corrupt")
            objects.put(oid, e.kind, raw)
            copied += 1
        if raw is not None:
            stack.extend(_children(kind, raw))
    return copied


def _condemned_objects(repo) -> dict:
    out: dict = {}
    with repo.db.read() as txn:
        names = [name for name, _seq in Tables(repo.db, txn).iter_condemned()]
    for name in names:
        path = pack_path(repo.layout.packs, name)
        if not os.path.exists(path):
            continue
        try:
            for e in read_pack_index(path):
                out.setdefault(e.id, (name, e))
        except CasError:
            continue
    return out
