"""Runs: the jobs that use and produce versions (W&B ``wandb.init``, Comet experiments).

A run is started by a ``run`` log entry (state ``running``) and ended by a
second one (``finished``, or ``failed`` when its ``with`` block raised). Each
``use_artifact`` appends a ``use`` entry; each ``log_artifact`` records the
run id on the ``version`` entry it publishes (docs/format.md §7.2).
"""

from __future__ import annotations

import time
import uuid

from cas.api.publish import append_entry
from cas.api.version import _iso
from cas.errors import NotFound, UsageError
from cas.format import records as R
from cas.format.names import check_name
from cas.index.tables import E_LOGGED, E_USED, Tables

RUNNING, FINISHED, FAILED = R.RUN_STATES


class Run:
    """One run: a context manager that records what it used and what it logged."""

    def __init__(self, repo, rec: dict) -> None:
        self._repo = repo
        self._rec = rec

    # identity ----------------------------------------------------------------------
    @property
    def id(self) -> str:
        """Run id: 32 lowercase hex (Comet's experiment key)."""
        return self._rec["id"]

    @property
    def name(self) -> str:
        """Display name (default: '<job_type>-<first 8 hex of the id>')."""
        return self._rec["name"]

    @property
    def job_type(self) -> str | None:
        """What kind of job this is, e.g. 'train'."""
        return self._rec.get("job_type")

    @property
    def config(self) -> dict:
        """The run's configuration as given when it started."""
        return dict(self._rec.get("config") or {})

    @property
    def state(self) -> str:
        """'running', 'finished' or 'failed' (as of the last reload)."""
        return self._rec["state"]

    @property
    def created_at(self) -> str:
        """ISO-8601 UTC time the run started."""
        return _iso(self._rec["created_ns"])

    @property
    def ended_at(self) -> str | None:
        """ISO-8601 UTC time the run ended, or None while running."""
        return _iso(self._rec.get("ended_ns"))

    def reload(self) -> "Run":
        """Re-read the run's record from the index."""
        self._rec = get_run(self._repo, self.id)._rec
        return self

    # recording ------------------------------------------------------------------
    def _check_running(self, action: str) -> None:
        if self.state != RUNNING:
            raise UsageError(f"run {self.name} ({self.id}) is {self.state}; cannot {action}: start a new run")

    def use_artifact(self, ref_or_version, project: str | None = None):
        """Record that this run uses a version and return it.

        Args:
            ref_or_version: A reference string (``[project/]name[:selector]``) or an ArtifactVersion.
            project: Project for a reference without one.

        Returns:
            The ArtifactVersion.

        Raises:
            UsageError: The run has ended.
            VersionNotFound: The reference does not resolve.
        """
        from cas.api.version import ArtifactVersion

        self._check_running("use artifacts")
        if isinstance(ref_or_version, ArtifactVersion):
            version = self._repo.artifact(ref_or_version.qualified_name)
            if version.digest != ref_or_version.digest:
                raise UsageError(f"{ref_or_version.qualified_name} comes from another repository and differs from "
                                 f"the version of that name in {self._repo.root}; use a version of this repository")
        else:
            ref = ref_or_version
            if project is not None and "/" not in ref:
                ref = f"{check_name(project, 'project name')}/{ref}"
            version = self._repo.artifact(ref)
        coll, n = version._collection, version.version_index

        def build(t: Tables):
            if t.has_edge(E_USED, self.id, coll, n):
                return None
            return {"op": R.OP_USE, "run_id": self.id, "collection": coll, "version": n, "time_ns": time.time_ns()}

        append_entry(self._repo, build)
        return version

    def log_artifact(self, artifact, aliases=(), tags=(), project: str | None = None, version: str | None = None):
        """Log a draft as produced by this run (see ``Repo.log_artifact``).

        Raises:
            UsageError: The run has ended.
        """
        self._check_running("log artifacts")
        return self._repo.log_artifact(artifact, aliases=aliases, tags=tags, project=project, version=version,
                                       run=self)

    def link_artifact(self, artifact, target_path: str, aliases=()):
        """Link a logged version (or a draft this run logged) into ``target_path`` (W&B ``run.link_artifact``).

        Raises:
            UsageError: ``artifact`` is a draft that was never logged, or see ``ArtifactVersion.link``.
        """
        from cas.api.artifact import Artifact

        version = artifact.logged_version if isinstance(artifact, Artifact) else artifact
        if version is None:
            raise UsageError(f"artifact {artifact.name!r} is not logged yet; log it before linking it")
        return version.link(target_path, aliases=aliases)

    def used_artifacts(self) -> list:
        """Return the versions this run used, in collection and version order."""
        return self._versions(E_USED)

    def logged_artifacts(self) -> list:
        """Return the versions this run logged, in collection and version order."""
        return self._versions(E_LOGGED)

    def _versions(self, kind: bytes) -> list:
        with self._repo._read() as txn:
            pairs = list(Tables(self._repo.db, txn).iter_run_edges(kind, self.id))
        return [self._repo._version(c, n) for c, n in pairs]

    # ending --------------------------------------------------------------------------
    def finish(self, exit_code: int = 0) -> None:
        """End the run: 'finished' if ``exit_code`` is 0, else 'failed'. A second call does nothing."""
        if self.state != RUNNING:
            return
        state = FINISHED if exit_code == 0 else FAILED
        append_entry(self._repo, lambda t: {"op": R.OP_RUN, "run_id": self.id, "state": state,
                                            "time_ns": time.time_ns()})
        self.reload()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(0 if exc_type is None else 1)

    def json_encode(self) -> dict:
        """Return a JSON-ready description of this run."""
        return {"id": self.id, "name": self.name, "job_type": self.job_type, "config": self.config,
                "state": self.state, "created_at": self.created_at, "ended_at": self.ended_at}

    def __eq__(self, other) -> bool:
        return isinstance(other, Run) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<Run {self.name} {self.id} {self.job_type or '-'} {self.state}>"


