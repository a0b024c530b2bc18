"""Objects by id: dedup on put, verification on every get, packs sealed in batches.

Combines the LMDB index (where objects are) with pack files (their bytes). An
object written here becomes durable when its pack is sealed by ``flush``.

Write pipeline: ``put`` checks dedup in the calling thread, then queues the
object; queued objects are compressed in batches by a small thread pool (zstd
releases the GIL) and appended to the open pack in ``put`` order by the calling
thread. A full pack is finished (footer) in the calling thread and fsynced and
renamed by a single sealer thread while ingest goes on. ``flush`` drains the
queue, waits for every seal, then indexes all new packs in one LMDB
transaction: the crash-point order of docs/format.md §10.2 (pack durable, then
indexed, then the log entry) holds per pack. Raw bytes given to ``put`` must
not be modified until ``flush`` returns. Memory is bounded by
``MAX_INFLIGHT`` bytes of queued raw data. The pools are created lazily per
process, so a forked child makes its own.
"""

from __future__ import annotations

import os
import threading
from collections import deque

from cas.errors import CasError, DigestMismatch, FormatError, ObjectNotFound, StorageError
from cas.format.codec import CODEC_RAW, Codec
from cas.format.digest import to_text
from cas.format.nodes import FileNode, decode_file_node, decode_tree_node
from cas.format.pack import KIND_FILE_NODE, KIND_TREE_NODE, OBJECT_KINDS, object_id
from cas.index.replay import gc_count, index_pack
from cas.index.tables import Location, Tables
from cas.storage.crash import crashpoint
from cas.storage.packs import PackReader, PackWriter, iter_pack_names

PACK_TARGET_SIZE = 32 * 1024 * 1024
BATCH_BYTES = 1 << 20  # raw bytes per compression job
MAX_INFLIGHT = 24 << 20  # raw bytes queued or being compressed before put() waits


def decode_verified(codec: Codec, oid: bytes, loc: Location, stored, where: str):
    """Return the raw bytes of an object read from ``loc``, checked against its id.

    Raises:
        DigestMismatch: The bytes do not decode or do not hash to ``oid``.
    """
    if loc.codec == CODEC_RAW and len(stored) == loc.raw_len:
        raw = stored
    else:
        try:
            raw = codec.decode(loc.codec, stored, loc.raw_len)
        except FormatError as exc:
            raise DigestMismatch(to_text(oid), to_text(oid), f"undecodable bytes ({exc})", where) from exc
    actual = object_id(loc.kind, raw)
    if actual != oid:
        raise DigestMismatch(to_text(oid), to_text(oid), to_text(actual), where)
    return raw


