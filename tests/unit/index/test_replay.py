"""Replaying the log into the index: entries applied in order, damage skipped, rebuild equal."""

import os

import pytest

from cas.format import records as R
from cas.format.digest import chunk_id
from cas.format.pack import KIND_CHUNK
from cas.index.db import open_index
from cas.index.replay import K_BAD_LOG, K_BAD_PACKS, catch_up, noted, rebuild
from cas.index.tables import Tables
from cas.storage.layout import StoreLayout
from cas.storage.log import LogDir
from cas.storage.packs import PackWriter, pack_path


def D(i: int) -> bytes:
    return bytes([i]) * 32


class Store:
    """A bare store directory: packs and log, and helpers to append entries."""

    def __init__(self, root):
        self.layout = StoreLayout(str(root))
        self.layout.make_dirs()
        self.log = LogDir(self.layout.log, self.layout.tmp)
        self.packs = self.layout.packs

    def append(self, entry=None, raw=None) -> int:
        seq = self.log.last_seq() + 1
        assert self.log.append(seq, raw if raw is not None else R.encode_entry(entry))
        return seq

    def pack(self, *payloads) -> tuple[str, list]:
        w = PackWriter(self.packs, self.layout.tmp)
        for p in payloads:
            w.add(chunk_id(p), KIND_CHUNK, 0, len(p), p)
        return w.seal(), [chunk_id(p) for p in payloads]


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "store")


def version(coll, digest, t, **kw):
    e = {"op": R.OP_VERSION, "collection": coll, "type": "dataset", "digest": digest, "size": 10, "n_files": 1,
         "version": 0, "time_ns": t}
    e.update(kw)
    return e


def dump(db) -> dict:
    """Collections, versions (without commit) and aliases of an index."""
    with db.read() as txn:
        t = Tables(db, txn)
        out = {}
        for coll, rec in t.iter_collections():
            out[coll] = {
                "record": rec,
                "versions": list(t.iter_versions(coll)),
                "aliases": sorted(t.iter_aliases(coll)),
            }
        return out


def read(db, fn):
    with db.read() as txn:
        return fn(Tables(db, txn))


SEQUENCE = [
    version("p/a", D(1), 100, aliases=["best"], tags=["raw"], description="first", metadata={"k": 1}),
    version("p/a", D(2), 200, version=7),  # the number comes from log order, not from the entry
    version("p/ab", D(1), 250, type="model"),
    {"op": R.OP_ALIASES, "collection": "p/a", "version": 0, "set": ["prod", "gold"], "time_ns": 300},
    {"op": R.OP_TAGS, "collection": "p/a", "version": 1, "set": ["clean", "new"], "time_ns": 400},
    {"op": R.OP_COLLECTION_TAGS, "collection": "p/a", "set": ["team"], "time_ns": 500},
    {"op": R.OP_UPDATE, "collection": "p/a", "version": 0,
     "fields": {"description": "changed", "metadata": {"k": 2}, "ttl": 60}, "time_ns": 600},
    {"op": R.OP_ALIASES, "collection": "p/a", "version": 1, "set": ["gold"], "time_ns": 700},
    {"op": R.OP_UPDATE, "collection": "p/a", "version": 9, "fields": {"description": "x"}, "time_ns": 800},
    {"op": R.OP_COLLECTION_TAGS, "collection": "p/zz", "set": ["t"], "time_ns": 900},
]


def test_replay_of_a_log_gives_the_expected_records(store, db):
    for e in SEQUENCE:
        store.append(e)
    assert catch_up(db, store.log, store.packs) == len(SEQUENCE)
    state = dump(db)
    assert sorted(state) == ["p/a", "p/ab"]  # collection tags of an unknown collection are ignored

    a = state["p/a"]
    assert a["record"]["type"] == "dataset"
    assert a["record"]["n_versions"] == 2
    assert a["record"]["tags"] == ["team"]
    assert a["record"]["created_ns"] == 100
    v0, v1 = a["versions"]
    assert (v0["version"], v0["digest"], v0["seq"]) == (0, D(1), 1)
    assert (v1["version"], v1["digest"], v1["seq"]) == (1, D(2), 2)
    assert v0["description"] == "changed" and v0["metadata"] == {"k": 2} and v0["ttl"] == 60
    assert v0["tags"] == ["raw"] and v0["created_ns"] == 100 and v0["updated_ns"] == 600
    assert v1["tags"] == ["clean", "new"] and v1["description"] is None and v1["metadata"] == {}
    assert v0["commit"] == R.entry_id(R.encode_entry(SEQUENCE[0]))
    # best was replaced by prod+gold on v0, then gold moved to v1; latest follows new versions
    assert a["aliases"] == [("gold", 1), ("latest", 1), ("prod", 0)]

    b = state["p/ab"]
    assert b["record"]["type"] == "model"
    assert [v["version"] for v in b["versions"]] == [0]
    assert b["aliases"] == [("latest", 0)]
    assert read(db, lambda t: (t.version_by_digest("p/a", D(1)), t.version_by_digest("p/a", D(2)))) == (0, 1)
    assert read(db, lambda t: t.log_seq()) == len(SEQUENCE)


