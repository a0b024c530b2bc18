"""Damaged store files are detected, reported with what they affect, and contained.

Repositories are written by child processes; damage is done to the files
between process runs, then the store is checked both by a fresh child and in
the test process.
"""

from __future__ import annotations

import json
import os

import pytest

import cas
from cas.errors import CasError, DigestMismatch
from cas.format.digest import to_text
from cas.format.pack import KIND_CHUNK
from cas.storage.packs import pack_path
from tests.conftest import read_tree
from tests.faults.helpers import (
    content,
    downloaded,
    drop_index_files,
    dump_state,
    findings,
    ok,
    run_child,
    write_src,
)

SETUP = """
repo = cas.Repo.init(ARGS["repo"], chunker=SMALL)
for i, src in enumerate(ARGS["srcs"]):
    assert log_dir(repo, "data", src).version == f"v{i}"
repo.close()
"""

FSCK = """
from cas.errors import CasError
repo = cas.Repo(ARGS["repo"])
report = repo.verify()
out = {"findings": [f.to_dict() for f in report.findings], "orphans": report.n_orphan_packs}
for ref, dest in ARGS.get("downloads", {}).items():
    try:
        repo.artifact(ref).download(dest)
        out[ref] = "ok"
    except CasError as exc:
        out[ref] = type(exc).__name__
print(json.dumps(out))
repo.close()
"""


def _setup(tmp_path, n=2):
    path = tmp_path / "repo"
    contents = [content(i) for i in range(n)]
    srcs = [str(write_src(tmp_path / "src", c, f"v{i}")) for i, c in enumerate(contents)]
    ok(run_child(SETUP, {"repo": str(path), "srcs": srcs}))
    return path, contents


def _chunks(repo, version, path):
    fid = bytes.fromhex(version.get_entry(path).digest.split(":")[1])
    return [cid for cid, _n in repo.objects.iter_chunks(fid)]


def _all_chunks(repo, version):
    return {cid for p in version.manifest for cid in _chunks(repo, version, p)}


def _writable(path):
    os.chmod(path, 0o644)
    return path


