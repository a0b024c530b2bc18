"""The threaded write path: compression in a pool, packs sealed in the background.

Objects given to ``put`` come back byte-identical after ``flush``, across many
batches and pack rollovers, and nothing is indexed before ``flush``.
"""

import random

from cas.api import ingest, objects
from cas.format.digest import chunk_id
from cas.format.pack import KIND_CHUNK


def _tiny_pipeline(monkeypatch):
    monkeypatch.setattr(objects, "PACK_TARGET_SIZE", 48 * 1024)
    monkeypatch.setattr(objects, "BATCH_BYTES", 8 * 1024)
    monkeypatch.setattr(objects, "MAX_INFLIGHT", 32 * 1024)
    monkeypatch.setattr(ingest, "READ_BLOCK", 64 * 1024)


def test_many_batches_and_packs_round_trip(repo, tmp_path, monkeypatch):
    _tiny_pipeline(monkeypatch)
    rnd = random.Random(3)
    files = {}
    for i in range(6):
        # random (stored raw) and repetitive (compressed) content, some streamed
        data = rnd.randbytes(300_000) if i % 2 else (b"row,%d,abc\n" % i) * 40_000
        p = tmp_path / f"f{i}"
        p.write_bytes(data)
        files[i] = (data, repo.ingester.file(str(p), store=True))
    sealed = repo.objects.flush()
    assert len(sealed) > 3  # rolled over into several packs while ingesting
    for data, ref in files.values():
        assert repo.read_file_bytes(ref.id) == data
    assert repo.verify().ok


def test_queued_objects_are_not_indexed_until_flush(repo, monkeypatch):
    _tiny_pipeline(monkeypatch)
    data = random.Random(5).randbytes(200_000)
    oid = chunk_id(data)
    assert repo.objects.put(oid, KIND_CHUNK, data)
    assert repo.objects.has(oid)  # pending: a second put is deduplicated
    assert not repo.objects.put(oid, KIND_CHUNK, data)
    with repo.db.read() as txn:
        from cas.index.tables import Tables

        assert not Tables(repo.db, txn).has_object(oid)
    repo.objects.flush()
    assert repo.objects.get(oid, KIND_CHUNK) == data


def test_abort_discards_queued_objects(repo, monkeypatch):
    _tiny_pipeline(monkeypatch)
    data = random.Random(6).randbytes(100_000)
    oid = chunk_id(data)
    repo.objects.put(oid, KIND_CHUNK, data)
    repo.objects.abort()
    assert not repo.objects.has(oid)
    assert repo.objects.flush() == []
