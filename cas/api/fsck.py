"""Whole-store check: every object readable and hashing to its id, every version complete.

Findings are data (``Finding``); nothing here prints or exits. A corrupt or
missing object is reported with the versions and file paths that need it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cas.errors import CasError
from cas.format.digest import to_text
from cas.format.nodes import KIND_FILE, KIND_REFERENCE, KIND_TREE
from cas.format.pack import KIND_CHUNK, KIND_FILE_NODE, KIND_TREE_NODE
from cas.index.replay import K_BAD_LOG, K_BAD_PACKS, noted
from cas.index.tables import Tables
from cas.api.fsckshard import scan_split
from cas.format.nodes import decode_file_rows, decode_tree_rows
from cas.storage.packs import iter_pack_names


@dataclass
class Finding:
    """One problem: ``kind`` names it, ``key`` is the object/pack/entry at fault."""

    kind: str
    key: str
    detail: str
    affected: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        return {"kind": self.kind, "key": self.key, "detail": self.detail, "affected": self.affected}

    def __str__(self) -> str:
        aff = f" (affects {', '.join(self.affected[:5])}{' ...' if len(self.affected) > 5 else ''})" if self.affected else ""
        return f"{self.kind}: {self.key}: {self.detail}{aff}"


@dataclass
class FsckReport:
    """What ``Repo.verify`` found and how much it checked."""

    findings: list[Finding]
    n_packs: int
    n_objects: int
    n_versions: int
    n_orphan_packs: int
    n_tmp_files: int = 0
    n_references: int = 0
    # references that could not be checked (unreachable source): reported, not failures
    warnings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if nothing is wrong."""
        return not self.findings

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        return {
            "ok": self.ok, "packs": self.n_packs, "objects": self.n_objects, "versions": self.n_versions,
            "orphan_packs": self.n_orphan_packs, "tmp_files": self.n_tmp_files,
            "references": self.n_references, "findings": [f.to_dict() for f in self.findings],
            "warnings": [f.to_dict() for f in self.warnings],
        }


def verify_references(repo, refs: dict) -> tuple[list[Finding], list[Finding]]:
    """Look up each referenced object at its source (no download).

    Args:
        refs: reference id -> ``(Reference, [affected "version path" labels])``.

    Returns:
        ``(findings, warnings)``: missing or changed objects are findings
        (``reference-missing``, ``reference-changed``); sources that could not be
        reached are warnings (``reference-unreachable``).
    """
    findings: list[Finding] = []
    warnings: list[Finding] = []
    if not refs:
        return findings, warnings
    client = repo.reference_client()
    for ref, where in refs.values():
        problem = client.check_source(ref)
        if problem is None:
            continue
        kind, detail = problem
        f = Finding(f"reference-{kind}", ref.uri, detail, list(where))
        (warnings if kind == "unreachable" else findings).append(f)
    return findings, warnings


