"""Artifact drafts: mutable collections of files until logged (W&B ``wandb.Artifact``).

A draft binds to a repository on first use: the one passed in, else the only
Repo open in this process, else the repository found from the working
directory, else the user's default store.
Files added with policy='mutable' are stored at once; policy='immutable' files
are read when the draft is logged and must not have changed.

``add_dir`` into a free place of the draft keeps its file list on disk (see
``cas.api.listing``), so a draft of a million files holds no per-file state.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings

from cas.api import semvers as _semvers
from cas.api.drafttree import DraftTree, FileRef, PendingFile
from cas.api.entries import ArtifactEntry, entry_from_reference
from cas.api.ingest import is_executable, walk_files
from cas.api.listing import DirListing, build_listing
from cas.errors import (
    ArtifactFinalizedError,
    CasError,
    EntryNotFound,
    NothingToRemove,
    PathConflict,
    UsageError,
)
from cas.format.digest import to_text
from cas.format.names import check_name, check_path
from cas.format.nodes import Reference
from cas.format.pack import KIND_TREE_NODE
from cas.format.records import check_metadata

POLICIES = ("mutable", "immutable")


class Artifact:
    """A draft artifact: add files, then ``repo.log_artifact(draft)``."""

    def __init__(self, name: str, type: str, description: str | None = None,
                 metadata: dict | None = None, *, repo=None, version: str | None = None) -> None:
        """Start a draft.

        Args:
            name: Artifact (collection) name.
            type: Artifact type, e.g. 'dataset' or 'model'.
            description: Free text.
            metadata: A msgpack-serializable dict of at most 100 keys.
            repo: The repository to bind to (default: see the module docstring).
            version: Semantic version to log it as (Comet): 'MAJOR.MINOR.PATCH[-pre][+build]',
                or 'major'/'minor'/'patch' to bump the collection's highest one.

        Raises:
            InvalidName: Bad name or type.
            InvalidMetadata: Metadata not storable.
            InvalidSemver: ``version`` is malformed.
        """
        self.name = check_name(name, "artifact name")
        self._semver_request = _semvers.check_request(version)
        self.type = check_name(type, "artifact type")
        self._description = description
        self._metadata = check_metadata(metadata)
        self._repo = repo
        self._tree: DraftTree | None = None
        self._local_names: dict[str, tuple[int, str]] = {}  # local path -> (when added, logical)
        self._listings: list = []  # (when added, DirListing) of add_dir calls kept on disk
        self._adds = 0
        self._base = None  # the ArtifactVersion this draft was made from
        self._logged = None  # the ArtifactVersion once logged

    # binding ------------------------------------------------------------------
    def _bound(self):
        if self._repo is None:
            from cas.api.repo import Repo, only_open_repo

            self._repo = only_open_repo() or Repo()
        self._repo._drafts.add(self)
        return self._repo

    def _draft_tree(self) -> DraftTree:
        if self._tree is None:
            repo = self._bound()
            self._tree = DraftTree(repo.objects.get_tree)
        return self._tree

    def _check_draft(self, action: str) -> None:
        if self._logged is not None:
            raise ArtifactFinalizedError(self.name, action)

    # properties ----------------------------------------------------------------
    @property
    def description(self) -> str | None:
        """Free-text description."""
        return self._description

    @description.setter
    def description(self, value: str | None) -> None:
        self._check_draft("set description")
        if value is not None and not isinstance(value, str):
            raise UsageError("description must be a string or None")
        self._description = value

    @property
    def metadata(self) -> dict:
        """User metadata (at most 100 keys, msgpack-serializable)."""
        return self._metadata

    @metadata.setter
    def metadata(self, value: dict) -> None:
        self._check_draft("set metadata")
        self._metadata = check_metadata(value)

    def is_draft(self) -> bool:
        """True until the artifact is logged."""
        return self._logged is None

    def finalize(self) -> None:
        """Refuse further changes (logging finalizes too)."""
        if self._logged is None:
            self._logged = False  # finalized but not logged

    @property
    def logged_version(self):
        """The ArtifactVersion this draft became when logged, else None."""
        return self._logged or None

    def __getattr__(self, item):
        # after logging, W&B code reads version, aliases, id... from the same object
        logged = self.__dict__.get("_logged")
        if logged and not item.startswith("_"):
            return getattr(logged, item)
        raise AttributeError(item)

    # adding ------------------------------------------------------------------------
    def add_file(self, local_path, name: str | None = None, policy: str = "mutable",
                 overwrite: bool = False) -> ArtifactEntry:
        """Add one local file at logical path ``name`` (default: its base name).

        Raises:
            UsageError: Unknown policy, or ``local_path`` is not a regular file.
            PathConflict: Different content is already at ``name`` and not ``overwrite``.
            ArtifactFinalizedError: The artifact is logged.
        """
        self._check_draft("add files")
        if policy not in POLICIES:
            raise UsageError(f"invalid policy {policy!r}: use 'mutable' or 'immutable'")
        local_path = os.path.abspath(os.fspath(local_path))
        if not os.path.isfile(local_path):
            raise UsageError(f"{local_path} is not a regular file")
        logical = check_path(name if name is not None else os.path.basename(local_path))
        entry = self._make_entry(local_path, os.stat(local_path), policy)
        tree = self._draft_tree()
        tree.check_settable(logical)
        old = tree.get(logical)
        if old is not None and not overwrite and not self._same(old, entry):
            raise PathConflict(
                f"{logical!r} is already in draft {self.name!r} with different content; pass overwrite=True"
            )
        tree.set(logical, entry)
        self._adds += 1
        self._local_names[local_path] = (self._adds, logical)
        return self._entry(logical, entry)

    def _make_entry(self, local_path: str, st, policy: str):
        repo = self._bound()
        if policy == "mutable":
            return repo.ingester.file(local_path, store=True, st=st)
        return PendingFile(local_path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev,
                           is_executable(st))

    def add_dir(self, local_path, name: str | None = None, policy: str = "mutable",
                merge: bool = False) -> int:
        """Add every regular file under a directory (symlinks are skipped).

        Args:
            local_path: The directory.
            name: Logical directory to place the files under (default: root).
            policy: 'mutable' or 'immutable'.
            merge: Replace entries whose content differs; otherwise such a
                difference raises and nothing is added.

        Returns:
            Number of files added.

        Raises:
            PathConflict: An entry would change and ``merge`` is False.
        """
        self._check_draft("add files")
        if policy not in POLICIES:
            raise UsageError(f"invalid policy {policy!r}: use 'mutable' or 'immutable'")
        local_path = os.path.abspath(os.fspath(local_path))
        if not os.path.isdir(local_path):
            raise UsageError(f"{local_path} is not a directory")
        prefix = "" if not name else check_path(name.rstrip("/")) + "/"
        tree = self._draft_tree()
        if tree.is_free(prefix[:-1]):
            return self._add_listing(local_path, prefix, policy)
        files = sorted(walk_files(local_path))
        # a new, empty draft cannot conflict (a walk never yields a path that is
        # both a file and a directory): skip the per-file draft lookups
        fresh = tree.is_empty()
        if not fresh:
            for rel, _absp, _st in files:
                tree.check_settable(prefix + rel)
        planned = []
        repo = self._bound()
        try:
            for rel, absp, st in files:
                logical = check_path(prefix + rel)
                entry = self._make_entry(absp, st, policy)
                if not fresh:
                    old = tree.get(logical)
                    if old is not None and not merge and not self._same(old, entry):
                        raise PathConflict(
                            f"add_dir would change {logical!r} in draft {self.name!r}; pass merge=True to replace it"
                        )
                planned.append((logical, absp, entry))
        finally:
            repo.ingester.commit_stat_cache()
        tree.set_many((logical, entry) for logical, _absp, entry in planned)
        self._adds += 1
        self._local_names.update((absp, (self._adds, logical)) for logical, absp, _entry in planned)
        return len(planned)

    def _add_listing(self, local_path: str, prefix: str, policy: str) -> int:
        """Add a directory at a free place: nothing can conflict, so keep its file list on disk.

        A 'mutable' directory is stored now, its tree nodes too, and becomes a
        stored subtree of the draft; an 'immutable' one is built when logged.
        """
        repo = self._bound()
        on_many = None
        if policy == "mutable" and not repo.ingester.has_listing_record(local_path):
            # a first add of a large directory: start its worker processes while the walk goes on
            def on_many(fd: int):
                from cas.api import sharded

                if not sharded.can_shard():
                    return None
                return sharded.Workers.try_start(fd, local_path, prefix, policy, repo.layout.root)

        from cas.api.listing import WORKERS_AFTER

        listing = DirListing.scan(local_path, prefix, policy, repo.layout.tmp, on_many, WORKERS_AFTER)
        if listing.count == 0:
            listing.close()
            return 0
        tree = self._draft_tree()
        if policy == "mutable":
            try:
                stored = build_listing(listing, repo.ingester, repo.objects,
                                       lambda tid, data: repo.objects.put(tid, KIND_TREE_NODE, data))
            except BaseException:
                listing.close()
                raise
            finally:
                repo.ingester.commit_stat_cache()
            tree.put_dir(prefix[:-1], stored=stored)
        else:
            tree.put_dir(prefix[:-1], source=listing)
        self._adds += 1
        self._listings.append((self._adds, listing))
        return listing.count

    @contextlib.contextmanager
    def new_file(self, name: str, mode: str = "x", encoding: str | None = None):
        """Open a new file that is added at ``name`` when the block exits.

        ``mode`` is 'x'/'w' (text) or 'xb'/'wb' (binary); 'x' fails if ``name``
        is already in the draft.
        """
        self._check_draft("add files")
        check_path(name)
        if mode not in ("x", "w", "xb", "wb"):
            raise UsageError(f"invalid mode {mode!r}: use 'x', 'w', 'xb' or 'wb'")
        if "x" in mode and self._draft_tree().get(name) is not None:
            raise PathConflict(f"{name!r} is already in draft {self.name!r}; use mode='w' to replace it")
        import shutil
        import tempfile  # both only here: they cost a cold start of every command

        tmpdir = tempfile.mkdtemp(prefix="cas-new-file-")
        path = os.path.join(tmpdir, os.path.basename(name))
        try:
            with open(path, mode.replace("x", "w"), encoding=encoding if "b" not in mode else None) as f:
                yield f
            self.add_file(path, name=name, policy="mutable", overwrite=True)
            self._local_names.pop(os.path.abspath(path), None)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def add_reference(self, uri, name: str | None = None, checksum: bool = True,
                      max_objects: int | None = None) -> list[ArtifactEntry]:
        """Add an object (or every object under a prefix) that stays outside the store.

        Schemes: ``file://``, ``s3://``, ``gs://``, ``http(s)://``. The entry
        records the URI, the size and the strongest checksum the source offers
        (the cas file id for files, ETag and version id on S3, MD5 or CRC32C and
        generation on GCS, ETag on HTTP); the bytes are never copied into the
        store. ``download`` fetches them and checks them against the record.

        Args:
            uri: The object, directory or prefix.
            name: Logical path of a single object (default: its base name), or
                the directory a prefix's objects go under (default: the root).
            checksum: False records only the URI and size (W&B semantics).
            max_objects: Most objects a prefix may expand to (default 10,000,000);
                more is an error, never a silent truncation.

        Returns:
            The entries added.

        Raises:
            InvalidUri: Unsupported scheme or malformed URI.
            TooManyObjects: More than ``max_objects`` objects; nothing is added.
            ReferenceMissing: Nothing exists at ``uri``.
            ReferenceUnreachable: The source cannot be reached, or its fsspec
                filesystem (s3fs, gcsfs) is not installed.
            PathConflict: A logical path is already a directory or below a file.
            ArtifactFinalizedError: The artifact is logged.
        """
        self._check_draft("add references")
        repo = self._bound()
        found = repo.reference_client().resolve(uri, name=name, checksum=checksum, max_objects=max_objects)
        repo.ingester.commit_stat_cache()
        tree = self._draft_tree()
        for logical, _ref in found:
            tree.check_settable(logical)
        out = []
        for logical, ref in found:
            tree.set(logical, ref)
            out.append(entry_from_reference(logical, ref))
        return out

    def add(self, obj, name: str) -> ArtifactEntry:
        """Store a JSON-serializable object as the file ``name`` (``.json`` appended if absent)."""
        self._check_draft("add objects")
        logical = _json_name(name)
        try:
            data = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise UsageError(f"object for {name!r} is not JSON-serializable: {exc}") from exc
        tree = self._draft_tree()
        tree.check_settable(logical)
        ref = self._bound().ingester.bytes_(data)
        tree.set(logical, ref)
        return self._entry(logical, ref)

    def get(self, name: str):
        """Return the object stored with ``add`` under ``name``.

        Raises:
            EntryNotFound: No such entry.
        """
        logical = _json_name(name)
        entry = self._lookup(logical)
        repo = self._bound()
        repo.objects.flush()
        if isinstance(entry, Reference):
            raise UsageError(f"{logical!r} in draft {self.name!r} is a reference ({entry.uri}), not a stored object")
        if isinstance(entry, PendingFile):
            with open(entry.local_path, "rb") as f:
                return json.loads(f.read())
        return json.loads(repo.read_file_bytes(entry.id, f"draft {self.name} file {logical}"))

    def remove(self, path_or_prefix) -> int:
        """Remove a file or a directory of files from the draft.

        Returns:
            Number of files removed.

        Raises:
            NothingToRemove: Nothing is at that path (a FileNotFoundError too).
        """
        self._check_draft("remove files")
        path = path_or_prefix.path if isinstance(path_or_prefix, ArtifactEntry) else str(path_or_prefix)
        n = self._draft_tree().remove(path)
        if n == 0:
            raise NothingToRemove(path, self.name)
        return n

    # reading the draft ---------------------------------------------------------
    def _lookup(self, name: str):
        check_path(name)
        e = self._draft_tree().get(name)
        if e is None:
            raise EntryNotFound(name, self.name)
        return e

    def _entry(self, logical: str, e) -> ArtifactEntry:
        if isinstance(e, Reference):
            return entry_from_reference(logical, e)
        if isinstance(e, PendingFile):
            return ArtifactEntry(logical, None, e.size, e.executable, local_path=e.local_path)
        return ArtifactEntry(logical, to_text(e.id), e.size, e.executable)

    def get_entry(self, name: str) -> ArtifactEntry:
        """Return the entry at logical path ``name``.

        Raises:
            EntryNotFound: No such entry (a KeyError too).
        """
        if self._logged:
            return self._logged.get_entry(name)
        return self._entry(name, self._lookup(name))

    def get_path(self, name: str) -> ArtifactEntry:
        """Deprecated alias of ``get_entry`` (kept for W&B code)."""
        warnings.warn("get_path is deprecated; use get_entry", DeprecationWarning, stacklevel=2)
        return self.get_entry(name)

    def get_added_local_path_name(self, local_path) -> str | None:
        """Return the logical name a local file was added under (the latest add), or None."""
        path = os.path.abspath(os.fspath(local_path))
        best = self._local_names.get(path)
        for when, listing in reversed(self._listings):
            if best is not None and best[0] > when:
                break
            root = listing.root if listing.root.endswith(os.sep) else listing.root + os.sep
            if path.startswith(root):
                rel = path[len(root):].replace(os.sep, "/")
                if listing.contains(rel):
                    best = (when, listing.prefix + rel)
                    break
        return None if best is None else best[1]

    @property
    def manifest(self) -> dict[str, ArtifactEntry]:
        """All entries by logical path."""
        if self._logged:
            return self._logged.manifest
        return {p: self._entry(p, e) for p, e in self._draft_tree().items()}

    def _resolve_hash_only(self, path: str, e: PendingFile) -> FileRef:
        return self._bound().ingester.file(e.local_path, store=False, expect=e.signature)

    def _same(self, old, new) -> bool:
        """True if two entries have the same content and mode.

        A policy='immutable' entry is hashed (not stored) for the comparison; one
        that changed since it was added, or cannot be read, counts as different.
        """
        if old == new:
            return True
        if isinstance(old, Reference) or isinstance(new, Reference):
            return False
        try:
            a = old if isinstance(old, FileRef) else self._resolve_hash_only("", old)
            b = new if isinstance(new, FileRef) else self._resolve_hash_only("", new)
        except CasError:
            return False
        return a.id == b.id and a.executable == b.executable

    @property
    def digest(self) -> str:
        """The version digest this draft would get (``blake3:<hex>``), computable before logging."""
        if self._logged:
            return self._logged.digest
        repo = self._bound()
        root, _size, _n = self._draft_tree().build(
            None, self._resolve_hash_only,
            build_source=lambda s: build_listing(s, repo.ingester, repo.objects, None, store=False))
        repo.ingester.commit_stat_cache()
        return to_text(root)

    @property
    def size(self) -> int:
        """Total bytes of all files."""
        if self._logged:
            return self._logged.size
        return sum(e.size or 0 for _, e in self._draft_tree().items())

    @property
    def file_count(self) -> int:
        """Number of files."""
        if self._logged:
            return self._logged.file_count
        return sum(1 for _ in self._draft_tree().items())

    def save(self, repo=None, aliases=(), tags=()):
        """Log this draft to ``repo`` (default: the bound repository)."""
        return (repo or self._bound()).log_artifact(self, aliases=aliases, tags=tags)

    def __repr__(self) -> str:
        state = "draft" if self.is_draft() else "logged"
        return f"<Artifact {self.name!r} type={self.type!r} {state}>"


def _json_name(name: str) -> str:
    check_path(name)
    return name if name.endswith(".json") else name + ".json"