def test_aliases_op_never_removes_latest(store, db):
    store.append(version("p/a", D(1), 1))
    store.append({"op": R.OP_ALIASES, "collection": "p/a", "version": 0, "set": ["x"], "time_ns": 2})
    store.append({"op": R.OP_ALIASES, "collection": "p/a", "version": 0, "set": [], "time_ns": 3})
    catch_up(db, store.log, store.packs)
    assert read(db, lambda t: sorted(t.iter_aliases("p/a"))) == [("latest", 0)]


def test_catch_up_is_idempotent_and_incremental(store, db):
    for e in SEQUENCE[:3]:
        store.append(e)
    assert catch_up(db, store.log, store.packs) == 3
    first = dump(db)
    assert catch_up(db, store.log, store.packs) == 3
    assert dump(db) == first
    for e in SEQUENCE[3:]:
        store.append(e)
    assert catch_up(db, store.log, store.packs) == len(SEQUENCE)
    assert catch_up(db, store.log, store.packs) == len(SEQUENCE)
    assert dump(db)["p/a"]["record"]["n_versions"] == 2  # nothing applied twice


@pytest.mark.parametrize("garbage", [b"", b"not a log entry", R.LOG_MAGIC + b"\xc1\xc1",
                                     R.LOG_MAGIC + R.pack_canonical({"op": "version", "collection": "p/a"})])
def test_a_garbage_entry_is_recorded_and_skipped(store, db, garbage):
    store.append(version("p/a", D(1), 1))
    bad = store.append(raw=garbage)
    store.append(version("p/a", D(2), 3))
    store.append({"op": R.OP_ALIASES, "collection": "p/a", "version": 1, "set": ["best"], "time_ns": 4})
    assert catch_up(db, store.log, store.packs) == 4
    assert read(db, lambda t: noted(t, K_BAD_LOG)) == [bad]
    a = dump(db)["p/a"]
    assert [v["digest"] for v in a["versions"]] == [D(1), D(2)]
    assert a["aliases"] == [("best", 1), ("latest", 1)]


def test_an_entry_from_a_newer_cas_is_skipped_too(store, db):
    store.append(raw=R.LOG_MAGIC + R.pack_canonical({"op": "rename", "collection": "p/a", "time_ns": 1}))
    store.append(version("p/a", D(1), 2))
    assert catch_up(db, store.log, store.packs) == 2
    assert read(db, lambda t: noted(t, K_BAD_LOG)) == [1]
    assert len(dump(db)["p/a"]["versions"]) == 1


def test_catch_up_indexes_the_packs_an_entry_names(store, db):
    name, ids = store.pack(b"chunk one", b"chunk two")
    store.append(version("p/a", D(1), 1, packs=[name]))
    catch_up(db, store.log, store.packs)
    assert read(db, lambda t: [t.locate(i).pack for i in ids]) == [name, name]


def test_a_truncated_pack_is_noted_and_salvaged(store, db):
    name, ids = store.pack(b"a" * 100, b"b" * 100, b"c" * 100)
    path = pack_path(store.packs, name)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 200)  # cuts the footer and part of the last record
    store.append(version("p/a", D(1), 1, packs=[name]))
    catch_up(db, store.log, store.packs)
    assert read(db, lambda t: noted(t, K_BAD_PACKS)) == [name]
    assert read(db, lambda t: [t.locate(i) is not None for i in ids]) == [True, True, False]
    assert len(dump(db)["p/a"]["versions"]) == 1


def test_rebuild_equals_the_incrementally_built_index(store, db, tmp_path):
    unnamed, unnamed_ids = store.pack(b"in no entry")
    named, named_ids = store.pack(b"named")
    for i, e in enumerate(SEQUENCE):
        if i == 1:
            e = dict(e, packs=[named])
        store.append(e)
        catch_up(db, store.log, store.packs)  # one entry at a time, as writers do
    store.append(raw=b"garbage")
    store.append(version("p/ab", D(3), 1000, aliases=["best"]))
    catch_up(db, store.log, store.packs)

    fresh = open_index(str(tmp_path / "index2"))
    try:
        n, seq = rebuild(fresh, store.log, store.packs)
        assert (n, seq) == (2, len(SEQUENCE) + 2)
        assert dump(fresh) == dump(db)
        assert read(fresh, lambda t: noted(t, K_BAD_LOG)) == read(db, lambda t: noted(t, K_BAD_LOG))
        # rebuild also finds packs no entry names
        assert read(fresh, lambda t: t.locate(unnamed_ids[0]).pack) == unnamed
        assert read(fresh, lambda t: t.locate(named_ids[0]).pack) == named
    finally:
        fresh.close()
