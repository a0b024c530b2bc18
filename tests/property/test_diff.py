"""diff_trees reports exactly the file-level differences and skips equal subtrees."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cas.api.diff import diff_trees
from cas.api.drafttree import DraftTree, FileRef
from cas.format.pack import KIND_TREE_NODE
from tests.property.paths import prefix_free

CONTENTS = [b"", b"x", b"hello\n", bytes(range(256)) * 12, b"z" * 5000]

segments = st.sampled_from(["a", "b", "c.txt", "a.b", "a-", "é"])
paths = st.lists(segments, min_size=1, max_size=3).map("/".join)


@st.composite
def mappings(draw):
    """{path: (content index, executable)}."""
    ps = prefix_free(draw(st.lists(paths, max_size=10)))
    return {p: (draw(st.integers(0, len(CONTENTS) - 1)), draw(st.booleans())) for p in ps}


class CountingObjects:
    """The repo's ObjectStore, counting tree node reads."""

    def __init__(self, objects):
        self.objects = objects
        self.reads = 0

    def get_tree(self, tid, where=""):
        self.reads += 1
        return self.objects.get_tree(tid, where)


@pytest.fixture
def store(repo):
    ids = [repo.ingester.bytes_(c) for c in CONTENTS]

    def put(mapping):
        t = DraftTree(repo.objects.get_tree)
        for p, (i, ex) in mapping.items():
            t.set(p, FileRef(ids[i].id, ids[i].size, ex))
        root, _, _ = t.build(lambda tid, data: repo.objects.put(tid, KIND_TREE_NODE, data), None)
        repo.objects.flush()
        return root

    put.ids = ids
    put.objects = repo.objects
    return put


def _expected(old, new):
    added = {p for p in new if p not in old}
    removed = {p for p in old if p not in new}
    modified = {p for p in old.keys() & new.keys() if old[p] != new[p]}
    return added, removed, modified


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mappings(), mappings())
def test_diff_equals_dict_comparison(store, old, new):
    a, b = store(old), store(new)
    changes = list(diff_trees(store.objects, a, b))
    got = {s: {c.path for c in changes if c.status == s} for s in ("added", "removed", "modified")}
    assert len(changes) == len({c.path for c in changes})  # each path reported once
    added, removed, modified = _expected(old, new)
    assert (got["added"], got["removed"], got["modified"]) == (added, removed, modified)
    for c in changes:
        if c.status != "added":
            i, ex = old[c.path]
            assert (c.old.id, c.old.size, c.old.executable) == (store.ids[i].id, len(CONTENTS[i]), ex)
        else:
            assert c.old is None
        if c.status != "removed":
            i, ex = new[c.path]
            assert (c.new.id, c.new.size, c.new.executable) == (store.ids[i].id, len(CONTENTS[i]), ex)
        else:
            assert c.new is None
    reverse = list(diff_trees(store.objects, b, a))
    flip = {"added": "removed", "removed": "added", "modified": "modified"}
    assert sorted((flip[c.status], c.path) for c in reverse) == sorted((c.status, c.path) for c in changes)


@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mappings())
def test_diff_of_a_tree_with_itself_reads_no_nodes(store, mapping):
    root = store(mapping)
    counting = CountingObjects(store.objects)
    assert list(diff_trees(counting, root, root)) == []
    assert counting.reads == 0


def test_diff_reads_only_the_changed_path(store):
    old = {f"d{i}/e{j}/f{k}": (k % len(CONTENTS), False) for i in range(4) for j in range(4) for k in range(3)}
    new = dict(old)
    new["d2/e1/f0"] = (4, True)
    counting = CountingObjects(store.objects)
    changes = list(diff_trees(counting, store(old), store(new)))
    assert [(c.status, c.path) for c in changes] == [("modified", "d2/e1/f0")]
    assert counting.reads == 2 * 3  # root, d2 and d2/e1 on each side
