"""Large files are chunked through a bounded buffer with the same cuts as whole-buffer chunking."""

import os
import random

import pytest

from cas.api import ingest
from cas.format.digest import chunk_id
from cas.format.nodes import build_file_nodes


@pytest.mark.parametrize("size", [0, 1, 5000, ingest.READ_ALL_LIMIT + 1, 3 * ingest.READ_BLOCK + 12345])
def test_streamed_file_id_equals_whole_buffer_file_id(repo, tmp_path, monkeypatch, size):
    monkeypatch.setattr(ingest, "READ_BLOCK", 64 * 1024)  # many buffer refills with small test data
    data = random.Random(size).randbytes(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    cuts = repo.chunker.cut(data)
    expected, _ = build_file_nodes([(chunk_id(data[o : o + n]), n) for o, n in cuts])
    ref = repo.ingester.file(str(path), store=True)
    assert ref.id == expected and ref.size == size
    repo.objects.flush()
    assert repo.read_file_bytes(ref.id) == data


def test_stream_survives_short_reads(repo, tmp_path, monkeypatch):
    """readinto may return fewer bytes than asked without being at EOF."""
    monkeypatch.setattr(ingest, "READ_BLOCK", 32 * 1024)
    data = random.Random(7).randbytes(ingest.READ_ALL_LIMIT + 300_000)
    path = tmp_path / "f.bin"
    path.write_bytes(data)

    class Trickle:
        def __init__(self, f):
            self.f = f

        def readinto(self, view):
            return self.f.readinto(view[: min(len(view), 777)])

    with open(path, "rb") as f:
        fid = repo.ingester._stream(Trickle(f), store=False)
    cuts = repo.chunker.cut(data)
    expected, _ = build_file_nodes([(chunk_id(data[o : o + n]), n) for o, n in cuts])
    assert fid == expected
    assert os.path.getsize(path) == len(data)
