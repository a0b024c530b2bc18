"""The stat cache skips re-reading unchanged files, but never trusts racy or changed ones."""

import os
import time

import pytest

import cas
from cas.api import ingest
from cas.api.ingest import walk_files
from cas.format.digest import chunk_id
from cas.format.nodes import build_file_nodes

LATER_NS = 5_000_000_000


@pytest.fixture
def later(monkeypatch):
    """Hash as if 5 s had passed since the files were written (ctime cannot be set back)."""

    class Clock:
        @staticmethod
        def time_ns():
            return time.time_ns() + LATER_NS

    monkeypatch.setattr(ingest, "time", Clock)


def old_file(path, data: bytes):
    """Write ``data`` with an mtime 60 s in the past; return the stat."""
    path.write_bytes(data)
    past = time.time_ns() - 60_000_000_000
    os.utime(path, ns=(past, past))
    return os.stat(path)


def file_id(repo, data: bytes) -> bytes:
    root, _ = build_file_nodes([(chunk_id(data[o : o + n]), n) for o, n in repo.chunker.cut(data)])
    return root


def test_unchanged_old_file_is_not_read_again(repo, tmp_path, later):
    p = tmp_path / "f.bin"
    data = os.urandom(5000)
    old_file(p, data)
    ing = repo.ingester
    first = ing.file(str(p))
    assert (ing.n_read, ing.n_cached) == (1, 0)
    assert first.id == file_id(repo, data) and first.size == 5000
    second = ing.file(str(p))  # answered from the pending batch
    assert (ing.n_read, ing.n_cached) == (1, 1)
    assert second == first
    repo.objects.flush()
    ing.commit_stat_cache()
    third = ing.file(str(p))  # answered from the index
    assert (ing.n_read, ing.n_cached) == (1, 2)
    assert third == first


def test_the_stat_cache_persists_across_opens(make_repo, tmp_path, later):
    repo = make_repo()
    p = tmp_path / "f.bin"
    old_file(p, b"persisted" * 300)
    ref = repo.ingester.file(str(p))
    repo.objects.flush()
    repo.ingester.commit_stat_cache()
    again = cas.Repo(tmp_path / "repo")
    try:
        assert again.ingester.file(str(p)) == ref
        assert (again.ingester.n_read, again.ingester.n_cached) == (0, 1)
    finally:
        again.close()


def test_same_size_and_restored_mtime_but_new_ctime_is_read_again(repo, tmp_path, later):
    p = tmp_path / "f.bin"
    st = old_file(p, b"A" * 3000)
    ing = repo.ingester
    before = ing.file(str(p))
    repo.objects.flush()
    ing.commit_stat_cache()
    for _ in range(200):  # ctime has a coarse clock: rewrite until it visibly moves
        p.write_bytes(b"B" * 3000)
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
        now = os.stat(p)
        if now.st_ctime_ns != st.st_ctime_ns:
            break
        time.sleep(0.01)
    assert (now.st_size, now.st_mtime_ns, now.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    assert now.st_ctime_ns != st.st_ctime_ns
    after = ing.file(str(p))
    assert ing.n_read == 2
    assert after.id == file_id(repo, b"B" * 3000) != before.id


def test_a_replaced_file_with_the_same_stat_times_is_read_again(repo, tmp_path, later):
    p = tmp_path / "f.bin"
    st = old_file(p, b"first version")
    ing = repo.ingester
    ing.file(str(p))
    q = tmp_path / "g.bin"
    q.write_bytes(b"other version")
    os.utime(q, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(q, p)  # a new inode at the same path
    assert ing.file(str(p)).id == file_id(repo, b"other version")
    assert ing.n_read == 2


def test_a_racy_file_is_always_read_again(repo, tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"just written" * 100)  # mtime and ctime are now
    ing = repo.ingester
    refs = [ing.file(str(p)) for _ in range(3)]
    repo.objects.flush()
    ing.commit_stat_cache()
    refs.append(ing.file(str(p)))
    assert (ing.n_read, ing.n_cached) == (4, 0)
    assert len({r.id for r in refs}) == 1


def test_a_recent_mtime_is_racy_even_when_hashed_later(repo, tmp_path, later):
    p = tmp_path / "f.bin"
    p.write_bytes(b"future")
    future = time.time_ns() + LATER_NS  # mtime equal to the (shifted) hashing time
    os.utime(p, ns=(future, future))
    ing = repo.ingester
    ing.file(str(p))
    ing.file(str(p))
    assert (ing.n_read, ing.n_cached) == (2, 0)


def test_a_hash_only_pass_does_not_let_a_later_add_skip_storing(repo, tmp_path, later):
    p = tmp_path / "f.bin"
    data = os.urandom(3000)
    old_file(p, data)
    ing = repo.ingester
    ref = ing.file(str(p), store=False)
    assert not repo.objects.has(ref.id)
    assert ing.file(str(p), store=False) == ref and ing.n_cached == 1
    stored = ing.file(str(p), store=True)  # the cache knows the id but the objects are missing
    assert stored == ref and ing.n_read == 2
    repo.objects.flush()
    assert repo.read_file_bytes(ref.id) == data


def test_the_executable_bit_comes_from_the_current_mode(repo, tmp_path, later):
    p = tmp_path / "run.sh"
    old_file(p, b"#!/bin/sh\n")
    assert repo.ingester.file(str(p)).executable is False
    os.chmod(p, 0o755)  # changes ctime, so the file is read again
    assert repo.ingester.file(str(p)).executable is True


def test_empty_file(repo, tmp_path):
    p = tmp_path / "empty"
    p.write_bytes(b"")
    ref = repo.ingester.file(str(p))
    assert ref.size == 0 and ref.id == file_id(repo, b"")
    repo.objects.flush()
    assert repo.read_file_bytes(ref.id) == b""


def test_walk_files_yields_regular_files_and_skips_symlinks(tmp_path):
    root = tmp_path / "root"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"a")
    (root / "sub" / "b.txt").write_bytes(b"bb")
    (root / "sub" / "deep" / "c").write_bytes(b"ccc")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    os.symlink(root / "a.txt", root / "link-to-file")
    os.symlink(outside, root / "sub" / "link-to-dir")
    os.symlink(tmp_path / "missing", root / "dangling")
    (root / "empty-dir").mkdir()
    found = {rel: (path, st.st_size) for rel, path, st in walk_files(str(root))}
    assert found == {
        "a.txt": (str(root / "a.txt"), 1),
        "sub/b.txt": (str(root / "sub" / "b.txt"), 2),
        "sub/deep/c": (str(root / "sub" / "deep" / "c"), 3),
    }
