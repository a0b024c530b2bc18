"""Per-object codecs: zstd only when it pays, raw otherwise; strict decode."""

import os

import pytest

from cas.errors import FormatError, UnknownCodec
from cas.format.codec import CODEC_RAW, CODEC_ZSTD, MAX_RATIO, Codec


@pytest.fixture
def codec():
    return Codec()


def test_compressible_data_is_stored_as_zstd_and_round_trips(codec):
    raw = b"abcdefgh" * 4096
    cid, stored = codec.encode(raw)
    assert cid == CODEC_ZSTD
    assert len(stored) <= len(raw) * MAX_RATIO
    assert codec.decode(cid, stored, len(raw)) == raw


def test_incompressible_data_is_stored_raw_and_round_trips(codec):
    raw = os.urandom(8192)
    cid, stored = codec.encode(raw)
    assert cid == CODEC_RAW
    assert stored == raw
    assert codec.decode(cid, stored, len(raw)) == raw


@pytest.mark.parametrize("raw", [b"", b"a", b"a" * 63])
def test_tiny_payloads_are_stored_raw(codec, raw):
    cid, stored = codec.encode(raw)
    assert cid == CODEC_RAW and stored == raw
    assert codec.decode(cid, stored, len(raw)) == raw


def test_encode_accepts_a_memoryview(codec):
    raw = b"xyz" * 1000
    cid, stored = codec.encode(memoryview(raw))
    assert isinstance(stored, bytes)
    assert codec.decode(cid, stored, len(raw)) == raw


@pytest.mark.parametrize("bad", [2, 7, 255])
def test_unknown_codec_id_raises_unknown_codec(codec, bad):
    with pytest.raises(UnknownCodec):
        codec.decode(bad, b"whatever", 8)
    assert issubclass(UnknownCodec, FormatError)


@pytest.mark.parametrize("delta", [-1, 1, 1000])
def test_wrong_raw_len_raises_format_error_for_zstd(codec, delta):
    raw = b"0123456789" * 500
    cid, stored = codec.encode(raw)
    assert cid == CODEC_ZSTD
    with pytest.raises(FormatError):
        codec.decode(cid, stored, len(raw) + delta)


@pytest.mark.parametrize("delta", [-1, 1])
def test_wrong_raw_len_raises_format_error_for_raw(codec, delta):
    with pytest.raises(FormatError):
        codec.decode(CODEC_RAW, b"abcdef", 6 + delta)


def test_corrupt_zstd_payload_raises_format_error(codec):
    raw = b"0123456789" * 500
    _, stored = codec.encode(raw)
    with pytest.raises(FormatError):
        codec.decode(CODEC_ZSTD, b"\x00" * 8 + stored[8:], len(raw))
    with pytest.raises(FormatError):
        codec.decode(CODEC_ZSTD, stored[: len(stored) // 2], len(raw))
