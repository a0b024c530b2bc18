"""Repo: open or create a store and delegate each use case to its module.

A repository is a store directory (``config``, ``packs/``, ``log/``, ``index/``,
``tmp/``): ``<project>/.cas`` found by walking up from the working directory,
or the user's default store (``$CAS_HOME``, else the platform data directory).
"""

from __future__ import annotations

import os
import sys
import time
import weakref
from typing import TYPE_CHECKING, Iterator

from cas.api import semvers as _semvers
from cas.api.objects import ObjectStore
from cas.api.publish import append_entry
from cas.api.refs import DEFAULT_PROJECT, parse_ref, ttl_seconds
from cas.errors import (
    AlreadyExists,
    ArtifactFinalizedError,
    CollectionNotFound,
    ConcurrentUpdateError,
    DeleteRefused,
    RepoNotFound,
    StorageError,
    UsageError,
    VersionDeleted,
    VersionNotFound,
)
from cas.format import records as R
from cas.format.chunker import DEFAULT_PARAMS, Chunker, ChunkerParams
from cas.format.codec import DEFAULT_ZSTD_LEVEL
from cas.format.names import check_alias, check_name
from cas.format.nodes import KIND_REFERENCE, KIND_TREE
from cas.format.pack import KIND_CHUNK, KIND_FILE_NODE, KIND_TREE_NODE
from cas.index.db import drop_index, open_index
from cas.index.replay import catch_up, gc_count, rebuild
from cas.index.tables import Tables
from cas.storage.fsutil import write_durable
from cas.storage.layout import StoreLayout
from cas.storage.log import LogDir
from cas.storage.pins import Pin

if TYPE_CHECKING:
    from cas.api.artifact import Artifact
    from cas.api.ingest import FileIngester
    from cas.api.version import ArtifactVersion
    from cas.api.diff import Change
    from cas.api.fsck import Finding, FsckReport

STORE_DIR = ".cas"
K_INDEX_READY = b"index_ready"

# Repos open in this process: a draft created without ``repo=`` binds to the only
# one, as a W&B artifact goes to the current run.
_open_repos: "weakref.WeakSet[Repo]" = weakref.WeakSet()


class _ReusedCondemned(Exception):
    """Raised inside the publish transaction: the draft reuses an object gc condemned."""


def _first_missing(objects, t: Tables, root: bytes) -> bytes | None:
    """Return an object reachable from tree ``root`` that ``t`` does not hold, or None."""
    from cas.api.rescue import first_missing

    return first_missing(objects, t, root)


def _version_of(repo: "Repo", coll: str, rec: dict) -> ArtifactVersion:
    # cas.api.version is loaded on first use: fsck and a no-op re-add need none
    from cas.api.version import ArtifactVersion

    return ArtifactVersion(repo, coll, rec)


def _weak_method(obj, name: str):
    ref = weakref.ref(obj)

    def call():
        target = ref()
        if target is not None:
            getattr(target, name)()

    return call


def _forget_pins_in_child() -> None:
    for repo in list(_open_repos):
        repo.pin.forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pins_in_child)


def only_open_repo() -> "Repo | None":
    """Return the Repo open in this process if there is exactly one, else None."""
    live = [r for r in list(_open_repos) if not r.closed]
    return live[0] if len(live) == 1 else None


def default_store_path() -> str:
    """Return the user's default store: $CAS_HOME, else the platform data directory."""
    env = os.environ.get("CAS_HOME")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    if sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Application Support")
    elif os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
    else:
        base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "cas")


def find_store(start: str | None = None) -> str | None:
    """Return the ``.cas`` store found walking up from ``start`` (default: cwd), or None."""
    cur = os.path.abspath(start or os.getcwd())
    while True:
        cand = os.path.join(cur, STORE_DIR)
        if os.path.isfile(os.path.join(cand, "config")):
            return cand
        parent = os.path.dirname(cur)
        if parent == cur:
            return None
        cur = parent


