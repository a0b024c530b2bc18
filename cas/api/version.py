"""ArtifactVersion: a logged, immutable version and what users do with it."""

from __future__ import annotations

import datetime as _dt
import json
import os
from typing import Iterator

from cas.api.entries import ArtifactEntry, entry_from_tree
from cas.api.refs import split_collection, ttl_seconds
from cas.api.walk import find_entry, iter_files
from cas.errors import EntryNotFound, UsageError, VerifyError, VersionDeleted
from cas.format.digest import to_text
from cas.format.names import check_alias, check_name, check_path
from cas.format.nodes import KIND_TREE
from cas.format.records import check_metadata


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return _dt.datetime.fromtimestamp(ns / 1e9, tz=_dt.timezone.utc).isoformat().replace("+00:00", "Z")


class FilesCursor:
    """Paginated iteration over a version's entries, resumable from ``cursor``."""

    def __init__(self, version, names, per_page: int, start: str | None) -> None:
        if per_page < 1:
            raise UsageError("per_page must be at least 1")
        self._version = version
        self._names = set(names) if names is not None else None
        self.per_page = per_page
        self.cursor = start  # the last path returned; pass as start= to resume

    def next_page(self) -> list[ArtifactEntry]:
        """Return up to ``per_page`` entries after the cursor; [] at the end."""
        out: list[ArtifactEntry] = []
        v = self._version
        for path, e in iter_files(v._repo.objects, v._rec["digest"], after=self.cursor, where=v.name):
            if self._names is not None and path not in self._names:
                continue
            out.append(entry_from_tree(path, e))
            if len(out) >= self.per_page:
                break
        if out:
            self.cursor = out[-1].path
        return out

    def __iter__(self) -> Iterator[ArtifactEntry]:
        while True:
            page = self.next_page()
            if not page:
                return
            yield from page


