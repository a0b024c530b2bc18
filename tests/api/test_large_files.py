"""Files with more chunks than one file node holds become a tree of file nodes."""

import random

import cas
from cas.format import nodes
from tests.conftest import read_tree


def test_multi_level_file_nodes_roundtrip(repo, tmp_path, monkeypatch):
    monkeypatch.setattr(nodes, "FANOUT", 4)  # ~40 chunks -> three levels of file nodes
    data = random.Random(1).randbytes(60_000)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    art = cas.Artifact("big", "model", repo=repo)
    art.add_file(src)
    v = repo.log_artifact(art)
    fid = bytes.fromhex(v.get_entry("big.bin").digest.split(":")[1])
    root = repo.objects.get_file_node(fid)
    assert root.level >= 2 and len(root.entries) <= 4
    assert [n for _, n in repo.objects.iter_chunks(fid)] == [n for _, n in repo.chunker.cut(data)]
    v.download(tmp_path / "out")
    assert read_tree(tmp_path / "out") == {"big.bin": data}
    assert repo.verify().ok and repo.verify_version(v) == []
    # a second version with a byte changed near the end shares most file nodes and chunks
    before = repo.stats()["objects"]
    edited = data[:-10] + b"x" * 10
    src.write_bytes(edited)
    draft = v.new_draft()
    draft.add_file(src, overwrite=True)
    v1 = repo.log_artifact(draft)
    assert repo.stats()["objects"] - before < 10
    v1.download(tmp_path / "out1")
    assert read_tree(tmp_path / "out1") == {"big.bin": edited}
