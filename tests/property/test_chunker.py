"""Content-defined chunking: lossless, bounded, deterministic, and local under edits."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from cas.format.chunker import Chunker, ChunkerParams
from cas.format.digest import chunk_id

PARAMS = ChunkerParams(min_size=256, avg_size=1024, max_size=4096)
CHUNKER = Chunker(PARAMS)


def _random_bytes(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


# mixed content: hypothesis' own bytes (often low entropy) and seeded random bytes
buffers = st.one_of(
    st.binary(max_size=20_000),
    st.builds(_random_bytes, st.integers(0, 2**32), st.integers(0, 40_000)),
    st.builds(lambda b, k: b * k, st.binary(min_size=1, max_size=50), st.integers(1, 800)),
)


def _check_cuts(buf, cuts):
    assert b"".join(buf[o : o + n] for o, n in cuts) == buf
    pos = 0
    for i, (o, n) in enumerate(cuts):
        assert o == pos
        assert 0 < n <= PARAMS.max_size
        if i < len(cuts) - 1:
            assert n >= PARAMS.min_size
        pos += n
    assert pos == len(buf)


@settings(max_examples=60)
@given(buffers)
def test_chunks_concatenate_to_the_input_within_size_bounds(buf):
    cuts = CHUNKER.cut(buf)
    _check_cuts(buf, cuts)
    assert (cuts == []) == (buf == b"")


@settings(max_examples=30)
@given(buffers)
def test_chunking_is_deterministic_across_instances_and_buffer_types(buf):
    other = Chunker(ChunkerParams.parse(PARAMS.spec))
    assert CHUNKER.cut(buf) == other.cut(buf) == CHUNKER.cut(memoryview(bytearray(buf)))


@settings(max_examples=30)
@given(
    seed=st.integers(0, 2**32),
    size=st.integers(32 * 1024, 80 * 1024),
    where=st.floats(0.25, 0.75),
    inserted=st.binary(min_size=1, max_size=16),
)
def test_an_insertion_only_changes_chunks_near_it(seed, size, where, inserted):
    buf = _random_bytes(seed, size)
    pos = int(size * where)
    new = buf[:pos] + inserted + buf[pos:]
    old_cuts, new_cuts = CHUNKER.cut(buf), CHUNKER.cut(new)
    _check_cuts(new, new_cuts)
    old_ids = [chunk_id(buf[o : o + n]) for o, n in old_cuts]
    new_ids = [chunk_id(new[o : o + n]) for o, n in new_cuts]

    # every chunk that ends before the insertion is unchanged and in the same place
    before = [cid for (o, n), cid in zip(old_cuts, old_ids) if o + n < pos]
    assert new_ids[: len(before)] == before

    # boundaries resynchronize: every chunk starting well after the insertion is shared
    new_set = set(new_ids)
    horizon = pos + 4 * PARAMS.max_size
    after = [cid for (o, _n), cid in zip(old_cuts, old_ids) if o >= horizon]
    assert all(cid in new_set for cid in after)

    # so most chunks are shared
    shared = sum(1 for cid in old_ids if cid in new_set)
    assert shared >= len(old_ids) // 2
