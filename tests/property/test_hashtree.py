"""Version digests depend only on content: paths, file ids, sizes and exec bits."""

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cas.api.drafttree import DraftTree, FileRef
from cas.format.nodes import EMPTY_TREE_ID, decode_tree_node
from tests.property.paths import prefix_free


def _unresolvable(path, pending):
    raise AssertionError(f"no pending files in these tests, got {path}")


class MemStore:
    """Tree nodes in a dict, counting reads and writes."""

    def __init__(self):
        self.nodes = {}
        self.puts = []
        self.loads = []

    def put(self, tid, data):
        self.puts.append(tid)
        self.nodes[tid] = data

    def load(self, tid):
        self.loads.append(tid)
        return decode_tree_node(self.nodes[tid])


def build(mapping, store=None, order=None):
    """Return the root id of a fresh draft holding ``mapping``."""
    store = store or MemStore()
    t = DraftTree(store.load)
    for p in order or mapping:
        t.set(p, mapping[p])
    root, size, n = t.build(store.put, _unresolvable)
    assert size == sum(r.size for r in mapping.values())
    assert n == len(mapping)
    return root


segments = st.sampled_from(["a", "b", "c", "d.txt", "B", "é", "a.b", "a-"])
paths = st.lists(segments, min_size=1, max_size=4).map("/".join)
refs = st.builds(FileRef, st.binary(min_size=32, max_size=32), st.integers(0, 2**40), st.booleans())


@st.composite
def mappings(draw, min_size=0):
    ps = prefix_free(draw(st.lists(paths, min_size=min_size, max_size=12)))
    return {p: draw(refs) for p in ps}


def _collides(path, others):
    """True if ``path`` would be a file where ``others`` has a directory, or below a file."""
    return any(path.startswith(q + "/") or q.startswith(path + "/") for q in others)


def _dirs(path):
    segs = path.split("/")
    return ["/".join(segs[:i]) for i in range(len(segs))]  # "" is the root


def test_empty_draft_is_the_empty_tree():
    assert build({}) == EMPTY_TREE_ID


@settings(max_examples=60)
@given(mappings(), st.randoms(use_true_random=False))
def test_root_is_independent_of_insertion_order(mapping, rnd):
    order = list(mapping)
    rnd.shuffle(order)
    assert build(mapping) == build(mapping, order=order) == build(mapping, order=sorted(order, reverse=True))


@settings(max_examples=60)
@given(mappings(min_size=1), st.data())
def test_any_change_of_one_file_moves_the_root(mapping, data):
    root = build(mapping)
    path = data.draw(st.sampled_from(sorted(mapping)))
    ref = mapping[path]
    what = data.draw(st.sampled_from(["id", "size", "exec", "path"]))
    changed = dict(mapping)
    if what == "id":
        new_id = data.draw(st.binary(min_size=32, max_size=32).filter(lambda b: b != ref.id))
        changed[path] = FileRef(new_id, ref.size, ref.executable)
    elif what == "size":
        changed[path] = FileRef(ref.id, ref.size + data.draw(st.integers(1, 10)), ref.executable)
    elif what == "exec":
        changed[path] = FileRef(ref.id, ref.size, not ref.executable)
    else:
        del changed[path]
        new_path = data.draw(paths.filter(lambda p: p not in mapping))
        assume(not _collides(new_path, changed))
        changed[new_path] = ref
    assert build(changed) != root


@settings(max_examples=60)
@given(mappings(min_size=1), st.data())
def test_removing_then_re_adding_restores_the_root(mapping, data):
    store = MemStore()
    t = DraftTree(store.load)
    for p, r in mapping.items():
        t.set(p, r)
    root = t.build(store.put, _unresolvable)[0]
    path = data.draw(st.sampled_from(sorted(mapping)))
    assert t.remove(path) == 1
    assert t.get(path) is None
    removed_root = t.build(store.put, _unresolvable)[0]
    assert removed_root != root
    assert removed_root == build({p: r for p, r in mapping.items() if p != path})
    t.set(path, mapping[path])
    assert t.build(store.put, _unresolvable)[0] == root


@settings(max_examples=60)
@given(mappings(min_size=1), st.data())
def test_incremental_draft_equals_fresh_tree_and_writes_only_the_changed_path(mapping, data):
    store = MemStore()
    base_root = build(mapping, store)
    base = DraftTree(store.load, base_root, sum(r.size for r in mapping.values()), len(mapping))
    store.puts.clear()
    store.loads.clear()

    final = dict(mapping)
    action = data.draw(st.sampled_from(["modify", "add", "remove"]))
    if action == "modify":
        path = data.draw(st.sampled_from(sorted(mapping)))
        new = data.draw(refs.filter(lambda r: r != mapping[path]))
        base.set(path, new)
        final[path] = new
        expected_puts = _dirs(path)
    elif action == "add":
        path = data.draw(paths.filter(lambda p: p not in mapping))
        assume(not _collides(path, mapping))
        new = data.draw(refs)
        base.set(path, new)
        final[path] = new
        expected_puts = _dirs(path)
    else:
        path = data.draw(st.sampled_from(sorted(mapping)))
        assert base.remove(path) == 1
        del final[path]
        # directories left empty are dropped; the others on the path are rewritten
        expected_puts = [d for d in _dirs(path) if d == "" or any(p.startswith(d + "/") for p in final)]

    root, size, n = base.build(store.put, _unresolvable)
    assert root == build(final)
    assert (size, n) == (sum(r.size for r in final.values()), len(final))
    assert len(store.puts) == len(expected_puts)
    assert len(set(store.puts)) == len(store.puts)
    # only directories on the changed path were read from the base
    assert len(store.loads) <= len(_dirs(path))
