"""Batched object reads for restore: coalesced pack reads, every object verified.

The objects a batch of files needs are located in the index, sorted by pack and
offset, and read with one ``pread`` per run of neighbouring records (restic and
borg read packs the same way). Each object is then decoded and checked against
its id before anyone sees its bytes. Raw (uncompressed) chunks are returned as
zero-copy views into the run buffer. Nothing here writes.

A Fetcher has its own index snapshot and pack handles, so each thread of a
restore uses its own; the store's shared snapshot is touched only to look again
for an id the own snapshot lacks, under the lock the caller shares.
"""

from __future__ import annotations

import contextlib
import threading
from operator import itemgetter

from cas.api.objects import decode_verified
from cas.errors import DigestMismatch, FormatError, ObjectNotFound, StorageError
from cas.format.codec import Codec
from cas.format.digest import to_text
from cas.format.nodes import decode_file_node, decode_file_rows
from cas.format.pack import KIND_CHUNK, KIND_FILE_NODE, OBJECT_KINDS
from cas.index.tables import Tables
from cas.storage.packs import PackReader

MAX_RUN = 4 << 20  # bytes read by one pread at most (unless one object is larger)
MAX_GAP = 256 << 10  # unwanted bytes between two wanted records read over instead of a new pread
SEGMENT = 4 << 20  # raw bytes of a large file fetched per step
NODE_GROUP = 16  # interior file nodes fetched together
_location = itemgetter(1)  # of a (id, Location) pair: Locations order by pack, then offset


