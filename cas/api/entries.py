"""Manifest entries as users see them (W&B ArtifactManifestEntry, Comet asset)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from cas.format.digest import to_text


@dataclass(frozen=True)
class ArtifactEntry:
    """One file of an artifact: logical path, content digest, size.

    ``digest`` is the file id (``blake3:<hex>``), or None for a file added with
    policy='immutable' that is not read yet. ``local_path`` is where a draft
    entry came from. ``ref`` is the URI of a reference entry (none yet).
    """

    path: str
    digest: str | None
    size: int
    executable: bool = False
    ref: str | None = None
    local_path: str | None = None

    @property
    def logical_path(self) -> str:
        """Comet's name for ``path``."""
        return self.path

    @property
    def remote(self) -> bool:
        """True for a reference whose bytes are not in the store (Comet)."""
        return self.ref is not None

    @property
    def link(self) -> str | None:
        """The reference URI (Comet)."""
        return self.ref

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        return asdict(self)


def entry_from_tree(path: str, e) -> ArtifactEntry:
    """Return the entry for a stored tree entry at ``path``."""
    return ArtifactEntry(path, to_text(e.id), e.size, e.executable)
