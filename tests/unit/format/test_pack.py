"""Pack byte layout: header, self-describing records, checksummed footer, trailer."""

import struct

import pytest

from cas.errors import FormatError, UnsupportedFormat
from cas.format import pack as P
from cas.format.digest import chunk_id


def _build(objects):
    """Return (pack bytes, entries) for [(id, kind, codec, raw_len, stored)]."""
    out = bytearray(P.encode_header())
    entries = []
    for oid, kind, codec, raw_len, stored in objects:
        out += P.encode_record_header(kind, codec, raw_len, len(stored), oid)
        entries.append(P.PackEntry(oid, kind, codec, len(out), len(stored), raw_len))
        out += stored
    out += P.encode_footer(entries)
    return bytes(out), entries


OBJS = [
    (chunk_id(b"one"), P.KIND_CHUNK, 0, 3, b"one"),
    (chunk_id(b"two"), P.KIND_FILE_NODE, 1, 100, b"zz" * 7),
    (chunk_id(b"three"), P.KIND_TREE_NODE, 0, 0, b""),
]


def test_sizes_are_fixed():
    assert (P.HEADER_SIZE, P.RECORD_SIZE, P.FOOTER_ENTRY_SIZE, P.TRAILER_SIZE) == (16, 42, 50, 44)


def test_header_round_trip_and_rejections():
    h = P.encode_header()
    assert h.startswith(P.PACK_MAGIC) and len(h) == P.HEADER_SIZE
    P.decode_header(h)
    P.decode_header(h + b"more")
    with pytest.raises(FormatError):
        P.decode_header(h[:-1])
    with pytest.raises(FormatError):
        P.decode_header(b"NOTPACK\x00" + h[8:])
    with pytest.raises(UnsupportedFormat):
        P.decode_header(P.HEADER.pack(P.PACK_MAGIC, P.PACK_VERSION + 1, 0))


def test_footer_round_trip():
    data, entries = _build(OBJS)
    trailer = data[-P.TRAILER_SIZE :]
    flen = P.decode_trailer(trailer, len(data))
    assert flen == len(entries) * P.FOOTER_ENTRY_SIZE
    body = data[len(data) - P.TRAILER_SIZE - flen : len(data) - P.TRAILER_SIZE]
    assert P.decode_footer(body, trailer, len(data)) == entries
    for e, (oid, kind, codec, raw_len, stored) in zip(entries, OBJS):
        assert data[e.offset : e.offset + e.stored_len] == stored
        assert (e.id, e.kind, e.codec, e.raw_len) == (oid, kind, codec, raw_len)


def test_empty_pack_round_trips():
    data, entries = _build([])
    assert entries == []
    flen = P.decode_trailer(data[-P.TRAILER_SIZE :], len(data))
    assert flen == 0
    assert P.decode_footer(b"", data[-P.TRAILER_SIZE :], len(data)) == []


def test_footer_checksum_detects_a_flipped_byte():
    data, entries = _build(OBJS)
    trailer = data[-P.TRAILER_SIZE :]
    flen = P.decode_trailer(trailer, len(data))
    body = bytearray(data[len(data) - P.TRAILER_SIZE - flen : len(data) - P.TRAILER_SIZE])
    body[5] ^= 1
    with pytest.raises(FormatError, match="checksum"):
        P.decode_footer(bytes(body), trailer, len(data))


def test_footer_entry_pointing_outside_the_data_area_is_rejected():
    data, entries = _build(OBJS)
    bad = [P.PackEntry(e.id, e.kind, e.codec, e.offset + 1000, e.stored_len, e.raw_len) for e in entries]
    footer = P.encode_footer(bad)
    body, trailer = footer[: -P.TRAILER_SIZE], footer[-P.TRAILER_SIZE :]
    with pytest.raises(FormatError, match="out of range"):
        P.decode_footer(body, trailer, len(data))


def test_footer_entry_with_unknown_kind_is_rejected():
    data, entries = _build(OBJS[:1])
    e = entries[0]
    footer = P.encode_footer([P.PackEntry(e.id, 9, e.codec, e.offset, e.stored_len, e.raw_len)])
    with pytest.raises(FormatError):
        P.decode_footer(footer[: -P.TRAILER_SIZE], footer[-P.TRAILER_SIZE :], len(data))


def test_trailer_rejections():
    data, _ = _build(OBJS)
    trailer = data[-P.TRAILER_SIZE :]
    with pytest.raises(FormatError, match="truncated"):
        P.decode_trailer(trailer[1:], len(data))
    with pytest.raises(FormatError, match="magic"):
        P.decode_trailer(trailer[:-1] + b"X", len(data))
    flen, h, magic = P.TRAILER.unpack(trailer)
    with pytest.raises(FormatError, match="impossible"):
        P.decode_trailer(P.TRAILER.pack(flen + 1, h, magic), len(data))
    with pytest.raises(FormatError, match="impossible"):
        P.decode_trailer(trailer, flen + P.HEADER_SIZE + P.TRAILER_SIZE - 1)


def test_record_header_refuses_objects_over_the_limit():
    with pytest.raises(FormatError, match="MiB"):
        P.encode_record_header(0, 0, P.MAX_OBJECT + 1, 10, b"\x00" * 32)
    with pytest.raises(FormatError):
        P.encode_record_header(0, 1, 10, P.MAX_OBJECT + 1, b"\x00" * 32)
    assert len(P.encode_record_header(0, 0, P.MAX_OBJECT, P.MAX_OBJECT, b"\x00" * 32)) == P.RECORD_SIZE


def test_record_header_layout_is_little_endian():
    h = P.encode_record_header(2, 1, 0x00102030, 0x000B0C0D, b"\xee" * 32)
    assert h[:2] == b"\x02\x01"
    assert h[2:6] == struct.pack("<I", 0x00102030)
    assert h[6:10] == struct.pack("<I", 0x000B0C0D)
    assert h[10:] == b"\xee" * 32


def test_scan_records_recovers_every_record_of_an_intact_pack():
    data, entries = _build(OBJS)
    # the footer does not parse as records (kind bytes out of range would stop it) or
    # happens to: either way the first records are the objects in order
    assert P.scan_records(data)[: len(entries)] == entries


def test_scan_records_stops_at_a_truncated_record():
    data, entries = _build(OBJS)
    cut = entries[1].offset + 3  # in the middle of the second payload
    assert P.scan_records(data[:cut]) == entries[:1]
    assert P.scan_records(data[: entries[1].offset - 1]) == entries[:1]
    assert P.scan_records(data[: P.HEADER_SIZE]) == []


def test_scan_records_needs_a_header():
    with pytest.raises(FormatError):
        P.scan_records(b"garbage" * 10)
