"""fsck's pass over the packs: every object hashed, every pack named by its bytes, whatever the blocks."""

import random

import pytest

import cas
from cas.api import objects as objects_mod
from cas.api import packscan
from cas.format.digest import to_text
from cas.format.pack import KIND_CHUNK
from cas.index.tables import OBJ, U32, Tables
from cas.storage.packs import iter_pack_names, pack_path
from tests.conftest import write_tree


def _log(repo, tmp_path, files, name="data"):
    write_tree(tmp_path / name, files)
    art = cas.Artifact(name, "dataset", repo=repo)
    art.add_dir(tmp_path / name)
    return repo.log_artifact(art)


def _files(n, size=3000):
    return {f"d{i % 4}/f{i:03d}.bin": random.Random(i).randbytes(size) for i in range(n)}


def _flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))


@pytest.fixture
def many_packs(monkeypatch):
    """New packs are sealed after about 8 KiB, so a small store has many."""
    monkeypatch.setattr(objects_mod, "PACK_TARGET_SIZE", 8 << 10)


def test_blocks_smaller_than_objects_still_check_everything(repo, tmp_path, monkeypatch, many_packs):
    _log(repo, tmp_path, _files(30, 5000))
    monkeypatch.setattr(packscan, "BLOCK", 700)  # most objects are larger: one block per object
    report = repo.verify()
    assert report.ok, [str(f) for f in report.findings]
    assert report.n_packs > packscan.READERS
    # every indexed object was confirmed by the single pass (no object was read again)
    reads = []
    monkeypatch.setattr(repo.objects, "read_at", lambda *a, **k: reads.append(a))
    assert repo.verify().ok and reads == []


@pytest.mark.parametrize("readers,reader_hash_min", [(1, 0), (2, 1 << 30), (5, 0)])
def test_a_flipped_byte_is_found_in_its_pack_only(repo, tmp_path, monkeypatch, many_packs, readers,
                                                   reader_hash_min):
    v = _log(repo, tmp_path, _files(30))
    monkeypatch.setattr(packscan, "READERS", readers)
    monkeypatch.setattr(packscan, "BUFFERS", 1)
    monkeypatch.setattr(packscan, "READER_HASH_MIN", reader_hash_min)  # raw chunks hashed by readers, or not
    monkeypatch.setattr(packscan, "BLOCK", 4096)
    fid = bytes.fromhex(v.get_entry("d2/f010.bin").digest.split(":")[1])
    cid = next(repo.objects.iter_chunks(fid))[0]
    loc = repo.objects.locate(cid)
    _flip(pack_path(repo.layout.packs, loc.pack), loc.offset + loc.stored_len // 2)
    report = repo.verify()
    kinds = sorted((f.kind, f.key) for f in report.findings)
    assert kinds == sorted([("corrupt-object", to_text(cid)), ("corrupt-pack", loc.pack)]), kinds
    bad = next(f for f in report.findings if f.kind == "corrupt-object")
    assert bad.affected == [f"{v.qualified_name} d2/f010.bin"]


def test_an_index_entry_that_disagrees_with_the_footer_is_read_where_the_index_says(repo, tmp_path):
    v = _log(repo, tmp_path, _files(5))
    fid = bytes.fromhex(v.get_entry("d1/f001.bin").digest.split(":")[1])
    cid = next(repo.objects.iter_chunks(fid))[0]
    with repo.db.write() as txn:
        t = Tables(repo.db, txn)
        objects = repo.db.dbs["objects"]
        no, off, slen, rlen, kind, codec = OBJ.unpack(txn.get(cid, db=objects))
        assert kind == KIND_CHUNK
        txn.put(cid, OBJ.pack(no, off + 1, slen, rlen, kind, codec), db=objects)  # one byte off
        assert t.has_object(cid)
    repo.objects.refresh()
    report = repo.verify()
    assert [(f.kind, f.key) for f in report.findings] == [("corrupt-object", to_text(cid))]
    assert report.findings[0].affected == [f"{v.qualified_name} d1/f001.bin"]


def test_a_pack_the_index_does_not_know_is_still_checked(repo, tmp_path):
    _log(repo, tmp_path, _files(5))
    name = next(iter_pack_names(repo.layout.packs))
    with repo.db.write() as txn:  # forget the pack (as if an indexing step was lost)
        no = Tables(repo.db, txn).pack_no(name)
        txn.delete(name.encode(), db=repo.db.dbs["pack_names"])
        txn.delete(U32.pack(no), db=repo.db.dbs["packs"])
    repo.objects.refresh()
    path = pack_path(repo.layout.packs, name)
    with open(path, "rb") as f:
        size = len(f.read())
    _flip(path, size // 2)
    report = repo.verify()
    assert ("corrupt-pack", name) in [(f.kind, f.key) for f in report.findings]


@pytest.mark.parametrize("where", ["reader", "check"])
def test_a_failure_in_either_thread_fails_the_check_instead_of_hanging(repo, tmp_path, monkeypatch, many_packs,
                                                                    where):
    _log(repo, tmp_path, _files(30))
    monkeypatch.setattr(packscan, "BUFFERS", 1)  # readers wait for buffers when the check fails

    def boom(*args):
        raise RuntimeError(f"{where} broke")

    if where == "reader":
        monkeypatch.setattr(packscan.PackScan, "footer", boom)
    else:
        monkeypatch.setattr(packscan, "_check_block", boom)
    with pytest.raises(RuntimeError, match=f"{where} broke"):
        repo.verify()
    assert repo.verify_version(repo.artifact("data")) == []  # the store is still usable
