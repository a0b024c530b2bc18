"""Output helpers: human tables, JSON, sizes, and a terminal progress line."""

from __future__ import annotations

import json
import sys
import time


def human_size(n: int | None) -> str:
    """Return ``n`` bytes as a short human string (1.5 MiB)."""
    if n is None:
        return "-"
    f = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if f < 1024 or unit == "TiB":
            return f"{int(f)} {unit}" if unit == "B" else f"{f:.1f} {unit}"
        f /= 1024
    return f"{n} B"


def _default(o):
    if isinstance(o, bytes):
        return o.hex()
    if isinstance(o, (set, tuple)):
        return list(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    return str(o)


def print_json(value) -> None:
    """Print ``value`` as JSON on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=_default) + "\n")


def table(rows: list[list[str]], header: list[str]) -> None:
    """Print rows as aligned columns."""
    cols = [header] + rows
    widths = [max(len(str(r[i])) for r in cols) for i in range(len(header))]
    for r in cols:
        sys.stdout.write("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")


class Progress:
    """A one-line progress display on stderr, only when stderr is a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty()
        self._last = 0.0
        self._shown = False

    def __call__(self, done: int, total: int | None = None, nbytes: int | None = None) -> None:
        """Report ``done`` of ``total`` items (and bytes so far)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and (total is None or done < total):
            return
        self._last = now
        text = f"{self.label}: {done}" + (f"/{total}" if total else "")
        if nbytes is not None:
            text += f" ({human_size(nbytes)})"
        sys.stderr.write("\r" + text.ljust(60))
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        """Clear the progress line."""
        if self._shown:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()
