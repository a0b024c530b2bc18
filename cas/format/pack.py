"""Pack file byte layout (docs/format.md §6).

A pack is: a 16-byte header, object records, a footer of fixed-size index
records, and a 44-byte trailer. Every object record repeats its own header so
a pack can be salvaged by a linear scan even if its footer is lost. All
integers are little-endian.
"""

from __future__ import annotations

import struct
from operator import add, itemgetter
from typing import NamedTuple

from cas.errors import FormatError, UnsupportedFormat
from cas.format.digest import DIGEST_SIZE, chunk_id, file_node_id, keyed_id, tree_node_id

PACK_MAGIC = b"CASPACK\x00"
PACK_VERSION = 1
HEADER = struct.Struct("<8sII")  # magic, version, flags(0)
HEADER_SIZE = HEADER.size  # 16

# object record header: kind, codec, raw_len, stored_len, id
RECORD = struct.Struct("<BBII32s")
RECORD_SIZE = RECORD.size  # 42

# footer entry: id, kind, codec, offset (of payload), stored_len, raw_len
FOOTER_ENTRY = struct.Struct("<32sBBQII")
FOOTER_ENTRY_SIZE = FOOTER_ENTRY.size  # 50

TRAILER_MAGIC = b"CASPEND\x00"
TRAILER = struct.Struct("<I32s8s")  # footer length, keyed BLAKE3 of footer, magic
TRAILER_SIZE = TRAILER.size  # 44
CONTEXT_FOOTER = "cas 2026-11-23 pack footer v1"

KIND_CHUNK = 0
KIND_FILE_NODE = 1
KIND_TREE_NODE = 2
OBJECT_KINDS = {KIND_CHUNK: "chunk", KIND_FILE_NODE: "file node", KIND_TREE_NODE: "tree node"}
_ID_OF_KIND = {KIND_CHUNK: chunk_id, KIND_FILE_NODE: file_node_id, KIND_TREE_NODE: tree_node_id}


def object_id(kind: int, raw) -> bytes:
    """Return the id an object of ``kind`` with content ``raw`` must have (§4)."""
    return _ID_OF_KIND[kind](raw)
MAX_OBJECT = 64 * 1024 * 1024


class PackEntry(NamedTuple):
    """Where one object sits inside a pack."""

    id: bytes
    kind: int
    codec: int
    offset: int
    stored_len: int
    raw_len: int


def encode_header() -> bytes:
    """Return the pack header."""
    return HEADER.pack(PACK_MAGIC, PACK_VERSION, 0)


def decode_header(data: bytes) -> None:
    """Check a pack header.

    Raises:
        FormatError: Bad magic or short.
        UnsupportedFormat: Written by a newer format version.
    """
    if len(data) < HEADER_SIZE:
        raise FormatError("pack is shorter than its header")
    magic, version, _flags = HEADER.unpack_from(data)
    if magic != PACK_MAGIC:
        raise FormatError("not a cas pack (bad magic)")
    if version != PACK_VERSION:
        raise UnsupportedFormat(f"pack format version {version} is newer than this cas understands")


def encode_record_header(kind: int, codec: int, raw_len: int, stored_len: int, oid: bytes) -> bytes:
    """Return the header written before an object's payload.

    Raises:
        FormatError: The object is larger than MAX_OBJECT (docs/format.md §6.5).
    """
    if raw_len > MAX_OBJECT or stored_len > MAX_OBJECT:
        raise FormatError(
            f"object of {max(raw_len, stored_len)} bytes exceeds the {MAX_OBJECT // (1024 * 1024)} MiB object limit"
            " (a directory with too many entries?)"
        )
    return RECORD.pack(kind, codec, raw_len, stored_len, oid)


def encode_footer(entries: list[PackEntry]) -> bytes:
    """Return footer and trailer bytes for the given entries."""
    body = b"".join(
        FOOTER_ENTRY.pack(e.id, e.kind, e.codec, e.offset, e.stored_len, e.raw_len) for e in entries
    )
    return body + TRAILER.pack(len(body), keyed_id(CONTEXT_FOOTER, body), TRAILER_MAGIC)


def decode_trailer(data: bytes, file_size: int) -> int:
    """Return the footer length from the last TRAILER_SIZE bytes of a pack.

    Raises:
        FormatError: Bad magic or a footer that cannot fit in the file.
    """
    if len(data) != TRAILER_SIZE:
        raise FormatError("pack trailer is truncated")
    flen, _h, magic = TRAILER.unpack(data)
    if magic != TRAILER_MAGIC:
        raise FormatError("pack trailer has bad magic (truncated or unsealed pack)")
    if flen % FOOTER_ENTRY_SIZE or flen > file_size - HEADER_SIZE - TRAILER_SIZE:
        raise FormatError("pack footer length is impossible")
    return flen


def decode_footer_rows(body, trailer: bytes, file_size: int) -> list[tuple[bytes, int, int, int, int, int]]:
    """Parse a footer body checked against its trailer hash, as plain tuples.

    Returns:
        ``(id, kind, codec, offset, stored_len, raw_len)`` per entry, in record
        order (the fields of ``PackEntry``; cheaper for whole-pack scans).

    Raises:
        FormatError: A short trailer, hash mismatch or entries pointing outside the data area.
    """
    if len(trailer) != TRAILER_SIZE:
        raise FormatError("pack trailer is truncated")
    flen, h, _magic = TRAILER.unpack(trailer)
    if len(body) != flen or keyed_id(CONTEXT_FOOTER, body) != h:
        raise FormatError("pack footer does not match its checksum")
    data_end = file_size - TRAILER_SIZE - flen
    rows = list(FOOTER_ENTRY.iter_unpack(body))
    if rows:
        # the same test for every entry, run by builtins (a footer lists thousands of entries)
        offsets = list(map(itemgetter(3), rows))
        if (not set(body[32::FOOTER_ENTRY_SIZE]) <= OBJECT_KINDS.keys()  # the kind byte of every entry
                or min(offsets) < HEADER_SIZE + RECORD_SIZE
                or max(map(add, offsets, map(itemgetter(4), rows))) > data_end):
            raise FormatError("pack footer entry is out of range")
    return rows


def decode_footer(body: bytes, trailer: bytes, file_size: int) -> list[PackEntry]:
    """Parse a footer body checked against its trailer hash.

    Raises:
        FormatError: A short trailer, hash mismatch or entries pointing outside the data area.
    """
    return [PackEntry(*row) for row in decode_footer_rows(body, trailer, file_size)]


def scan_records(data: bytes) -> list[PackEntry]:
    """Recover entries by walking object records from the header on.

    Used when a footer is damaged; stops at the first record that does not parse.
    """
    decode_header(data)
    pos = HEADER_SIZE
    out = []
    while pos + RECORD_SIZE <= len(data):
        kind, codec, rlen, slen, oid = RECORD.unpack_from(data, pos)
        if kind not in OBJECT_KINDS or slen > MAX_OBJECT or pos + RECORD_SIZE + slen > len(data):
            break
        out.append(PackEntry(oid, kind, codec, pos + RECORD_SIZE, slen, rlen))
        pos += RECORD_SIZE + slen
    return out


assert DIGEST_SIZE == 32
