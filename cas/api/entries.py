"""Manifest entries as users see them (W&B ArtifactManifestEntry, Comet asset)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from cas.format.digest import to_text
from cas.format.nodes import KIND_REFERENCE


@dataclass(frozen=True)
class ArtifactEntry:
    """One file of an artifact: logical path, content digest, size.

    ``digest`` is the file id (``blake3:<hex>``), or None for a file added with
    policy='immutable' that is not read yet. ``local_path`` is where a draft
    entry came from. For a reference, ``ref`` is its URI, ``digest`` the
    recorded checksum as ``<algo>:<value>`` (``blake3:<hex>``, ``md5:<hex>``,
    ``etag:<etag>``, ``crc32c:<b64>``; None if added with checksum=False),
    ``size`` None only if the source reported none, and ``version_id`` the
    object version recorded (S3 version id, GCS generation).
    """

    path: str
    digest: str | None
    size: int | None
    executable: bool = False
    ref: str | None = None
    local_path: str | None = None
    version_id: str | None = None

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


def entry_from_reference(path: str, ref) -> ArtifactEntry:
    """Return the entry of a Reference record at ``path``."""
    return ArtifactEntry(path, ref.checksum_text, ref.size, False, ref=ref.uri, version_id=ref.version_id)


def entry_from_tree(path: str, e) -> ArtifactEntry:
    """Return the entry for a stored tree entry (file or reference) at ``path``."""
    if e.kind == KIND_REFERENCE:
        return entry_from_reference(path, e.aux)
    return ArtifactEntry(path, to_text(e.id), e.size, e.executable)
