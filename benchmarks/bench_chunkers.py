"""Compare compiled content-defined chunkers from PyPI for cas (docs/decisions.md, "Chunker").

Run: python benchmarks/bench_chunkers.py [--mib 256] [--repeat 3]

Measures, for each candidate at min 16 KiB / avg 64 KiB / max 256 KiB:
  * single-thread throughput on seeded random bytes and on CSV-like text,
  * whether cutting releases the GIL: two threads each cutting half the buffer
    versus one thread cutting all of it (speed-up near 2.0 = released, near 1.0
    = held; the machine's free cores bound it),
  * dedup after shifted-insert edits, per normalization level: the share of the
    edited buffer's bytes that fall in chunks the original already has.

``fastcdc`` is optional (pip install fastcdc); it is a measurement candidate
only, not a dependency of cas. Data comes from fixed seeds, so chunk counts and
dedup figures repeat exactly; timings vary with machine load.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import threading
import time

MiB = 1024 * 1024
KiB = 1024
MIN, AVG, MAX = 16 * KiB, 64 * KiB, 256 * KiB


# --- candidates: each returns a function buf -> list of chunk lengths ---------------------------
def make_pyfastcdc(norm: int = 1, min_size: int = MIN, avg: int = AVG, max_size: int = MAX):
    from pyfastcdc import FastCDC

    cdc = FastCDC(avg_size=avg, min_size=min_size, max_size=max_size, normalized_chunking=norm)

    def cut(buf):
        return [c.length for c in cdc.cut_buf(buf)]

    return cut


def make_fastcdc(min_size: int = MIN, avg: int = AVG, max_size: int = MAX):
    try:
        from fastcdc.fastcdc_cy import fastcdc_cy
    except ImportError:
        return None

    def cut(buf):
        return [c.length for c in fastcdc_cy(buf, min_size, avg, max_size, fat=False)]

    return cut


def candidates() -> dict:
    out = {"pyfastcdc 2020 (norm 1)": make_pyfastcdc(1)}
    f = make_fastcdc()
    if f is not None:
        out["fastcdc 2016 (cython)"] = f
    return out


# --- data -------------------------------------------------------------------------------------
def random_data(n: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    step = 16 * MiB  # randbytes(n) overflows for n of 256 MiB
    return b"".join(rng.randbytes(min(step, n - i)) for i in range(0, n, step))


def csv_data(n: int, seed: int = 2) -> bytes:
    """CSV-like text: 64 MiB (or less) of unique rows, tiled to ``n`` bytes."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    parts = ["id,date,label,value,score,comment\n"]
    size = len(parts[0])
    target = min(n, 64 * MiB)
    i = 0
    while size < target:
        row = (
            f"{i},2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d},{rng.choice(words)},"
            f"{rng.random():.6f},{rng.randint(0, 100000)},{rng.choice(words)} {rng.choice(words)}\n"
        )
        parts.append(row)
        size += len(row)
        i += 1
    block = "".join(parts).encode()[:target]
    reps = -(-n // len(block))
    return (block * reps)[:n]


# --- measurements -----------------------------------------------------------------------------
def best_time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def throughput(cut, buf, repeat: int) -> tuple[float, int, float]:
    """Return (MB/s, number of chunks, mean chunk KiB)."""
    lengths = cut(buf)
    assert sum(lengths) == len(buf)
    t = best_time(lambda: cut(buf), repeat)
    return len(buf) / t / 1e6, len(lengths), statistics.mean(lengths) / KiB


def gil_speedup(cut, buf, repeat: int, passes: int = 4) -> tuple[float, float]:
    """Return (time(1 thread, both halves) / time(2 threads, one half each), CPU/wall of the 2-thread run).

    Each thread cuts its half ``passes`` times so a run lasts long enough
    (hundreds of ms) for thread start-up and scheduling noise not to dominate.
    """
    half = len(buf) // 2
    mv = memoryview(buf)
    a, b = mv[:half], mv[half:]

    def work(x):
        for _ in range(passes):
            cut(x)

    def one():
        work(a)
        work(b)

    def two():
        ts = [threading.Thread(target=work, args=(x,)) for x in (a, b)]
        for th in ts:
            th.start()
        for th in ts:
            th.join()

    t1 = best_time(one, repeat)
    wall, cpu = time.perf_counter(), time.process_time()
    t2 = best_time(two, repeat)
    ratio = (time.process_time() - cpu) / (time.perf_counter() - wall)
    return t1 / t2, ratio


def shifted_edit(base: bytes, n_edits: int, seed: int = 3) -> bytes:
    """Insert 100 bytes at ``n_edits`` seeded offsets (shifting everything after each)."""
    rng = random.Random(seed)
    out = bytearray(base)
    for off in sorted((rng.randrange(len(base)) for _ in range(n_edits)), reverse=True):
        out[off:off] = rng.randbytes(100)
    return bytes(out)


def dedup_share(cut, base: bytes, edited: bytes) -> tuple[float, float, int, float]:
    """Return (share of edited bytes in chunks the base has, stdev KiB, chunks, mean KiB)."""
    import blake3

    def chunks(buf):
        out, pos = [], 0
        for n in cut(buf):
            out.append((blake3.blake3(buf[pos : pos + n]).digest(), n))
            pos += n
        return out

    have = {d for d, _ in chunks(base)}
    ec = chunks(edited)
    shared = sum(n for d, n in ec if d in have)
    sizes = [n for _, n in ec]
    return shared / len(edited), statistics.pstdev(sizes) / KiB, len(sizes), statistics.mean(sizes) / KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=256, help="buffer size for throughput (MiB)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per timing; the best is reported")
    ap.add_argument("--edit-mib", type=int, default=64, help="buffer size for the dedup test (MiB)")
    ap.add_argument("--edits", type=int, default=64, help="100-byte insertions in the dedup test")
    args = ap.parse_args()

    import pyfastcdc

    versions = [f"pyfastcdc {pyfastcdc.__version__}"]
    try:
        import fastcdc

        versions.append(f"fastcdc {fastcdc.__version__}")
    except ImportError:
        versions.append("fastcdc not installed (pip install fastcdc)")
    print(f"python {platform.python_version()} on {platform.machine()}, {', '.join(versions)}")
    print(f"params: min {MIN // KiB} KiB / avg {AVG // KiB} KiB / max {MAX // KiB} KiB; "
          f"{args.mib} MiB per buffer; best of {args.repeat}\n")

    n = args.mib * MiB
    datasets = {"random": random_data(n), "csv-like": csv_data(n)}
    print(f"{'chunker':26} {'data':9} {'MB/s':>8} {'chunks':>7} {'mean KiB':>9} {'2 thr speed-up':>15} {'CPU/wall':>9}")
    for name, cut in candidates().items():
        for dname, buf in datasets.items():
            mbs, nchunks, mean = throughput(cut, buf, args.repeat)
            speed, busy = gil_speedup(cut, buf, args.repeat)
            print(f"{name:26} {dname:9} {mbs:8.0f} {nchunks:7d} {mean:9.1f} {speed:15.2f} {busy:9.2f}")
    print(f"(2 thr speed-up: 1 thread cutting both halves vs 2 threads one half each; {os.cpu_count()} CPUs)")

    base = random_data(args.edit_mib * MiB, seed=4)
    edited = shifted_edit(base, args.edits)
    print(f"\ndedup after {args.edits} insertions of 100 bytes into {args.edit_mib} MiB of random data")
    print(f"{'chunker':26} {'reused bytes':>13} {'chunks':>7} {'mean KiB':>9} {'stdev KiB':>10} {'MB/s':>7}")
    rows = [(f"pyfastcdc 2020 norm {lvl}", make_pyfastcdc(lvl)) for lvl in range(4)]
    f = make_fastcdc()
    if f is not None:
        rows.append(("fastcdc 2016 (cython)", f))
    for name, cut in rows:
        share, sd, nchunks, mean = dedup_share(cut, base, edited)
        mbs = len(base) / best_time(lambda: cut(base), args.repeat) / 1e6
        print(f"{name:26} {share * 100:12.2f}% {nchunks:7d} {mean:9.1f} {sd:10.1f} {mbs:7.0f}")


if __name__ == "__main__":
    main()
