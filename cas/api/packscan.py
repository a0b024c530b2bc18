"""One sequential pass over every pack: the pack's own hash and every object in it.

A few worker threads each take whole packs: a worker reads its pack front to
back once into a reused buffer, in blocks that end on object boundaries, feeds
every block to the BLAKE3 that names the pack, and decodes and hashes every
object the footer lists. Several packs are read at once, which keeps more
reads in flight than one sequential reader does (cold reads of packs are about
twice as fast here with 3-4 readers as with one). BLAKE3, zstd and the reads
release the GIL, so the workers share both cores. The calling thread matches
each checked footer entry with the index. Used by ``fsck``; nothing here writes.
"""

from __future__ import annotations

import queue
import threading
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import islice
from operator import add, eq, itemgetter, le

from cas.errors import CasError, FormatError
from cas.format.codec import CODEC_RAW, Codec
from cas.format.digest import to_text
from cas.format.pack import KIND_CHUNK, object_id
from cas.index.tables import OBJ
from cas.storage.packs import PackScan, pack_path

NODE_CACHE_BYTES = 64 << 20  # verified node bytes kept for the version walk that follows
BLOCK = 4 << 20  # bytes read per block (the buffer each worker reuses)
WORKERS = 3  # packs read at once
QUEUE_DEPTH = 16  # checked blocks waiting for the index comparison


@dataclass
class ScanResult:
    """What one pass over the packs found."""

    pack_problems: list[tuple[str, str]] = field(default_factory=list)  # (pack name, detail)
    bad: dict[bytes, str] = field(default_factory=dict)  # object id -> why (index location only)
    # object id -> pack number, for every index entry a footer entry confirmed (intact or in ``bad``)
    located: dict[bytes, int] = field(default_factory=dict)
    nodes: dict[bytes, bytes] = field(default_factory=dict)  # verified node bytes by id


def scan_packs(packs_dir: str, names: list[str], txn, dbs, indexed: dict[str, int], level: int,
               progress=None, workers: int = WORKERS) -> ScanResult:
    """Read every pack in ``names`` once, verifying the pack hash and each object.

    Args:
        packs_dir: The store's ``packs/`` directory.
        names: Pack names on disk.
        txn: An index read transaction (used from this thread only).
        dbs: The index's named databases.
        indexed: Pack name -> local pack number (packs not condemned).
        level: zstd level of the store (decoders only).
        progress: Called as ``progress(done, total)`` after each pack.
        workers: Packs read at once.

    Returns:
        Pack-level problems, objects whose indexed copy is corrupt, and which
        index entries a footer confirmed.
    """
    res = ScanResult()
    q: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for name in names:
        todo.put(name)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        codec = Codec(level)
        buf = bytearray(BLOCK)
        try:
            while not stop.is_set():
                try:
                    name = todo.get_nowait()
                except queue.Empty:
                    break
                if not _scan_pack(packs_dir, name, indexed.get(name), codec, buf, put):
                    break
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            put(("fail", exc, None))
        finally:
            put(None)

    n = max(1, min(workers, len(names)))
    threads = [threading.Thread(target=work, name=f"cas-fsck-{i}", daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    try:
        _match(q, res, txn, dbs, progress, len(names), n)
    finally:
        stop.set()
        for t in threads:
            t.join()
    return res


def _scan_pack(packs_dir: str, name: str, pack_no: int | None, codec: Codec, buf: bytearray, put) -> bool:
    """Read, hash and check one pack; hand the results to ``put``. False if told to stop."""
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
            for pos, view in scan.blocks(ends, buf, BLOCK):
                k = bisect_right(ends, pos + len(view), j)
                inside = rows[j:k]
                j = k
                if inside and (overlap or inside[0][3] < pos):
                    # an entry is checked in the block its end falls in, if it starts there
                    inside = [r for r in inside if r[3] >= pos]
                if inside and not put(("block", pack_no, inside, *_check_block(inside, view, pos, codec))):
                    return False
            if scan.hexdigest() != name:
                problems.append("pack bytes do not hash to the pack's name")
    except CasError as exc:
        problems.append(str(exc))
    return put(("end", name, problems))


def _check_block(rows, view, pos: int, codec: Codec) -> tuple[list | None, list]:
    """Decode and hash every object of one block.

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
    if raws is None or not all(map(eq, map(object_id, map(itemgetter(1), rows), raws), map(itemgetter(0), rows))):
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


def _match(q, res: ScanResult, txn, dbs, progress, n_packs: int, n_workers: int) -> None:
    """Compare every checked footer entry with the index, in the calling thread.

    An entry matches if the index locates its id exactly there (same pack,
    offset, lengths, kind and codec); only matching entries count as where an
    object is, and a corrupt object is reported only where the index locates it.
    """
    get, objects_db, pack = txn.get, dbs["objects"], OBJ.pack
    located, bad, nodes = res.located, res.bad, res.nodes
    node_room = NODE_CACHE_BYTES
    done = 0
    while n_workers:
        item = q.get()
        if item is None:
            n_workers -= 1
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
        _tag, pack_no, rows, whys, kept = item
        if pack_no is not None:
            here = [get(r[0], db=objects_db) == pack(pack_no, r[3], r[4], r[5], r[1], r[2]) for r in rows]
            located.update((r[0], pack_no) for r, h in zip(rows, here) if h)
            if whys is not None:
                bad.update((r[0], why) for r, h, why in zip(rows, here, whys) if h and why is not None)
        for oid, raw in kept:
            if len(raw) <= node_room and oid not in nodes:
                nodes[oid] = raw
                node_room -= len(raw)