class Fetcher:
    """Read many objects of one store at once; use one Fetcher per thread, then ``close`` it.

    Args:
        objects: The ObjectStore.
        shared: A lock held while the store's shared snapshot is used (by any
            thread of the caller); ids this Fetcher's snapshot lacks are looked
            up there (``ObjectStore.locate`` retries in a fresh snapshot).
    """

    def __init__(self, objects, shared=None) -> None:
        self.objects = objects
        self.shared = shared or threading.Lock()
        self.reader = PackReader(objects.layout.packs)  # own handles: one per thread
        self.codec = Codec(objects.codec.level)  # its own zstd contexts
        self._stack = contextlib.ExitStack()
        self.tables = Tables(objects.db, self._stack.enter_context(objects.db.read()))

    def close(self) -> None:
        """End the snapshot and close the pack handles."""
        try:
            self._stack.close()
        finally:
            self.reader.close()

    def locate_many(self, oids: list) -> dict:
        """Return the locations of those of ``oids`` that are stored."""
        found = self.tables.locate_many(oids)
        if len(found) < len(oids):
            with self.shared:
                for oid in oids:
                    if oid not in found:
                        loc = self.objects.locate(oid)
                        if loc is not None:
                            found[oid] = loc
        return found

    def fetch(self, wants) -> dict:
        """Return ``{id: raw bytes}`` for ``wants``, each verified against its id.

        Args:
            wants: ``(id, kind, where)`` triples; ``where`` names the file and
                version for error messages. Repeated ids are read once.

        Returns:
            Raw bytes per id (``bytes`` or a read-only ``memoryview``).

        Raises:
            ObjectNotFound: An id is not in the store.
            DigestMismatch: Stored bytes do not decode or do not hash to their id.
            StorageError: A pack is missing or unreadable.
        """
        first = {want[0]: want for want in reversed(wants)}  # the first want of an id names it in errors
        locs = self.locate_many(list(first))
        if len(locs) < len(first):
            oid, _kind, where = next(w for w in wants if w[0] not in locs)
            raise ObjectNotFound(to_text(oid), where)
        order = sorted(locs.items(), key=_location)  # by pack, then offset
        runs = []
        run = None
        for item in order:
            oid, loc = item
            if loc.kind != first[oid][1]:
                raise DigestMismatch(to_text(oid), f"a {OBJECT_KINDS.get(first[oid][1])}",
                                     f"a {OBJECT_KINDS.get(loc.kind)}", first[oid][2])
            pack, off = loc.pack, loc.offset
            end = off + loc.stored_len
            if run is not None and run[0] == pack and off <= run[2] + MAX_GAP and end - run[1] <= MAX_RUN:
                if end > run[2]:
                    run[2] = end
                run[3].append(item)
            else:
                run = [pack, off, end, [item]]
                runs.append(run)
        if len(runs) > 1:
            for pack, start, end, _items in runs[1:]:
                self.reader.prefetch(pack, start, end - start)
        out: dict = {}
        codec = self.codec
        for pack, start, end, items in runs:
            try:
                buf = memoryview(self.reader.read(pack, start, end - start))
            except StorageError:
                # a truncated pack: read object by object so intact ones still succeed
                for oid, loc in items:
                    where = first[oid][2]
                    out[oid] = decode_verified(codec, oid, loc, self._read_one(oid, loc, where), where)
                continue
            for oid, loc in items:
                rel = loc.offset - start
                out[oid] = decode_verified(codec, oid, loc, buf[rel:rel + loc.stored_len], first[oid][2])
        return out

    def _read_one(self, oid: bytes, loc, where: str):
        try:
            return self.reader.read(loc.pack, loc.offset, loc.stored_len)
        except StorageError as exc:
            raise StorageError(f"{exc} (reading {to_text(oid)} for {where})") from exc

    def chunk_lists(self, files) -> list[list[tuple[bytes, int]]]:
        """Return the chunk list ``[(chunk id, length), ...]`` of each ``(file id, where)`` (do not modify it).

        File nodes of all files are fetched together, one tree level at a time.

        Raises:
            ObjectNotFound, DigestMismatch, StorageError: As ``fetch``.
            FormatError: A file node does not decode.
        """
        nodes = self.fetch([(fid, KIND_FILE_NODE, where) for fid, where in files])
        out = []
        for fid, where in files:
            try:
                level, rows = decode_file_rows(nodes[fid])
            except FormatError as exc:
                raise FormatError(f"file node {to_text(fid)} in {where}: {exc}") from exc
            if level == 0:
                out.append(rows)  # [[chunk id, length], ...], not modified by anyone
            else:
                out.append(list(self.iter_chunks(fid, where, _decode(nodes[fid], fid, where))))
        return out

    def iter_chunks(self, fid: bytes, where: str, node=None):
        """Yield ``(chunk id, length)`` of one file in order, reading its nodes level by level."""
        if node is None:
            node = _decode(self.fetch([(fid, KIND_FILE_NODE, where)])[fid], fid, where)
        if node.level == 0:
            yield from node.entries
            return
        # children are fetched a few at a time: a node can be 176 KiB
        ids = [cid for cid, _n in node.entries]
        for i in range(0, len(ids), NODE_GROUP):
            group = ids[i:i + NODE_GROUP]
            children = self.fetch([(cid, KIND_FILE_NODE, where) for cid in group])
            for cid in group:
                child = _decode(children[cid], cid, where)
                if child.level != node.level - 1:
                    raise FormatError(f"file node {to_text(cid)} in {where} has level {child.level}, "
                                      f"expected {node.level - 1}")
                yield from self.iter_chunks(cid, where, child)

    def iter_segments(self, fid: bytes, where: str, segment: int = SEGMENT):
        """Yield the verified chunks of one file in order, about ``segment`` bytes per list."""
        batch, n = [], 0
        for cid, length in self.iter_chunks(fid, where):
            batch.append(cid)
            n += length
            if n >= segment:
                got = self.fetch([(c, KIND_CHUNK, where) for c in batch])
                yield [got[c] for c in batch]
                batch, n = [], 0
        if batch:
            got = self.fetch([(c, KIND_CHUNK, where) for c in batch])
            yield [got[c] for c in batch]


def _decode(raw, fid: bytes, where: str):
    try:
        return decode_file_node(raw)
    except FormatError as exc:
        raise FormatError(f"file node {to_text(fid)} in {where}: {exc}") from exc

