"""Chunk size and zstd level grid for issue 3 (docs/decisions.md "Chunker", "Compression").

Usage (data from ../shared/bench/gen_workloads.py):

    python benchmarks/grid_chunk_level.py w5 /work/bench-data/w5 4:16:64:1 16:64:256:1 ...
    python benchmarks/grid_chunk_level.py zstd /work/bench-data/w2/big-text.csv

``w5`` cuts every version in order, keeps the chunks not seen before and zstd-compresses
each one as a cas store does (raw if it saves under 3%), then prints the total against
the first version. ``zstd`` prints single-thread compress speed and ratio per level on
the first 32 MiB of a file cut at 16 and 64 KiB averages.
"""

from __future__ import annotations

import glob
import os
import sys
import time

import blake3
import zstandard
from pyfastcdc import FastCDC


def w5(folder: str, configs: list[str]) -> None:
    files = sorted(glob.glob(os.path.join(folder, "v*.csv")))
    for spec in configs:
        mn, avg, mx, lvl = (int(x) for x in spec.split(":"))
        cdc = FastCDC(avg_size=avg * 1024, min_size=mn * 1024, max_size=mx * 1024, normalized_chunking=1)
        z = zstandard.ZstdCompressor(level=lvl, write_checksum=False, write_content_size=True)
        seen: set = set()
        per = []
        for fn in files:
            with open(fn, "rb") as f:
                data = f.read()
            mv = memoryview(data)
            stored = 0
            for c in cdc.cut_buf(data):
                piece = mv[c.offset : c.offset + c.length]
                h = blake3.blake3(piece).digest()
                if h not in seen:
                    seen.add(h)
                    n = len(z.compress(piece))
                    stored += n if n <= 0.97 * len(piece) else len(piece)
            per.append(stored)
        print(f"min/avg/max={mn}/{avg}/{mx} KiB level {lvl}: chunks {len(seen)}, first {per[0] / 1e6:.1f} MB, "
              f"later {sum(per[1:]) / 1e6:.1f} MB, total {sum(per) / 1e6:.1f} MB", flush=True)


def zstd_levels(path: str) -> None:
    with open(path, "rb") as f:
        data = f.read(32 << 20)
    mv = memoryview(data)
    for avg in (16, 64):
        cdc = FastCDC(avg_size=avg * 1024, min_size=avg * 256, max_size=avg * 4096, normalized_chunking=1)
        pieces = [mv[c.offset : c.offset + c.length] for c in cdc.cut_buf(data)]
        for lvl in (1, 2, 3):
            z = zstandard.ZstdCompressor(level=lvl, write_checksum=False, write_content_size=True)
            best = float("inf")
            for _ in range(3):
                t = time.process_time()
                out = sum(len(z.compress(p)) for p in pieces)
                best = min(best, time.process_time() - t)
            print(f"avg {avg} KiB level {lvl}: ratio {len(data) / out:.3f}, {len(data) / best / 1e6:.0f} MB/s",
                  flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "w5":
        w5(sys.argv[2], sys.argv[3:])
    else:
        zstd_levels(sys.argv[2])
