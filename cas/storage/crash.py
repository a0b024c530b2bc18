"""Named crash points for the crash-safety tests.

When ``CAS_TEST_CRASH_AT`` names a point, the process ends there with
``os._exit(77)``, as if killed, without flushing or cleanup.
"""

from __future__ import annotations

import os

CRASH_POINTS = (
    "pack-written",
    "pack-synced",
    "pack-renamed",
    "objects-indexed",
    "log-entry-written",
    "log-entry-linked",
    "index-applied",
)
# reached only by gc (cas/api/gc.py)
GC_CRASH_POINTS = (
    "gc-repacked",
    "gc-pack-deleted",
)
# reached only by download and checkout (cas/api/restore.py)
RESTORE_CRASH_POINTS = (
    "restore-task-written",  # a worker wrote every file of one task; others may be half-way
    "restore-staged",  # every file is complete in the staging directory, none moved into place
)
# reached only by an add that stores a large directory with two processes (cas/api/sharded.py)
SHARD_CRASH_POINTS = (
    "shard-started",  # the parent, right after its workers started: they must die with it
    "shard-worker-block",  # a worker, after sending its first block: the parent must fail the add
)
CRASH_EXIT = 77


def crashpoint(name: str) -> None:
    """End the process if ``CAS_TEST_CRASH_AT`` equals ``name``."""
    if os.environ.get("CAS_TEST_CRASH_AT") == name:
        os._exit(CRASH_EXIT)
