"""Pack files on disk: sealed atomically, named by their hash, readable and salvageable."""

import os

import pytest

from cas.errors import FormatError, StorageError
from cas.format.digest import chunk_id
from cas.format.pack import HEADER_SIZE, KIND_CHUNK, KIND_FILE_NODE, KIND_TREE_NODE, RECORD_SIZE, TRAILER_SIZE
from cas.storage.packs import (
    PackReader,
    PackWriter,
    hash_pack,
    iter_pack_names,
    pack_path,
    read_pack_index,
    salvage_pack_index,
)

PAYLOADS = [(KIND_CHUNK, 0, b"alpha" * 10), (KIND_FILE_NODE, 1, b"\x00" * 100), (KIND_TREE_NODE, 0, b""),
            (KIND_CHUNK, 0, os.urandom(3000))]


@pytest.fixture
def dirs(tmp_path):
    packs, tmp = tmp_path / "packs", tmp_path / "tmp"
    packs.mkdir()
    tmp.mkdir()
    return str(packs), str(tmp)


def write_pack(dirs, payloads=PAYLOADS):
    w = PackWriter(*dirs)
    for kind, codec, data in payloads:
        w.add(chunk_id(data + bytes([kind])), kind, codec, len(data) + codec, data)
    name = w.seal()
    return name, w.entries


def test_write_seal_read_round_trip(dirs):
    name, entries = write_pack(dirs)
    path = pack_path(dirs[0], name)
    assert os.path.isfile(path)
    assert os.listdir(dirs[1]) == []  # the temporary file became the pack
    assert read_pack_index(path) == entries
    r = PackReader(dirs[0])
    try:
        for e, (kind, codec, data) in zip(entries, PAYLOADS):
            assert (e.kind, e.codec, e.raw_len) == (kind, codec, len(data) + codec)
            assert r.read(name, e.offset, e.stored_len) == data
    finally:
        r.close()


def test_pack_name_is_the_hash_of_its_bytes(dirs):
    name, _ = write_pack(dirs)
    path = pack_path(dirs[0], name)
    assert len(name) == 64 and path.endswith(os.path.join(name[:2], name + ".pack"))
    assert hash_pack(path) == name
    with open(path, "r+b") as f:
        f.seek(HEADER_SIZE + RECORD_SIZE)
        b = f.read(1)
        f.seek(HEADER_SIZE + RECORD_SIZE)
        f.write(bytes([b[0] ^ 0xFF]))
    assert hash_pack(path) != name


def test_identical_content_gives_the_same_pack_name(dirs):
    assert write_pack(dirs)[0] == write_pack(dirs)[0]
    assert write_pack(dirs, PAYLOADS[:2])[0] != write_pack(dirs)[0]


def test_iter_pack_names_lists_sealed_packs_sorted(dirs):
    names = {write_pack(dirs, [(KIND_CHUNK, 0, bytes([i]) * 70)])[0] for i in range(5)}
    # debris that is not a sealed pack is ignored
    os.makedirs(os.path.join(dirs[0], "zz"), exist_ok=True)
    open(os.path.join(dirs[0], "zz", "notapack.pack"), "w").close()
    open(os.path.join(dirs[0], "stray"), "w").close()
    assert list(iter_pack_names(dirs[0])) == sorted(names)


def test_iter_pack_names_of_a_missing_dir_is_empty(tmp_path):
    assert list(iter_pack_names(str(tmp_path / "nope"))) == []


def test_abort_leaves_nothing_behind(dirs):
    w = PackWriter(*dirs)
    w.add(b"\x01" * 32, KIND_CHUNK, 0, 3, b"abc")
    w.abort()
    assert os.listdir(dirs[1]) == []
    assert list(iter_pack_names(dirs[0])) == []


def test_truncated_pack_fails_read_index_and_salvage_recovers_complete_records(dirs):
    name, entries = write_pack(dirs)
    path = pack_path(dirs[0], name)
    cut = entries[3].offset + 10  # inside the last payload: footer and trailer are gone
    with open(path, "r+b") as f:
        f.truncate(cut)
    with pytest.raises(FormatError):
        read_pack_index(path)
    assert salvage_pack_index(path) == entries[:3]


def test_pack_truncated_below_header_and_trailer_is_a_format_error(dirs):
    name, _ = write_pack(dirs)
    path = pack_path(dirs[0], name)
    with open(path, "r+b") as f:
        f.truncate(HEADER_SIZE + TRAILER_SIZE - 1)
    with pytest.raises(FormatError, match="truncated"):
        read_pack_index(path)


def test_damaged_footer_fails_read_index_and_salvage_recovers_everything(dirs):
    name, entries = write_pack(dirs)
    path = pack_path(dirs[0], name)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size - TRAILER_SIZE - 5)  # inside the footer body
        b = f.read(1)
        f.seek(size - TRAILER_SIZE - 5)
        f.write(bytes([b[0] ^ 1]))
    with pytest.raises(FormatError, match="checksum"):
        read_pack_index(path)
    assert salvage_pack_index(path)[: len(entries)] == entries


def test_not_a_pack_is_a_format_error(dirs, tmp_path):
    p = tmp_path / "x.pack"
    p.write_bytes(b"hello world, not a pack at all, long enough for a header and trailer" * 2)
    with pytest.raises(FormatError):
        read_pack_index(str(p))
    with pytest.raises(FormatError):
        salvage_pack_index(str(p))


def test_reader_errors_name_the_problem(dirs):
    name, entries = write_pack(dirs)
    r = PackReader(dirs[0])
    try:
        with pytest.raises(StorageError, match="missing"):
            r.read("0" * 64, 16, 1)
        size = os.path.getsize(pack_path(dirs[0], name))
        with pytest.raises(StorageError, match="truncated"):
            r.read(name, size - 2, 10)
    finally:
        r.close()


def test_reader_with_few_handles_still_reads_every_pack(dirs):
    packs = [write_pack(dirs, [(KIND_CHUNK, 0, bytes([i]) * 80)]) for i in range(4)]
    r = PackReader(dirs[0], max_open=2)
    try:
        for _ in range(2):
            for i, (name, entries) in enumerate(packs):
                e = entries[0]
                assert r.read(name, e.offset, e.stored_len) == bytes([i]) * 80
        assert len(r._fds) <= 2
    finally:
        r.close()


def test_seal_avoids_a_condemned_name(tmp_path):
    from cas.storage.packs import PackWriter, read_pack_index

    packs, tmp = str(tmp_path / "packs"), str(tmp_path / "tmp")
    os.makedirs(tmp, exist_ok=True)

    def one(avoid=None):
        w = PackWriter(packs, tmp)
        w.add(b"\x01" * 32, 1, 0, 3, b"abc")
        return w.seal(avoid=avoid)

    first = one()
    assert one() == first  # identical bytes, identical name
    other = one(avoid=lambda name: name == first)
    assert other != first
    ids = [e.id for e in read_pack_index(os.path.join(packs, other[:2], other + ".pack"))]
    assert ids[0] == b"\x01" * 32 and len(ids) == 2  # the object, then the padding chunk