def _flip(path, offset):
    with open(_writable(path), "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))


def _unique_chunk(repo):
    """A chunk of v1's big.bin that v0 does not use, and its location."""
    v0, v1 = repo.artifact("data:v0"), repo.artifact("data:v1")
    used_by_v0 = _all_chunks(repo, v0)
    cid = next(c for c in _chunks(repo, v1, "big.bin")[1:] if c not in used_by_v0)
    loc = repo.objects.locate(cid)
    assert loc is not None and loc.kind == KIND_CHUNK
    return cid, loc


def test_flipped_byte_in_a_chunk_is_found_and_contained(tmp_path):
    path, contents = _setup(tmp_path)
    with cas.Repo(path) as repo:
        cid, loc = _unique_chunk(repo)
    pack = pack_path(str(path / ".cas" / "packs"), loc.pack)
    _flip(pack, loc.offset + loc.stored_len // 2)

    # a fresh process sees the damage and what it affects
    out = json.loads(ok(run_child(FSCK, {"repo": str(path), "downloads": {
        "data:v0": str(tmp_path / "child-v0"), "data:v1": str(tmp_path / "child-v1")}})).stdout)
    kinds = {(f["kind"], f["key"]) for f in out["findings"]}
    assert ("corrupt-object", to_text(cid)) in kinds, out["findings"]
    assert ("corrupt-pack", loc.pack) in kinds, out["findings"]
    assert out["data:v1"] == "DigestMismatch" and out["data:v0"] == "ok"
    assert read_tree(tmp_path / "child-v0") == contents[0]

    with cas.Repo(path) as repo:
        report = repo.verify()
        assert not report.ok
        bad = [f for f in report.findings if f.kind == "corrupt-object"]
        assert [f.key for f in bad] == [to_text(cid)], findings(report)
        assert bad[0].affected == ["default/data:v1 big.bin"]
        assert any(f.kind == "corrupt-pack" and f.key == loc.pack for f in report.findings)

        dest = tmp_path / "v1"
        with pytest.raises(DigestMismatch) as info:
            repo.artifact("data:v1").download(dest)
        assert isinstance(info.value, CasError)
        assert "big.bin" in str(info.value)
        left = read_tree(dest) if dest.exists() else {}
        assert "big.bin" not in left
        assert not [p for p in left if ".cas-tmp" in p], left
        # files that were written are the version's, byte for byte
        assert all(contents[1][p] == b for p, b in left.items())

        assert downloaded(repo.artifact("data:v0"), tmp_path / "v0") == contents[0]
        assert repo.verify_version(repo.artifact("data:v0")) == []
        assert repo.verify_version(repo.artifact("data:v1")) != []


def test_truncated_pack_is_reported(tmp_path):
    path, contents = _setup(tmp_path)
    with cas.Repo(path) as repo:
        cid, loc = _unique_chunk(repo)
    pack = pack_path(str(path / ".cas" / "packs"), loc.pack)
    with open(_writable(pack), "r+b") as f:
        f.truncate(loc.offset + loc.stored_len // 2)  # cuts the chunk and the footer

    out = json.loads(ok(run_child(FSCK, {"repo": str(path), "downloads": {"data:v0": str(tmp_path / "c0")}})).stdout)
    assert any(f["kind"] == "corrupt-pack" and f["key"] == loc.pack for f in out["findings"]), out
    assert any(f["key"] == to_text(cid) for f in out["findings"]), out
    # the cut also took v1's tree nodes (written last), so the damage is named at v1's root
    assert any(a.startswith("default/data:v1 ") for f in out["findings"] for a in f["affected"]), out
    assert not any(a.startswith("default/data:v0") for f in out["findings"] for a in f["affected"]), out
    assert out["data:v0"] == "ok"

    # rebuilt from the damaged pack: still reported, the rest still readable
    drop_index_files(path)
    with cas.Repo(path) as repo:
        report = repo.verify()
        assert any(f.kind == "corrupt-pack" and f.key == loc.pack for f in report.findings), findings(report)
        assert any(a.startswith("default/data:v1 ") for f in report.findings for a in f.affected), findings(report)
        assert downloaded(repo.artifact("data:v0"), tmp_path / "v0") == contents[0]
        with pytest.raises(CasError):
            repo.artifact("data:v1").download(tmp_path / "v1")
        assert "big.bin" not in read_tree(tmp_path / "v1")


RICH = """
from tests.faults.helpers import dump_state
repo = cas.Repo.init(ARGS["repo"], chunker=SMALL)
srcs = ARGS["srcs"]
log_dir(repo, "data", srcs[0], aliases=["best"], tags=["raw"])
log_dir(repo, "data", srcs[1])
v2 = log_dir(repo, "data", srcs[2], aliases=["candidate"])
m0 = cas.Artifact("model", "model", repo=repo)
m0.add_dir(srcs[3])
repo.log_artifact(m0, project="proj", tags=["fp16"])
m = cas.Artifact("model", "model", description="a model", metadata={"acc": 0.9, "layers": [1, 2]}, repo=repo)
m.add_dir(srcs[4])
mv = repo.log_artifact(m, project="proj", aliases=["prod"])
repo.artifact("data:v1").update_aliases(add=["best"])
v2.update_version_tags(add=["checked"])
v2.update_artifact_tags(add=["team-a"])
mv.description = "a better model"
mv.metadata = {"acc": 0.95}
mv.save()
print(json.dumps(dump_state(repo)))
repo.close()
"""

DUMP = """
from tests.faults.helpers import dump_state
repo = cas.Repo(ARGS["repo"])
print(json.dumps(dump_state(repo)))
repo.close()
"""


def test_deleted_index_is_rebuilt_with_identical_answers(tmp_path):
    path = tmp_path / "repo"
    contents = [content(i) for i in range(5)]
    srcs = [str(write_src(tmp_path / "src", c, f"v{i}")) for i, c in enumerate(contents)]
    before = json.loads(ok(run_child(RICH, {"repo": str(path), "srcs": srcs})).stdout)
    assert before["aliases"]["default/data:best"] == "default/data:v1"
    assert before["versions"]["proj/model:v1"]["json"]["description"] == "a better model"
    assert before["versions"]["proj/model:v1"]["json"]["metadata"] == {"acc": 0.95}
    assert before["versions"]["default/data:v2"]["json"]["tags"] == ["checked"]
    assert before["versions"]["default/data:v2"]["json"]["artifact_tags"] == ["team-a"]
    assert before["aliases"]["proj/model:prod"] == "proj/model:v1"

    drop_index_files(path)
    after = json.loads(ok(run_child(DUMP, {"repo": str(path)})).stdout)
    assert after == before

    with cas.Repo(path) as repo:
        assert json.loads(json.dumps(dump_state(repo))) == before
        assert repo.verify().findings == []
        repo.rebuild_index()
        assert json.loads(json.dumps(dump_state(repo))) == before
        assert repo.verify().findings == []
        expected = {"default/data": contents[:3], "proj/model": contents[3:]}
        for coll, cs in expected.items():
            for i, c in enumerate(cs):
                assert downloaded(repo.artifact(f"{coll}:v{i}"), tmp_path / "out" / coll / str(i)) == c
    # a process that opens the store after the in-process rebuild agrees too
    assert json.loads(ok(run_child(DUMP, {"repo": str(path)})).stdout) == before


LOG_MORE = """
repo = cas.Repo(ARGS["repo"])
print(log_dir(repo, "data", ARGS["src"]).version)
repo.close()
"""


@pytest.mark.parametrize("while_open", [False, True], ids=["closed", "open-reader"])
def test_garbage_log_entry_is_skipped_and_reported(tmp_path, while_open):
    path, contents = _setup(tmp_path)
    more = [content(i) for i in range(2, 4)]
    srcs = [str(write_src(tmp_path / "src", c, f"v{i + 2}")) for i, c in enumerate(more)]
    log_dir = path / ".cas" / "log"
    reader = cas.Repo(path) if while_open else None
    try:
        last = max(int(n) for n in os.listdir(log_dir) if n.isdigit())
        bad_seq = last + 1
        (log_dir / f"{bad_seq:016d}").write_bytes(b"\x93not a log entry\xff" * 3)

        assert ok(run_child(LOG_MORE, {"repo": str(path), "src": srcs[0]})).stdout.strip() == "v2"
        if reader is not None:
            # the long-lived reader catches up past the bad entry
            assert reader.artifact("data:latest").version == "v2"
            assert downloaded(reader.artifact("data:v2"), tmp_path / "r2") == more[0]
            assert [f.kind for f in reader.verify().findings] == ["bad-log-entry"]
    finally:
        if reader is not None:
            reader.close()

    out = json.loads(ok(run_child(FSCK, {"repo": str(path)})).stdout)
    assert [(f["kind"], f["key"]) for f in out["findings"]] == [("bad-log-entry", f"log/{bad_seq:016d}")]

    with cas.Repo(path) as repo:
        assert [v.version for v in repo.artifacts("data")] == ["v2", "v1", "v0"]
        assert [(f.kind, f.key) for f in repo.verify().findings] == [("bad-log-entry", f"log/{bad_seq:016d}")]
        assert downloaded(repo.artifact("data:latest"), tmp_path / "latest") == more[0]
        assert downloaded(repo.artifact("data:v0"), tmp_path / "v0") == contents[0]
    # and after a rebuild from scratch
    drop_index_files(path)
    assert ok(run_child(LOG_MORE, {"repo": str(path), "src": srcs[1]})).stdout.strip() == "v3"
    with cas.Repo(path) as repo:
        assert [(f.kind, f.key) for f in repo.verify().findings] == [("bad-log-entry", f"log/{bad_seq:016d}")]
        assert downloaded(repo.artifact("data:v3"), tmp_path / "v3") == more[1]
