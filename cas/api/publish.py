"""Append log entries: the only way named state changes.

An entry is built from the index state right after catching up, inside one
LMDB write transaction, and published at the next seq with exclusive create.
A writer that loses the race (another machine on a shared store) catches up
and rebuilds its entry, so version numbers follow log order.
"""

from __future__ import annotations

from typing import Callable

from cas.errors import ConcurrentUpdateError
from cas.format import records as R
from cas.index.replay import apply_entry, catch_up
from cas.index.tables import Tables
from cas.storage.crash import crashpoint

MAX_ATTEMPTS = 1000


def append_entry(repo, build: Callable[[Tables], dict | None]):
    """Build and publish one log entry; apply it to the index.

    Args:
        repo: The open Repo.
        build: Given the caught-up tables, returns the entry to publish, or
            None when nothing needs to change. It may raise to refuse.

    Returns:
        ``(seq, entry)`` of the published entry, or None if ``build`` returned None.
    """
    for _ in range(MAX_ATTEMPTS):
        with repo.db.write() as txn:
            seq = catch_up(repo.db, repo.log, repo.layout.packs, txn)
            t = Tables(repo.db, txn)
            entry = build(t)
            if entry is None:
                return None
            feature = R.FEATURE_OF_OP.get(entry["op"])
            if feature is not None:
                repo.require_feature(feature)
            data = R.encode_entry(entry)
            if not repo.log.append(seq + 1, data):
                continue
            apply_entry(t, seq + 1, entry, R.entry_id(data))
            t.set_log_seq(seq + 1)
        crashpoint("index-applied")
        repo.objects.refresh()
        return seq + 1, entry
    raise ConcurrentUpdateError(
        f"gave up after {MAX_ATTEMPTS} attempts to append to the log of {repo.root}: too many concurrent writers; retry"
    )
