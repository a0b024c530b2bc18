"""Bring the index up to date with the log and the packs.

The log is the truth for named state; the index records the last seq it
applied and replays newer entries, each pack they name indexed first. A full
rebuild indexes every sealed pack and replays the whole log
(docs/format.md §9.3).
"""

from __future__ import annotations

import msgpack

from cas.errors import FormatError, StorageError
from cas.format import records as R
from cas.index.tables import E_LOGGED, E_USED, K_GC_COUNT, U64, Tables
from cas.storage.log import LogDir
from cas.storage.packs import iter_pack_names, pack_path, read_pack_index, salvage_pack_index

K_BAD_LOG = b"bad_log"
K_BAD_PACKS = b"bad_packs"


def _note(t: Tables, key: bytes, item) -> None:
    raw = t.get_meta(key)
    items = msgpack.unpackb(raw) if raw else []
    if item not in items:
        items.append(item)
        t.put_meta(key, msgpack.packb(items))


def noted(t: Tables, key: bytes) -> list:
    """Return the problems recorded under ``key`` (bad log seqs, bad packs)."""
    raw = t.get_meta(key)
    return msgpack.unpackb(raw) if raw else []


def index_pack(t: Tables, packs_dir: str, name: str, repoint: bool = False) -> bool:
    """Index one sealed pack from its footer (salvaging if the footer is damaged).

    Args:
        repoint: Its objects replace the locations already indexed (gc's repacked packs).

    Returns:
        True if the pack was readable and is now indexed (False for a condemned pack).
    """
    if t.condemned_seq(name) is not None:
        return False
    if t.pack_no(name) is not None:
        if repoint:  # gc may write a pack identical to one an interrupted gc left behind
            try:
                t.repoint(name, read_pack_index(pack_path(packs_dir, name)))
            except (FormatError, StorageError):
                return False
        return True
    path = pack_path(packs_dir, name)
    try:
        entries = read_pack_index(path)
    except FormatError:
        _note(t, K_BAD_PACKS, name)
        try:
            entries = salvage_pack_index(path)
        except (OSError, FormatError):
            return False
    except StorageError:
        _note(t, K_BAD_PACKS, name)
        return False
    t.add_pack(name, entries, repoint=repoint)
    return True


def _apply_version(t: Tables, seq: int, entry: dict, eid: bytes) -> None:
    coll = entry["collection"]
    now = entry["time_ns"]
    c = t.get_collection(coll) or {"type": entry["type"], "tags": [], "n_versions": 0, "created_ns": now}
    version = c["n_versions"]
    rec = {
        "version": version,
        "digest": entry["digest"],
        "size": entry["size"],
        "n_files": entry["n_files"],
        "type": entry["type"],
        "description": entry.get("description"),
        "metadata": entry.get("metadata") or {},
        "tags": list(entry.get("tags") or []),
        "created_ns": now,
        "updated_ns": now,
        "commit": eid,
        "seq": seq,
        "ttl": entry.get("ttl"),
        "state": "COMMITTED",
    }
    # §7.2: a semver already taken in the collection stays with the earlier version
    semver = entry.get("semver")
    if semver is not None and t.put_semver(coll, semver, version):
        rec["semver"] = semver
    run_id = entry.get("run_id")
    if run_id is not None and t.get_run(run_id) is not None:
        rec["run_id"] = run_id
        t.add_edge(E_LOGGED, run_id, coll, version)
    _publish(t, coll, c, rec, entry)


def _publish(t: Tables, coll: str, c: dict, rec: dict, entry: dict) -> None:
    """Store a new version record (from a version or link entry) as the collection's latest."""
    version = rec["version"]
    t.put_version(coll, version, rec)
    t.put_digest(coll, rec["digest"], version)
    for alias in entry.get("aliases") or []:
        t.set_alias(coll, alias, version)
    t.set_alias(coll, "latest", version)
    c["n_versions"] = version + 1
    c["updated_ns"] = rec["created_ns"]
    t.put_collection(coll, c)


