"""A hypothesis state machine of a repository against an in-memory model.

The model holds, per collection, the list of committed versions (logical path
-> bytes), the aliases and the version tags, plus the draft being edited. Each
rule does the same thing to the real repository and to the model; invariants
compare every committed version's manifest (sizes and content digests), the
version listing and the aliases with the model after every step.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import cas
from cas.errors import DeleteRefused, NothingToRemove, PathConflict, VersionDeleted
from cas.format.chunker import Chunker, ChunkerParams
from cas.format.digest import chunk_id, to_text
from cas.format.nodes import build_file_nodes
from tests.conftest import SMALL_CHUNKS, read_tree

COLLECTIONS = {"alpha": "dataset", "beta": "model"}
ALIASES = ["best", "prod", "stable"]
TAGS = ["t1", "t2"]
POOL = [b"", b"same", b"x" * 3000, bytes(range(256)) * 9]

segments = st.sampled_from(["a", "b", "c"])
logical_paths = st.lists(segments, min_size=1, max_size=3).map("/".join)
# a short random piece repeated: up to a few KiB (several chunks) from few choices
contents = st.one_of(
    st.sampled_from(POOL),
    st.tuples(st.binary(min_size=1, max_size=24), st.integers(1, 150)).map(lambda t: t[0] * t[1]),
)

_CHUNKER = Chunker(ChunkerParams(**SMALL_CHUNKS))


def file_digest(data: bytes) -> str:
    """The file id cas must give ``data``, computed from the format layer alone."""
    mv = memoryview(data)
    chunks = [(chunk_id(mv[o : o + n]), n) for o, n in _CHUNKER.cut(mv)] if data else []
    return to_text(build_file_nodes(chunks)[0])


def conflicts(files: dict, path: str) -> bool:
    """True if ``path`` cannot hold a file: a parent is a file or it is a directory."""
    segs = path.split("/")
    if any("/".join(segs[:i]) in files for i in range(1, len(segs))):
        return True
    return any(p.startswith(path + "/") for p in files)


def listing(root: str) -> set:
    """Every file, directory and symlink under ``root`` as relative paths (dirs end in '/')."""
    out = set()
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            is_dir = os.path.isdir(full) and not os.path.islink(full)
            out.add(rel + "/" if is_dir else rel)
    return out


def expected_listing(files: dict) -> set:
    out = set(files)
    for p in files:
        segs = p.split("/")
        out.update("/".join(segs[:i]) + "/" for i in range(1, len(segs)))
    return out


@settings(max_examples=150, stateful_step_count=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
class RepoModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.base = tempfile.mkdtemp(prefix="cas-stateful-")
        self.repo_path = os.path.join(self.base, "proj")
        self.src = os.path.join(self.base, "src")
        self.shared = os.path.join(self.base, "shared")
        self.outside = os.path.join(self.base, "outside")
        for d in (self.src, self.shared, self.outside):
            os.mkdir(d)
        with open(os.path.join(self.outside, "sentinel"), "wb") as f:
            f.write(b"must survive")
        self.repo = cas.Repo.init(self.repo_path, chunker=ChunkerParams(**SMALL_CHUNKS))
        self.n_src = 0
        # model
        self.versions: dict[str, list[dict]] = {}
        self.aliases: dict[str, dict[str, int]] = {}
        self.tags: dict[str, list[set]] = {}
        self.deleted: dict[str, set[int]] = {}
        # registry links: target collection -> [{"files", "source": (name, idx), "live"}]
        self.links: dict[str, list[dict]] = {}
        self.draft = None
        self.draft_files: dict[str, bytes] = {}

    def teardown(self) -> None:
        self.repo.close()
        shutil.rmtree(self.base, ignore_errors=True)

    # helpers -------------------------------------------------------------------
    def _source(self, data: bytes) -> str:
        """A fresh local file holding ``data`` (never modified afterwards)."""
        self.n_src += 1
        p = os.path.join(self.src, f"f{self.n_src}")
        with open(p, "wb") as f:
            f.write(data)
        return p

    def _logged(self):
        """Every version that was logged and not deleted."""
        return [(c, i) for c, vs in self.versions.items() for i in range(len(vs))
                if i not in self.deleted.get(c, ())]

    # drafts ---------------------------------------------------------------------
    @initialize(name=st.sampled_from(sorted(COLLECTIONS)))
    def first_draft(self, name):
        self.create_draft(name)

    @precondition(lambda self: self.draft is None)
    @rule(name=st.sampled_from(sorted(COLLECTIONS)))
    def create_draft(self, name):
        self.draft = cas.Artifact(name, COLLECTIONS[name], repo=self.repo)
        self.draft_files = {}

    @precondition(lambda self: self.draft is not None)
    @rule(path=logical_paths, data=contents, policy=st.sampled_from(["mutable", "immutable"]),
          overwrite=st.booleans())
    def add_file(self, path, data, policy, overwrite):
        local = self._source(data)
        old = self.draft_files.get(path)
        if conflicts(self.draft_files, path) or (old is not None and old != data and not overwrite):
            try:
                self.draft.add_file(local, name=path, policy=policy, overwrite=overwrite)
            except PathConflict:
                return
            raise AssertionError(f"add_file({path!r}) should have raised PathConflict")
        entry = self.draft.add_file(local, name=path, policy=policy, overwrite=overwrite)
        assert entry.path == path and entry.size == len(data)
        assert self.draft.get_added_local_path_name(local) == path
        self.draft_files[path] = data

    @precondition(lambda self: self.draft is not None)
    @rule(prefix=st.one_of(st.just(""), logical_paths), files=st.dictionaries(logical_paths, contents, max_size=4),
          policy=st.sampled_from(["mutable", "immutable"]), merge=st.booleans())
    def add_dir(self, prefix, files, policy, merge):
        tree: dict[str, bytes] = {}
        for rel in sorted(files):  # a directory cannot hold both 'a' and 'a/b'
            if not conflicts(tree, rel):
                tree[rel] = files[rel]
        self.n_src += 1
        root = os.path.join(self.src, f"d{self.n_src}")  # never modified afterwards
        os.mkdir(root)
        for rel, data in tree.items():
            os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
            with open(os.path.join(root, rel), "wb") as f:
                f.write(data)
        new = {(prefix + "/" if prefix else "") + rel: data for rel, data in tree.items()}
        if any(conflicts(self.draft_files, p) or (self.draft_files.get(p, d) != d and not merge)
               for p, d in new.items()):
            try:
                self.draft.add_dir(root, name=prefix or None, policy=policy, merge=merge)
            except PathConflict:
                return
            raise AssertionError(f"add_dir into {prefix!r} should have raised PathConflict")
        assert self.draft.add_dir(root, name=prefix or None, policy=policy, merge=merge) == len(tree)
        for rel, p in list(zip(tree, new))[:2]:
            assert self.draft.get_added_local_path_name(os.path.join(root, rel)) == p
        self.draft_files.update(new)

    @precondition(lambda self: self.draft is not None)
    @rule(path=logical_paths, text=st.text(alphabet="xyz\n", max_size=40), mode=st.sampled_from(["x", "w"]))
    def new_file(self, path, text, mode):
        data = text.encode()
        if conflicts(self.draft_files, path) or (mode == "x" and path in self.draft_files):
            try:
                with self.draft.new_file(path, mode=mode) as f:
                    f.write(text)
            except PathConflict:
                return
            raise AssertionError(f"new_file({path!r}, {mode!r}) should have raised PathConflict")
        with self.draft.new_file(path, mode=mode, encoding="utf-8") as f:
            f.write(text)
        self.draft_files[path] = data

    @precondition(lambda self: self.draft is not None)
    @rule(path=logical_paths, obj=st.dictionaries(st.sampled_from("kmn"), st.integers(-5, 5), max_size=3))
    def add_object(self, path, obj):
        logical = path + ".json"
        if conflicts(self.draft_files, logical):
            try:
                self.draft.add(obj, path)
            except PathConflict:
                return
            raise AssertionError(f"add({path!r}) should have raised PathConflict")
        self.draft.add(obj, path)
        assert self.draft.get(path) == obj
        import json

        self.draft_files[logical] = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()

    @precondition(lambda self: self.draft is not None)
    @rule(path=logical_paths)
    def remove(self, path):
        gone = [p for p in self.draft_files if p == path or p.startswith(path + "/")]
        if not gone:
            try:
                self.draft.remove(path)
            except NothingToRemove as exc:
                assert isinstance(exc, FileNotFoundError)
                return
            raise AssertionError(f"remove({path!r}) should have raised")
        assert self.draft.remove(path) == len(gone)
        for p in gone:
            del self.draft_files[p]

    @precondition(lambda self: self.draft is not None)
    @rule(aliases=st.lists(st.sampled_from(ALIASES), unique=True, max_size=2),
          tags=st.lists(st.sampled_from(TAGS), unique=True, max_size=2))
    def log(self, aliases, tags):
        name = self.draft.name
        v = self.repo.log_artifact(self.draft, aliases=aliases, tags=tags)
        versions = self.versions.setdefault(name, [])
        al = self.aliases.setdefault(name, {})
        vtags = self.tags.setdefault(name, [])
        if versions and "latest" in al and versions[al["latest"]] == self.draft_files:
            idx = al["latest"]  # same content as latest: a no-op that still applies aliases and tags
            vtags[idx] |= set(tags)
        else:
            idx = len(versions)
            versions.append(dict(self.draft_files))
            vtags.append(set(tags))
            al["latest"] = idx
        for a in aliases:
            al[a] = idx
        assert v.version == f"v{idx}", (v.version, idx)
        assert not self.draft.is_draft()
        self.draft = None
        self.draft_files = {}

    @precondition(lambda self: self._logged())
    @rule(data=st.data())
    def new_draft_from_version(self, data):
        name, idx = data.draw(st.sampled_from(self._logged()))
        self.draft = self.repo.artifact(f"{name}:v{idx}").new_draft()
        assert self.draft.is_draft() and self.draft.name == name
        self.draft_files = dict(self.versions[name][idx])

    # named state ------------------------------------------------------------------
    @precondition(lambda self: self._logged())
    @rule(data=st.data(), add=st.lists(st.sampled_from(ALIASES), unique=True, max_size=2),
          remove=st.lists(st.sampled_from(ALIASES), unique=True, max_size=2))
    def update_aliases(self, data, add, remove):
        remove = [a for a in remove if a not in add]
        name, idx = data.draw(st.sampled_from(self._logged()))
        self.repo.artifact(f"{name}:v{idx}").update_aliases(add=add, remove=remove)
        al = self.aliases[name]
        for a in remove:
            if al.get(a) == idx:
                del al[a]
        for a in add:
            al[a] = idx

    @precondition(lambda self: self._logged())
    @rule(data=st.data(), add=st.lists(st.sampled_from(TAGS), unique=True, max_size=2),
          remove=st.lists(st.sampled_from(TAGS), unique=True, max_size=2))
    def update_tags(self, data, add, remove):
        remove = [t for t in remove if t not in add]
        name, idx = data.draw(st.sampled_from(self._logged()))
        got = self.repo.artifact(f"{name}:v{idx}").update_version_tags(add=add, remove=remove)
        t = self.tags[name][idx]
        t -= set(remove)
        t |= set(add)
        assert set(got) == t

    # lifecycle -----------------------------------------------------------------------
    @precondition(lambda self: self._logged())
    @rule(data=st.data(), delete_aliases=st.booleans())
    def delete_version(self, data, delete_aliases):
        name, idx = data.draw(st.sampled_from(self._logged()))
        al = self.aliases[name]
        held = [a for a, i in al.items() if i == idx and a != "latest"]
        v = self.repo.artifact(f"{name}:v{idx}")
        if held and not delete_aliases:
            try:
                v.delete()
            except DeleteRefused:
                return
            raise AssertionError(f"deleting {name}:v{idx} with aliases {held} should have been refused")
        v.delete(delete_aliases=delete_aliases)
        assert v.state == "DELETED"
        self.deleted.setdefault(name, set()).add(idx)
        for a in [a for a, i in al.items() if i == idx]:
            del al[a]
        live = [i for i in range(len(self.versions[name])) if i not in self.deleted[name]]
        if live:
            al["latest"] = max(live)

    @precondition(lambda self: self._logged())
    @rule(data=st.data())
    def link_version(self, data):
        name, idx = data.draw(st.sampled_from(self._logged()))
        target = f"reg-{name}"
        links = self.links.setdefault(target, [])
        lv = self.repo.artifact(f"{name}:v{idx}").link(target)
        same = [j for j, ln in enumerate(links) if ln["live"] and ln["source"] == (name, idx)]
        if same:  # linking a source again returns the existing link
            expected = same[0]
        else:
            expected = len(links)
            links.append({"files": self.versions[name][idx], "source": (name, idx), "live": True})
        assert lv.version == f"v{expected}" and lv.is_link
        assert lv.source_version == f"v{idx}" and lv.source_collection == name

    @precondition(lambda self: any(ln["live"] for links in self.links.values() for ln in links))
    @rule(data=st.data())
    def unlink(self, data):
        live = [(t, j) for t, links in self.links.items() for j, ln in enumerate(links) if ln["live"]]
        target, j = data.draw(st.sampled_from(live))
        self.repo.artifact(f"{target}:v{j}").unlink()
        self.links[target][j]["live"] = False

    @rule()
    def gc(self):
        """gc with no grace: every live version (and the draft in progress) stays byte-identical."""
        self.repo.gc(grace=0)
        for name, idx in self._logged():
            dest = tempfile.mkdtemp(dir=self.base, prefix="gc-")
            root = self.repo.artifact(f"{name}:v{idx}").download(dest)
            assert read_tree(root) == self.versions[name][idx], f"{name}:v{idx} changed after gc"
            shutil.rmtree(dest)
        for target, links in self.links.items():
            for j, ln in enumerate(links):
                if ln["live"]:  # a link keeps its content even when its source was deleted
                    dest = tempfile.mkdtemp(dir=self.base, prefix="gc-link-")
                    root = self.repo.artifact(f"{target}:v{j}").download(dest)
                    assert read_tree(root) == ln["files"], f"link {target}:v{j} changed after gc"
                    shutil.rmtree(dest)
        for name, gone in self.deleted.items():
            for idx in gone:
                try:
                    self.repo.artifact(f"{name}:v{idx}")
                except VersionDeleted:
                    continue
                raise AssertionError(f"{name}:v{idx} was deleted but still resolves")

    # files on disk --------------------------------------------------------------------
    @precondition(lambda self: self._logged())
    @rule(data=st.data())
    def download_fresh(self, data):
        name, idx = data.draw(st.sampled_from(self._logged()))
        dest = tempfile.mkdtemp(dir=self.base, prefix="dl-")
        root = self.repo.artifact(f"{name}:v{idx}").download(dest)
        assert read_tree(root) == self.versions[name][idx]
        shutil.rmtree(dest)

    @precondition(lambda self: self._logged())
    @rule(data=st.data(), junk=st.lists(st.tuples(logical_paths, st.sampled_from(["file", "dir", "link"])),
                                        max_size=3))
    def checkout_shared(self, data, junk):
        for rel, kind in junk:
            target = os.path.join(self.shared, "j" + rel)  # "ja", "jb/..." never in a version
            if kind == "file" or kind == "link":
                # also clobber a version path when it is free, so checkout must replace it
                target = os.path.join(self.shared, rel) if data.draw(st.booleans()) else target
            self._make_junk(target, kind)
        name, idx = data.draw(st.sampled_from(self._logged()))
        v = self.repo.artifact(f"{name}:v{idx}")
        v.checkout(self.shared)
        files = self.versions[name][idx]
        assert read_tree(self.shared) == files
        assert listing(self.shared) == expected_listing(files)
        v.verify(self.shared)
        assert os.listdir(self.outside) == ["sentinel"]
        with open(os.path.join(self.outside, "sentinel"), "rb") as f:
            assert f.read() == b"must survive"

    def _make_junk(self, target: str, kind: str) -> None:
        rel = os.path.relpath(target, self.shared)
        cur = self.shared
        for seg in rel.split(os.sep)[:-1]:
            cur = os.path.join(cur, seg)
            if os.path.islink(cur) or os.path.isfile(cur):
                os.unlink(cur)
            os.makedirs(cur, exist_ok=True)
        if os.path.islink(target) or os.path.isfile(target):
            os.unlink(target)
        elif os.path.isdir(target):
            shutil.rmtree(target)
        if kind == "file":
            with open(target, "wb") as f:
                f.write(b"junk")
        elif kind == "dir":
            os.makedirs(os.path.join(target, "inner"))
            with open(os.path.join(target, "inner", "junk"), "wb") as f:
                f.write(b"junk")
        else:
            os.symlink(self.outside, target)

    @precondition(lambda self: self.versions and self.draft is None)
    @rule()
    def reopen(self):
        self.repo.close()
        self.repo = cas.Repo(self.repo_path)

    # invariants ------------------------------------------------------------------------
    @invariant()
    def versions_match_model(self):
        for name, versions in self.versions.items():
            listed = self.repo.artifacts(name)
            gone = self.deleted.get(name, set())
            assert [v.version for v in listed] == [f"v{i}" for i in reversed(range(len(versions))) if i not in gone]
            assert len(self.repo.artifacts(name, include_deleted=True)) == len(versions)
            for v in listed:
                files = versions[v.version_index]
                assert v.state == "COMMITTED"
                assert v.type == COLLECTIONS[name]
                assert v.file_count == len(files)
                assert v.size == sum(map(len, files.values()))
                man = v.manifest
                assert {p: (e.size, e.digest) for p, e in man.items()} == {
                    p: (len(b), file_digest(b)) for p, b in files.items()
                }
                assert set(v.tags) == self.tags[name][v.version_index]

    @invariant()
    def aliases_match_model(self):
        for name, al in self.aliases.items():
            for alias, idx in al.items():
                assert self.repo.artifact(f"{name}:{alias}").version_index == idx
            for alias in set(ALIASES) - set(al):
                try:
                    self.repo.artifact(f"{name}:{alias}")
                except cas.errors.VersionNotFound:
                    continue
                raise AssertionError(f"alias {alias!r} of {name} should not exist")
            if "latest" in al:
                assert self.repo.artifact(name).version_index == al["latest"]
            else:
                try:
                    self.repo.artifact(name)
                except VersionDeleted:
                    continue
                raise AssertionError(f"every version of {name} was deleted, yet it resolves")

    @invariant()
    def links_match_model(self):
        for target, links in self.links.items():
            live = [j for j, ln in enumerate(links) if ln["live"]]
            assert [v.version for v in self.repo.artifacts(target)] == [f"v{j}" for j in reversed(live)]

    @invariant()
    def draft_matches_model(self):
        if self.draft is not None:
            man = self.draft.manifest
            assert {p: e.size for p, e in man.items()} == {p: len(b) for p, b in self.draft_files.items()}
            assert self.draft.file_count == len(self.draft_files)


TestRepoModel = RepoModel.TestCase
