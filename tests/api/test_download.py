"""Getting versions onto disk: download, checkout, verify, file, files (API.md "Methods")."""

from __future__ import annotations

import os

import pytest

import cas
from cas.errors import DownloadConflict, UsageError, VerifyError
from tests.api.helpers import log_files, write
from tests.conftest import read_tree, write_tree

FILES = {
    "data/train/a.bin": b"A" * 3000,
    "data/train/b.txt": b"bee",
    "data/test/c.txt": b"sea",
    "datasheet.md": b"# sheet",
    "readme": b"read me",
}


@pytest.fixture
def v(repo, tmp_path):
    return log_files(repo, tmp_path, FILES)


@pytest.fixture
def outside(tmp_path):
    """A directory outside every download root, with one file in it."""
    d = tmp_path / "outside"
    write_tree(d, {"keep.txt": b"do not touch"})
    return d


def assert_untouched(outside):
    assert read_tree(outside) == {"keep.txt": b"do not touch"}


def test_download_writes_every_file(v, tmp_path):
    root = v.download(tmp_path / "out")
    assert root == str(tmp_path / "out")
    assert read_tree(root) == FILES


def test_download_default_root_is_artifacts_name_version(v, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = v.download()
    assert os.path.samefile(root, tmp_path / "artifacts" / "data:v0")
    assert read_tree(root) == FILES


@pytest.mark.parametrize("prefix,expected", [
    ("data/train/", ["data/train/a.bin", "data/train/b.txt"]),
    ("data/train", ["data/train/a.bin", "data/train/b.txt"]),
    ("data", ["data/test/c.txt", "data/train/a.bin", "data/train/b.txt", "datasheet.md"]),
    ("data/", ["data/test/c.txt", "data/train/a.bin", "data/train/b.txt"]),
    ("rea", ["readme"]),
    ("zzz", []),
])
def test_download_path_prefix_writes_only_matching_files(v, tmp_path, prefix, expected):
    root = v.download(tmp_path / "out", path_prefix=prefix)
    assert sorted(read_tree(root)) == expected
    assert all(read_tree(root)[p] == FILES[p] for p in expected)


def test_identical_existing_files_are_left_alone(v, tmp_path):
    root = tmp_path / "out"
    v.download(root)
    target = root / "data" / "train" / "a.bin"
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    before = os.stat(target)
    v.download(root)
    after = os.stat(target)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_fail_strategy_writes_nothing_and_lists_differing_files(v, tmp_path):
    root = tmp_path / "out"
    v.download(root)
    write(root / "data" / "train" / "b.txt", b"locally edited")
    os.unlink(root / "readme")
    with pytest.raises(DownloadConflict) as ei:
        v.download(root)  # FAIL is the default
    assert ei.value.paths == ["data/train/b.txt"]
    assert "data/train/b.txt" in str(ei.value)
    assert not (root / "readme").exists()  # nothing at all was written
    assert (root / "data" / "train" / "b.txt").read_bytes() == b"locally edited"


def test_preserve_keeps_differing_files_and_writes_missing(v, tmp_path):
    root = tmp_path / "out"
    v.download(root)
    write(root / "data" / "train" / "b.txt", b"locally edited")
    os.unlink(root / "readme")
    v.download(root, overwrite_strategy="PRESERVE")
    assert (root / "data" / "train" / "b.txt").read_bytes() == b"locally edited"
    assert (root / "readme").read_bytes() == b"read me"


def test_overwrite_replaces_differing_files_and_keeps_extras(v, tmp_path):
    root = tmp_path / "out"
    v.download(root)
    write(root / "data" / "train" / "b.txt", b"locally edited")
    write(root / "extra.txt", b"mine")
    v.download(root, overwrite_strategy="OVERWRITE")
    assert read_tree(root) == {**FILES, "extra.txt": b"mine"}


def test_unknown_strategy_raises(v, tmp_path):
    with pytest.raises(UsageError):
        v.download(tmp_path / "out", overwrite_strategy="MERGE")


def test_symlinked_directory_is_never_followed(v, tmp_path, outside):
    root = tmp_path / "out"
    root.mkdir()
    os.symlink(outside, root / "data")
    with pytest.raises(DownloadConflict) as ei:
        v.download(root)
    assert any(p.startswith("data/") for p in ei.value.paths)
    assert_untouched(outside)
    assert os.listdir(root) == ["data"]
    v.download(root, overwrite_strategy="PRESERVE")
    assert_untouched(outside)
    v.download(root, overwrite_strategy="OVERWRITE")
    assert_untouched(outside)
    assert not os.path.islink(root / "data") and os.path.isdir(root / "data")
    assert read_tree(root) == FILES


def test_symlinked_file_is_replaced_not_written_through(v, tmp_path, outside):
    root = tmp_path / "out"
    root.mkdir()
    os.symlink(outside / "keep.txt", root / "readme")
    with pytest.raises(DownloadConflict):
        v.download(root)
    v.download(root, overwrite_strategy="OVERWRITE")
    assert not os.path.islink(root / "readme")
    assert (root / "readme").read_bytes() == b"read me"
    assert_untouched(outside)


def test_checkout_makes_root_exactly_the_version(v, tmp_path, outside):
    root = tmp_path / "co"
    write_tree(root, {
        "extra.txt": b"x", "junkdir/deep/f": b"j", "data/train/b.txt": b"stale", "data/train/old": b"o",
        "readme/inner": b"a dir where a file belongs",
    })
    os.symlink(outside, root / "data" / "test")  # a symlink where a directory belongs
    os.symlink(outside / "keep.txt", root / "datasheet.md")  # a symlink where a file belongs
    os.symlink(outside, root / "link-out")  # an extra symlink to a directory outside
    v.checkout(root)
    assert read_tree(root) == FILES
    assert not any(os.path.islink(os.path.join(d, n)) for d, ds, fs in os.walk(root) for n in ds + fs)
    assert sorted(os.listdir(root)) == ["data", "datasheet.md", "readme"]
    assert_untouched(outside)
    v.verify(root)


def test_checkout_keeps_the_store_at_the_root(tmp_path, small_params):
    proj = tmp_path / "proj"
    repo = cas.Repo.init(proj, chunker=small_params)
    try:
        v0 = log_files(repo, tmp_path, {"a.txt": b"a", "d/b": b"b"})
        v1 = log_files(repo, tmp_path, {"c.txt": b"c"})
        write(proj / "notes.txt", b"scratch")
        v0.checkout(proj)
        assert sorted(os.listdir(proj)) == [".cas", "a.txt", "d"]
        v1.checkout(proj)
        assert sorted(os.listdir(proj)) == [".cas", "c.txt"]
        v1.verify(proj)  # the store is not an unexpected file
    finally:
        repo.close()
    with cas.Repo(proj) as r:
        assert [x.version for x in r.artifacts("data")] == ["v1", "v0"]
        assert r.verify().ok


def test_checkout_into_a_new_directory(v, tmp_path):
    root = v.checkout(tmp_path / "new" / "dir")
    assert read_tree(root) == FILES


def test_verify_passes_on_a_clean_download_and_lists_differences(v, tmp_path):
    root = tmp_path / "out"
    v.download(root)
    v.verify(root)
    os.unlink(root / "readme")
    write(root / "data" / "test" / "c.txt", b"SEA")  # same size, other bytes
    write(root / "new" / "file", b"n")
    with pytest.raises(VerifyError) as ei:
        v.verify(root)
    e = ei.value
    assert e.missing == ["readme"]
    assert e.modified == ["data/test/c.txt"]
    assert e.unexpected == ["new/file"]
    for p in ("readme", "data/test/c.txt", "new/file"):
        assert p in str(e)


def test_verify_of_an_empty_or_missing_root_lists_all_missing(v, tmp_path):
    with pytest.raises(VerifyError) as ei:
        v.verify(tmp_path / "nothing-here")
    assert ei.value.missing == sorted(FILES)


def test_file_for_single_file_artifacts(repo, tmp_path, v):
    one = log_files(repo, tmp_path, {"model/weights.bin": b"w" * 100}, name="model", type="model")
    path = one.file(tmp_path / "m")
    assert path == os.path.join(str(tmp_path / "m"), "model/weights.bin")
    with open(path, "rb") as f:
        assert f.read() == b"w" * 100
    with pytest.raises(UsageError):
        v.file(tmp_path / "many")
    assert not (tmp_path / "many").exists()


def test_files_pages_through_all_entries_in_order(v):
    cur = v.files(per_page=2)
    pages = []
    while True:
        page = cur.next_page()
        if not page:
            break
        pages.append([e.path for e in page])
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [p for page in pages for p in page] == sorted(FILES)
    assert [e.path for e in v.files(per_page=2)] == sorted(FILES)


def test_files_resumes_after_the_cursor(v):
    cur = v.files(per_page=2)
    first = cur.next_page()
    resumed = v.files(per_page=10, start=cur.cursor)
    assert [e.path for e in first] + [e.path for e in resumed] == sorted(FILES)
    assert [e.path for e in v.files(start="data/test/c.txt")] == sorted(FILES)[1:]
    assert [e.path for e in v.files(start="datasheet.md")] == ["readme"]
    assert [e.path for e in v.files(names=["readme", "data/test/c.txt"])] == ["data/test/c.txt", "readme"]
    with pytest.raises(UsageError):
        v.files(per_page=0)


def test_target_that_is_a_file_is_a_clear_error(repo, tmp_path):
    src = tmp_path / "src.txt"
    src.write_bytes(b"x")
    art = cas.Artifact("one", "dataset")
    art.add_file(src)
    v = repo.log_artifact(art)
    target = tmp_path / "iamafile"
    target.write_bytes(b"keep")
    for call in (lambda: v.download(target), lambda: v.checkout(target)):
        with pytest.raises(UsageError, match="iamafile"):
            call()
    assert target.read_bytes() == b"keep"