class ArtifactVersion:
    """One logged version of an artifact collection; its content never changes."""

    def __init__(self, repo, collection: str, rec: dict) -> None:
        self._repo = repo
        self._collection = collection
        self._rec = rec
        self._pending: dict = {}

    # identity -------------------------------------------------------------------
    @property
    def project(self) -> str:
        """Project part of the collection."""
        return split_collection(self._collection)[0]

    @property
    def collection(self) -> str:
        """Collection name (without project)."""
        return split_collection(self._collection)[1]

    @property
    def entity(self) -> str:
        """The store's namespace; 'default' locally."""
        return "default"

    @property
    def version(self) -> str:
        """'vN'."""
        return f"v{self._rec['version']}"

    @property
    def version_index(self) -> int:
        """N of 'vN'."""
        return self._rec["version"]

    @property
    def name(self) -> str:
        """'name:vN'."""
        return f"{self.collection}:{self.version}"

    @property
    def qualified_name(self) -> str:
        """'project/name:vN'."""
        return f"{self.project}/{self.name}"

    # links and lineage ----------------------------------------------------------
    def _source_key(self) -> tuple[str, int]:
        """``(collection key, version)`` of the source: the linked version, or this one."""
        link = self._rec.get("link")
        return (link["collection"], link["version"]) if link else (self._collection, self._rec["version"])

    @property
    def is_link(self) -> bool:
        """True for a registry link made with ``link()`` (it resolves to its source's content)."""
        return bool(self._rec.get("link"))

    @property
    def source_artifact(self) -> "ArtifactVersion":
        """The version a link points at; a non-link is its own source."""
        if not self.is_link:
            return self
        coll, n = self._source_key()
        return self._repo._version(coll, n)

    @property
    def source_name(self) -> str:
        """'name:vN' of the source version (``name`` for a non-link)."""
        coll, n = self._source_key()
        return f"{split_collection(coll)[1]}:v{n}"

    @property
    def source_qualified_name(self) -> str:
        """'project/name:vN' of the source version."""
        coll, n = self._source_key()
        return f"{coll}:v{n}"

    @property
    def source_project(self) -> str:
        """Project of the source collection."""
        return split_collection(self._source_key()[0])[0]

    @property
    def source_collection(self) -> str:
        """Source collection name (without project)."""
        return split_collection(self._source_key()[0])[1]

    @property
    def source_version(self) -> str:
        """Source version 'vN'."""
        return f"v{self._source_key()[1]}"

    @property
    def source_entity(self) -> str:
        """Source entity ('default' locally)."""
        return self.entity

    @property
    def linked_artifacts(self) -> list["ArtifactVersion"]:
        """The live (not unlinked) links to this version's source, in link order."""
        return [self._repo._version(c, n) for c, n in self._repo.links_to(*self._source_key())]

    def link(self, target: str, aliases=()) -> "ArtifactVersion":
        """Link this version into the collection ``target`` (``[project/]name``; W&B ``link_artifact``).

        The link is a new version of ``target`` with this version's content. A
        link of a link links the original source. Linking a source again into
        the same collection returns the existing link. The project defaults to
        this version's project.

        Raises:
            InvalidReference: ``target`` is not a collection.
            UsageError: ``target`` is the source's collection or holds another artifact type.
        """
        from cas.api.links import link

        coll, n = link(self._repo, self, target, aliases)
        return self._repo._version(coll, n)

    def unlink(self) -> None:
        """Remove this link version; the source version is never affected.

        Raises:
            NotALink: This version is not a link.
        """
        from cas.api.links import unlink

        unlink(self._repo, self)
        self.reload()

    def logged_by(self):
        """The Run that logged this version (its source's, for a link), or None."""
        from cas.api.runs import logged_by

        return logged_by(self._repo, *self._source_key())

    def used_by(self) -> list:
        """The Runs that used this version, oldest first."""
        from cas.api.runs import used_by

        return used_by(self._repo, self._collection, self._rec["version"])

    @property
    def source_experiment_key(self) -> str | None:
        """Id of the run that logged this version (Comet's experiment key), or None."""
        coll, n = self._source_key()
        rec = self._rec if (coll, n) == (self._collection, self._rec["version"]) else self._repo.version_record(coll, n)
        return rec.get("run_id")

    @property
    def id(self) -> str:
        """Stable id: the commit hash of the log entry that published it."""
        return self._rec["commit"].hex()

    @property
    def commit_hash(self) -> str:
        """Id of the log entry that published this version."""
        return self._rec["commit"].hex()

    @property
    def type(self) -> str:
        """Artifact type."""
        return self._rec["type"]

    @property
    def digest(self) -> str:
        """Root tree id, ``blake3:<hex>``."""
        return to_text(self._rec["digest"])

    @property
    def size(self) -> int:
        """Total bytes."""
        return self._rec["size"]

    @property
    def file_count(self) -> int:
        """Number of files."""
        return self._rec["n_files"]

    @property
    def state(self) -> str:
        """'COMMITTED' (or 'DELETED' once deletion exists)."""
        return self._rec.get("state", "COMMITTED")

    @property
    def created_at(self) -> str:
        """ISO-8601 UTC time it was logged."""
        return _iso(self._rec["created_ns"])

    @property
    def updated_at(self) -> str:
        """ISO-8601 UTC time of its last change of aliases, tags or metadata."""
        return _iso(self._rec["updated_ns"])

    @property
    def aliases(self) -> list[str]:
        """Aliases pointing at this version (including 'latest')."""
        return self._repo.aliases_of(self._collection, self._rec["version"])

    @property
    def tags(self) -> list[str]:
        """Version tags."""
        return list(self._rec.get("tags") or [])

    @property
    def artifact_tags(self) -> list[str]:
        """Collection tags."""
        return self._repo.collection_tags(self._collection)

    @property
    def semver(self) -> str | None:
        """Semantic version, when one was given (Comet)."""
        return self._rec.get("semver")

    # mutable fields (saved with save()) ------------------------------------------
    @property
    def description(self) -> str | None:
        """Description (settable; call save())."""
        return self._pending.get("description", self._rec.get("description"))

    @description.setter
    def description(self, value: str | None) -> None:
        if value is not None and not isinstance(value, str):
            raise UsageError("description must be a string or None")
        self._pending["description"] = value

    @property
    def metadata(self) -> dict:
        """Metadata (settable; call save())."""
        return self._pending.get("metadata", self._rec.get("metadata") or {})

    @metadata.setter
    def metadata(self, value: dict) -> None:
        self._pending["metadata"] = check_metadata(value)

    @property
    def ttl(self):
        """Time to live in seconds, or None (settable; call save())."""
        return self._pending.get("ttl", self._rec.get("ttl"))

    @ttl.setter
    def ttl(self, value) -> None:
        self._pending["ttl"] = ttl_seconds(value)

    @property
    def expires_at(self) -> str | None:
        """When gc may delete this version (its ttl, else its collection's default), or None."""
        ttl = self.ttl
        if ttl is None:
            ttl = self._repo.collection_ttl(self._collection)
        return None if ttl is None else _iso(self._rec["created_ns"] + ttl * 10**9)

    def delete(self, delete_aliases: bool = False) -> None:
        """Delete this version: it stops resolving; its history stays in 'cas log --all'.

        Its objects are reclaimed by a later ``repo.gc()`` unless another version
        (or a link to it) still needs them.

        Raises:
            DeleteRefused: Aliases point at it and ``delete_aliases`` is False.
        """
        self._repo.delete_version(self._collection, self._rec["version"], delete_aliases=delete_aliases)
        self.reload()

    def save(self) -> "ArtifactVersion":
        """Write pending description, metadata and ttl changes as one log entry."""
        if self._pending:
            self._repo.update_version_fields(self._collection, self._rec["version"], dict(self._pending))
            self._pending.clear()
            self.reload()
        return self

    def reload(self) -> "ArtifactVersion":
        """Re-read this version's record from the index."""
        self._rec = self._repo.version_record(self._collection, self._rec["version"])
        return self

    def update_aliases(self, add=(), remove=()) -> list[str]:
        """Add and remove aliases of this version (an added alias moves here)."""
        add, remove = _names(add, check_alias), _names(remove, check_alias)
        current = [a for a in self.aliases if a != "latest"]
        wanted = [a for a in current if a not in remove] + [a for a in add if a not in current]
        self._repo.set_version_aliases(self._collection, self._rec["version"], wanted)
        self.reload()
        return self.aliases

    def update_version_tags(self, add=(), remove=()) -> list[str]:
        """Add and remove version tags."""
        add, remove = _names(add, lambda t: check_name(t, "tag")), _names(remove, lambda t: check_name(t, "tag"))
        current = self.tags
        wanted = [t for t in current if t not in remove] + [t for t in add if t not in current]
        self._repo.set_version_tags(self._collection, self._rec["version"], wanted)
        self.reload()
        return self.tags

    def update_artifact_tags(self, add=(), remove=()) -> list[str]:
        """Add and remove collection tags."""
        add, remove = _names(add, lambda t: check_name(t, "tag")), _names(remove, lambda t: check_name(t, "tag"))
        current = self.artifact_tags
        wanted = [t for t in current if t not in remove] + [t for t in add if t not in current]
        self._repo.set_collection_tags(self._collection, wanted)
        return self.artifact_tags

    # content ------------------------------------------------------------------------
    def wait(self, timeout=None) -> "ArtifactVersion":
        """Return self: a logged version is already durable."""
        return self

    def is_draft(self) -> bool:
        """False: a logged version is not a draft."""
        return False

    def get_entry(self, name: str) -> ArtifactEntry:
        """Return the entry at a logical path.

        Raises:
            EntryNotFound: No file at that path (a KeyError too).
        """
        check_path(name)
        e = find_entry(self._repo.objects, self._rec["digest"], name, where=self.qualified_name)
        if e is None or e.kind == KIND_TREE:
            raise EntryNotFound(name, self.qualified_name)
        return entry_from_tree(name, e)

    get_asset = get_entry

    def get_path(self, name: str) -> ArtifactEntry:
        """Deprecated alias of ``get_entry``."""
        import warnings

        warnings.warn("get_path is deprecated; use get_entry", DeprecationWarning, stacklevel=2)
        return self.get_entry(name)

    def get(self, name: str):
        """Return a JSON object stored with ``Artifact.add``."""
        logical = name if name.endswith(".json") else name + ".json"
        e = self.get_entry(logical)
        if e.ref is not None:
            raise UsageError(f"{logical!r} in {self.qualified_name} is a reference ({e.ref}), not a stored object")
        return json.loads(self._repo.read_file_bytes(bytes.fromhex(e.digest.split(":")[1]), f"{self.qualified_name} file {logical}"))

    def files(self, names=None, per_page: int = 50, start: str | None = None) -> FilesCursor:
        """Iterate entries in path order, ``per_page`` at a time, resumable after ``start``."""
        return FilesCursor(self, names, per_page, start)

    def iter_entries(self, prefix: str = "") -> Iterator[ArtifactEntry]:
        """Yield the entries whose path starts with ``prefix``, in path order, reading one tree node at a time."""
        for p, e in iter_files(self._repo.objects, self._rec["digest"], prefix=prefix, where=self.qualified_name):
            yield entry_from_tree(p, e)

    @property
    def manifest(self) -> dict[str, ArtifactEntry]:
        """All entries by logical path."""
        return {p: entry_from_tree(p, e) for p, e in iter_files(self._repo.objects, self._rec["digest"], where=self.qualified_name)}

    @property
    def assets(self) -> list[ArtifactEntry]:
        """Entries as Comet assets."""
        return list(self.manifest.values())

    @property
    def remote_assets(self) -> list[ArtifactEntry]:
        """Reference entries (Comet): ``link``/``ref`` is the URI, ``remote`` is True."""
        return [a for a in self.assets if a.remote]

    def default_root(self) -> str:
        """Where ``download()`` writes without a root: ./artifacts/name:vN."""
        return os.path.join("artifacts", self.name)

    def download(self, root=None, path_prefix: str | None = None, overwrite_strategy: str = "FAIL",
                 allow_missing_references: bool = False, progress=None) -> str:
        """Write the version's files under ``root``; return the root path.

        References are fetched from their source and checked against the size
        and checksum recorded when they were added.

        Raises:
            DownloadConflict: FAIL and existing files differ (nothing written).
            ReferenceMissing: Referenced objects are gone (all are named; the
                other files are written); skipped with ``allow_missing_references``.
            ReferenceChanged: A referenced object differs from its record.
            ReferenceUnreachable: A reference's source cannot be reached.
        """
        root = os.path.abspath(os.fspath(root) if root is not None else self.default_root())
        self._repo.download_tree(self._rec["digest"], root, self.qualified_name, path_prefix or "",
                                 overwrite_strategy, progress, allow_missing_references=allow_missing_references)
        return root

    def checkout(self, root=None, progress=None, allow_missing_references: bool = False) -> str:
        """Make ``root`` hold exactly this version's files (others are removed)."""
        root = os.path.abspath(os.fspath(root) if root is not None else self.default_root())
        self._repo.checkout_tree(self._rec["digest"], root, self.qualified_name, progress,
                                 allow_missing_references=allow_missing_references)
        return root

    def verify(self, root=None) -> list[str]:
        """Check the files under ``root`` against this version.

        Returns:
            Paths of references whose local copy could be checked by size only
            (their checksum is an ETag or CRC32C that cas cannot recompute, or
            none was recorded); empty when everything was checked by content.

        Raises:
            VerifyError: Lists missing, modified and unexpected files.
        """
        root = os.path.abspath(os.fspath(root) if root is not None else self.default_root())
        missing, modified, unexpected, unchecked = self._repo.verify_tree(self._rec["digest"], root,
                                                                          self.qualified_name)
        if missing or modified or unexpected:
            raise VerifyError(root, missing, modified, unexpected)
        return unchecked

    def file(self, root=None) -> str:
        """Download a single-file artifact and return the file's path.

        Raises:
            UsageError: The artifact does not hold exactly one file.
        """
        if self.file_count != 1:
            raise UsageError(f"{self.qualified_name} holds {self.file_count} files; file() needs exactly one")
        root = self.download(root, overwrite_strategy="OVERWRITE")
        path = next(iter(self.manifest))
        return os.path.join(root, path)

    def new_draft(self):
        """Return a draft based on this version; logging it writes only what changed."""
        from cas.api.artifact import Artifact
        from cas.api.drafttree import DraftTree

        self._repo._pin_for_write()
        if self.reload().state == "DELETED":
            raise VersionDeleted(f"{self.qualified_name} was deleted; base the draft on a live version")
        draft = Artifact(self.collection, self.type, self.description, dict(self.metadata), repo=self._repo)
        draft._tree = DraftTree(self._repo.objects.get_tree, self._rec["digest"], self.size, self.file_count)
        draft._base = self
        self._repo._drafts.add(draft)
        draft._project = self.project
        return draft

    def json_encode(self) -> dict:
        """Return a JSON-ready description of this version."""
        return {
            "id": self.id, "name": self.name, "qualified_name": self.qualified_name, "entity": self.entity,
            "project": self.project, "collection": self.collection, "type": self.type, "version": self.version,
            "digest": self.digest, "size": self.size, "file_count": self.file_count, "state": self.state,
            "description": self.description, "metadata": self.metadata, "aliases": self.aliases,
            "tags": self.tags, "artifact_tags": self.artifact_tags, "created_at": self.created_at,
            "updated_at": self.updated_at, "ttl": self.ttl, "commit_hash": self.commit_hash,
            "semver": self.semver, "is_link": self.is_link,
            "source_qualified_name": self.source_qualified_name,
            "source_experiment_key": self.source_experiment_key,
        }

    def __eq__(self, other) -> bool:
        return isinstance(other, ArtifactVersion) and other._collection == self._collection and other.version == self.version

    def __hash__(self) -> int:
        return hash((self._collection, self.version))

    def __repr__(self) -> str:
        return f"<ArtifactVersion {self.qualified_name} {self.digest[:19]}>"


def _names(items, check) -> list[str]:
    if isinstance(items, str):
        items = [items]
    return [check(i) for i in items]
