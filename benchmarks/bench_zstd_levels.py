"""Per-chunk zstd level comparison for cas (docs/decisions.md, "Compression").

Run: python benchmarks/bench_zstd_levels.py. Compresses 32 MiB of seeded CSV-like
text and of random bytes as 64 KiB chunks, one zstd frame each, as cas stores them.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zstandard  # noqa: E402
from bench_chunkers import csv_data, random_data  # noqa: E402
K = 64 * 1024
for name, data in (("csv-like", csv_data(32 << 20)), ("random", random_data(32 << 20))):
    chunks = [data[i:i + K] for i in range(0, len(data), K)]
    for level in (1, 3, 6, 9):
        c = zstandard.ZstdCompressor(level=level, write_checksum=False, write_content_size=True)
        t = time.perf_counter(); out = [c.compress(x) for x in chunks]; dt = time.perf_counter() - t
        d = zstandard.ZstdDecompressor()
        t = time.perf_counter(); [d.decompress(o) for o in out]; dd = time.perf_counter() - t
        print(f"{name:9} level {level}: {len(data)/dt/1e6:6.0f} MB/s compress, {len(data)/dd/1e6:6.0f} MB/s decompress, "
              f"stored/raw {sum(map(len, out))/len(data):.3f}")
