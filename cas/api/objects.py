"""Objects by id: dedup on put, verification on every get, packs sealed in batches.

Combines the LMDB index (where objects are) with pack files (their bytes). An
object written here becomes durable when its pack is sealed by ``flush``.
"""

from __future__ import annotations

from cas.errors import DigestMismatch, FormatError, ObjectNotFound
from cas.format.codec import Codec
from cas.format.digest import chunk_id, file_node_id, to_text, tree_node_id
from cas.format.nodes import FileNode, decode_file_node, decode_tree_node
from cas.format.pack import KIND_CHUNK, KIND_FILE_NODE, KIND_TREE_NODE, OBJECT_KINDS
from cas.index.replay import index_pack
from cas.index.tables import Location, Tables
from cas.storage.crash import crashpoint
from cas.storage.packs import PackReader, PackWriter, iter_pack_names

PACK_TARGET_SIZE = 32 * 1024 * 1024
_HASHERS = {KIND_CHUNK: chunk_id, KIND_FILE_NODE: file_node_id, KIND_TREE_NODE: tree_node_id}


class ObjectStore:
    """Read and write objects of one store through its index."""

    def __init__(self, layout, db, zstd_level: int) -> None:
        self.layout = layout
        self.db = db
        self.codec = Codec(zstd_level)
        self.reader = PackReader(layout.packs)
        self._writer: PackWriter | None = None
        self._pending: set[bytes] = set()
        self.sealed: list[str] = []

    # lookups --------------------------------------------------------------
    def _tables(self) -> Tables:
        return Tables(self.db, self.db.snapshot())

    def refresh(self) -> None:
        """Drop the cached read snapshot so newer index writes are seen."""
        self.db.drop_snapshot()

    def has(self, oid: bytes) -> bool:
        """Return True if the object is stored or pending in the open pack."""
        return oid in self._pending or self._tables().has_object(oid)

    def locate(self, oid: bytes) -> Location | None:
        """Return where an object is stored, or None.

        An unknown id is looked up again in a fresh snapshot (another process
        may have indexed it since), then after indexing any sealed pack the
        index does not know yet.
        """
        loc = self._tables().locate(oid)
        if loc is not None:
            return loc
        if oid in self._pending:
            self.flush()
        self.refresh()
        loc = self._tables().locate(oid)
        if loc is None:
            with self.db.write() as txn:
                t = Tables(self.db, txn)
                for name in iter_pack_names(self.layout.packs):
                    if t.pack_no(name) is None:
                        index_pack(t, self.layout.packs, name)
            self.refresh()
            loc = self._tables().locate(oid)
        return loc

    # reads -----------------------------------------------------------------
    def get(self, oid: bytes, kind: int | None = None, where: str = "") -> bytes:
        """Return an object's raw bytes, verified against its id.

        Raises:
            ObjectNotFound: Not in the store.
            DigestMismatch: The stored bytes are corrupt.
        """
        loc = self.locate(oid)
        if loc is None:
            raise ObjectNotFound(to_text(oid), where)
        if kind is not None and loc.kind != kind:
            raise DigestMismatch(to_text(oid), f"a {OBJECT_KINDS.get(kind)}", f"a {OBJECT_KINDS.get(loc.kind)}", where)
        return self._read(oid, loc, where)

    def _read(self, oid: bytes, loc: Location, where: str) -> bytes:
        stored = self.reader.read(loc.pack, loc.offset, loc.stored_len)
        try:
            raw = self.codec.decode(loc.codec, stored, loc.raw_len)
        except FormatError as exc:
            raise DigestMismatch(to_text(oid), to_text(oid), f"undecodable bytes ({exc})", where) from exc
        actual = _HASHERS[loc.kind](raw)
        if actual != oid:
            raise DigestMismatch(to_text(oid), to_text(oid), to_text(actual), where or f"pack {loc.pack}")
        return raw

    def read_at(self, oid: bytes, loc: Location, where: str = "") -> bytes:
        """Read and verify an object at a known location."""
        return self._read(oid, loc, where)

    def get_tree(self, tid: bytes, where: str = ""):
        """Return the decoded entries of a tree node.

        Raises:
            ObjectNotFound, DigestMismatch: Missing or corrupt.
            FormatError: The node does not decode.
        """
        return decode_tree_node(self.get(tid, KIND_TREE_NODE, where))

    def get_file_node(self, fid: bytes, where: str = "") -> FileNode:
        """Return a decoded file node."""
        return decode_file_node(self.get(fid, KIND_FILE_NODE, where))

    def iter_chunks(self, fid: bytes, where: str = ""):
        """Yield ``(chunk id, raw length)`` of a file in order, across node levels."""
        node = self.get_file_node(fid, where)
        if node.level == 0:
            yield from node.entries
        else:
            for child, _size in node.entries:
                yield from self.iter_chunks(child, where)

    # writes ----------------------------------------------------------------
    def put(self, oid: bytes, kind: int, raw) -> bool:
        """Store an object unless present; return True if it was written.

        The object is durable only after ``flush``.
        """
        if self.has(oid):
            return False
        codec, stored = self.codec.encode(raw)
        if self._writer is None:
            self._writer = PackWriter(self.layout.packs, self.layout.tmp)
        self._writer.add(oid, kind, codec, len(raw), stored)
        self._pending.add(oid)
        if self._writer.size >= PACK_TARGET_SIZE:
            self.flush()
        return True

    def flush(self) -> list[str]:
        """Seal the open pack and index it; return the names sealed so far."""
        w = self._writer
        if w is not None:
            self._writer = None
            if w.entries:
                name = w.seal()
                self.refresh()
                with self.db.write() as txn:
                    Tables(self.db, txn).add_pack(name, w.entries)
                crashpoint("objects-indexed")
                self.sealed.append(name)
            else:
                w.abort()
            self._pending.clear()
        return list(self.sealed)

    def take_sealed(self) -> list[str]:
        """Flush and return the packs sealed since the last call."""
        self.flush()
        out, self.sealed = self.sealed, []
        return out

    def abort(self) -> None:
        """Discard the open pack (its objects were never indexed)."""
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
            self._pending.clear()

    def close(self) -> None:
        """Abort any unsealed pack and release read handles."""
        self.abort()
        self.refresh()
        self.reader.close()