class ObjectStore:
    """Read and write objects of one store through its index."""

    def __init__(self, layout, db, zstd_level: int) -> None:
        self.layout = layout
        self.db = db
        self.codec = Codec(zstd_level)
        self.reader = PackReader(layout.packs)
        self.zstd_level = zstd_level
        self._writer: PackWriter | None = None
        self._pending: set[bytes] = set()
        self.sealed: list[str] = []
        # set by the Repo: called before a write may reuse stored objects (creates its pin)
        self.before_write = lambda: None
        # set by the Repo: brings the index up to date with the log
        self.catch_up = lambda: None
        self._batch: list = []  # [(oid, kind, raw)] not yet submitted
        self._batch_bytes = 0
        self._inflight: deque = deque()  # (future, [(oid, kind, raw_len)], raw bytes)
        self._inflight_bytes = 0
        self._sealing: list = []  # (future, writer) of finished packs being synced
        self._pool = None
        self._sealer = None
        self._pool_pid = 0
        self._local = threading.local()
        self._snap_tables: Tables | None = None  # Tables of the current shared snapshot

    # lookups --------------------------------------------------------------
    def _tables(self) -> Tables:
        txn = self.db.snapshot()
        t = self._snap_tables
        if t is None or t.txn is not txn:
            t = self._snap_tables = Tables(self.db, txn)
        return t

    def refresh(self) -> None:
        """Drop the cached read snapshot so newer index writes are seen."""
        self.db.drop_snapshot()

    def has(self, oid: bytes) -> bool:
        """Return True if the object is stored or pending in the open pack."""
        return oid in self._pending or self._tables().has_object(oid)

    def is_condemned(self, pack_name: str) -> bool:
        """Return True if a gc entry condemned a pack of this name (it must not be reused)."""
        return self._tables().condemned_seq(pack_name) is not None

    def has_file(self, fid: bytes) -> bool:
        """Return True if a file node and every node and chunk below it are stored.

        Only after a gc can a node be stored while a descendant is not (a writer
        that raced gc and never published); before any gc this is ``has``.
        """
        if not self.has(fid):
            return False
        if gc_count(self._tables()) == 0:
            return True
        try:
            return all(self.has(cid) for cid, _n in self.iter_chunks(fid))
        except CasError:
            return False

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

    def locate_many(self, oids) -> dict[bytes, Location]:
        """Return the locations of ``oids`` that are stored; missing ids are left out.

        Ids not in the cached snapshot get the retry rule of ``locate``.
        """
        found = self._tables().locate_many(oids)
        if len(found) < len(oids):
            for oid in oids:
                if oid not in found:
                    loc = self.locate(oid)
                    if loc is not None:
                        found[oid] = loc
        return found

    def queued(self) -> int:
        """Number of objects written since the last ``flush`` (each costs memory until then)."""
        return len(self._pending)

    def index_pages(self, table: str) -> int:
        """Pages of an index table (a write transaction copies each page it changes into memory)."""
        return self._tables().pages(table)

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
        try:
            stored = self.reader.read(loc.pack, loc.offset, loc.stored_len)
        except StorageError:
            # gc may have repacked the object and deleted the pack since this snapshot
            self.catch_up()
            self.refresh()
            moved = self.locate(oid)
            if moved is None or moved.pack == loc.pack:
                raise
            loc = moved
            stored = self.reader.read(loc.pack, loc.offset, loc.stored_len)
        return decode_verified(self.codec, oid, loc, stored, where or f"pack {loc.pack}")

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
        """Store an object unless present; return True if it was queued.

        ``raw`` (bytes or a memoryview) must stay unchanged until ``flush``
        returns. The object is durable only after ``flush``.
        """
        if not self._pending:
            # also before a dedup hit: reusing a stored object needs the writer's pin
            self.before_write()
        if self.has(oid):
            return False
        self._pending.add(oid)
        self._batch.append((oid, kind, raw))
        n = len(raw)
        self._batch_bytes += n
        if self._batch_bytes >= BATCH_BYTES:
            self._submit()
        return True

    def _pools(self):
        if self._pool_pid != os.getpid():
            # a forked child inherits no threads: start its own pools
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="cas-zstd")
            self._sealer = ThreadPoolExecutor(1, thread_name_prefix="cas-seal")
            self._pool_pid = os.getpid()
        return self._pool, self._sealer

    def _codec(self) -> Codec:
        c = getattr(self._local, "codec", None)
        if c is None:
            c = self._local.codec = Codec(self.zstd_level)
        return c

    def _encode_batch(self, raws: list) -> list:
        enc = self._codec().encode
        return [enc(r) for r in raws]

    def _submit(self) -> None:
        """Hand the current batch to the compression pool; write finished batches."""
        batch, self._batch, nbytes, self._batch_bytes = self._batch, [], self._batch_bytes, 0
        if not batch:
            return
        pool, _ = self._pools()
        fut = pool.submit(self._encode_batch, [raw for _oid, _kind, raw in batch])
        self._inflight.append((fut, [(oid, kind, len(raw)) for oid, kind, raw in batch], nbytes))
        self._inflight_bytes += nbytes
        # write what is done; wait for the oldest only when too much is queued
        while self._inflight and (self._inflight_bytes > MAX_INFLIGHT or self._inflight[0][0].done()):
            self._write_oldest()

    def _write_oldest(self) -> None:
        fut, metas, nbytes = self._inflight.popleft()
        self._inflight_bytes -= nbytes
        encoded = fut.result()
        for (oid, kind, raw_len), (codec, stored) in zip(metas, encoded):
            if self._writer is None:
                self._writer = PackWriter(self.layout.packs, self.layout.tmp)
            self._writer.add(oid, kind, codec, raw_len, stored)
            if self._writer.size >= PACK_TARGET_SIZE:
                self._seal_open_pack()

    def _seal_open_pack(self) -> None:
        """Finish the open pack and hand it to the sealer thread."""
        w, self._writer = self._writer, None
        if w is None:
            return
        if not w.entries:
            w.abort()
            return
        name = w.finish(avoid=self.is_condemned)
        _, sealer = self._pools()
        self._sealing.append((sealer.submit(w.publish, name), w))

    def _drain(self) -> None:
        """Write every queued object into packs (not yet sealed)."""
        self._submit()
        while self._inflight:
            self._write_oldest()

    def flush(self) -> list[str]:
        """Seal the open pack and index it; return the names sealed so far."""
        if self._batch or self._inflight or self._writer is not None or self._sealing:
            try:
                self._drain()
                self._seal_open_pack()
                sealing, self._sealing = self._sealing, []
                done = [(fut.result(), w) for fut, w in sealing]  # raises the first seal error
            except BaseException:
                # nothing queued since the last flush is indexed: forget it, so a
                # retry stores it again instead of trusting ``has``
                self.abort()
                raise
            if done:
                self.refresh()
                with self.db.write() as txn:
                    t = Tables(self.db, txn)
                    for name, w in done:
                        t.add_pack(name, w.entries)
                crashpoint("objects-indexed")
                self.sealed.extend(name for name, _w in done)
            self._pending.clear()
        return list(self.sealed)

    def take_sealed(self) -> list[str]:
        """Flush and return the packs sealed since the last call."""
        self.flush()
        out, self.sealed = self.sealed, []
        return out

    def abort(self) -> None:
        """Discard queued objects and the open pack (they were never indexed).

        Packs already handed to the sealer finish sealing; unindexed, they are
        orphans that fsck reports and gc may remove.
        """
        for fut, _metas, _n in self._inflight:
            fut.cancel()
        self._inflight.clear()
        self._inflight_bytes = 0
        self._batch, self._batch_bytes = [], 0
        for fut, _w in self._sealing:
            try:
                fut.result()
            except Exception:  # noqa: BLE001 - an orphan pack either way
                pass
        self._sealing = []
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        self._pending.clear()

    def _stop_pools(self) -> None:
        if self._pool_pid == os.getpid():
            self._pool.shutdown(wait=True)
            self._sealer.shutdown(wait=True)
        self._pool = self._sealer = None
        self._pool_pid = 0

    def close(self) -> None:
        """Abort any unsealed pack, stop the worker threads and release read handles."""
        self.abort()
        self._stop_pools()
        self.refresh()
        self.reader.close()
