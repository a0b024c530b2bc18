"""Index tables: objects by id, versions in order, aliases, stat cache."""

import pytest

from cas.format.pack import KIND_CHUNK, KIND_TREE_NODE, PackEntry
from cas.index.tables import StatEntry, Tables

P1, P2 = "1" * 64, "2" * 64


def oid(i: int) -> bytes:
    return i.to_bytes(32, "big")


def write(db, fn):
    with db.write() as txn:
        return fn(Tables(db, txn))


def read(db, fn):
    with db.read() as txn:
        return fn(Tables(db, txn))


def test_add_pack_and_locate(db):
    entries = [PackEntry(oid(1), KIND_CHUNK, 1, 58, 10, 20), PackEntry(oid(2), KIND_TREE_NODE, 0, 110, 5, 5)]
    assert write(db, lambda t: t.add_pack(P1, entries)) is True
    loc = read(db, lambda t: t.locate(oid(1)))
    assert (loc.pack, loc.offset, loc.stored_len, loc.raw_len, loc.kind, loc.codec) == (P1, 58, 10, 20, KIND_CHUNK, 1)
    assert read(db, lambda t: t.locate(oid(2))).kind == KIND_TREE_NODE
    assert read(db, lambda t: t.locate(oid(3))) is None
    assert read(db, lambda t: (t.has_object(oid(1)), t.has_object(oid(3)))) == (True, False)
    assert read(db, lambda t: t.count("objects")) == 2


def test_adding_a_pack_twice_is_a_no_op(db):
    write(db, lambda t: t.add_pack(P1, [PackEntry(oid(1), KIND_CHUNK, 0, 58, 1, 1)]))
    assert write(db, lambda t: t.add_pack(P1, [PackEntry(oid(9), KIND_CHUNK, 0, 58, 1, 1)])) is False
    assert read(db, lambda t: t.locate(oid(9))) is None
    assert read(db, lambda t: list(t.iter_packs())) == [(0, P1)]


def test_first_location_of_an_object_wins(db):
    write(db, lambda t: t.add_pack(P1, [PackEntry(oid(1), KIND_CHUNK, 0, 58, 1, 1)]))
    write(db, lambda t: t.add_pack(P2, [PackEntry(oid(1), KIND_CHUNK, 0, 99, 1, 1),
                                        PackEntry(oid(2), KIND_CHUNK, 0, 58, 1, 1)]))
    assert read(db, lambda t: t.locate(oid(1))).pack == P1
    assert read(db, lambda t: t.locate(oid(2))).pack == P2
    assert read(db, lambda t: (t.pack_no(P1), t.pack_no(P2), t.pack_no("3" * 64))) == (0, 1, None)
    objs = dict(read(db, lambda t: list(t.iter_objects())))
    assert set(objs) == {oid(1), oid(2)} and objs[oid(1)].offset == 58


def _rec(coll, v):
    return {"version": v, "coll": coll}


COLLS = {"o/z": 2, "p/a": 3, "p/a-": 1, "p/ab": 2, "p/a.b": 1, "q/a": 2}


@pytest.fixture
def versions(db):
    def fill(t):
        for coll, n in COLLS.items():
            for v in range(n):
                t.put_version(coll, v, _rec(coll, v))
    write(db, fill)
    return db


@pytest.mark.parametrize("coll", sorted(COLLS) + ["p/b", "a/a", "z/z", "p/a.b.c"])
def test_versions_iterate_in_order_within_their_collection(versions, coll):
    n = COLLS.get(coll, 0)
    fwd = read(versions, lambda t: list(t.iter_versions(coll)))
    rev = read(versions, lambda t: list(t.iter_versions(coll, reverse=True)))
    assert fwd == [_rec(coll, v) for v in range(n)]
    assert rev == list(reversed(fwd))


def test_versions_order_is_numeric_past_255(db):
    write(db, lambda t: [t.put_version("p/a", v, _rec("p/a", v)) for v in (300, 2, 256, 1, 255)])
    write(db, lambda t: t.put_version("p/ab", 0, _rec("p/ab", 0)))
    assert [r["version"] for r in read(db, lambda t: list(t.iter_versions("p/a")))] == [1, 2, 255, 256, 300]
    assert [r["version"] for r in read(db, lambda t: list(t.iter_versions("p/a", True)))] == [300, 256, 255, 2, 1]


