"""Garbage collection: delete expired versions, repack and delete unreachable objects.

The rules (docs/lifecycle.md, docs/format.md §10.4):

- Live objects are everything reachable from a version that is not DELETED,
  plus everything in a *young* pack (sealed after ``now - grace`` or after the
  start of an active writer pin: it may belong to a draft in progress), plus,
  to a fixed point, the descendants of every node object kept in the store.
  So an object that stays readable always has all its descendants readable.
- A pack that is not young and holds garbage is *condemned* when its garbage
  is at least ``repack_threshold`` of its bytes or it holds nothing live; its
  live objects are first copied, byte for byte, into new packs.
- The condemnation is a ``gc`` log entry, appended only if no version was
  published since the mark (else the mark is extended and retried). From then
  on every index treats the condemned packs as absent.
- A condemned pack file is deleted once no active writer pin has a
  ``seen_seq`` below the entry's seq: such a writer may still reuse an object
  it looked up before the condemnation, and rescues it from the pack at
  publish time (``Repo.log_artifact``).
- Expired versions (``ttl``) are deleted first, unless an alias other than
  ``latest`` still points at them.

gc holds the ``locks/gc`` lease while it works; the lease only keeps two gc
runs apart; correctness never depends on it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from cas.api.publish import append_entry
from cas.errors import CasError, IntegrityError
from cas.format import records as R
from cas.format.codec import Codec
from cas.format.nodes import KIND_FILE, KIND_TREE
from cas.format.pack import KIND_CHUNK, KIND_FILE_NODE, KIND_TREE_NODE, object_id
from cas.index.replay import index_pack
from cas.index.tables import Tables
from cas.storage.crash import crashpoint
from cas.storage.fsutil import fsync_dir
from cas.storage.lease import Lease
from cas.storage.packs import PackReader, PackWriter, iter_pack_names, pack_path, read_pack_index
from cas.storage.pins import active_pins, remove_stale_pins

DEFAULT_GRACE_S = 24 * 3600
DEFAULT_REPACK_THRESHOLD = 0.5
LEASE_S = 15 * 60
PACK_TARGET_SIZE = 32 * 1024 * 1024
MAX_ROUNDS = 50


@dataclass
class GcReport:
    """What a gc run did (or, with ``dry_run``, would do)."""

    dry_run: bool
    expired: list[str] = field(default_factory=list)  # versions deleted because their ttl passed
    expired_kept: list[str] = field(default_factory=list)  # expired but still aliased
    packs_total: int = 0
    packs_condemned: int = 0
    packs_repacked: int = 0  # condemned packs whose live objects were copied
    packs_deleted: int = 0
    packs_waiting: int = 0  # condemned, kept on disk for a writer that may still need them
    objects_live: int = 0
    objects_garbage: int = 0
    bytes_copied: int = 0
    bytes_freed: int = 0  # bytes of deleted packs and tmp files, minus bytes copied
    tmp_removed: int = 0
    pins_active: int = 0

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        return dict(self.__dict__)


@dataclass
class _Pack:
    name: str
    path: str
    size: int
    young: bool
    entries: list


def gc(repo, dry_run: bool = False, grace_s: float | None = None,
       repack_threshold: float = DEFAULT_REPACK_THRESHOLD, now_ns: int | None = None) -> GcReport:
    """Run garbage collection on ``repo`` (see the module docstring for the rules).

    Args:
        dry_run: Report what would be deleted and freed; change nothing.
        grace_s: Packs sealed less than this many seconds ago are never touched
            (default 24 h, or the config's ``gc_grace_seconds``).
        repack_threshold: Fraction of garbage bytes at which a pack is rewritten.
        now_ns: The time to judge ttl and grace by (tests).

    Raises:
        GcBusy: Another gc holds the lease.
        IntegrityError, ObjectNotFound: A live version is damaged; run 'cas fsck' first.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    if grace_s is None:
        grace_s = float(repo.config.get("gc_grace_seconds", DEFAULT_GRACE_S))
    report = GcReport(dry_run)
    lease = None if dry_run else Lease(repo.layout.locks, "gc", LEASE_S).acquire()
    try:
        repo.objects.flush()
        repo._catch_up()
        _index_unindexed(repo)
        _expire(repo, report, now_ns, dry_run)
        _collect(repo, report, now_ns, grace_s, repack_threshold, dry_run, lease)
    finally:
        if lease is not None:
            lease.release()
        repo.objects.refresh()
    return report


def _index_unindexed(repo) -> None:
    with repo.db.write() as txn:
        t = Tables(repo.db, txn)
        for name in iter_pack_names(repo.layout.packs):
            if t.pack_no(name) is None:
                index_pack(t, repo.layout.packs, name)


def expired_versions(repo, now_ns: int) -> list[tuple[str, dict]]:
    """Return ``(collection, record)`` of versions whose ttl has passed and are not deleted."""
    out = []
    with repo.db.read() as txn:
        t = Tables(repo.db, txn)
        for coll, c in t.iter_collections():
            default = c.get("ttl")
            for rec in t.iter_versions(coll):
                if rec.get("state") == "DELETED":
                    continue
                ttl = rec.get("ttl") if rec.get("ttl") is not None else default
                if ttl is not None and rec["created_ns"] + ttl * 10**9 <= now_ns:
                    out.append((coll, rec))
    return out


def _expire(repo, report: GcReport, now_ns: int, dry_run: bool) -> None:
    for coll, rec in expired_versions(repo, now_ns):
        label = f"{coll}:v{rec['version']}"
        if [a for a in repo.aliases_of(coll, rec["version"]) if a != "latest"]:
            report.expired_kept.append(label)
            continue
        report.expired.append(label)
        if not dry_run:
            repo.delete_version(coll, rec["version"], delete_aliases=True, reason="ttl")


class _Marker:
    """The live set, grown by walking trees and file nodes."""

    def __init__(self, repo) -> None:
        self.objects = repo.objects
        self.live: set[bytes] = set()

    def tree(self, tid: bytes) -> None:
        if tid in self.live:
            return
        entries = self.objects.get_tree(tid, "gc")
        self.live.add(tid)
        for e in entries:
            if e.kind == KIND_TREE:
                self.tree(e.id)
            elif e.kind == KIND_FILE:
                self.file(e.id)
            elif self.objects.has(e.id):  # a reference record, if stored as an object
                self.live.add(e.id)

    def file(self, fid: bytes) -> None:
        if fid in self.live:
            return
        node = self.objects.get_file_node(fid, "gc")
        self.live.add(fid)
        for cid, _n in node.entries:
            if node.level == 0:
                self.live.add(cid)
            else:
                self.file(cid)

    def node(self, oid: bytes, kind: int) -> None:
        if kind == KIND_TREE_NODE:
            self.tree(oid)
        elif kind == KIND_FILE_NODE:
            self.file(oid)
        else:
            self.live.add(oid)


def _live_digests(repo) -> tuple[int, list[bytes]]:
    with repo.db.read() as txn:
        t = Tables(repo.db, txn)
        seq = t.log_seq()
        digests = [rec["digest"] for c, _ in t.iter_collections() for rec in t.iter_versions(c)
                   if rec.get("state") != "DELETED"]
    return seq, digests


def _collect(repo, report: GcReport, now_ns: int, grace_s: float, threshold: float,
             dry_run: bool, lease) -> None:
    pins = active_pins(repo.layout.pins, now_ns)
    report.pins_active = len(pins)
    cutoff = min([now_ns - int(grace_s * 1e9)] + [p.started_ns for p in pins])
    with repo.db.read() as txn:
        t = Tables(repo.db, txn)
        indexed = [name for _no, name in t.iter_packs()]
    packs: list[_Pack] = []
    for name in indexed:
        path = pack_path(repo.layout.packs, name)
        try:
            st = os.stat(path)
            entries = read_pack_index(path)
        except FileNotFoundError:
            continue
        except CasError:
            continue  # damaged: fsck reports it; gc never deletes what it cannot read
        packs.append(_Pack(name, path, st.st_size, st.st_mtime_ns >= cutoff, entries))
    report.packs_total = len(packs)

    marker = _Marker(repo)
    seq, digests = _live_digests(repo)
    for d in digests:
        marker.tree(d)
    for p in packs:
        if p.young:
            for e in p.entries:
                marker.node(e.id, e.kind)
    condemned = _classify(packs, marker, threshold)

    if dry_run:
        _account(report, packs, condemned, marker.live)
        report.bytes_copied = sum(e.stored_len for p in packs if p.name in condemned
                                  for e in p.entries if e.id in marker.live)
        freed = sum(p.size for p in packs if p.name in condemned)
        freed += sum(os.path.getsize(path) for _n, path in _deletable(repo, pins))
        tmp = _old_tmp_files(repo, cutoff)
        report.tmp_removed = len(tmp)
        freed += sum(os.path.getsize(path) for path in tmp if os.path.exists(path))
        report.bytes_freed = freed - report.bytes_copied
        return

    new_packs: list[str] = []
    copied: set[bytes] = set()
    for _round in range(MAX_ROUNDS):
        new_packs += _repack(repo, [p for p in packs if p.name in condemned], marker.live, copied, report)
        if lease is not None:
            lease.renew()
        crashpoint("gc-repacked")
        moved = []

        def build(t: Tables):
            if t.log_seq() != seq:
                moved.append(t.log_seq())
                return None
            if not condemned and not new_packs:
                return None
            return {"op": R.OP_GC, "time_ns": time.time_ns(), "condemned": sorted(condemned),
                    "packs": list(new_packs), "live_seq": seq}

        published = append_entry(repo, build)
        if not moved:
            break
        # versions were published since the mark: mark them too, then copy what they need
        seq, digests = _live_digests(repo)
        for d in digests:
            marker.tree(d)
        condemned = _classify(packs, marker, threshold) & condemned
    else:
        raise IntegrityError("gc gave up: versions kept being published while it ran; retry later")
    if published is not None:
        with repo.db.write() as txn:
            t = Tables(repo.db, txn)
            for name in new_packs:
                index_pack(t, repo.layout.packs, name, repoint=True)
    _account(report, packs, condemned, marker.live)
    _delete_condemned(repo, report)
    for path in _old_tmp_files(repo, cutoff):
        try:
            size = os.path.getsize(path)
            os.unlink(path)
            report.tmp_removed += 1
            report.bytes_freed += size
        except FileNotFoundError:
            pass
    remove_stale_pins(repo.layout.pins)


def _classify(packs: list[_Pack], marker: _Marker, threshold: float) -> set[str]:
    """Return the names of the packs to condemn, growing the live set to a fixed point."""
    while True:
        condemned: set[str] = set()
        kept: list[_Pack] = []
        for p in packs:
            if p.young:
                continue
            garbage = sum(e.stored_len for e in p.entries if e.id not in marker.live)
            total = sum(e.stored_len for e in p.entries) or 1
            if garbage == 0:
                continue
            if garbage >= threshold * total or garbage == total:
                condemned.add(p.name)
            else:
                kept.append(p)
        before = len(marker.live)
        # garbage nodes that stay must keep their children readable
        for p in kept:
            for e in p.entries:
                if e.id not in marker.live and e.kind != KIND_CHUNK:
                    marker.node(e.id, e.kind)
        if len(marker.live) == before:
            return condemned


def _repack(repo, packs: list[_Pack], live: set[bytes], copied: set[bytes], report: GcReport) -> list[str]:
    """Copy the live objects of ``packs`` (not copied yet) into new sealed, unindexed packs."""
    reader = PackReader(repo.layout.packs)
    codec = Codec(int(repo.config["zstd_level"]))
    writer = None
    sealed: list[str] = []
    try:
        for p in packs:
            wanted = [e for e in p.entries if e.id in live and e.id not in copied]
            if wanted:
                report.packs_repacked += 1
            for e in wanted:
                stored = reader.read(p.name, e.offset, e.stored_len)
                raw = codec.decode(e.codec, stored, e.raw_len)
                if object_id(e.kind, raw) != e.id:
                    raise IntegrityError(
                        f"pack {p.name} holds a corrupt copy of a live object; gc stopped before changing "
                        "anything; run 'cas fsck'"
                    )
                if writer is None:
                    writer = PackWriter(repo.layout.packs, repo.layout.tmp)
                writer.add(e.id, e.kind, e.codec, e.raw_len, stored)
                copied.add(e.id)
                report.bytes_copied += e.stored_len
                if writer.size >= PACK_TARGET_SIZE:
                    sealed.append(writer.seal(avoid=repo.objects.is_condemned))
                    writer = None
        if writer is not None:
            sealed.append(writer.seal(avoid=repo.objects.is_condemned))
            writer = None
    finally:
        if writer is not None:
            writer.abort()
        reader.close()
    return sealed


def _account(report: GcReport, packs: list[_Pack], condemned: set[str], live: set[bytes]) -> None:
    report.packs_condemned = len(condemned)
    report.objects_live = len(live)
    report.objects_garbage = sum(1 for p in packs for e in p.entries if e.id not in live)


def _deletable(repo, pins) -> list[tuple[str, str]]:
    """Return ``(name, path)`` of condemned packs on disk that no active pin may still need."""
    with repo.db.read() as txn:
        condemned = list(Tables(repo.db, txn).iter_condemned())
    out = []
    for name, seq in condemned:
        path = pack_path(repo.layout.packs, name)
        if os.path.exists(path) and all(p.seen_seq >= seq for p in pins):
            out.append((name, path))
    return out


def _delete_condemned(repo, report: GcReport) -> None:
    # re-read the pins after the gc entry is durable (docs/format.md §10.4)
    pins = active_pins(repo.layout.pins)
    deletable = _deletable(repo, pins)
    with repo.db.read() as txn:
        waiting = sum(1 for name, _ in Tables(repo.db, txn).iter_condemned()
                      if os.path.exists(pack_path(repo.layout.packs, name)))
    report.packs_waiting = waiting - len(deletable)
    dirs = set()
    for name, path in deletable:
        try:
            size = os.path.getsize(path)
            os.unlink(path)
        except FileNotFoundError:
            continue
        report.packs_deleted += 1
        report.bytes_freed += size
        dirs.add(os.path.dirname(path))
        crashpoint("gc-pack-deleted")
    for d in dirs:
        fsync_dir(d)
    report.bytes_freed -= report.bytes_copied


def _old_tmp_files(repo, cutoff_ns: int) -> list[str]:
    out = []
    try:
        names = os.listdir(repo.layout.tmp)
    except FileNotFoundError:
        return out
    for name in names:
        path = os.path.join(repo.layout.tmp, name)
        try:
            if os.stat(path).st_mtime_ns < cutoff_ns:
                out.append(path)
        except FileNotFoundError:
            pass
    return out
