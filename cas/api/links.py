"""Registry links: versions of one collection that resolve to another's content (W&B ``link_artifact``).

A ``link`` log entry publishes the next version of the target collection with
the source's digest, so it downloads like any version; the source keeps its own
history and is never changed or deleted through a link (docs/format.md §7.2).
"""

from __future__ import annotations

import time

from cas.api.publish import append_entry
from cas.api.refs import parse_ref
from cas.errors import NotALink, UsageError
from cas.format import records as R
from cas.format.names import check_alias
from cas.index.tables import Tables

DELETED = "DELETED"


def parse_target(target: str, default_project: str) -> str:
    """Return the collection key of a link target ``[project/]collection``.

    Raises:
        InvalidReference: The target does not parse or names a version.
    """
    from cas.errors import InvalidReference

    r = parse_ref(target, default_project)
    if r.selector is not None:
        raise InvalidReference(target, "a link target is a collection: drop the ':selector'")
    return r.collection


def live_links(t: Tables, src_coll: str, src_version: int) -> list[tuple[str, int]]:
    """Return ``(collection, version)`` of the links to a source version that are not deleted."""
    out = []
    for coll, n in t.iter_links(src_coll, src_version):
        rec = t.get_version(coll, n)
        if rec is not None and rec.get("state") != DELETED:
            out.append((coll, n))
    return out


def link(repo, version, target: str, aliases=()) -> tuple[str, int]:
    """Link ``version`` (its source, if it is a link itself) into the collection ``target``.

    Linking a source that already has a live link in ``target`` returns that
    link (adding the requested aliases to it), as W&B does.

    Returns:
        ``(collection, version)`` of the link version.

    Raises:
        InvalidReference: ``target`` is not ``[project/]collection``.
        InvalidName: A bad alias.
        UsageError: ``target`` is the source's own collection or holds another type.
    """
    aliases = [check_alias(a) for a in ([aliases] if isinstance(aliases, str) else aliases) if a != "latest"]
    src_coll, src_n = version._source_key()
    coll = parse_target(target, version.project)
    if coll == src_coll:
        raise UsageError(f"cannot link {version.qualified_name} into its own collection {coll}; name another one")
    found: list[tuple[str, int]] = []

    def build(t: Tables):
        src = t.get_version(src_coll, src_n)
        if src is None or src.get("state") == DELETED:
            raise UsageError(f"{src_coll}:v{src_n} is deleted or unknown; it cannot be linked")
        c = t.get_collection(coll)
        if c is not None and c["type"] != src["type"]:
            raise UsageError(f"{coll} holds artifacts of type {c['type']!r}, not {src['type']!r}; link into another "
                             "collection")
        for lc, ln in live_links(t, src_coll, src_n):
            if lc == coll:
                found.append(ln)
                have = {a for a, v in t.iter_aliases(coll) if v == ln}
                if set(aliases) <= have:
                    return None
                return {"op": R.OP_ALIASES, "collection": coll, "version": ln,
                        "set": sorted(have - {"latest"} | set(aliases)), "time_ns": time.time_ns()}
        return {"op": R.OP_LINK, "collection": coll, "version": c["n_versions"] if c else 0,
                "source_collection": src_coll, "source_version": src_n, "aliases": aliases,
                "time_ns": time.time_ns()}

    published = append_entry(repo, build)
    if found:
        return coll, found[0]
    with repo._read() as txn:
        for rec in Tables(repo.db, txn).iter_versions(coll, reverse=True):
            if rec["seq"] == published[0]:
                return coll, rec["version"]
    raise UsageError(f"linking {version.qualified_name} into {coll} was not applied; run 'cas fsck'")


def unlink(repo, version) -> None:
    """Remove a link version; its source is untouched.

    Raises:
        NotALink: ``version`` is not a link.
    """
    if not version.is_link:
        raise NotALink(version.qualified_name, "unlinked")
    coll, n = version._collection, version.version_index

    def build(t: Tables):
        rec = t.get_version(coll, n)
        if rec is None or rec.get("state") == DELETED:
            return None
        return {"op": R.OP_DELETE, "collection": coll, "version": n, "time_ns": time.time_ns()}

    append_entry(repo, build)