def _apply_link(t: Tables, seq: int, entry: dict, eid: bytes) -> None:
    """A new version of ``collection`` that resolves to a source version's content (§7.2)."""
    src_coll, src_version = entry["source_collection"], entry["source_version"]
    src = t.get_version(src_coll, src_version)
    if src is not None and src.get("link"):  # a link to a link names the first source
        src_coll, src_version = src["link"]["collection"], src["link"]["version"]
        src = t.get_version(src_coll, src_version)
    if src is None:
        return  # names a version this log never published: ignored, reported by fsck
    coll = entry["collection"]
    now = entry["time_ns"]
    c = t.get_collection(coll) or {"type": src["type"], "tags": [], "n_versions": 0, "created_ns": now}
    if c["type"] != src["type"]:
        return  # writers refuse this; a foreign entry cannot change a collection's type
    rec = {
        "version": c["n_versions"], "digest": src["digest"], "size": src["size"], "n_files": src["n_files"],
        "type": src["type"], "description": src.get("description"), "metadata": src.get("metadata") or {},
        "tags": [], "created_ns": now, "updated_ns": now, "commit": eid, "seq": seq, "ttl": None,
        "state": "COMMITTED", "link": {"collection": src_coll, "version": src_version},
    }
    t.add_link(src_coll, src_version, coll, rec["version"])
    _publish(t, coll, c, rec, entry)


def _apply_run(t: Tables, seq: int, entry: dict, eid: bytes) -> None:
    """The first entry of a run id creates the run; later ones change its state (§7.2)."""
    run_id = entry["run_id"]
    now = entry["time_ns"]
    run = t.get_run(run_id)
    if run is None:
        run = {"id": run_id, "name": entry.get("name") or run_id, "job_type": entry.get("job_type"),
               "config": entry.get("config") or {}, "state": entry.get("state") or "running",
               "created_ns": now, "updated_ns": now, "ended_ns": None, "seq": seq, "commit": eid}
    else:
        run["state"] = entry.get("state") or run["state"]
        run["updated_ns"] = now
    if run["state"] != "running" and run.get("ended_ns") is None:
        run["ended_ns"] = now
    t.put_run(run_id, run)


def _apply_use(t: Tables, seq: int, entry: dict, eid: bytes) -> None:
    """Record that a run used a version; ignored if either is unknown."""
    if t.get_run(entry["run_id"]) is None or t.get_version(entry["collection"], entry["version"]) is None:
        return
    t.add_edge(E_USED, entry["run_id"], entry["collection"], entry["version"])


def _apply_collection_tags(t: Tables, seq: int, entry: dict, eid: bytes) -> None:
    coll = entry["collection"]
    c = t.get_collection(coll)
    if c is not None:
        c["tags"] = list(entry["set"])
        c["updated_ns"] = entry["time_ns"]
        t.put_collection(coll, c)


def _apply_version_change(t: Tables, seq: int, entry: dict, eid: bytes) -> None:
    """Apply an op that changes one existing version (aliases, tags, update)."""
    op = entry["op"]
    coll = entry["collection"]
    version = entry["version"]
    rec = t.get_version(coll, version)
    if rec is None:
        return  # refers to a version this log never published: ignored, reported by fsck
    if op == R.OP_ALIASES:
        wanted = set(entry["set"])
        for alias, v in list(t.iter_aliases(coll)):
            if v == version and alias not in wanted and alias != "latest":
                t.delete_alias(coll, alias)
        for alias in entry["set"]:
            if alias != "latest":
                t.set_alias(coll, alias, version)
    elif op == R.OP_TAGS:
        rec["tags"] = list(entry["set"])
    elif op == R.OP_UPDATE:
        for k in ("description", "metadata", "ttl"):
            if k in entry["fields"]:
                rec[k] = entry["fields"][k]
    rec["updated_ns"] = entry["time_ns"]
    t.put_version(coll, version, rec)


def _apply_delete(t: Tables, seq: int, entry: dict, eid: bytes) -> None:
    """Mark a version DELETED, drop its aliases, and move ``latest`` to the newest live version."""
    coll = entry["collection"]
    version = entry["version"]
    rec = t.get_version(coll, version)
    if rec is None or rec.get("state") == "DELETED":
        return
    rec["state"] = "DELETED"
    rec["deleted_ns"] = entry["time_ns"]
    rec["delete_reason"] = entry.get("reason") if isinstance(entry.get("reason"), str) else None
    rec["updated_ns"] = entry["time_ns"]
    t.put_version(coll, version, rec)
    for alias, v in list(t.iter_aliases(coll)):
        if v == version:
            t.delete_alias(coll, alias)
    if t.get_alias(coll, "latest") is None:
        for other in t.iter_versions(coll, reverse=True):
            if other.get("state") != "DELETED":
                t.set_alias(coll, "latest", other["version"])
                break


