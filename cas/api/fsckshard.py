"""fsck's pass over the packs, split with a worker process: each process its own GIL.

The check of small objects (decode, hash, compare with the index) is Python
work that holds the GIL, so ``scan_packs``' reader threads cannot use a second
core for it; a second process can. The packs are split in two groups of about
equal bytes; a worker (a new interpreter, like the ingest workers of
``cas.api.sharded``) scans one group with ``scan_packs`` in its own read
snapshot while the calling process scans the other, and sends its
``ScanResult`` back through a pipe. The results are merged: every pack is
still read once, every object still hashed and compared with the index.

The worker checks that its snapshot numbers every pack of its group as the
caller's does (a rebuilt index renumbers packs); otherwise, or if it cannot
start or dies, the caller scans that group itself, so the check is never
weaker than one process's.
"""

from __future__ import annotations

import json
import os
import pickle
import sys

from cas.api import forking
from cas.api.packscan import ScanResult, scan_packs
from cas.storage.packs import pack_path

MIN_BYTES = 64 << 20  # smaller stores: one process (a worker costs an interpreter's start)


def scan_split(store: str, packs_dir: str, names: list[str], txn, dbs, indexed: dict[str, int], level: int,
               progress=None) -> ScanResult:
    """``scan_packs`` over ``names``, half of the bytes in a worker process when that pays."""
    sizes = {}
    for name in names:
        try:
            sizes[name] = os.path.getsize(pack_path(packs_dir, name))
        except OSError:
            sizes[name] = 0
    if sum(sizes.values()) < MIN_BYTES or len(names) < 2 or not _can_spawn():
        return scan_packs(packs_dir, names, txn, dbs, indexed, level, progress)
    mine: list[str] = []
    theirs: list[str] = []
    have = [0, 0]
    for name in sorted(names, key=sizes.__getitem__, reverse=True):  # greedy: the lighter side takes it
        side = 0 if have[0] <= have[1] else 1
        (mine if side == 0 else theirs).append(name)
        have[side] += sizes[name]
    worker = _start(store, theirs, {n: indexed[n] for n in theirs if n in indexed})
    try:
        res = scan_packs(packs_dir, mine, txn, dbs, indexed, level, progress)
    except BaseException:
        if worker is not None:
            worker.stop()
        raise
    got = worker.result() if worker is not None else None
    if got is None:  # no worker, a changed index, or a worker that died: scan its group here
        got = scan_packs(packs_dir, theirs, txn, dbs, indexed, level, progress)
    res.pack_problems.extend(got.pack_problems)
    res.bad.update(got.bad)
    res.located.update(got.located)
    res.nodes.update(got.nodes)
    return res


def _can_spawn() -> bool:
    return forking.worker_processes(1 if (os.cpu_count() or 1) >= 2 else 0) > 0


class _Worker:
    def __init__(self, proc, f) -> None:
        self.proc = proc
        self._f = f

    def stop(self) -> None:
        """Kill and reap the worker (the caller failed)."""
        self._f.close()
        self.proc.kill()
        self.proc.wait()

    def result(self) -> ScanResult | None:
        """The worker's ScanResult, or None if it could not deliver one."""
        try:
            kind, value = pickle.load(self._f)
        except (EOFError, OSError, pickle.UnpicklingError):
            kind, value = "died", None
        finally:
            self._f.close()
            if self.proc.poll() is None and kind == "died":
                self.proc.kill()
            self.proc.wait()
        if kind != "done":
            return None
        problems, bad, located, nodes = value
        return ScanResult(problems, bad, located, nodes)


def _start(store: str, names: list[str], indexed: dict[str, int]) -> _Worker | None:
    rfd, wfd = os.pipe()
    args = {"store": store, "names": names, "indexed": indexed, "out_fd": wfd, "parent": os.getpid()}
    try:
        proc = forking.spawn_python("from cas.api.fsckshard import worker_main; worker_main()", [], (wfd,))
    except OSError:
        os.close(rfd)
        return None
    finally:
        os.close(wfd)
    try:
        proc.stdin.write(json.dumps(args).encode())
        proc.stdin.close()
    except OSError:
        pass
    return _Worker(proc, os.fdopen(rfd, "rb"))


def worker_main() -> None:
    """Entry point of the worker: scan the packs named on stdin, send the ScanResult, exit."""
    args = json.loads(sys.stdin.buffer.read())
    forking.die_with(args["parent"])
    out = os.fdopen(args["out_fd"], "wb")
    from cas.api.repo import Repo
    from cas.index.tables import Tables

    repo = Repo(args["store"])
    try:
        indexed = args["indexed"]
        with repo.db.read() as txn:
            t = Tables(repo.db, txn)
            if any(t.pack_no(name) != no for name, no in indexed.items()):
                pickle.dump(("changed", None), out)
                return
            res = scan_packs(repo.layout.packs, args["names"], txn, repo.db.dbs, indexed, repo.objects.codec.level)
        pickle.dump(("done", (res.pack_problems, res.bad, res.located, res.nodes)), out)
    except Exception as exc:  # noqa: BLE001 - the caller scans this group itself
        pickle.dump(("failed", str(exc)), out)
    finally:
        out.close()
        repo.close()
