"""Output helpers: human tables, JSON, sizes, and a terminal progress line."""

from __future__ import annotations

import itertools
import json
import sys
import time
from typing import Callable, Iterable, Iterator


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


def print_json_list(items: Iterable) -> None:
    """Print an iterable as a JSON list, one item at a time, exactly as ``print_json(list(items))``."""
    write = sys.stdout.write
    first = True
    for item in items:
        text = json.dumps(item, indent=2, sort_keys=True, default=_default)
        write(("[\n  " if first else ",\n  ") + text.replace("\n", "\n  "))
        first = False
    write("[]\n" if first else "\n]\n")


def table(rows: list[list[str]], header: list[str]) -> None:
    """Print rows as aligned columns."""
    cols = [header] + rows
    widths = [max(len(str(r[i])) for r in cols) for i in range(len(header))]
    _write_rows(cols, widths)


def _write_rows(rows: Iterable, widths: list[int]) -> None:
    write = sys.stdout.write
    for r in rows:
        write("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")


def table_stream(rows: Callable[[], Iterator[list[str]]], header: list[str], hold: int = 10_000,
                 optional: tuple[int, ...] = ()) -> None:
    """Print rows as aligned columns like ``table``, holding at most ``hold`` rows.

    ``rows()`` must return a new iterator over the same rows each time it is
    called: when there are more than ``hold``, one pass measures the columns
    and a second one prints. Columns listed in ``optional`` are left out when
    all their cells are empty.
    """
    held = list(itertools.islice(rows(), hold + 1))
    small = len(held) <= hold
    if not small:
        del held
    widths = [len(h) for h in header]
    used = [False] * len(header)
    for r in held if small else rows():
        for i, c in enumerate(r):
            if c:
                used[i] = True
                if len(c) > widths[i]:
                    widths[i] = len(c)
    keep = [i for i in range(len(header)) if i not in optional or used[i]]
    body = held if small else rows()
    _write_rows(([r[i] for i in keep] for r in itertools.chain([header], body)), [widths[i] for i in keep])


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
