"""Lineage queries: which runs produced and consumed a version, transitively.

Upstream follows version -> the run that logged it -> the versions that run
used; downstream follows version -> the runs that used it -> the versions
they logged. A link stands between its source and itself (edge ``linked``)
and costs no depth. Read-only; returns plain data for the CLI to render.
"""

from __future__ import annotations

from cas.api.links import live_links
from cas.errors import UsageError
from cas.index.tables import E_LOGGED, E_USED, Tables

DIRECTIONS = ("up", "down", "both")


def version_node_id(coll: str, version: int) -> str:
    """Return the node id of a version: 'project/name:vN'."""
    return f"{coll}:v{version}"


def run_node_id(run_id: str) -> str:
    """Return the node id of a run: 'run:<id>'."""
    return f"run:{run_id}"


class _Graph:
    def __init__(self, t: Tables) -> None:
        self.t = t
        self.nodes: dict[str, dict] = {}
        self.edges: list[dict] = []
        self._edge_keys: set = set()

    def version(self, coll: str, n: int) -> str:
        nid = version_node_id(coll, n)
        if nid not in self.nodes:
            rec = self.t.get_version(coll, n) or {}
            link = rec.get("link")
            self.nodes[nid] = {
                "id": nid, "kind": "version", "type": rec.get("type"), "state": rec.get("state"),
                "semver": rec.get("semver"), "run_id": rec.get("run_id"),
                "link_of": version_node_id(link["collection"], link["version"]) if link else None,
            }
        return nid

    def run(self, run_id: str) -> str:
        nid = run_node_id(run_id)
        if nid not in self.nodes:
            rec = self.t.get_run(run_id) or {}
            self.nodes[nid] = {"id": nid, "kind": "run", "run_id": run_id, "name": rec.get("name"),
                               "job_type": rec.get("job_type"), "state": rec.get("state")}
        return nid

    def edge(self, src: str, dst: str, kind: str) -> None:
        if (src, dst, kind) not in self._edge_keys:
            self._edge_keys.add((src, dst, kind))
            self.edges.append({"from": src, "to": dst, "kind": kind})

    def upstream(self, coll: str, n: int, depth: int | None, seen: set) -> dict:
        """Return the tree of producers above a version."""
        me = self.version(coll, n)
        tree = {"node": me, "children": []}
        if me in seen:
            tree["repeat"] = True
            return tree
        seen = seen | {me}
        rec = self.t.get_version(coll, n) or {}
        link = rec.get("link")
        if link:
            src = self.version(link["collection"], link["version"])
            self.edge(src, me, "linked")
            tree["children"].append(self.upstream(link["collection"], link["version"], depth, seen))
            return tree
        run_id = rec.get("run_id")
        if run_id is None or depth == 0:
            return tree
        rn = self.run(run_id)
        self.edge(rn, me, "logged")
        run_tree = {"node": rn, "children": []}
        for uc, un in self.t.iter_run_edges(E_USED, run_id):
            self.edge(self.version(uc, un), rn, "used")
            run_tree["children"].append(self.upstream(uc, un, None if depth is None else depth - 1, seen))
        tree["children"].append(run_tree)
        return tree

    def downstream(self, coll: str, n: int, depth: int | None, seen: set) -> dict:
        """Return the tree of consumers below a version."""
        me = self.version(coll, n)
        tree = {"node": me, "children": []}
        if me in seen:
            tree["repeat"] = True
            return tree
        seen = seen | {me}
        rec = self.t.get_version(coll, n) or {}
        if not rec.get("link"):
            for lc, ln in live_links(self.t, coll, n):
                self.edge(me, self.version(lc, ln), "linked")
                tree["children"].append(self.downstream(lc, ln, depth, seen))
        if depth == 0:
            return tree
        for run_id in self.t.iter_version_edges(E_USED, coll, n):
            rn = self.run(run_id)
            self.edge(me, rn, "used")
            run_tree = {"node": rn, "children": []}
            for oc, on in self.t.iter_run_edges(E_LOGGED, run_id):
                self.edge(rn, self.version(oc, on), "logged")
                run_tree["children"].append(self.downstream(oc, on, None if depth is None else depth - 1, seen))
            tree["children"].append(run_tree)
        return tree


def lineage(repo, version, depth: int | None = None, direction: str = "both") -> dict:
    """Return the lineage graph around ``version``.

    Args:
        repo: The open Repo.
        version: The ArtifactVersion to start from.
        depth: How many run layers to follow each way; None for all.
        direction: 'up' (producers), 'down' (consumers) or 'both'.

    Returns:
        ``{"root", "depth", "direction", "nodes", "edges", "upstream", "downstream"}``:
        nodes are version and run dicts keyed by ``id``; edges run with the data
        (``logged``: run -> version, ``used``: version -> run, ``linked``:
        source -> link); ``upstream``/``downstream`` are trees of
        ``{"node", "children"}`` (None when not asked for).

    Raises:
        UsageError: A bad ``direction`` or a negative ``depth``.
    """
    if direction not in DIRECTIONS:
        raise UsageError(f"lineage direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool) or depth < 0):
        raise UsageError(f"lineage depth must be a non-negative integer, not {depth!r}")
    coll, n = version._collection, version.version_index
    with repo._read() as txn:
        g = _Graph(Tables(repo.db, txn))
        root = g.version(coll, n)
        up = g.upstream(coll, n, depth, set()) if direction in ("up", "both") else None
        down = g.downstream(coll, n, depth, set()) if direction in ("down", "both") else None
    return {"root": root, "depth": depth, "direction": direction, "nodes": list(g.nodes.values()),
            "edges": g.edges, "upstream": up, "downstream": down}