def test_versions_of_an_empty_index(db):
    assert read(db, lambda t: list(t.iter_versions("p/a"))) == []
    assert read(db, lambda t: list(t.iter_versions("p/a", reverse=True))) == []


def test_get_and_put_version_and_collection(db):
    write(db, lambda t: t.put_version("p/a", 0, {"x": [1, 2], "b": b"\x00"}))
    write(db, lambda t: t.put_collection("p/b", {"type": "model"}))
    write(db, lambda t: t.put_collection("p/a", {"type": "dataset"}))
    assert read(db, lambda t: t.get_version("p/a", 0)) == {"x": [1, 2], "b": b"\x00"}
    assert read(db, lambda t: t.get_version("p/a", 1)) is None
    assert read(db, lambda t: t.get_collection("p/c")) is None
    assert read(db, lambda t: list(t.iter_collections())) == [("p/a", {"type": "dataset"}), ("p/b", {"type": "model"})]


def test_digest_lookup_keeps_the_first_version(db):
    d = oid(7)
    write(db, lambda t: t.put_digest("p/a", d, 3))
    write(db, lambda t: t.put_digest("p/a", d, 5))
    assert read(db, lambda t: t.version_by_digest("p/a", d)) == 3
    assert read(db, lambda t: t.version_by_digest("p/ab", d)) is None


def test_aliases_are_per_collection(db):
    def fill(t):
        t.set_alias("p/a", "latest", 2)
        t.set_alias("p/a", "best", 0)
        t.set_alias("p/ab", "best", 1)
        t.set_alias("p/a-", "x", 1)
    write(db, fill)
    assert read(db, lambda t: sorted(t.iter_aliases("p/a"))) == [("best", 0), ("latest", 2)]
    assert read(db, lambda t: sorted(t.iter_aliases("p/ab"))) == [("best", 1)]
    assert read(db, lambda t: (t.get_alias("p/a", "best"), t.get_alias("p/ab", "best"))) == (0, 1)
    write(db, lambda t: t.set_alias("p/a", "best", 2))
    write(db, lambda t: t.delete_alias("p/ab", "best"))
    assert read(db, lambda t: (t.get_alias("p/a", "best"), t.get_alias("p/ab", "best"))) == (2, None)
    assert read(db, lambda t: list(t.iter_aliases("p/ab"))) == []
    assert read(db, lambda t: list(t.iter_aliases("p/zz"))) == []


def test_stat_cache_records_round_trip(db):
    e = StatEntry(dev=2**40, ino=2**63, size=123, mtime_ns=-5, ctime_ns=1_700_000_000_000_000_000,
                  recorded_ns=1_700_000_000_000_000_001, executable=True, file_id=oid(42))
    key = b"k" * 32
    write(db, lambda t: t.put_stat(key, e))
    assert read(db, lambda t: t.get_stat(key)) == e
    assert read(db, lambda t: t.get_stat(b"other")) is None
    e2 = StatEntry(1, 2, 3, 4, 5, 6, False, oid(1))
    write(db, lambda t: t.put_stat(key, e2))
    assert read(db, lambda t: t.get_stat(key)) == e2


def test_meta_and_log_seq(db):
    assert read(db, lambda t: t.log_seq()) == 0
    write(db, lambda t: t.set_log_seq(2**40))
    write(db, lambda t: t.put_meta(b"k", b"v"))
    assert read(db, lambda t: (t.log_seq(), t.get_meta(b"k"), t.get_meta(b"none"))) == (2**40, b"v", None)


def test_an_aborted_write_changes_nothing(db):
    with pytest.raises(RuntimeError):
        with db.write() as txn:
            Tables(db, txn).set_alias("p/a", "x", 1)
            raise RuntimeError("boom")
    assert read(db, lambda t: t.get_alias("p/a", "x")) is None
