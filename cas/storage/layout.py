"""Where each part of a store lives on disk (docs/format.md §3)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class StoreLayout:
    """Paths of one store directory."""

    root: str

    @property
    def config(self) -> str:
        """The repository config file."""
        return os.path.join(self.root, "config")

    @property
    def packs(self) -> str:
        """Sealed pack files."""
        return os.path.join(self.root, "packs")

    @property
    def log(self) -> str:
        """Append-only log entries."""
        return os.path.join(self.root, "log")

    @property
    def index(self) -> str:
        """The LMDB index (derived; may be deleted)."""
        return os.path.join(self.root, "index")

    @property
    def tmp(self) -> str:
        """Packs and entries being written."""
        return os.path.join(self.root, "tmp")

    @property
    def pins(self) -> str:
        """One file per process with a write in progress (gc keeps what it may reuse)."""
        return os.path.join(self.root, "pins")

    @property
    def locks(self) -> str:
        """Leases of maintenance jobs (``locks/gc``)."""
        return os.path.join(self.root, "locks")

    def make_dirs(self) -> None:
        """Create the directories of a new store."""
        for d in (self.root, self.packs, self.log, self.index, self.tmp):
            os.makedirs(d, exist_ok=True)

    def exists(self) -> bool:
        """True if a store config is present."""
        return os.path.isfile(self.config)
