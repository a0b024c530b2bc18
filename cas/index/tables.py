"""Typed reads and writes of the index tables inside one transaction.

Key and value layouts: docs/format.md §9. Integers in keys are big-endian so
LMDB's byte order is numeric order.
"""

from __future__ import annotations

import struct
from itertools import repeat, starmap
from operator import add, itemgetter
from typing import Iterator, NamedTuple

import msgpack

from cas.errors import IndexCorrupt

U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")
OBJ = struct.Struct("<IQIIBB")  # pack_no, offset, stored_len, raw_len, kind, codec
_OBJ_TAIL = struct.Struct("<QIIBB")  # OBJ without its pack_no
_FOOTER_TO_TAIL = itemgetter(3, 4, 5, 1, 2)  # (id, kind, codec, offset, stored_len, raw_len) -> tail fields
STAT = struct.Struct("<QQQqqqB32s")  # dev, ino, size, mtime_ns, ctime_ns, recorded_ns, exec, file id
# listing record (format.md §9.4): listing digest, tree id, size, n_files, recorded_ns, gc_count
LISTING = struct.Struct("<32s32sQQqQ")

K_LOG_SEQ = b"log_seq"
K_NEXT_PACK = b"next_pack"
K_GC_COUNT = b"gc_count"
# a pack number's value in ``packs`` is its name, plus this byte once a gc entry condemned it
CONDEMNED_MARK = b"!"


class Location(NamedTuple):
    """Where an object is stored."""

    pack: str
    offset: int
    stored_len: int
    raw_len: int
    kind: int
    codec: int


