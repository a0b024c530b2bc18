"""One function per CLI verb: call the API, render the result.

Each ``cmd_<verb>(args)`` returns the exit status (None means 0).
"""

from __future__ import annotations

import json
import os
import sys

from cas.cli.render import Progress, human_size, print_json, print_json_list, table, table_stream


def _repo(args):
    from cas.api.repo import Repo

    return Repo(args.repo) if args.repo else Repo()


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def cmd_init(args) -> int:
    """Create a repository."""
    from cas.api.repo import Repo

    target = args.repo or args.path
    with Repo.init(target) as repo:
        if args.json:
            print_json({"root": repo.root})
        else:
            print(f"initialized empty cas repository in {repo.root}")
    return 0


def _metadata(items: list[str]) -> dict:
    from cas.errors import UsageError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid --metadata {item!r}: use KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _is_uri(path: str) -> bool:
    return "://" in path


def _uri_basename(uri: str) -> str:
    from urllib.parse import urlparse

    u = urlparse(uri)
    return os.path.basename(u.path.rstrip("/")) or u.netloc


def cmd_add(args) -> int:
    """Version paths (and URIs, added as references) as the next version of an artifact."""
    from cas.api.artifact import Artifact
    from cas.errors import UsageError

    paths = [p if _is_uri(p) else os.path.abspath(p) for p in args.paths]
    for p in paths:
        if not _is_uri(p) and not os.path.exists(p):
            raise UsageError(f"{p} does not exist")
    if args.max_objects is not None and not any(_is_uri(p) for p in paths):
        raise UsageError("--max-objects applies to references (URIs like s3://bucket/prefix) only")
    first = _uri_basename(paths[0]) if _is_uri(paths[0]) else os.path.basename(paths[0].rstrip(os.sep))
    name = args.name or first or "root"
    with _repo(args) as repo:
        art = Artifact(name, args.type, description=args.description, metadata=_metadata(args.metadata), repo=repo)
        progress = Progress(f"adding {name}")
        repo.ingester.progress = progress
        before = _latest_digest(repo, args.project, name)
        try:
            for p in paths:
                if _is_uri(p):
                    art.add_reference(p, name=None if len(paths) == 1 else _uri_basename(p),
                                      checksum=not args.no_checksum, max_objects=args.max_objects)
                elif os.path.isdir(p):
                    art.add_dir(p, name=None if len(paths) == 1 else os.path.basename(p), policy="mutable")
                else:
                    art.add_file(p, name=os.path.basename(p), policy="immutable")
            v = repo.log_artifact(art, aliases=args.alias, tags=args.tag, project=args.project,
                                  version=args.semver or args.bump)
        finally:
            repo.ingester.progress = None
            progress.close()
        unchanged = before == v.digest
        if args.json:
            print_json({**v.json_encode(), "unchanged": unchanged})
        else:
            verb = "unchanged" if unchanged else "logged"
            print(f"{verb} {v.qualified_name}{f' ({v.semver})' if v.semver else ''} {v.digest} "
                  f"({v.file_count} files, {human_size(v.size)}) aliases: {', '.join(v.aliases)}")
    return 0


def _latest_digest(repo, project, name):
    from cas.errors import NotFound

    try:
        return repo.artifact(f"{project or 'default'}/{name}:latest").digest
    except NotFound:
        return None


def cmd_ls(args) -> int:
    """List collections, or the files of a version."""
    with _repo(args) as repo:
        if args.ref:
            # streamed: a million-file version is never held in memory
            v = repo.artifact(args.ref)
            if args.json:
                print_json_list(e.to_dict() for e in v.iter_entries(args.prefix))
            else:
                table_stream(lambda: ([e.path, "-" if e.size is None else human_size(e.size),
                                       _short(e.digest) if e.digest else "-", e.ref or ""]
                                      for e in v.iter_entries(args.prefix)),
                             ["PATH", "SIZE", "DIGEST", "REF"], optional=(3,))
            return 0
        colls = repo.collections(type=args.type)
        if args.json:
            print_json(colls)
            return 0
        from cas.errors import NotFound

        rows = []
        for c in colls:
            try:
                latest = repo.artifact(f"{c['project']}/{c['name']}:latest")
            except NotFound:  # every version deleted (or unlinked)
                rows.append([f"{c['project']}/{c['name']}", c["type"], str(c["versions"]), "-", "-", "-", "-"])
                continue
            rows.append([f"{c['project']}/{c['name']}", c["type"], str(c["versions"]), latest.version,
                         human_size(latest.size), str(latest.file_count), latest.created_at[:19]])
        if rows:
            table(rows, ["ARTIFACT", "TYPE", "VERSIONS", "LATEST", "SIZE", "FILES", "CREATED"])
        else:
            print(f"no artifacts in {repo.root}; add one with 'cas add PATH --name NAME'")
    return 0


