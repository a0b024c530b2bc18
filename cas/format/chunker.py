"""Content-defined chunking: FastCDC 2020 via pyfastcdc (docs/format.md §5).

The parameters are part of the format: a store records its chunker string in
its config, and a change of boundaries silently kills dedup, so known-answer
vectors in the tests pin them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cas.errors import FormatError, UsageError

KiB = 1024
_SPEC = re.compile(r"^fastcdc2020/min=(\d+)/avg=(\d+)/max=(\d+)/norm=(\d)$")


@dataclass(frozen=True)
class ChunkerParams:
    """FastCDC parameters; ``spec`` is their self-describing text form."""

    # defaults for new stores (docs/decisions.md "Chunker"); a store keeps its own
    min_size: int = 4 * KiB
    avg_size: int = 16 * KiB
    max_size: int = 64 * KiB
    normalization: int = 1

    def __post_init__(self) -> None:
        # docs/format.md §5.2: the bounds pyfastcdc (and fastcdc-rs v2020) accept
        if not (
            64 <= self.min_size <= self.avg_size <= self.max_size <= 16 * 1024 * KiB
            and self.min_size <= 1024 * KiB
            and self.avg_size <= 4 * 1024 * KiB
        ):
            raise UsageError(
                f"invalid chunker sizes min={self.min_size} avg={self.avg_size} max={self.max_size}: "
                "need 64 <= min <= avg <= max, min <= 1 MiB, avg <= 4 MiB, max <= 16 MiB"
            )
        if self.avg_size < 256 or self.max_size < 1024 or not 0 <= self.normalization <= 3:
            raise UsageError("invalid chunker parameters: avg >= 256, max >= 1024, norm in 0..3")

    @property
    def spec(self) -> str:
        """Text form stored in the repository config."""
        return (
            f"fastcdc2020/min={self.min_size}/avg={self.avg_size}/max={self.max_size}"
            f"/norm={self.normalization}"
        )

    @classmethod
    def parse(cls, spec: str) -> "ChunkerParams":
        """Parse the text form written by ``spec``.

        Raises:
            FormatError: The text is not a known chunker spec.
        """
        m = _SPEC.match(spec)
        if not m:
            raise FormatError(f"unknown chunker spec {spec!r} in repository config")
        return cls(int(m[1]), int(m[2]), int(m[3]), int(m[4]))


DEFAULT_PARAMS = ChunkerParams()


class Chunker:
    """Cut buffers into content-defined chunks with fixed parameters."""

    def __init__(self, params: ChunkerParams = DEFAULT_PARAMS) -> None:
        self.params = params
        self._cdc = None  # pyfastcdc is loaded by the first cut that needs it

    def _make_cdc(self):
        from pyfastcdc import FastCDC

        p = self.params
        self._cdc = FastCDC(
            avg_size=p.avg_size, min_size=p.min_size, max_size=p.max_size, normalized_chunking=p.normalization
        )
        return self._cdc

    def cut(self, buf) -> list[tuple[int, int]]:
        """Return ``(offset, length)`` of each chunk of ``buf``, in order.

        The chunks concatenate to ``buf``; an empty buffer has no chunks. Each
        chunk is at most ``max_size`` long and all but the last at least
        ``min_size``.
        """
        n = len(buf)
        if n == 0:
            return []
        if n <= self.params.min_size:
            return [(0, n)]
        cdc = self._cdc if self._cdc is not None else self._make_cdc()
        return [(c.offset, c.length) for c in cdc.cut_buf(buf)]
