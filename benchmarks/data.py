"""Benchmark data: locate (or generate) the workloads and digest them.

The full workloads come from ``benchmarks/gen_workloads.py`` (a copy of the
shared deterministic generator).  ``make_quick`` writes a tiny deterministic
variant with the same layout (w1/big-random.bin, w2/big-text.csv, w3/tree,
w5/v00.csv..v09.csv) for ``--quick`` runs and the smoke test.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys

import blake3

HERE = os.path.dirname(os.path.abspath(__file__))
W5_VERSIONS = 10


class Workloads:
    """Paths and byte counts of one data directory."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.w1 = os.path.join(self.root, "w1", "big-random.bin")
        self.w2 = os.path.join(self.root, "w2", "big-text.csv")
        self.w3 = os.path.join(self.root, "w3", "tree")
        self.w5 = [os.path.join(self.root, "w5", "v%02d.csv" % v) for v in range(W5_VERSIONS)]

    def missing(self) -> list[str]:
        """Workload ids whose data is not there."""
        miss = []
        for wid, p in (("w1", self.w1), ("w2", self.w2), ("w3", self.w3), ("w5", self.w5[-1])):
            if not os.path.exists(p):
                miss.append(wid)
        return miss

    def sizes(self) -> dict:
        """Bytes of each workload (W3: sum of file sizes, plus its file count)."""
        n, b = tree_stats(self.w3)
        return {"w1": os.path.getsize(self.w1), "w2": os.path.getsize(self.w2),
                "w3": b, "w3_files": n, "w5": sum(os.path.getsize(p) for p in self.w5),
                "w5_v09": os.path.getsize(self.w5[-1])}


def tree_stats(root: str) -> tuple[int, int]:
    """(file count, total bytes) of the regular files under ``root``."""
    n = b = 0
    for dp, _, fns in os.walk(root):
        for fn in fns:
            n += 1
            b += os.path.getsize(os.path.join(dp, fn))
    return n, b


def generate_full(root: str, only: str = "w1,w2,w3,w5") -> None:
    """Run the deterministic generator into ``root`` (skips what is present)."""
    subprocess.run([sys.executable, os.path.join(HERE, "gen_workloads.py"), "--out", root,
                    "--only", only], check=True)


def file_digest(path: str) -> str:
    """BLAKE3 hex digest of one file's content (symlinks followed)."""
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 22)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def tree_digest(root: str) -> str:
    """Digest over the sorted (relative path, content digest) of every file under ``root``.

    Symlinked files are followed (git-annex checkouts are symlinks); directories
    named ``.git``, ``.dvc`` and ``.cas`` are not part of the tree.
    """
    items = []
    for dp, dns, fns in os.walk(root):
        dns[:] = [d for d in dns if d not in (".git", ".dvc", ".cas")]
        for fn in fns:
            p = os.path.join(dp, fn)
            rel = os.path.relpath(p, root)
            if rel in (".gitignore", ".dvcignore") or fn.endswith(".dvc"):
                continue
            with open(p, "rb") as f:
                items.append((rel, blake3.blake3(f.read()).hexdigest()))
    items.sort()
    h = hashlib.sha256()
    for rel, d in items:
        h.update(rel.encode() + b"\0" + d.encode() + b"\n")
    return "%d:%s" % (len(items), h.hexdigest())


# ---- tiny deterministic data for --quick -------------------------------------------------

def _csv_rows(rng: random.Random, n: int, start: int = 1) -> list[str]:
    ev = ["view", "click", "purchase", "login", "search"]
    return ["%d,2026-01-01T00:%02d:%02dZ,%d,%s,%.2f,%s\n"
            % (i, (i // 60) % 60, i % 60, rng.randrange(10**6), rng.choice(ev),
               rng.random() * 1000, "".join(rng.choice("abcdef0123") for _ in range(12)))
            for i in range(start, start + n)]


def make_quick(root: str, mib: int = 4, files: int = 300) -> Workloads:
    """Write tiny workloads (``mib`` MiB files, ``files`` small files) into ``root``."""
    w = Workloads(root)
    if not w.missing():
        return w
    rng = random.Random(0x0C0FFEE)
    os.makedirs(os.path.dirname(w.w1), exist_ok=True)
    with open(w.w1, "wb") as f:
        f.write(rng.randbytes(mib << 20))
    os.makedirs(os.path.dirname(w.w2), exist_ok=True)
    with open(w.w2, "w") as f:
        size = 0
        while size < (mib << 20):
            rows = _csv_rows(rng, 2000, start=size)
            s = "".join(rows)
            f.write(s)
            size += len(s)
    for i in range(files):
        d = os.path.join(w.w3, "d%02d" % (i % 17), "s%d" % (i % 5))
        os.makedirs(d, exist_ok=True)
        n = rng.randrange(1024, 20 * 1024)
        data = rng.randbytes(n) if i % 2 else "".join(_csv_rows(rng, n // 50)).encode()[:n]
        with open(os.path.join(d, "f%05d.dat" % i), "wb") as f:
            f.write(data)
    os.makedirs(os.path.dirname(w.w5[0]), exist_ok=True)
    rows = _csv_rows(rng, (mib << 20) // 60)
    nid = len(rows) + 1
    for v, path in enumerate(w.w5):
        if v:
            vr = random.Random(1000 + v)
            for _ in range(20):
                rows[vr.randrange(len(rows))] = _csv_rows(vr, 1, start=vr.randrange(nid))[0]
            for _ in range(20):
                rows.insert(vr.randrange(len(rows) + 1), _csv_rows(vr, 1, start=nid)[0])
                nid += 1
        with open(path, "w") as f:
            f.write("".join(rows))
    return w