def start_run(repo, job_type: str | None = None, name: str | None = None, config: dict | None = None) -> Run:
    """Start a run: append its first ``run`` entry and return it.

    Raises:
        InvalidName: ``job_type`` or ``name`` break the name rule.
        InvalidMetadata: ``config`` is not storable.
    """
    job_type = check_name(job_type, "job type") if job_type is not None else None
    name = check_name(name, "run name") if name is not None else None
    config = R.check_metadata(config)
    run_id = uuid.uuid4().hex
    entry = {"op": R.OP_RUN, "run_id": run_id, "state": RUNNING, "time_ns": time.time_ns(), "config": config,
             "name": name or f"{job_type or 'run'}-{run_id[:8]}"}
    if job_type is not None:
        entry["job_type"] = job_type
    append_entry(repo, lambda t: entry)
    return get_run(repo, run_id)


def get_run(repo, run_id: str) -> Run:
    """Return a run by id (or by a unique id prefix of at least 4 characters).

    Raises:
        NotFound: No such run, or the prefix is ambiguous.
    """
    repo._catch_up()
    with repo._read() as txn:
        t = Tables(repo.db, txn)
        rec = t.get_run(run_id) if isinstance(run_id, str) and run_id else None
        if rec is None and isinstance(run_id, str) and len(run_id) >= 4:
            matches = [r for r in t.iter_runs() if r["id"].startswith(run_id)]
            if len(matches) == 1:
                rec = matches[0]
            elif matches:
                raise NotFound(f"run id prefix {run_id!r} matches {len(matches)} runs; give more characters")
    if rec is None:
        raise NotFound(f"no run {run_id!r} in {repo.root}; list runs with 'cas runs'")
    return Run(repo, rec)


def list_runs(repo, job_type: str | None = None) -> list[Run]:
    """Return the runs of the store, oldest first."""
    repo._catch_up()
    with repo._read() as txn:
        recs = list(Tables(repo.db, txn).iter_runs())
    recs.sort(key=lambda r: r["seq"])
    return [Run(repo, r) for r in recs if job_type is None or r.get("job_type") == job_type]


def logged_by(repo, coll: str, version: int) -> Run | None:
    """Return the run that logged a version, or None."""
    rec = repo.version_record(coll, version)
    run_id = rec.get("run_id")
    return get_run(repo, run_id) if run_id else None


def used_by(repo, coll: str, version: int) -> list[Run]:
    """Return the runs that used a version, oldest first."""
    with repo._read() as txn:
        t = Tables(repo.db, txn)
        recs = [t.get_run(r) for r in t.iter_version_edges(E_USED, coll, version)]
    return [Run(repo, r) for r in sorted((r for r in recs if r), key=lambda r: r["seq"])]

