"""Per-object codecs (docs/format.md §6): raw and zstd, by one-byte id.

Retired ids are never reused. zstd is used only when it saves space; otherwise
the object is stored raw.
"""

from __future__ import annotations

import zstandard

from cas.errors import FormatError, UnknownCodec

CODEC_RAW = 0
CODEC_ZSTD = 1
CODEC_NAMES = {CODEC_RAW: "raw", CODEC_ZSTD: "zstd"}

DEFAULT_ZSTD_LEVEL = 1  # docs/decisions.md "Compression"
# docs/format.md §6: a zstd payload is kept only if it is at most this fraction of raw.
MAX_RATIO = 0.97


class Codec:
    """Compress and decompress object payloads; one instance per thread."""

    def __init__(self, level: int = DEFAULT_ZSTD_LEVEL) -> None:
        self.level = level
        self._c = zstandard.ZstdCompressor(level=level, write_checksum=False, write_content_size=True)
        self._d = zstandard.ZstdDecompressor()

    def encode(self, raw) -> tuple[int, bytes]:
        """Return ``(codec id, stored bytes)`` for ``raw``, zstd only if it helps."""
        n = len(raw)
        if n >= 64:
            packed = self._c.compress(raw)
            if len(packed) <= n * MAX_RATIO:
                return CODEC_ZSTD, packed
        return CODEC_RAW, bytes(raw)

    def decode(self, codec: int, stored, raw_len: int) -> bytes:
        """Return the raw bytes of a stored payload.

        Raises:
            UnknownCodec: ``codec`` is not a known id.
            FormatError: The payload does not decompress to ``raw_len`` bytes.
        """
        if codec == CODEC_RAW:
            data = bytes(stored)
        elif codec == CODEC_ZSTD:
            try:
                data = self._d.decompress(stored, max_output_size=raw_len)
            except zstandard.ZstdError as exc:
                raise FormatError(f"zstd payload does not decompress: {exc}") from exc
        else:
            raise UnknownCodec(f"unknown codec id {codec}; this object needs a newer cas")
        if len(data) != raw_len:
            raise FormatError(f"payload decodes to {len(data)} bytes, expected {raw_len}")
        return data