def _apply_collection_update(t: Tables, seq: int, entry: dict, eid: bytes) -> None:
    c = t.get_collection(entry["collection"])
    if c is None:
        return
    if "ttl" in entry["fields"]:
        c["ttl"] = entry["fields"]["ttl"]
    c["updated_ns"] = entry["time_ns"]
    t.put_collection(entry["collection"], c)


def _apply_gc(t: Tables, seq: int, entry: dict, eid: bytes) -> None:
    """Condemn packs; objects gc copied into its new packs (``packs``) now live there."""
    for name in entry["condemned"]:
        t.condemn_pack(name, seq)
    t.put_meta(K_GC_COUNT, U64.pack(gc_count(t) + 1))


def gc_count(t: Tables) -> int:
    """Return how many gc entries this index has applied."""
    raw = t.get_meta(K_GC_COUNT)
    return U64.unpack(raw)[0] if raw else 0


# op -> how it changes the index; every op in records.KNOWN_OPS has one
APPLY = {
    R.OP_DELETE: _apply_delete,
    R.OP_COLLECTION_UPDATE: _apply_collection_update,
    R.OP_GC: _apply_gc,
    R.OP_VERSION: _apply_version,
    R.OP_COLLECTION_TAGS: _apply_collection_tags,
    R.OP_ALIASES: _apply_version_change,
    R.OP_TAGS: _apply_version_change,
    R.OP_UPDATE: _apply_version_change,
    R.OP_LINK: _apply_link,
    R.OP_RUN: _apply_run,
    R.OP_USE: _apply_use,
}


def apply_entry(t: Tables, seq: int, entry: dict, eid: bytes) -> None:
    """Apply one decoded log entry to the index tables."""
    APPLY[entry["op"]](t, seq, entry, eid)


def catch_up(db, log: LogDir, packs_dir: str, txn=None) -> int:
    """Apply every log entry newer than the index's seq.

    Args:
        db: The IndexDb.
        log: The log directory.
        packs_dir: Where sealed packs live.
        txn: An open write transaction to use; a new one is opened if None.

    Returns:
        The last applied seq.
    """
    if txn is None:
        with db.write() as txn:
            return catch_up(db, log, packs_dir, txn)
    t = Tables(db, txn)
    seq = t.log_seq()
    while True:
        data = log.read(seq + 1)
        if data is None:
            break
        seq += 1
        try:
            entry = R.decode_entry(data)
        except FormatError:
            _note(t, K_BAD_LOG, seq)
        else:
            repoint = entry["op"] == R.OP_GC
            if repoint:
                for name in entry["condemned"]:
                    t.condemn_pack(name, seq)
            for name in entry.get("packs") or []:
                if isinstance(name, str) and len(name) == 64:
                    index_pack(t, packs_dir, name, repoint=repoint)
            apply_entry(t, seq, entry, R.entry_id(data))
        t.set_log_seq(seq)
    return seq


def rebuild(db, log: LogDir, packs_dir: str) -> tuple[int, int]:
    """Index every sealed pack and replay the whole log into an empty index.

    Returns:
        ``(packs indexed, last seq)``.
    """
    n = 0
    with db.write() as txn:
        t = Tables(db, txn)
        # packs condemned anywhere in the log are never indexed: a live object they
        # hold was copied to a newer pack first (docs/format.md §10.4)
        seq = 0
        while (data := log.read(seq + 1)) is not None:
            seq += 1
            try:
                entry = R.decode_entry(data)
            except FormatError:
                continue
            if entry["op"] == R.OP_GC:
                for name in entry["condemned"]:
                    t.condemn_pack(name, seq)
        for name in iter_pack_names(packs_dir):
            n += index_pack(t, packs_dir, name)
        seq = catch_up(db, log, packs_dir, txn)
    return n, seq
