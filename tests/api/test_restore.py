"""The restore pipeline: files appear only complete, whatever the path they take."""

from __future__ import annotations

import os
import random
import stat

import pytest

from cas.api import restore
from cas.errors import DigestMismatch, DownloadConflict
from cas.storage.packs import pack_path
from tests.api.helpers import draft, log_files
from tests.conftest import read_tree, write_tree


def _files(n: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    return {f"d{i % 7}/s{i % 3}/f{i:03d}.bin": rng.randbytes(rng.randrange(0, 3000)) for i in range(n)}


def _leftovers(root) -> list[str]:
    return [os.path.join(d, n) for d, dirs, files in os.walk(root) for n in dirs + files
            if n.startswith(restore.STAGE_PREFIX)]


@pytest.fixture
def small_tasks(monkeypatch):
    """Tasks of a few files and large files of a few segments, so every path runs on small data."""
    monkeypatch.setattr(restore, "BATCH_FILES", 5)
    monkeypatch.setattr(restore, "LARGE_FILE", 20_000)
    monkeypatch.setattr(restore, "SEGMENT", 6_000)


@pytest.mark.parametrize("workers", [1, 3])
def test_small_and_segmented_large_files_restore_exactly(repo, tmp_path, small_tasks, monkeypatch, workers):
    monkeypatch.setattr(restore, "WORKERS", workers)
    rng = random.Random(7)
    files = _files(40)
    files.update({f"big/{i}.bin": rng.randbytes(20_000 + i * 7_001) for i in range(4)})
    files["empty"] = b""
    v = log_files(repo, tmp_path, files)
    out = v.download(tmp_path / "new")
    assert read_tree(out) == files
    assert _leftovers(out) == []
    # into a directory with content: temporary names and renames, same result
    write_tree(tmp_path / "old", {"d0/s0/f000.bin": b"stale", "big/1.bin": b"stale too", "extra": b"x"})
    v.checkout(tmp_path / "old")
    assert read_tree(tmp_path / "old") == files
    assert _leftovers(tmp_path / "old") == []


def test_modes_are_exact_whatever_the_umask(repo, tmp_path, small_tasks):
    src = tmp_path / "src"
    write_tree(src, {"run.sh": b"#!/bin/sh\n" * 3000, "data.txt": b"d" * 30_000, "small.sh": b"#!/bin/sh\n"})
    os.chmod(src / "run.sh", 0o755)
    os.chmod(src / "small.sh", 0o755)
    a = draft(repo)
    a.add_dir(src)
    v = repo.log_artifact(a)
    old = os.umask(0o077)
    try:
        out = v.download(tmp_path / "out")
    finally:
        os.umask(old)
    modes = {n: stat.S_IMODE(os.stat(os.path.join(out, n)).st_mode) for n in ("run.sh", "data.txt", "small.sh")}
    assert modes == {"run.sh": 0o755, "data.txt": 0o644, "small.sh": 0o755}


def _corrupt_chunk_of(repo, v, path):
    fid = bytes.fromhex(v.get_entry(path).digest.split(":")[1])
    cid = next(iter(repo.objects.iter_chunks(fid)))[0]
    loc = repo.objects.locate(cid)
    pack = pack_path(repo.layout.packs, loc.pack)
    os.chmod(pack, 0o644)
    with open(pack, "r+b") as f:
        f.seek(loc.offset + loc.stored_len // 2)
        b = f.read(1)
        f.seek(loc.offset + loc.stored_len // 2)
        f.write(bytes([b[0] ^ 0x5A]))


@pytest.mark.parametrize("bad", ["d3/s1/f010.bin", "big/0.bin"])
def test_a_corrupt_object_keeps_complete_files_and_leaves_no_partial_one(repo, tmp_path, small_tasks, bad):
    rng = random.Random(3)
    files = {p: b for p, b in _files(30, seed=1).items() if b}
    files.update({f"big/{i}.bin": rng.randbytes(40_000) for i in range(2)})
    v = log_files(repo, tmp_path, files)
    _corrupt_chunk_of(repo, v, bad)
    with pytest.raises(DigestMismatch, match=bad):
        v.download(tmp_path / "out")
    left = read_tree(tmp_path / "out")
    assert bad not in left
    assert all(files[p] == b for p, b in left.items())
    assert _leftovers(tmp_path / "out") == []


def test_staged_files_merge_into_a_directory_that_appeared_meanwhile(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    places = restore._Places(str(root), staged=True, replace_parents=False)
    for path in ("a/b/one", "a/two", "top"):
        made, target = places.aim(path)
        assert target is None and made.startswith(places.stage)
        with open(made, "wb") as f:
            f.write(path.encode())
    write_tree(root, {"a/b/theirs": b"theirs", "top": b"replaced"})
    places.publish()
    assert read_tree(root) == {"a/b/one": b"a/b/one", "a/two": b"a/two", "top": b"top", "a/b/theirs": b"theirs"}
    assert _leftovers(root) == []


def test_a_file_where_a_staged_directory_goes_is_a_conflict(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    places = restore._Places(str(root), staged=True, replace_parents=False)
    made, _ = places.aim("a/one")
    with open(made, "wb") as f:
        f.write(b"1")
    write_tree(root, {"a": b"a file"})
    with pytest.raises(DownloadConflict, match="a file where a directory belongs"):
        places.publish()
    assert read_tree(root) == {"a": b"a file"}
    assert _leftovers(root) == []