def _store_for(path) -> str | None:
    path = os.path.abspath(os.fspath(path))
    if os.path.isfile(os.path.join(path, STORE_DIR, "config")):
        return os.path.join(path, STORE_DIR)
    if os.path.isfile(os.path.join(path, "config")) and os.path.isdir(os.path.join(path, "log")):
        return path
    return None


class Repo:
    """An open cas repository."""

    def __init__(self, path=None) -> None:
        if path is not None:
            store = _store_for(path)
            if store is None:
                raise RepoNotFound(
                    f"no cas repository at {os.path.abspath(os.fspath(path))}; create one with 'cas init'"
                )
        else:
            store = find_store()
            if store is None:
                store = default_store_path()
                if not StoreLayout(store).exists():
                    _create_store(store)
        self._open(store)

    @classmethod
    def init(cls, path=None, *, chunker: ChunkerParams | None = None,
             zstd_level: int | None = None) -> "Repo":
        """Create a repository at ``path/.cas`` (or the default store if None) and open it.

        Raises:
            AlreadyExists: A repository is already there.
        """
        store = default_store_path() if path is None else os.path.join(os.path.abspath(os.fspath(path)), STORE_DIR)
        if StoreLayout(store).exists():
            raise AlreadyExists(f"{store} is already a cas repository; open it with cas.Repo({str(path or '')!r})")
        _create_store(store, chunker, zstd_level)
        repo = cls.__new__(cls)
        repo._open(store)
        return repo

    def _open(self, store: str) -> None:
        self.layout = StoreLayout(store)
        self.root = store
        try:
            with open(self.layout.config, "rb") as f:
                self.config = R.decode_config(f.read())
            for d in (self.layout.packs, self.layout.log, self.layout.tmp, self.layout.index,
                      self.layout.pins, self.layout.locks):
                os.makedirs(d, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot open the repository at {store}: {exc.strerror}") from exc
        self.chunker = Chunker(ChunkerParams.parse(self.config["chunker"]))
        self.log = LogDir(self.layout.log, self.layout.tmp)
        self.db = open_index(self.layout.index)
        self.objects = ObjectStore(self.layout, self.db, int(self.config["zstd_level"]))
        self._ingester: FileIngester | None = None  # made on first use: a check or a read needs none
        self.pin = Pin(self.layout.pins)
        self._pin_gc_epoch = 0
        self._drafts: "weakref.WeakSet[Artifact]" = weakref.WeakSet()  # drafts with writes in progress
        # weak: a Repo nobody closed must still be freed by reference counting
        self.objects.before_write = _weak_method(self, "_pin_for_write")
        self.objects.catch_up = _weak_method(self, "_catch_up")
        # per fsspec protocol ("s3", "gcs", "http"): filesystem options for references
        # (endpoint, credentials); never written to the store
        self.reference_options: dict[str, dict] = {}
        self.closed = False
        self._sync_index()
        _open_repos.add(self)

    def _sync_index(self) -> None:
        with self.db.read() as txn:
            ready = Tables(self.db, txn).get_meta(K_INDEX_READY)
        if ready is None:
            rebuild(self.db, self.log, self.layout.packs)
            with self.db.write() as txn:
                Tables(self.db, txn).put_meta(K_INDEX_READY, b"1")
        else:
            catch_up(self.db, self.log, self.layout.packs)
        self.objects.refresh()

    @property
    def ingester(self) -> FileIngester:
        """This store's file ingester (chunks, hashes and stores files; keeps the stat cache)."""
        if self._ingester is None:
            from cas.api.ingest import FileIngester

            self._ingester = FileIngester(self.objects, self.chunker, self.db)
        return self._ingester

    def close(self) -> None:
        """Release the index and file handles; unsealed pack data is discarded."""
        if not self.closed:
            self.closed = True
            _open_repos.discard(self)
            self.pin.release()
            self.objects.close()
            self.db.close()

    def __enter__(self) -> "Repo":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<cas.Repo {self.root}>"

    def _pin_for_write(self) -> None:
        """Make sure this process holds a pin before it may reuse stored objects (gc.py)."""
        if self.pin.path is not None:
            self.pin.touch()
            if self.pin.path is not None:
                return

        def seen() -> int:
            catch_up(self.db, self.log, self.layout.packs)
            self.objects.refresh()
            with self.db.read() as txn:
                t = Tables(self.db, txn)
                self._pin_gc_epoch = gc_count(t)
                return t.log_seq()

        self.pin.create(seen)

    def require_feature(self, feature: str) -> None:
        """Make sure the store config lists ``feature`` as mandatory for readers (§1.2).

        Called before the first structure that needs it is written, so a cas
        that does not know the feature refuses the store instead of misreading it.
        """
        if feature in self.config.get("features", {}).get("read", []):
            return
        import fcntl

        lock_path = self.layout.config + ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot lock {lock_path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with open(self.layout.config, "rb") as f:
                config = R.decode_config(f.read())
            read = config.setdefault("features", {}).setdefault("read", [])
            if feature not in read:
                read.append(feature)
                read.sort()
                write_durable(self.layout.config, R.encode_config(config))
            self.config = config
        except OSError as exc:
            raise StorageError(f"cannot update {self.layout.config}: {exc.strerror}") from exc
        finally:
            os.close(fd)

    # logging ----------------------------------------------------------------------
    def log_artifact(self, artifact: Artifact, aliases=(), tags=(), project: str | None = None,
                     version: str | None = None, run=None) -> ArtifactVersion:
        """Publish a draft as the next version of its collection.

        Logging content equal to the collection's latest version is a no-op that
        returns that version (requested aliases and tags are still applied),
        unless an explicit semantic ``version`` differs from the latest's.

        Args:
            artifact: The draft.
            aliases: Aliases that move to the new version.
            tags: Version tags.
            project: Project of the collection (default: the draft's, else 'default').
            version: Semantic version label (Comet): 'MAJOR.MINOR.PATCH[-pre][+build]',
                or 'major'/'minor'/'patch' to bump the collection's highest one.
                Overrides ``Artifact(version=...)``.
            run: The Run (or run id) that produced it; ``Run.log_artifact`` passes it.

        Raises:
            ArtifactFinalizedError: The draft was already logged.
            UsageError: The collection exists with another type, or bad aliases/tags.
            InvalidSemver: ``version`` is malformed.
            AlreadyExists: The semantic version labels another version of the collection.
            FileChangedError: An immutable-policy file changed since it was added.
        """
        from cas.api.artifact import Artifact

        if not isinstance(artifact, Artifact):
            raise UsageError("log_artifact takes a cas.Artifact draft")
        if artifact._logged:  # False means finalized but not yet logged: loggable
            raise ArtifactFinalizedError(artifact.name, "log it again")
        requested = _semvers.check_request(version if version is not None else artifact._semver_request)
        run_id = run if isinstance(run, str) or run is None else run.id
        aliases = [check_alias(a) for a in ([aliases] if isinstance(aliases, str) else aliases) if a != "latest"]
        tags = [check_name(t, "tag") for t in ([tags] if isinstance(tags, str) else tags)]
        project = check_name(project or getattr(artifact, "_project", None) or DEFAULT_PROJECT, "project name")
        coll = f"{project}/{artifact.name}"
        if artifact._repo is None:
            artifact._repo = self
        src = artifact._repo
        tree = artifact._draft_tree()

        def put_tree(tid: bytes, data: bytes) -> None:
            src.objects.put(tid, KIND_TREE_NODE, data)

        # add_dir sources first, each as a stream (memory does not grow with their files)
        from cas.api.listing import build_listing

        built = {s: build_listing(s, src.ingester, src.objects, put_tree) for s in list(tree.sources())}
        pending = list(tree.pending_files())
        known = src.ingester.resolve_cached(pending)  # unchanged files: one stat each
        with src.ingester.reading_ahead(((e.local_path, e.signature) for e in pending
                                         if (e.local_path, e.signature) not in known), unresolved=True):
            root, size, n_files = tree.build(
                put_tree,
                lambda p, e: known.get((e.local_path, e.signature))
                or src.ingester.file(e.local_path, store=True, expect=e.signature),
                on_reference=lambda: src.require_feature(R.FEATURE_TREE_REFERENCE),
                build_source=built.__getitem__,
            )
        src.objects.flush()
        src.ingester.commit_stat_cache()
        if src is not self:
            self._copy_from(src, root)
        self._pin_for_write()
        try:
            for _attempt in range(10):
                try:
                    return self._publish_version(artifact, coll, root, size, n_files, aliases, tags,
                                                 requested, run_id)
                except _ReusedCondemned:
                    self._rescue(root)
            raise ConcurrentUpdateError(f"gc kept reclaiming objects {coll} reuses; retry when gc is done")
        finally:
            for r in {self, src}:
                r._drafts.discard(artifact)
                if not r._drafts:
                    r.pin.release()

    def _publish_version(self, artifact, coll, root, size, n_files, aliases, tags, requested,
                         run_id) -> ArtifactVersion:
        packs = self.objects.take_sealed()
        self.ingester.commit_stat_cache()
        existing: list[int] = []

        def build(t: Tables):
            if run_id is not None and t.get_run(run_id) is None:
                raise UsageError(f"run {run_id} is not a run of {self.root}; start runs with this repo's run()")
            if gc_count(t) > self._pin_gc_epoch and _first_missing(self.objects, t, root) is not None:
                raise _ReusedCondemned()
            c = t.get_collection(coll)
            if c is not None and c["type"] != artifact.type:
                raise UsageError(
                    f"{coll} holds artifacts of type {c['type']!r}, not {artifact.type!r}; use another name"
                )
            if c is not None:
                latest = t.get_alias(coll, "latest")
                rec = t.get_version(coll, latest) if latest is not None else None
                same = rec is not None and rec["digest"] == root
                if same and requested is not None and requested not in _semvers.BUMPS:
                    same = rec.get("semver") == requested  # a new label is a new version
                if same:
                    existing.append(latest)
                    have = {a for a, v in t.iter_aliases(coll) if v == latest}
                    if set(aliases) <= have:
                        return None
                    return {"op": R.OP_ALIASES, "collection": coll, "version": latest,
                            "set": sorted(have - {"latest"} | set(aliases)), "time_ns": time.time_ns()}
            return {
                "op": R.OP_VERSION, "collection": coll, "type": artifact.type, "digest": root,
                "size": size, "n_files": n_files, "version": c["n_versions"] if c else 0,
                "time_ns": time.time_ns(), "description": artifact.description,
                "metadata": artifact.metadata, "aliases": aliases, "tags": tags, "packs": packs,
                **_optional(semver=_semvers.choose(t, coll, requested), run_id=run_id),
            }

        published = append_entry(self, build)
        if existing:
            version = self._version(coll, existing[0])
            if tags and not set(tags) <= set(version.tags):
                version.update_version_tags(add=tags)
        else:
            version = self._version(coll, published[1]["version"] if published else 0)
            # the applied version number is derived from log order; re-read it
            version = self._version_by_seq(coll, published[0]) if published else version
        artifact._logged = version
        return version

    def _rescue(self, root: bytes) -> None:
        """Copy objects of tree ``root`` that gc condemned back into a new pack.

        A writer that looked an object up before gc condemned it may still reuse
        it; its pin keeps the condemned pack on disk until it has published.
        """
        from cas.api.rescue import rescue_tree

        rescue_tree(self, root)
        self.objects.flush()

    def _copy_from(self, src: "Repo", root: bytes) -> None:
        """Copy every object reachable from tree ``root`` in ``src`` that this store lacks."""
        def copy(oid: bytes, kind: int) -> None:
            if self.objects.has(oid):
                return
            raw = src.objects.get(oid, kind)
            if kind == KIND_TREE_NODE:
                for e in src.objects.get_tree(oid):
                    if e.kind == KIND_REFERENCE:  # names bytes outside any store
                        self.require_feature(R.FEATURE_TREE_REFERENCE)
                        continue
                    copy(e.id, KIND_TREE_NODE if e.kind == KIND_TREE else KIND_FILE_NODE)
            elif kind == KIND_FILE_NODE:
                node = src.objects.get_file_node(oid)
                for cid, _n in node.entries:
                    copy(cid, KIND_CHUNK if node.level == 0 else KIND_FILE_NODE)
            self.objects.put(oid, kind, raw)

        copy(root, KIND_TREE_NODE)

    # named-state updates ------------------------------------------------------------
    def _update(self, op: str, coll: str, **fields) -> None:
        def build(t: Tables):
            if t.get_collection(coll) is None:
                raise CollectionNotFound(f"no artifact collection {coll!r}")
            if "version" in fields and t.get_version(coll, fields["version"]) is None:
                raise VersionNotFound(f"{coll} has no version v{fields['version']}")
            return {"op": op, "collection": coll, "time_ns": time.time_ns(), **fields}

        append_entry(self, build)

    def set_version_aliases(self, coll: str, version: int, aliases: list[str]) -> None:
        """Make ``aliases`` exactly the aliases of a version (each moves to it)."""
        self._update(R.OP_ALIASES, coll, version=version, set=[check_alias(a) for a in aliases])

    def set_version_tags(self, coll: str, version: int, tags: list[str]) -> None:
        """Replace a version's tags."""
        self._update(R.OP_TAGS, coll, version=version, set=[check_name(t, "tag") for t in tags])

    def set_collection_tags(self, coll: str, tags: list[str]) -> None:
        """Replace a collection's tags."""
        self._update(R.OP_COLLECTION_TAGS, coll, set=[check_name(t, "tag") for t in tags])

    def delete_version(self, coll: str, version: int, delete_aliases: bool = False, reason: str = "user") -> bool:
        """Delete a version: it stops resolving; its log history stays.

        Returns:
            False if it was already deleted.

        Raises:
            DeleteRefused: Aliases other than ``latest`` point at it and not ``delete_aliases``.
            VersionNotFound: No such version.
        """
        done: list[bool] = []

        def build(t: Tables):
            rec = t.get_version(coll, version)
            if rec is None:
                raise VersionNotFound(f"{coll} has no version v{version}")
            if rec.get("state") == "DELETED":
                return None
            aliases = sorted(a for a, v in t.iter_aliases(coll) if v == version and a != "latest")
            if aliases and not delete_aliases:
                raise DeleteRefused(
                    f"{coll}:v{version} has aliases {', '.join(aliases)}; move them first, or delete them with it "
                    "(delete(delete_aliases=True), 'cas rm --delete-aliases')"
                )
            done.append(True)
            return {"op": R.OP_DELETE, "collection": coll, "version": version, "time_ns": time.time_ns(),
                    "delete_aliases": bool(delete_aliases), "reason": reason}

        append_entry(self, build)
        return bool(done)

    def set_collection_ttl(self, name: str, ttl) -> None:
        """Set the default time to live of a collection's versions (seconds, timedelta or None).

        A version's own ``ttl`` wins over it; expired versions are deleted by gc.
        """
        coll = parse_ref(name).collection
        self._update(R.OP_COLLECTION_UPDATE, coll, fields={"ttl": ttl_seconds(ttl)})

    def collection_ttl(self, name: str) -> int | None:
        """Return a collection's default ttl in seconds, or None."""
        coll = parse_ref(name).collection
        self._catch_up()
        with self._read() as txn:
            c = Tables(self.db, txn).get_collection(coll)
        if c is None:
            raise CollectionNotFound(f"no artifact {coll!r} in {self.root}; list them with 'cas ls'")
        return c.get("ttl")

    def gc(self, dry_run: bool = False, grace=None, repack_threshold: float | None = None):
        """Delete expired versions and reclaim what no live version needs (docs/lifecycle.md).

        Args:
            dry_run: Only report what would be deleted and how many bytes freed.
            grace: Seconds (or a timedelta): packs younger than this are never
                touched. Default 24 h, or the config's ``gc_grace_seconds``.
            repack_threshold: Garbage fraction at which a pack is rewritten (default 0.5).

        Returns:
            A ``GcReport``.
        """
        from cas.api import gc as _gc

        return _gc.gc(self, dry_run=dry_run, grace_s=None if grace is None else ttl_seconds(grace),
                      repack_threshold=_gc.DEFAULT_REPACK_THRESHOLD if repack_threshold is None else repack_threshold)

    def update_version_fields(self, coll: str, version: int, fields: dict) -> None:
        """Change description, metadata or ttl of a version."""
        self._update(R.OP_UPDATE, coll, version=version, fields=fields)

    # queries --------------------------------------------------------------------------
    def _read(self):
        return self.db.read()

    def version_record(self, coll: str, version: int) -> dict:
        """Return the index record of a version."""
        with self._read() as txn:
            rec = Tables(self.db, txn).get_version(coll, version)
        if rec is None:
            raise VersionNotFound(f"{coll} has no version v{version}")
        return rec

    def _version(self, coll: str, version: int) -> ArtifactVersion:
        return _version_of(self, coll, self.version_record(coll, version))

    def _version_by_seq(self, coll: str, seq: int) -> ArtifactVersion:
        with self._read() as txn:
            for rec in Tables(self.db, txn).iter_versions(coll, reverse=True):
                if rec["seq"] == seq:
                    return _version_of(self, coll, rec)
        raise VersionNotFound(f"{coll} has no version published at log entry {seq}")

    def aliases_of(self, coll: str, version: int) -> list[str]:
        """Return the aliases that point at a version."""
        with self._read() as txn:
            return sorted(a for a, v in Tables(self.db, txn).iter_aliases(coll) if v == version)

    def collection_tags(self, coll: str) -> list[str]:
        """Return a collection's tags."""
        with self._read() as txn:
            c = Tables(self.db, txn).get_collection(coll)
        return list(c["tags"]) if c else []

    def artifact(self, ref: str) -> ArtifactVersion:
        """Return the version a reference names (``[project/]name[:vN|:semver|:alias]``).

        Raises:
            InvalidReference: The reference does not parse.
            VersionNotFound: No such collection, version or alias.
        """
        self._catch_up()
        r = parse_ref(ref)
        coll = r.collection
        with self._read() as txn:
            t = Tables(self.db, txn)
            c = t.get_collection(coll)
            if c is None:
                raise CollectionNotFound(f"no artifact {coll!r} in {self.root}; list them with 'cas ls'")
            sel = r.selector or "latest"
            idx = r.version_index
            if idx is None and r.semver is not None:  # a semver wins over an alias spelled the same
                idx = t.get_semver(coll, r.semver)
            if idx is None:
                idx = t.get_alias(coll, sel)
                if idx is None and sel == "latest":
                    raise VersionDeleted(f"every version of {coll} was deleted; see 'cas log {coll} --all'")
                if idx is None:
                    have = sorted(a for a, _ in t.iter_aliases(coll))
                    raise VersionNotFound(f"{coll} has no alias {sel!r} (aliases: {', '.join(have) or 'none'})")
            rec = t.get_version(coll, idx)
            if rec is None:
                raise VersionNotFound(f"{coll} has no version v{idx} (versions v0..v{c['n_versions'] - 1})")
        if rec.get("state") == "DELETED":
            raise VersionDeleted(
                f"{coll}:v{rec['version']} was deleted ({rec.get('delete_reason') or 'user'}); "
                f"its history stays in 'cas log {coll} --all'"
            )
        return _version_of(self, coll, rec)

    def artifacts(self, name: str, include_deleted: bool = False) -> list[ArtifactVersion]:
        """Return the versions of a collection, newest first (deleted ones only if asked)."""
        self._catch_up()
        r = parse_ref(name)
        with self._read() as txn:
            t = Tables(self.db, txn)
            if t.get_collection(r.collection) is None:
                raise CollectionNotFound(f"no artifact {r.collection!r} in {self.root}")
            recs = [rec for rec in t.iter_versions(r.collection, reverse=True)
                    if include_deleted or rec.get("state") != "DELETED"]
        return [_version_of(self, r.collection, rec) for rec in recs]

    # lineage and links (cas.api.runs, cas.api.links, cas.api.lineage) ----------------
    def run(self, job_type: str | None = None, name: str | None = None, config: dict | None = None):
        """Start a Run: use it as a context manager (``with repo.run(job_type="train") as run:``).

        The run ends 'finished' when the block exits normally and 'failed' when it
        raises; without ``with``, call ``run.finish()``.

        Raises:
            InvalidName: Bad ``job_type`` or ``name``.
            InvalidMetadata: ``config`` is not storable.
        """
        from cas.api.runs import start_run

        return start_run(self, job_type, name, config)

    def runs(self, job_type: str | None = None) -> list:
        """Return the runs of this store, oldest first."""
        from cas.api.runs import list_runs

        return list_runs(self, job_type)

    def get_run(self, run_id: str):
        """Return a run by id or unique id prefix.

        Raises:
            NotFound: No such run.
        """
        from cas.api.runs import get_run

        return get_run(self, run_id)

    def links_to(self, coll: str, version: int) -> list[tuple[str, int]]:
        """Return ``(collection key, version)`` of the live links to a version."""
        from cas.api.links import live_links

        with self._read() as txn:
            return live_links(Tables(self.db, txn), coll, version)

    def lineage(self, ref: str, depth: int | None = None, direction: str = "both") -> dict:
        """Return the graph of runs and versions around a version (see ``cas.api.lineage``)."""
        from cas.api.lineage import lineage

        return lineage(self, self.artifact(ref), depth, direction)

    def collections(self, type: str | None = None) -> list[dict]:
        """Return collections (``project``, ``name``, ``type``, ``versions``, ``tags``), by name."""
        self._catch_up()
        out = []
        with self._read() as txn:
            for coll, c in Tables(self.db, txn).iter_collections():
                if type is None or c["type"] == type:
                    project, _, name = coll.partition("/")
                    out.append({"project": project, "name": name, "type": c["type"],
                                "versions": c["n_versions"], "tags": list(c["tags"])})
        return out

    def types(self) -> list[str]:
        """Return the artifact types in use."""
        return sorted({c["type"] for c in self.collections()})

    def iter_version_records(self) -> Iterator[tuple[str, dict]]:
        """Yield ``(collection, record)`` for every version."""
        with self._read() as txn:
            t = Tables(self.db, txn)
            colls = [c for c, _ in t.iter_collections()]
            recs = [(c, r) for c in colls for r in t.iter_versions(c)]
        yield from recs

    def _catch_up(self) -> None:
        with self._read() as txn:
            seq = Tables(self.db, txn).log_seq()
        if self.log.read(seq + 1) is not None:
            catch_up(self.db, self.log, self.layout.packs)
            self.objects.refresh()

    # content ---------------------------------------------------------------------------
    def read_file_bytes(self, file_id: bytes, where: str = "") -> bytes:
        """Return a stored file's whole content (verified)."""
        return b"".join(self.objects.get(cid, KIND_CHUNK, where) for cid, _ in self.objects.iter_chunks(file_id, where))

    def reference_client(self):
        """Return a client that lists, fetches and checks referenced objects (one per operation)."""
        from cas.api.references import ReferenceClient

        return ReferenceClient(self.ingester, self.reference_options)

    def download_tree(self, root_id: bytes, root: str, where: str, prefix: str, strategy: str, progress=None,
                      allow_missing_references: bool = False) -> int:
        """Download a tree into a directory (see ``cas.api.download.download``)."""
        from cas.api import download as _download
        from cas.format.names import normalize_prefix

        return _download.download(self.objects, self.ingester, root_id, root, where, normalize_prefix(prefix),
                                  strategy, progress, refs=self.reference_client(),
                                  allow_missing_references=allow_missing_references)

    def checkout_tree(self, root_id: bytes, root: str, where: str, progress=None,
                      allow_missing_references: bool = False) -> int:
        """Make a directory hold exactly a tree."""
        from cas.api import download as _download

        return _download.checkout(self.objects, self.ingester, root_id, root, where, progress,
                                  refs=self.reference_client(), allow_missing_references=allow_missing_references)

    def verify_tree(self, root_id: bytes, root: str, where: str):
        """Compare a directory with a tree: ``(missing, modified, unexpected, unchecked)``."""
        from cas.api import download as _download

        return _download.verify_dir(self.objects, self.ingester, root_id, root, where,
                                    refs=self.reference_client())

    def diff(self, old_ref: str, new_ref: str) -> list[Change]:
        """Return file-level changes between two versions."""
        return list(self.iter_diff(old_ref, new_ref))

    def iter_diff(self, old_ref: str, new_ref: str) -> Iterator[Change]:
        """Yield file-level changes between two versions in path order (both are resolved first)."""
        a, b = self.artifact(old_ref), self.artifact(new_ref)
        from cas.api.diff import diff_trees

        return diff_trees(self.objects, a._rec["digest"], b._rec["digest"])

    # maintenance ---------------------------------------------------------------------
    def verify(self, progress=None, check_references: bool = True) -> FsckReport:
        """Check the whole store; return findings naming affected versions and files.

        With ``check_references``, every distinct referenced object is looked up
        at its source (no download): a missing or changed one is a finding, one
        that cannot be reached is a warning.
        """
        self._catch_up()
        from cas.api.fsck import fsck

        return fsck(self, progress, check_references=check_references)

    def verify_version(self, version: ArtifactVersion, check_references: bool = True) -> list[Finding]:
        """Read and hash every object of one version; return findings (empty if intact).

        Referenced objects are looked up at their source; ones that could not be
        checked are findings of kind ``reference-unreachable``.
        """
        from cas.api.fsck import verify_version

        return verify_version(self, version, check_references=check_references)

    def rebuild_index(self) -> tuple[int, int]:
        """Delete and rebuild the LMDB index from packs and log; return (packs, last seq).

        Run it while no other process uses the store: one that keeps the old index
        open goes on writing to the deleted file.

        Raises:
            UsageError: Another Repo handle in this process has the store open.
        """
        if self.db.refs > 1:
            raise UsageError(
                f"{self.db.refs - 1} other Repo handle(s) in this process use {self.root}; close them before "
                "rebuilding the index"
            )
        self.objects.close()
        path = self.db.path
        self.db.close()
        drop_index(path)
        self.db = open_index(path)
        self.objects = ObjectStore(self.layout, self.db, int(self.config["zstd_level"]))
        self._ingester = None
        n, seq = rebuild(self.db, self.log, self.layout.packs)
        with self.db.write() as txn:
            Tables(self.db, txn).put_meta(K_INDEX_READY, b"1")
        return n, seq

    def stats(self) -> dict:
        """Return counts and sizes: collections, versions, objects, packs, bytes."""
        self._catch_up()
        with self._read() as txn:
            t = Tables(self.db, txn)
            n_coll = t.count("collections")
            n_obj = t.count("objects")
            n_packs = t.count("packs")
        versions = list(self.iter_version_records())
        pack_bytes = 0
        for dirpath, _d, files in os.walk(self.layout.packs):
            pack_bytes += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
        logical = sum(r["size"] for _, r in versions)
        return {
            "root": self.root, "collections": n_coll, "versions": len(versions), "objects": n_obj,
            "packs": n_packs, "pack_bytes": pack_bytes, "logical_bytes": logical,
            "dedup_ratio": round(logical / pack_bytes, 3) if pack_bytes else None,
            "chunker": self.config["chunker"], "zstd_level": self.config["zstd_level"],
        }


def _optional(**fields) -> dict:
    """Return the fields that are not None (optional log entry fields are omitted, §7.2)."""
    return {k: v for k, v in fields.items() if v is not None}


def _create_store(store: str, chunker: ChunkerParams | None = None, zstd_level: int | None = None) -> None:
    layout = StoreLayout(store)
    try:
        layout.make_dirs()
    except OSError as exc:
        raise StorageError(f"cannot create a repository at {store}: {exc.strerror}") from exc
    config = {
        "format_version": R.FORMAT_VERSION,
        "chunker": (chunker or DEFAULT_PARAMS).spec,
        "zstd_level": DEFAULT_ZSTD_LEVEL if zstd_level is None else zstd_level,
        "store_id": os.urandom(16).hex(),
    }
    if os.path.exists(layout.config):
        return
    write_durable(layout.config, R.encode_config(config))