def cmd_log(args) -> int:
    """Show the version history of a collection."""
    with _repo(args) as repo:
        versions = repo.artifacts(args.name, include_deleted=args.all)
        if args.json:
            print_json([v.json_encode() for v in versions])
            return 0
        for v in versions:
            al = f" ({', '.join(v.aliases)})" if v.aliases else ""
            gone = "  [DELETED]" if v.state == "DELETED" else ""
            print(f"{v.qualified_name}{al}{gone}")
            print(f"  digest  {v.digest}")
            print(f"  date    {v.created_at}")
            print(f"  files   {v.file_count}, {human_size(v.size)}")
            if v.semver:
                print(f"  semver  {v.semver}")
            if v.is_link:
                print(f"  link of {v.source_qualified_name}")
            if v.source_experiment_key and not v.is_link:
                print(f"  run     {v.source_experiment_key}")
            if v.tags:
                print(f"  tags    {', '.join(v.tags)}")
            if v.description:
                print(f"  {v.description}")
    return 0


def cmd_show(args) -> int:
    """Show one version."""
    with _repo(args) as repo:
        v = repo.artifact(args.ref)
        data = v.json_encode()
        refs = v.remote_assets
        data["references"] = len(refs)
        if args.json:
            print_json(data)
            return 0
        for key in ("qualified_name", "type", "digest", "aliases", "tags", "artifact_tags", "size", "file_count",
                    "references", "created_at", "updated_at", "description", "metadata", "commit_hash", "state", "semver"):
            val = data[key]
            if key == "size":
                val = f"{val} ({human_size(val)})"
            elif isinstance(val, list):
                val = ", ".join(val) or "-"
            elif isinstance(val, dict):
                val = json.dumps(val, sort_keys=True, default=str) if val else "-"
            elif val is None:
                val = "-"
            print(f"{key:14} {val}")
        if v.is_link:
            print(f"{'link_of':14} {v.source_qualified_name}")
        if v.source_experiment_key:
            print(f"{'run':14} {v.source_experiment_key}")
        for e in refs[:10]:
            print(f"  {e.path} -> {e.ref}")
        if len(refs) > 10:
            print(f"  ... {len(refs) - 10} more (cas ls {v.qualified_name})")
    return 0


def cmd_diff(args) -> int:
    """Print changes between two versions."""
    with _repo(args) as repo:
        changes = repo.iter_diff(args.old, args.new)
        if args.json:
            print_json_list(c.to_dict() for c in changes)
            return 0
        mark = {"added": "A", "removed": "D", "modified": "M"}
        for c in changes:
            print(f"{mark[c.status]}  {c.path}")
    return 0


def _write_version(args, label: str, write, done: str) -> int:
    """Resolve ``args.ref``, run ``write(version, progress)`` and report the root written."""
    with _repo(args) as repo:
        v = repo.artifact(args.ref)
        progress = Progress(f"{label} {v.name}")
        try:
            root = write(v, progress)
        finally:
            progress.close()
        if args.json:
            print_json({"root": root, "version": v.qualified_name})
        else:
            print(done.format(root=root, version=v.qualified_name))
    return 0


def cmd_get(args) -> int:
    """Download a version."""
    return _write_version(
        args, "downloading",
        lambda v, progress: v.download(args.dest, path_prefix=args.prefix,
                                       overwrite_strategy=args.strategy or "FAIL", progress=progress,
                                       allow_missing_references=args.allow_missing_references),
        "{version} -> {root}",
    )


def cmd_checkout(args) -> int:
    """Make a directory exactly a version."""
    return _write_version(args, "checking out",
                          lambda v, progress: v.checkout(args.dir, progress=progress,
                                                         allow_missing_references=args.allow_missing_references),
                          "{root} is now {version}")


def cmd_verify(args) -> int:
    """Verify a directory against a version, or the version's stored objects."""
    from cas.errors import VerifyError

    with _repo(args) as repo:
        v = repo.artifact(args.ref)
        if args.dir:
            try:
                unchecked = v.verify(args.dir)
            except VerifyError as exc:
                if args.json:
                    print_json({"ok": False, "missing": exc.missing, "modified": exc.modified,
                                "unexpected": exc.unexpected})
                    return 1
                raise
            if args.json:
                print_json({"ok": True, "missing": [], "modified": [], "unexpected": [], "unchecked": unchecked})
            else:
                for p in unchecked:
                    print(f"warning: {p}: reference checked by size only (its checksum cannot be recomputed locally)",
                          file=sys.stderr)
                print(f"{os.path.abspath(args.dir)} matches {v.qualified_name} ({v.file_count} files)")
            return 0
        findings = repo.verify_version(v)
        if args.json:
            print_json({"ok": not findings, "findings": [f.to_dict() for f in findings]})
        elif findings:
            for f in findings:
                print(str(f), file=sys.stderr)
        else:
            print(f"{v.qualified_name}: all {v.file_count} files intact in the store")
        return 1 if findings else 0