def fsck(repo, progress=None, check_references: bool = True) -> FsckReport:
    """Check every pack, object and version of ``repo`` (and, optionally, referenced objects)."""
    objects = repo.objects
    objects.flush()
    findings: list[Finding] = []
    packs_dir = repo.layout.packs
    # one read transaction for the whole check: versions and object locations
    # come from the same snapshot, so every object a version needs is indexed in it
    with repo.db.read() as txn:
        t = Tables(repo.db, txn)
        indexed = dict((name, no) for no, name in t.iter_packs())
        for seq in noted(t, K_BAD_LOG):
            findings.append(Finding("bad-log-entry", f"log/{seq:016d}", "does not parse; it was skipped"))
        versions = [(c, r) for c, _ in t.iter_collections() for r in t.iter_versions(c)
                    if r.get("state") != "DELETED"]  # gc may have reclaimed a deleted version's objects
        n_objects = t.count("objects")
        on_disk = list(iter_pack_names(packs_dir))
        for name in set(indexed) - set(on_disk):
            findings.append(Finding("missing-pack", name, "indexed but not on disk"))
        # every pack read once: its own hash and every object it lists (docs/decisions.md, "fsck")
        scan = scan_split(repo.layout.root, packs_dir, on_disk, txn, repo.db.dbs, indexed, objects.codec.level,
                          progress)
        for name, detail in sorted(scan.pack_problems):  # workers finish packs in any order
            findings.append(Finding("corrupt-pack", name, detail))
        bad = scan.bad  # object id -> why
        located = scan.located  # object id -> pack number, for every indexed object (not in a condemned pack)
        if len(located) != n_objects:
            # some indexed locations were not covered by a footer (missing pack, damaged
            # footer, index disagreeing with a footer, a condemned pack): read those one by one
            for oid, loc in t.iter_objects():
                if oid in located:
                    continue
                located[oid] = indexed[loc.pack]
                try:
                    objects.read_at(oid, loc)
                except CasError as exc:
                    bad[oid] = str(exc)
    # nodes the scan did not keep are read through the object store: its snapshot
    # must be at least that one, not an older cached one
    objects.refresh()
    nodes = scan.nodes
    located_get = located.get
    live: set[int] = set()  # numbers of the packs that hold objects some version needs
    live_add = live.add

    def present(oid: bytes) -> bool:
        """True if ``oid`` is indexed and intact; notes its pack as live."""
        no = located_get(oid)
        if no is None:
            return False
        live_add(no)
        return oid not in bad

    def node_bytes(oid: bytes, kind: int):
        raw = nodes.get(oid)
        return raw if raw is not None else objects.get(oid, kind)

    # versions: walk each tree once per distinct subtree id
    affected: dict[bytes, list[str]] = {}
    checked: dict[bytes, list[tuple[bytes, str]]] = {}
    tree_refs: dict[bytes, list] = {}  # tree id -> [(Reference, path below it)]

    def check_tree(tid: bytes) -> list[tuple[bytes, str]]:
        if tid in checked:
            return checked[tid]
        problems: list[tuple[bytes, str]] = []
        below: list = []
        tree_refs[tid] = below
        if not present(tid):
            problems.append((tid, ""))
        else:
            try:
                rows = decode_tree_rows(node_bytes(tid, KIND_TREE_NODE))
            except CasError:
                rows = []
                problems.append((tid, ""))
            for name, kind, oid, _size, aux in rows:
                if kind == KIND_FILE:
                    wrong = check_file(oid)
                    if wrong:
                        problems.extend((o, name) for o in wrong)
                elif kind == KIND_TREE:
                    problems.extend((o, name + "/" + p if p else name) for o, p in check_tree(oid))
                    below.extend((r, name + "/" + p) for r, p in tree_refs.get(oid, ()))
                else:  # a reference: its id names a record (aux), not a stored object
                    below.append((aux, name))
        checked[tid] = problems
        return problems

    file_checked: dict[bytes, tuple[bytes, ...]] = {}  # file node id -> ids below it that are missing or corrupt

    def check_file(fid: bytes) -> tuple[bytes, ...]:
        done = file_checked.get(fid)
        if done is not None:
            return done
        if not present(fid):
            done = (fid,)
        else:
            try:
                level, rows = decode_file_rows(node_bytes(fid, KIND_FILE_NODE))
            except CasError:
                level, rows = -1, ()
                done = (fid,)
            if level > 0:
                done = tuple(o for cid, _n in rows for o in check_file(cid))
            elif level == 0:
                out = []
                for cid, _n in rows:
                    no = located_get(cid)
                    if no is None:
                        out.append(cid)
                        continue
                    live_add(no)
                    if cid in bad:
                        out.append(cid)
                done = tuple(out)
        file_checked[fid] = done
        return done

    n_versions = 0
    refs: dict[bytes, tuple] = {}
    for coll, rec in versions:
        n_versions += 1
        label = f"{coll}:v{rec['version']}"
        for oid, path in check_tree(rec["digest"]):
            affected.setdefault(oid, []).append(f"{label} {path or '/'}")
        for ref, path in tree_refs.get(rec["digest"], ()):
            refs.setdefault(ref.id, (ref, []))[1].append(f"{label} {path}")
    ref_findings, ref_warnings = verify_references(repo, refs) if check_references else ([], [])
    for oid, why in bad.items():
        findings.append(Finding("corrupt-object", to_text(oid), why, affected.pop(oid, [])))
    for oid, where in affected.items():
        findings.append(Finding("missing-object", to_text(oid), "needed but not in the store", where))
    with repo.db.read() as txn:
        for name in noted(Tables(repo.db, txn), K_BAD_PACKS):
            if not any(f.key == name for f in findings):
                findings.append(Finding("corrupt-pack", name, "footer damaged; objects were salvaged by scanning"))
    live_packs = {name for name, no in indexed.items() if no in live}
    orphan = len(set(on_disk) - live_packs)
    # unsealed packs and log entries of interrupted (or still running) writers
    n_tmp = len(os.listdir(repo.layout.tmp)) if os.path.isdir(repo.layout.tmp) else 0
    return FsckReport(findings + ref_findings, len(on_disk), n_objects, n_versions, orphan, n_tmp,
                      n_references=len(refs), warnings=ref_warnings)


def verify_version(repo, version, check_references: bool = True) -> list[Finding]:
    """Read every object of one version, checking each against its id.

    Referenced objects are looked up at their source when ``check_references``;
    missing, changed and unreachable ones are findings.
    """
    findings: list[Finding] = []
    objects = repo.objects
    where = version.qualified_name
    seen: set[bytes] = set()
    refs: dict[bytes, tuple] = {}

    def walk(tid: bytes, base: str) -> None:
        try:
            entries = objects.get_tree(tid, where)
        except CasError as exc:
            findings.append(Finding("bad-tree", to_text(tid), str(exc), [f"{where} {base or '/'}"]))
            return
        for e in entries:
            p = base + e.name
            if e.kind == KIND_TREE:
                walk(e.id, p + "/")
                continue
            if e.kind == KIND_REFERENCE:
                refs.setdefault(e.id, (e.aux, []))[1].append(f"{where} {p}")
                continue
            try:
                for cid, _n in objects.iter_chunks(e.id, where):
                    if cid not in seen:
                        objects.get(cid, KIND_CHUNK, where)
                        seen.add(cid)
            except CasError as exc:
                findings.append(Finding("bad-file", to_text(e.id), str(exc), [f"{where} {p}"]))

    walk(version._rec["digest"], "")
    if check_references:
        ref_findings, ref_warnings = verify_references(repo, refs)
        findings.extend(ref_findings + ref_warnings)
    return findings

