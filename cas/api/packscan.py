"""One sequential pass over every pack: the pack's own hash and every object in it.

A reading thread reads each pack front to back in blocks that end on object
boundaries and feeds BLAKE3 the whole file for the pack name; a checking thread
decodes and hashes every object the footer lists; the calling thread matches
them with the index. BLAKE3 and zstd release the GIL, so the passes share the
cores. Used by ``fsck``; nothing here writes.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

from cas.errors import CasError, FormatError
from cas.format.codec import CODEC_RAW, Codec
from cas.format.digest import to_text
from cas.format.pack import KIND_CHUNK, object_id
from cas.index.tables import OBJ
from cas.storage.packs import iter_pack_blocks, pack_path, read_pack_index

NODE_CACHE_BYTES = 64 << 20  # verified node bytes kept for the version walk that follows
QUEUE_DEPTH = 4  # blocks (4 MiB each) read ahead of verification


@dataclass
class ScanResult:
    """What one pass over the packs found."""

    pack_problems: list[tuple[str, str]] = field(default_factory=list)  # (pack name, detail)
    bad: dict[bytes, str] = field(default_factory=dict)  # object id -> why (index location only)
    matched: dict[int, set[int]] = field(default_factory=dict)  # pack no -> payload offsets verified
    n_matched: int = 0
    nodes: dict[bytes, bytes] = field(default_factory=dict)  # verified node bytes by id


def scan_packs(packs_dir: str, names: list[str], txn, dbs, indexed: dict[str, int], level: int,
               progress=None) -> ScanResult:
    """Read every pack in ``names`` once, verifying the pack hash and each object.

    Args:
        packs_dir: The store's ``packs/`` directory.
        names: Pack names on disk.
        txn: An index read transaction (used from this thread only).
        dbs: The index's named databases.
        indexed: Pack name -> local pack number.
        level: zstd level of the store (decoders only).

    Returns:
        Pack-level problems, objects whose indexed copy is corrupt, and which
        index locations were verified.
    """
    res = ScanResult()
    q_read: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
    q: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
    stop = threading.Event()

    def put(qu, item) -> bool:
        while not stop.is_set():
            try:
                qu.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(qu):
        while not stop.is_set():
            try:
                return qu.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def read_side() -> None:
        # reads and hashes each pack whole; lists which footer entries each block holds
        for name in names:
            path = pack_path(packs_dir, name)
            try:
                entries = read_pack_index(path)
            except CasError as exc:
                entries = exc
            todo = [] if isinstance(entries, CasError) else sorted(entries, key=lambda e: e.offset)
            ends = sorted({e.offset + e.stored_len for e in todo})
            if not put(q_read, ("pack", name, entries)):
                return
            j = 0
            try:
                for pos, data, digest in iter_pack_blocks(path, ends):
                    inside = []
                    if data is not None:
                        end = pos + len(data)
                        while j < len(todo) and todo[j].offset + todo[j].stored_len <= end:
                            if todo[j].offset >= pos:  # else it overlaps the previous block: a damaged footer
                                inside.append(todo[j])
                            j += 1
                    if not put(q_read, ("block", pos, data, digest, inside)):
                        return
            except CasError as exc:
                if not put(q_read, ("error", exc)):
                    return
        put(q_read, None)

    def check_side() -> None:
        # decodes and hashes every object (zstd and BLAKE3 release the GIL)
        codec = Codec(level)
        while True:
            item = get(q_read)
            if item is None:
                put(q, None)
                return
            if item[0] == "block":
                _tag, pos, data, digest, inside = item
                checked = []
                if data is not None:
                    mv = memoryview(data)
                    checked = [(e, *_check(e, mv[e.offset - pos:e.offset - pos + e.stored_len], codec))
                               for e in inside]
                item = ("block", pos, checked, digest, data is None)
            if not put(q, item):
                return

    threads = [threading.Thread(target=read_side, name="cas-fsck-read", daemon=True),
               threading.Thread(target=check_side, name="cas-fsck-check", daemon=True)]
    for t in threads:
        t.start()
    try:
        _verify_side(q, res, txn, dbs, indexed, progress, len(names))
    finally:
        stop.set()
        for t in threads:
            t.join()
    return res


def _verify_side(q, res: ScanResult, txn, dbs, indexed, progress, n_packs: int) -> None:
    objects_db = dbs["objects"]
    get = txn.get
    node_room = NODE_CACHE_BYTES
    done = 0
    item = q.get()
    while item is not None:
        _tag, name, entries = item
        pack_no = indexed.get(name)
        if isinstance(entries, CasError):
            res.pack_problems.append((name, f"footer: {entries}"))
            entries = []
        matched = res.matched.setdefault(pack_no, set()) if pack_no is not None else set()
        while True:
            item = q.get()
            if item[0] == "error":
                res.pack_problems.append((name, str(item[1])))
                item = q.get()
                break
            _tag, pos, checked, digest, last = item
            if last:
                if digest != name:
                    res.pack_problems.append((name, "pack bytes do not hash to the pack's name"))
                item = q.get()
                break
            for e, why, raw in checked:
                v = get(e.id, db=objects_db)
                here = v is not None and pack_no is not None and OBJ.unpack(v) == (
                    pack_no, e.offset, e.stored_len, e.raw_len, e.kind, e.codec)
                if why is not None:
                    if here:
                        res.bad[e.id] = why
                    continue
                if here and e.offset not in matched:
                    matched.add(e.offset)
                    res.n_matched += 1
                if e.kind != KIND_CHUNK and len(raw) <= node_room and e.id not in res.nodes:
                    res.nodes[e.id] = raw
                    node_room -= len(raw)
        done += 1
        if progress:
            progress(done, n_packs)


def _check(e, stored, codec) -> tuple[str | None, bytes | None]:
    """Return ``(None, raw bytes of a node)`` if the object decodes and hashes to its id, else ``(why, None)``.

    Chunk bytes are not returned (only nodes are kept, for the version walk).
    """
    if e.codec == CODEC_RAW and len(stored) == e.raw_len:
        raw = stored
    else:
        try:
            raw = codec.decode(e.codec, stored, e.raw_len)
        except FormatError as exc:
            return f"corrupt object {to_text(e.id)}: undecodable bytes ({exc})", None
        except CasError as exc:
            return str(exc), None
    actual = object_id(e.kind, raw)
    if actual != e.id:
        return (f"corrupt object {to_text(e.id)}: content hashes to {to_text(actual)}, "
                f"expected {to_text(e.id)}"), None
    # node bytes are kept for the version walk: copy them out of the block
    return None, (None if e.kind == KIND_CHUNK else bytes(raw))