def cmd_alias(args) -> int:
    """Add or remove aliases."""
    with _repo(args) as repo:
        v = repo.artifact(args.ref)
        aliases = v.update_aliases(remove=args.aliases) if args.remove else v.update_aliases(add=args.aliases)
        if args.json:
            print_json({"version": v.qualified_name, "aliases": aliases})
        else:
            print(f"{v.qualified_name} aliases: {', '.join(aliases)}")
    return 0


def cmd_tag(args) -> int:
    """Add or remove version or collection tags."""
    with _repo(args) as repo:
        v = repo.artifact(args.ref)
        if args.collection:
            fn = v.update_artifact_tags
            label = f"{v.project}/{v.collection}"
        else:
            fn = v.update_version_tags
            label = v.qualified_name
        tags = fn(remove=args.tags) if args.remove else fn(add=args.tags)
        if args.json:
            print_json({"target": label, "tags": tags})
        else:
            print(f"{label} tags: {', '.join(tags) or '-'}")
    return 0


def cmd_fsck(args) -> int:
    """Check the whole store."""
    with _repo(args) as repo:
        if args.rebuild_index:
            n, seq = repo.rebuild_index()
            if not args.json:
                print(f"rebuilt index from {n} packs and {seq} log entries")
        progress = Progress("checking packs")
        try:
            report = repo.verify(progress=progress, check_references=not args.no_references)
        finally:
            progress.close()
        if args.json:
            print_json(report.to_dict())
        else:
            for f in report.findings:
                print(str(f))
            for f in report.warnings:
                print(f"warning: {f}")
            status = "ok" if report.ok else f"{len(report.findings)} problem(s)"
            print(f"{status}: {report.n_packs} packs, {report.n_objects} objects, {report.n_versions} versions"
                  + (f", {report.n_orphan_packs} unreferenced packs" if report.n_orphan_packs else "")
                  + (f", {report.n_tmp_files} temporary files" if report.n_tmp_files else ""))
        return 0 if report.ok else 1


def cmd_stats(args) -> int:
    """Print store statistics."""
    with _repo(args) as repo:
        s = repo.stats()
        if args.json:
            print_json(s)
            return 0
        for k, v in s.items():
            if k.endswith("_bytes"):
                v = f"{v} ({human_size(v)})"
            print(f"{k:14} {v}")
    return 0


def parse_duration(text: str) -> int | None:
    """Return seconds for '3600', '90s', '90m', '12h', '30d', '2w'; None for 'none'.

    Raises:
        UsageError: Anything else.
    """
    from cas.errors import UsageError

    t = text.strip().lower()
    if t in ("none", "never", "off"):
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    num, unit = (t[:-1], t[-1]) if t and t[-1] in units else (t, "s")
    try:
        value = float(num)
    except ValueError:
        raise UsageError(f"bad duration {text!r}: use seconds or a number with s, m, h, d or w (e.g. 30d)") from None
    if value < 0:
        raise UsageError(f"bad duration {text!r}: it must not be negative")
    return int(value * units[unit])


def cmd_rm(args) -> int:
    """Delete versions."""
    with _repo(args) as repo:
        done = []
        for ref in args.refs:
            v = repo.artifact(ref)
            v.delete(delete_aliases=args.delete_aliases)
            done.append(v.qualified_name)
        if args.json:
            print_json({"deleted": done})
        else:
            for name in done:
                print(f"deleted {name}")
            print("run 'cas gc' to reclaim the space no other version needs")
    return 0


def cmd_ttl(args) -> int:
    """Set a version's ttl or a collection's default ttl."""
    seconds = parse_duration(args.duration)
    with _repo(args) as repo:
        if args.collection:
            repo.set_collection_ttl(args.ref, seconds)
            target = args.ref
        else:
            v = repo.artifact(args.ref)
            v.ttl = seconds
            v.save()
            target = v.qualified_name
        if args.json:
            print_json({"target": target, "ttl": seconds})
        else:
            print(f"{target}: ttl {'none' if seconds is None else f'{seconds} s'}")
    return 0


def cmd_gc(args) -> int:
    """Run garbage collection."""
    grace = None if args.grace is None else parse_duration(args.grace)
    with _repo(args) as repo:
        report = repo.gc(dry_run=args.dry_run, grace=grace)
        if args.json:
            print_json(report.to_dict())
            return 0
        verb = "would free" if report.dry_run else "freed"
        for label in report.expired:
            print(f"{'would delete' if report.dry_run else 'deleted'} expired {label}")
        for label in report.expired_kept:
            print(f"kept expired {label}: an alias points at it")
        print(f"packs: {report.packs_total} examined, {report.packs_condemned} condemned "
              f"({report.packs_repacked} repacked), {report.packs_deleted} deleted, "
              f"{report.packs_waiting} waiting for writers")
        print(f"objects: {report.objects_live} live, {report.objects_garbage} garbage")
        print(f"{verb} {human_size(max(report.bytes_freed, 0))} ({max(report.bytes_freed, 0)} bytes)")
    return 0
