"""Per-object codecs (docs/format.md §6): raw and zstd, by one-byte id.

Retired ids are never reused. zstd is used only when it saves space; otherwise
the object is stored raw.
"""

from __future__ import annotations

from cas.errors import FormatError, UnknownCodec

CODEC_RAW = 0
CODEC_ZSTD = 1
CODEC_NAMES = {CODEC_RAW: "raw", CODEC_ZSTD: "zstd"}

DEFAULT_ZSTD_LEVEL = 1  # docs/decisions.md "Compression"
# docs/format.md §6: a zstd payload is kept only if it is at most this fraction of raw.
MAX_RATIO = 0.97


class Codec:
    """Compress and decompress object payloads; one instance per thread.

    zstandard is imported on first use: a command that never compresses or
    decompresses (a no-op re-add) does not load it.
    """

    def __init__(self, level: int = DEFAULT_ZSTD_LEVEL) -> None:
        self.level = level
        self._c = None
        self._d = None
        self._error: type = Exception

    def _compressor(self):
        import zstandard

        self._c = zstandard.ZstdCompressor(level=self.level, write_checksum=False, write_content_size=True)
        return self._c

    def _decompressor(self):
        import zstandard

        self._error = zstandard.ZstdError
        self._d = zstandard.ZstdDecompressor()
        return self._d

    def encode(self, raw) -> tuple[int, bytes]:
        """Return ``(codec id, stored bytes)`` for ``raw``, zstd only if it helps."""
        n = len(raw)
        if n >= 64:
            c = self._c if self._c is not None else self._compressor()
            packed = c.compress(raw)
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
            d = self._d if self._d is not None else self._decompressor()
            try:
                data = d.decompress(stored, max_output_size=raw_len)
            except self._error as exc:
                raise FormatError(f"zstd payload does not decompress: {exc}") from exc
        else:
            raise UnknownCodec(f"unknown codec id {codec}; this object needs a newer cas")
        if len(data) != raw_len:
            raise FormatError(f"payload decodes to {len(data)} bytes, expected {raw_len}")
        return data
