"""One sequential pass over every pack: the pack's own hash and every object in it.

A few reader threads each take whole packs: a reader reads its pack front to
back once, in blocks that end on object boundaries, into a small pool of
buffers it reuses, feeds every block to the BLAKE3 that names the pack and
hashes the block's raw objects. Several packs are read at once, which keeps
more reads in flight than one sequential reader does. The calling thread
decodes and hashes the other objects (zstd frames, tiny objects), compares
every object's hash with its id and every footer entry with the index, then
hands the buffer back. Decoding stays in one thread: zstd and BLAKE3 release
the GIL for each object, and two threads doing that for small frames mostly
wait for each other. Used by ``fsck``; nothing here writes.
"""

from __future__ import annotations

import queue
import threading
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import partial
from itertools import compress, islice, repeat
from operator import add, eq, itemgetter, le

from cas.errors import CasError, FormatError
from cas.format.codec import CODEC_RAW, Codec
from cas.format.digest import to_text
from cas.format.pack import KIND_CHUNK, object_id
from cas.index.tables import object_values
from cas.storage.packs import PackScan, pack_path

NODE_CACHE_BYTES = 64 << 20  # verified node bytes kept for the version walk that follows
BLOCK = 2 << 20  # bytes read per block
READERS = 3  # packs read at once
BUFFERS = 2  # blocks each reader may have read ahead of the checks (its buffer pool)
READER_HASH_MIN = 2 << 10  # raw objects this large are hashed by the readers (blake3 releases the GIL from 2 KiB)


@dataclass
class ScanResult:
    """What one pass over the packs found."""

    pack_problems: list[tuple[str, str]] = field(default_factory=list)  # (pack name, detail)
    bad: dict[bytes, str] = field(default_factory=dict)  # object id -> why (index location only)
    # object id -> pack number, for every index entry a footer entry confirmed (intact or in ``bad``)
    located: dict[bytes, int] = field(default_factory=dict)
    nodes: dict[bytes, bytes] = field(default_factory=dict)  # verified node bytes by id