class StatEntry(NamedTuple):
    """A stat-cache record: the file id of a file as it was when last hashed."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    recorded_ns: int
    executable: bool
    file_id: bytes


def _pk(v) -> bytes:
    return msgpack.packb(v, use_bin_type=True)


def _uk(b):
    return msgpack.unpackb(b, raw=False, strict_map_key=False)


def object_values(pack_no: int, rows) -> map:
    """Return the ``objects`` values that locate footer rows of pack ``pack_no``, in order.

    ``rows`` are ``(id, kind, codec, offset, stored_len, raw_len)`` (``decode_footer_rows``);
    the values compare equal to what ``add_pack`` stored for them (one C-level pass).
    """
    return map(add, repeat(OBJ.pack(pack_no, 0, 0, 0, 0, 0)[:4]), starmap(_OBJ_TAIL.pack, map(_FOOTER_TO_TAIL, rows)))


class Tables:
    """Accessors for one open transaction of an IndexDb."""

    def __init__(self, db, txn) -> None:
        self.db = db
        self.txn = txn
        self.d = db.dbs
        self._condemned: dict[int, bool] = {}  # pack no -> condemned, as read in this txn

    # meta ---------------------------------------------------------------
    def log_seq(self) -> int:
        """Return the last log seq applied to this index (0 if none)."""
        v = self.txn.get(K_LOG_SEQ, db=self.d["meta"])
        return U64.unpack(v)[0] if v else 0

    def set_log_seq(self, seq: int) -> None:
        """Record that log entries up to ``seq`` are applied."""
        self.txn.put(K_LOG_SEQ, U64.pack(seq), db=self.d["meta"])

    def get_meta(self, key: bytes) -> bytes | None:
        """Return a raw meta value."""
        return self.txn.get(key, db=self.d["meta"])

    def put_meta(self, key: bytes, value: bytes) -> None:
        """Set a raw meta value."""
        self.txn.put(key, value, db=self.d["meta"])

    # packs and objects ----------------------------------------------------
    def pack_no(self, name: str) -> int | None:
        """Return the local number of an indexed pack, or None."""
        v = self.txn.get(name.encode(), db=self.d["pack_names"])
        return U32.unpack(v)[0] if v else None

    def add_pack(self, name: str, entries, repoint: bool = False) -> bool:
        """Index a sealed pack and its objects; False if it was already indexed or is condemned.

        An object already indexed stays where it is (first location wins) unless
        its location is in a condemned pack, or ``repoint`` is set (gc's repacked
        packs, whose copies replace the condemned ones).
        """
        if self.pack_no(name) is not None or self.condemned_seq(name) is not None:
            return False
        raw = self.txn.get(K_NEXT_PACK, db=self.d["meta"])
        no = U32.unpack(raw)[0] if raw else 0
        self.txn.put(K_NEXT_PACK, U32.pack(no + 1), db=self.d["meta"])
        self.txn.put(name.encode(), U32.pack(no), db=self.d["pack_names"])
        self.txn.put(U32.pack(no), name.encode(), db=self.d["packs"])
        self._condemned.pop(no, None)
        objects = self.d["objects"]
        put = self.txn.put
        any_condemned = self.count("condemned") > 0
        for e in entries:
            value = OBJ.pack(no, e.offset, e.stored_len, e.raw_len, e.kind, e.codec)
            if put(e.id, value, db=objects, overwrite=repoint) or not any_condemned:
                continue
            old = self.txn.get(e.id, db=objects)
            if old is not None and self._pack_condemned(OBJ.unpack(old)[0]):
                put(e.id, value, db=objects)
        return True

    def repoint(self, name: str, entries) -> None:
        """Make an indexed pack the location of all its objects."""
        no = self.pack_no(name)
        objects = self.d["objects"]
        for e in entries:
            self.txn.put(e.id, OBJ.pack(no, e.offset, e.stored_len, e.raw_len, e.kind, e.codec), db=objects)

    def _pack_condemned(self, no: int) -> bool:
        c = self._condemned.get(no)
        if c is None:
            v = self.txn.get(U32.pack(no), db=self.d["packs"])
            c = self._condemned[no] = v is not None and bytes(v[-1:]) == CONDEMNED_MARK
        return c

    def pack_name(self, no: int) -> str:
        """Return the name of pack number ``no``."""
        v = self.txn.get(U32.pack(no), db=self.d["packs"])
        if v is None:
            raise IndexCorrupt(f"index names pack #{no} that it does not list; run 'cas fsck --rebuild-index'")
        return bytes(v[:64]).decode()

    def iter_packs(self, condemned: bool = False) -> Iterator[tuple[int, str]]:
        """Yield ``(number, name)`` of every indexed pack (condemned ones only if asked)."""
        with self.txn.cursor(db=self.d["packs"]) as cur:
            for k, v in cur:
                if condemned or bytes(v[-1:]) != CONDEMNED_MARK:
                    yield U32.unpack(k)[0], bytes(v[:64]).decode()

    def condemn_pack(self, name: str, seq: int) -> None:
        """Record that the gc entry at ``seq`` condemned pack ``name``.

        Objects located in it read as absent from now on; the pack file may
        still exist until gc deletes it (docs/format.md §10.4).
        """
        self.txn.put(name.encode(), U64.pack(seq), db=self.d["condemned"], overwrite=False)
        no = self.pack_no(name)
        if no is not None:
            self.txn.put(U32.pack(no), name.encode() + CONDEMNED_MARK, db=self.d["packs"])
            self._condemned[no] = True

    def condemned_seq(self, name: str) -> int | None:
        """Return the seq of the gc entry that condemned a pack, or None."""
        v = self.txn.get(name.encode(), db=self.d["condemned"])
        return U64.unpack(v)[0] if v else None

    def iter_condemned(self) -> Iterator[tuple[str, int]]:
        """Yield ``(pack name, seq of the gc entry)`` of every condemned pack."""
        with self.txn.cursor(db=self.d["condemned"]) as cur:
            for k, v in cur:
                yield bytes(k).decode(), U64.unpack(v)[0]

    def has_object(self, oid: bytes) -> bool:
        """Return True if ``oid`` is indexed in a pack that is not condemned."""
        v = self.txn.get(oid, db=self.d["objects"])
        return v is not None and not self._pack_condemned(OBJ.unpack(v)[0])

    def locate(self, oid: bytes) -> Location | None:
        """Return where ``oid`` is stored, or None (also if only a condemned pack holds it)."""
        v = self.txn.get(oid, db=self.d["objects"])
        if v is None:
            return None
        no, off, slen, rlen, kind, codec = OBJ.unpack(v)
        name = self.txn.get(U32.pack(no), db=self.d["packs"])
        if name is None:
            raise IndexCorrupt(f"index names pack #{no} that it does not list; run 'cas fsck --rebuild-index'")
        if bytes(name[-1:]) == CONDEMNED_MARK:
            return None
        return Location(bytes(name[:64]).decode(), off, slen, rlen, kind, codec)

    def locate_many(self, oids) -> dict[bytes, Location]:
        """Return the locations of those of ``oids`` that are indexed (one lookup each)."""
        get, objects, names, out = self.txn.get, self.d["objects"], {}, {}
        for oid in oids:
            v = get(oid, db=objects)
            if v is None:
                continue
            no, off, slen, rlen, kind, codec = OBJ.unpack(v)
            name = names.get(no)
            if name is None:
                name = names[no] = self.pack_name(no)
            out[oid] = Location(name, off, slen, rlen, kind, codec)
        return out

    def iter_objects(self) -> Iterator[tuple[bytes, Location]]:
        """Yield every indexed object and its location, except those in condemned packs."""
        names = dict(self.iter_packs())
        with self.txn.cursor(db=self.d["objects"]) as cur:
            for k, v in cur:
                no, off, slen, rlen, kind, codec = OBJ.unpack(v)
                if no in names:
                    yield bytes(k), Location(names[no], off, slen, rlen, kind, codec)

    def count(self, table: str) -> int:
        """Return the number of records in a table."""
        return self.txn.stat(self.d[table])["entries"]

    def pages(self, table: str) -> int:
        """Return the number of pages (leaf and branch) of a table's B+tree."""
        st = self.txn.stat(self.d[table])
        return st["leaf_pages"] + st["branch_pages"]

    # collections and versions ------------------------------------------
    def get_collection(self, coll: str) -> dict | None:
        """Return a collection record or None."""
        v = self.txn.get(coll.encode(), db=self.d["collections"])
        return _uk(v) if v else None

    def put_collection(self, coll: str, rec: dict) -> None:
        """Store a collection record."""
        self.txn.put(coll.encode(), _pk(rec), db=self.d["collections"])

    def iter_collections(self) -> Iterator[tuple[str, dict]]:
        """Yield ``(collection, record)`` in name order."""
        with self.txn.cursor(db=self.d["collections"]) as cur:
            for k, v in cur:
                yield bytes(k).decode(), _uk(v)

    @staticmethod
    def _vkey(coll: str, version: int) -> bytes:
        return coll.encode() + b"\x00" + U32.pack(version)

    def get_version(self, coll: str, version: int) -> dict | None:
        """Return a version record or None."""
        v = self.txn.get(self._vkey(coll, version), db=self.d["versions"])
        return _uk(v) if v else None

    def put_version(self, coll: str, version: int, rec: dict) -> None:
        """Store a version record."""
        self.txn.put(self._vkey(coll, version), _pk(rec), db=self.d["versions"])

    def iter_versions(self, coll: str, reverse: bool = False) -> Iterator[dict]:
        """Yield the version records of a collection in version order."""
        prefix = coll.encode() + b"\x00"
        with self.txn.cursor(db=self.d["versions"]) as cur:
            if reverse:
                if not cur.set_range(prefix + b"\xff\xff\xff\xff\xff"):
                    if not cur.last():
                        return
                else:
                    cur.prev()
                while cur.key().startswith(prefix):
                    yield _uk(cur.value())
                    if not cur.prev():
                        break
            else:
                if not cur.set_range(prefix):
                    return
                for k, v in cur:
                    if not k.startswith(prefix):
                        break
                    yield _uk(v)

    def version_by_digest(self, coll: str, digest: bytes) -> int | None:
        """Return the first version of ``coll`` with this digest, or None."""
        v = self.txn.get(coll.encode() + b"\x00" + digest, db=self.d["by_digest"])
        return U32.unpack(v)[0] if v else None

    def put_digest(self, coll: str, digest: bytes, version: int) -> None:
        """Remember the first version of ``coll`` with ``digest``."""
        self.txn.put(coll.encode() + b"\x00" + digest, U32.pack(version), db=self.d["by_digest"], overwrite=False)

    # aliases ----------------------------------------------------------------
    def get_alias(self, coll: str, alias: str) -> int | None:
        """Return the version an alias points at, or None."""
        v = self.txn.get(coll.encode() + b"\x00" + alias.encode(), db=self.d["aliases"])
        return U32.unpack(v)[0] if v else None

    def set_alias(self, coll: str, alias: str, version: int) -> None:
        """Point an alias at a version."""
        self.txn.put(coll.encode() + b"\x00" + alias.encode(), U32.pack(version), db=self.d["aliases"])

    def delete_alias(self, coll: str, alias: str) -> None:
        """Remove an alias."""
        self.txn.delete(coll.encode() + b"\x00" + alias.encode(), db=self.d["aliases"])

    def iter_aliases(self, coll: str) -> Iterator[tuple[str, int]]:
        """Yield ``(alias, version)`` of a collection."""
        prefix = coll.encode() + b"\x00"
        with self.txn.cursor(db=self.d["aliases"]) as cur:
            if not cur.set_range(prefix):
                return
            for k, v in cur:
                if not k.startswith(prefix):
                    break
                yield bytes(k[len(prefix):]).decode(), U32.unpack(v)[0]

    # stat cache -------------------------------------------------------------
    def get_stat(self, path: bytes) -> StatEntry | None:
        """Return the stat-cache record of an absolute path, or None."""
        v = self.txn.get(path, db=self.d["statcache"])
        if v is None:
            return None
        dev, ino, size, mt, ct, rec, ex, fid = STAT.unpack(v)
        return StatEntry(dev, ino, size, mt, ct, rec, bool(ex), fid)

    def stat_cache_empty(self) -> bool:
        """Return True if the stat cache holds no record at all."""
        return self.txn.stat(self.d["statcache"])["entries"] == 0

    def get_stat_fields(self, path: bytes) -> tuple | None:
        """Return ``(dev, ino, size, mtime_ns, ctime_ns, recorded_ns, exec, file id)`` or None.

        The fields of ``get_stat`` without building a StatEntry (hot loop of re-adds).
        """
        v = self.txn.get(path, db=self.d["statcache"])
        return None if v is None else STAT.unpack(v)

    def put_stat(self, path: bytes, e: StatEntry) -> None:
        """Store a stat-cache record."""
        self.txn.put(
            path,
            STAT.pack(e.dev, e.ino, e.size, e.mtime_ns, e.ctime_ns, e.recorded_ns, int(e.executable), e.file_id),
            db=self.d["statcache"],
        )

    def get_listing(self, key: bytes) -> tuple | None:
        """Return a listing record ``(digest, tree id, size, n_files, recorded_ns, gc_count)`` or None."""
        v = self.txn.get(key, db=self.d["statcache"])
        return None if v is None or len(v) != LISTING.size else LISTING.unpack(v)

    def put_listing(self, key: bytes, record: tuple) -> None:
        """Store a listing record (see ``get_listing``)."""
        self.txn.put(key, LISTING.pack(*record), db=self.d["statcache"])

    # semantic versions (§9.2 `semvers`) ------------------------------------------
    def get_semver(self, coll: str, semver: str) -> int | None:
        """Return the version labelled ``semver`` in ``coll``, or None."""
        v = self.txn.get(coll.encode() + b"\x00" + semver.encode(), db=self.d["semvers"])
        return U32.unpack(v)[0] if v else None

    def put_semver(self, coll: str, semver: str, version: int) -> bool:
        """Label a version; False (and no change) if the label is taken."""
        return self.txn.put(coll.encode() + b"\x00" + semver.encode(), U32.pack(version),
                            db=self.d["semvers"], overwrite=False)

    def delete_semver(self, coll: str, semver: str) -> None:
        """Free a semantic version label."""
        self.txn.delete(coll.encode() + b"\x00" + semver.encode(), db=self.d["semvers"])

    def iter_semvers(self, coll: str) -> Iterator[tuple[str, int]]:
        """Yield ``(semver, version)`` of a collection."""
        for k, v in self._prefix("semvers", coll.encode() + b"\x00"):
            yield k.decode(), U32.unpack(v)[0]

    def _prefix(self, table: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key without prefix, value)`` of keys starting with ``prefix``."""
        with self.txn.cursor(db=self.d[table]) as cur:
            if not cur.set_range(prefix):
                return
            for k, v in cur:
                if not k.startswith(prefix):
                    break
                yield bytes(k[len(prefix):]), bytes(v)

    # runs and lineage edges (§9.2 `runs`, `lineage`) -------------------------------
    def get_run(self, run_id: str) -> dict | None:
        """Return a run record or None."""
        v = self.txn.get(run_id.encode(), db=self.d["runs"])
        return _uk(v) if v else None

    def put_run(self, run_id: str, rec: dict) -> None:
        """Store a run record."""
        self.txn.put(run_id.encode(), _pk(rec), db=self.d["runs"])

    def iter_runs(self) -> Iterator[dict]:
        """Yield every run record in run id order."""
        with self.txn.cursor(db=self.d["runs"]) as cur:
            for _k, v in cur:
                yield _uk(v)

    def add_edge(self, kind: bytes, run_id: str, coll: str, version: int) -> bool:
        """Record that a run used (``E_USED``) or logged (``E_LOGGED``) a version.

        Returns:
            False if the edge was already recorded.
        """
        vkey = self._vkey(coll, version)
        rkey = run_id.encode()
        new = self.txn.put(kind + rkey + b"\x00" + vkey, b"", db=self.d["lineage"], overwrite=False)
        self.txn.put(kind.lower() + vkey + rkey, b"", db=self.d["lineage"])
        return new

    def has_edge(self, kind: bytes, run_id: str, coll: str, version: int) -> bool:
        """Return True if the edge is recorded."""
        key = kind + run_id.encode() + b"\x00" + self._vkey(coll, version)
        return self.txn.get(key, db=self.d["lineage"]) is not None

    def iter_run_edges(self, kind: bytes, run_id: str) -> Iterator[tuple[str, int]]:
        """Yield ``(collection, version)`` a run used or logged, in key order."""
        for k, _v in self._prefix("lineage", kind + run_id.encode() + b"\x00"):
            yield k[:-5].decode(), U32.unpack(k[-4:])[0]

    def iter_version_edges(self, kind: bytes, coll: str, version: int) -> Iterator[str]:
        """Yield the ids of runs that used or logged a version."""
        for k, _v in self._prefix("lineage", kind.lower() + self._vkey(coll, version)):
            yield k.decode()

    # registry links (§9.2 `links`) -----------------------------------------------
    def add_link(self, src_coll: str, src_version: int, coll: str, version: int) -> None:
        """Record that ``coll:version`` links to ``src_coll:src_version``."""
        self.txn.put(self._vkey(src_coll, src_version) + self._vkey(coll, version), b"", db=self.d["links"])

    def iter_links(self, src_coll: str, src_version: int) -> Iterator[tuple[str, int]]:
        """Yield ``(collection, version)`` of every link to a source version."""
        for k, _v in self._prefix("links", self._vkey(src_coll, src_version)):
            yield k[:-5].decode(), U32.unpack(k[-4:])[0]


E_USED = b"U"  # run + 00 + coll + 00 + u32 version; reverse key b"u" + coll + 00 + u32 + run
E_LOGGED = b"L"  # same layout with b"L" / b"l"
