"""CLI verbs for lineage and registry links: lineage, runs, link, unlink.

Each ``cmd_<verb>(args)`` returns the exit status (None means 0).
"""

from __future__ import annotations

from cas.cli.commands import _repo
from cas.cli.render import print_json, table

# how a child relates to its parent in each tree, by (tree, child kind)
_LABELS = {
    ("up", "run"): "logged by",
    ("up", "version"): "used",
    ("up", "link"): "link of",
    ("down", "run"): "used by",
    ("down", "version"): "logged",
    ("down", "link"): "linked as",
}


def _describe(node: dict) -> str:
    if node["kind"] == "run":
        extra = ", ".join(x for x in (node.get("job_type"), node.get("state")) if x)
        return f"run {node.get('name') or node['run_id']} ({node['run_id'][:12]}{', ' + extra if extra else ''})"
    bits = [node.get("type") or "?"]
    if node.get("semver"):
        bits.append(node["semver"])
    if node.get("state") and node["state"] != "COMMITTED":
        bits.append(node["state"])
    return f"{node['id']} ({', '.join(bits)})"


def render_tree(tree: dict, nodes: dict, way: str) -> list[str]:
    """Return the lines of one lineage tree (box-drawing, like ``tree``)."""
    lines = [_describe(nodes[tree["node"]])]

    def walk(t: dict, parent: dict, prefix: str) -> None:
        kids = t["children"]
        for i, child in enumerate(kids):
            last = i == len(kids) - 1
            node = nodes[child["node"]]
            kind = "link" if node["kind"] == "version" and _is_link_step(parent, node, way) else node["kind"]
            more = " (cycle)" if child.get("repeat") else ""
            lines.append(f"{prefix}{'└── ' if last else '├── '}{_LABELS[(way, kind)]} {_describe(node)}{more}")
            walk(child, node, prefix + ("    " if last else "│   "))

    walk(tree, nodes[tree["node"]], "")
    return lines


def _is_link_step(parent: dict, child: dict, way: str) -> bool:
    if parent["kind"] != "version":
        return False
    return parent.get("link_of") == child["id"] if way == "up" else child.get("link_of") == parent["id"]


def cmd_lineage(args) -> int:
    """Print the producers and consumers of a version."""
    with _repo(args) as repo:
        g = repo.lineage(args.ref, depth=args.depth, direction=args.direction)
        if args.json:
            print_json(g)
            return 0
        nodes = {n["id"]: n for n in g["nodes"]}
        for way, title in (("up", "upstream (producers)"), ("down", "downstream (consumers)")):
            tree = g["upstream" if way == "up" else "downstream"]
            if tree is None:
                continue
            print(f"{title}:")
            for line in render_tree(tree, nodes, way):
                print("  " + line)
    return 0


def cmd_runs(args) -> int:
    """List runs."""
    with _repo(args) as repo:
        runs = repo.runs(job_type=args.job_type)
        if args.json:
            print_json([r.json_encode() for r in runs])
            return 0
        if not runs:
            print(f"no runs in {repo.root}; start one with repo.run(job_type=...) in Python")
            return 0
        rows = []
        for r in runs:
            rows.append([r.id[:12], r.name, r.job_type or "-", r.state, r.created_at[:19],
                         str(len(r.used_artifacts())), str(len(r.logged_artifacts()))])
        table(rows, ["RUN", "NAME", "JOB TYPE", "STATE", "STARTED", "USED", "LOGGED"])
    return 0


def cmd_link(args) -> int:
    """Link a version into a registry collection."""
    with _repo(args) as repo:
        link = repo.artifact(args.ref).link(args.target, aliases=args.alias)
        if args.json:
            print_json(link.json_encode())
        else:
            print(f"linked {link.source_qualified_name} as {link.qualified_name} aliases: {', '.join(link.aliases)}")
    return 0


def cmd_unlink(args) -> int:
    """Remove a link version."""
    with _repo(args) as repo:
        v = repo.artifact(args.ref)
        v.unlink()
        if args.json:
            print_json({"unlinked": v.qualified_name, "source": v.source_qualified_name})
        else:
            print(f"unlinked {v.qualified_name} (source {v.source_qualified_name} unchanged)")
    return 0