def scan_packs(packs_dir: str, names: list[str], txn, dbs, indexed: dict[str, int], level: int,
               progress=None, readers: int = READERS) -> ScanResult:
    """Read every pack in ``names`` once, verifying the pack hash and each object.

    Args:
        packs_dir: The store's ``packs/`` directory.
        names: Pack names on disk.
        txn: An index read transaction (used from this thread only).
        dbs: The index's named databases.
        indexed: Pack name -> local pack number (packs not condemned).
        level: zstd level of the store (decoders only).
        progress: Called as ``progress(done, total)`` after each pack.
        readers: Packs read at once.

    Returns:
        Pack-level problems, objects whose indexed copy is corrupt, and which
        index entries a footer confirmed.
    """
    res = ScanResult()
    q: queue.Queue = queue.Queue()  # bounded by the readers' buffer pools
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for name in names:
        todo.put(name)
    stop = threading.Event()

    def read() -> None:
        free: queue.SimpleQueue = queue.SimpleQueue()
        made = 0

        def take() -> bytearray:
            nonlocal made
            if made < BUFFERS and free.empty():  # buffers are made when first needed
                made += 1
                return bytearray(BLOCK)
            while True:
                try:
                    return free.get(timeout=0.1)
                except queue.Empty:
                    if stop.is_set():
                        raise _Stopped from None

        try:
            while not stop.is_set():
                try:
                    name = todo.get_nowait()
                except queue.Empty:
                    break
                _read_pack(packs_dir, name, indexed.get(name), take, free, q.put)
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            q.put(("fail", exc))
        finally:
            q.put(None)

    n = max(1, min(readers, len(names)))
    threads = [threading.Thread(target=read, name=f"cas-fsck-read-{i}", daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    try:
        _check(q, res, txn, dbs, Codec(level), progress, len(names), n)
    finally:
        stop.set()
        for t in threads:
            t.join()
    return res


class _Stopped(Exception):
    """The calling thread stopped the scan (it raised)."""


def _read_pack(packs_dir: str, name: str, pack_no: int | None, take, free, put) -> None:
    """Read and hash one pack; hand each block with the footer entries it holds to ``put``."""
    problems: list[str] = []
    try:
        with PackScan(pack_path(packs_dir, name)) as scan:
            try:
                rows = scan.footer()
            except CasError as exc:
                problems.append(f"footer: {exc}")
                rows = []
            rows.sort(key=itemgetter(3))
            ends = list(map(add, map(itemgetter(3), rows), map(itemgetter(4), rows)))
            # in a sound footer, entries do not overlap: ordered by offset, they are ordered by end
            overlap = not all(map(le, ends, islice(ends, 1, None)))
            if overlap:  # a wrong footer that passed its checksum
                order = sorted(range(len(rows)), key=ends.__getitem__)
                rows, ends = [rows[i] for i in order], [ends[i] for i in order]
            j = 0
            for pos, view, buf in scan.blocks(ends, take, BLOCK):
                k = bisect_right(ends, pos + len(view), j)
                inside = rows[j:k]
                j = k
                if inside and (overlap or inside[0][3] < pos):
                    # an entry is checked in the block its end falls in, if it starts there
                    inside = [r for r in inside if r[3] >= pos]
                # raw objects are hashed here, beside the calling thread's decoding
                known = [object_id(kind, view[o - pos:o - pos + n]) if c == CODEC_RAW and n == r >= READER_HASH_MIN
                         else None for _i, kind, c, o, n, r in inside]
                put(("block", pack_no, inside, pos, view, buf, free, known if any(known) else None))
            if scan.hexdigest() != name:
                problems.append("pack bytes do not hash to the pack's name")
    except CasError as exc:
        problems.append(str(exc))
    put(("end", name, problems))


def _check(q, res: ScanResult, txn, dbs, codec: Codec, progress, n_packs: int, n_readers: int) -> None:
    """Check every block the readers hand over and compare its footer entries with the index.

    An entry matches if the index locates its id exactly there (same pack,
    offset, lengths, kind and codec); only matching entries count as where an
    object is, and a corrupt object is reported only where the index locates it.
    """
    lookup = partial(txn.get, db=dbs["objects"])
    located, bad, nodes = res.located, res.bad, res.nodes
    node_room = NODE_CACHE_BYTES
    done = 0
    while n_readers:
        item = q.get()
        if item is None:
            n_readers -= 1
            continue
        tag = item[0]
        if tag == "fail":
            raise item[1]
        if tag == "end":  # a pack is done: its name and problems
            res.pack_problems.extend((item[1], p) for p in item[2])
            done += 1
            if progress:
                progress(done, n_packs)
            continue
        _tag, pack_no, rows, pos, view, buf, free, known = item
        try:
            whys, kept = _check_block(rows, view, pos, codec, known) if rows else (None, ())
        finally:
            free.put(buf)  # back to its reader
        if pack_no is not None and rows:
            ids = list(map(itemgetter(0), rows))
            here = list(map(eq, map(lookup, ids), object_values(pack_no, rows)))
            located.update(zip(compress(ids, here), repeat(pack_no)))
            if whys is not None:
                bad.update((oid, why) for oid, h, why in zip(ids, here, whys) if h and why is not None)
        for oid, raw in kept:
            if len(raw) <= node_room and oid not in nodes:
                nodes[oid] = raw
                node_room -= len(raw)


def _check_block(rows, view, pos: int, codec: Codec, known=None) -> tuple[list | None, list]:
    """Decode and hash every object of one block.

    Args:
        known: Per row, the id the reader computed from the row's (raw) bytes, or None.

    Returns:
        ``(whys, nodes)``: ``whys`` is None if every object decodes and hashes
        to its id, else per row why it is corrupt (None for an intact one);
        ``nodes`` lists ``(id, raw bytes)`` of the intact nodes.
    """
    decode = codec.decode
    try:
        raws = [view[o - pos:o - pos + n] if c == CODEC_RAW and n == r else decode(c, view[o - pos:o - pos + n], r)
                for _i, _k, c, o, n, r in rows]
    except CasError:
        raws = None
    whys = None
    if raws is not None:
        if known is None:
            ids = map(object_id, map(itemgetter(1), rows), raws)
        else:
            ids = (k if k is not None else object_id(row[1], raw) for k, row, raw in zip(known, rows, raws))
        intact = all(map(eq, ids, map(itemgetter(0), rows)))
    if raws is None or not intact:
        whys, raws = _check_each(rows, view, pos, codec)
    # node bytes are kept for the version walk: copy them out of the reused buffer
    nodes = [(row[0], bytes(raw)) for row, raw in zip(rows, raws) if row[1] != KIND_CHUNK and raw is not None]
    return whys, nodes


def _check_each(rows, view, pos: int, codec: Codec) -> tuple[list, list]:
    """The check of ``_check_block`` one object at a time: ``(why or None, raw or None)`` per row."""
    whys, raws = [], []
    for oid, kind, cod, off, n, rlen in rows:
        stored = view[off - pos:off - pos + n]
        why = raw = None
        try:
            raw = stored if cod == CODEC_RAW and n == rlen else codec.decode(cod, stored, rlen)
        except FormatError as exc:
            why = f"corrupt object {to_text(oid)}: undecodable bytes ({exc})"
        except CasError as exc:
            why = str(exc)
        if raw is not None:
            actual = object_id(kind, raw)
            if actual != oid:
                why, raw = (f"corrupt object {to_text(oid)}: content hashes to {to_text(actual)}, "
                            f"expected {to_text(oid)}"), None
        whys.append(why)
        raws.append(raw)
    return whys, raws
