"""The append-only log: numbered, immutable entries created exclusively."""

import os

import pytest

from cas.storage.log import LogDir


@pytest.fixture
def log(tmp_path):
    (tmp_path / "log").mkdir()
    (tmp_path / "tmp").mkdir()
    return LogDir(str(tmp_path / "log"), str(tmp_path / "tmp"))


def test_empty_log(log):
    assert log.last_seq() == 0
    assert log.read(1) is None


def test_append_then_read(log):
    assert log.append(1, b"first")
    assert log.read(1) == b"first"
    assert os.path.basename(log.path(1)) == "0000000000000001"
    assert log.last_seq() == 1


def test_append_is_exclusive(log):
    assert log.append(1, b"first") is True
    assert log.append(1, b"second") is False
    assert log.read(1) == b"first"
    assert log.last_seq() == 1


def test_temporary_files_are_removed_whether_the_append_wins_or_loses(log):
    log.append(1, b"a")
    log.append(1, b"b")
    assert os.listdir(log.tmp_dir) == []


def test_last_seq_is_the_highest_entry(log):
    for seq in (1, 2, 3, 10):
        assert log.append(seq, str(seq).encode())
    assert log.last_seq() == 10
    assert log.read(4) is None
    assert log.read(10) == b"10"


def test_last_seq_ignores_files_that_are_not_entries(log):
    log.append(2, b"x")
    for junk in ("README", "0000000000000099.tmp", "12345", "00000000000000xx"):
        open(os.path.join(log.log_dir, junk), "w").close()
    assert log.last_seq() == 2


def test_large_seq_numbers_keep_their_width(log):
    seq = 10**15
    assert log.append(seq, b"big")
    assert os.path.basename(log.path(seq)) == f"{seq:016d}"
    assert log.last_seq() == seq
