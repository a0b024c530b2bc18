"""References: entries whose bytes stay at a file://, s3://, gs:// or http(s):// source.

S3 is a moto server and GCS a gcp-storage-emulator server, both on 127.0.0.1 and
started by these tests; HTTP is http.server in a thread. Nothing reaches the internet.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid

import pytest

import cas
from cas.errors import (
    ArtifactFinalizedError,
    InvalidUri,
    ReferenceChanged,
    ReferenceMissing,
    TooManyObjects,
    VerifyError,
)
from tests.api.helpers import draft, log_files
from tests.api.references_servers import free_port, gcs_server, http_server, s3_server
from tests.conftest import read_tree, write_tree

pytest.importorskip("s3fs")


# servers ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3_endpoint():
    with s3_server() as url:
        yield url


@pytest.fixture
def s3(s3_endpoint, monkeypatch):
    """A fresh bucket on the moto server; returns (boto3 client, bucket name)."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = "b-" + uuid.uuid4().hex[:12]
    client.create_bucket(Bucket=bucket)
    return client, bucket


def put(s3, key, data: bytes) -> None:
    client, bucket = s3
    client.put_object(Bucket=bucket, Key=key, Body=data)


@pytest.fixture
def web(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    with http_server(str(root)) as url:
        yield root, url


# file:// ------------------------------------------------------------------------------
def test_file_reference_records_size_and_file_id_and_never_stores_bytes(repo, tmp_path):
    write_tree(tmp_path / "ext", {"a.bin": b"A" * 5000, "sub/b.txt": b"bee"})
    stats_before = repo.stats()["objects"]
    a = draft(repo)
    entries = a.add_reference((tmp_path / "ext").as_uri(), name="ext")
    assert [e.path for e in entries] == ["ext/a.bin", "ext/sub/b.txt"]
    v = repo.log_artifact(a)
    e = v.get_entry("ext/a.bin")
    assert e.ref == (tmp_path / "ext" / "a.bin").as_uri() and e.size == 5000
    # the checksum is the cas file id of the content: the same as storing the file would give
    stored = log_files(repo, tmp_path, {"a.bin": b"A" * 5000}, name="copy")
    assert e.digest == stored.get_entry("a.bin").digest
    assert [x.path for x in v.remote_assets] == ["ext/a.bin", "ext/sub/b.txt"]
    assert all(x.remote and x.link == x.ref for x in v.remote_assets)
    # only tree nodes were written for the reference version, no chunk of its 5000 bytes
    assert repo.stats()["objects"] - stats_before <= 2 + 3 + 2  # ref trees + the stored copy's objects
    assert v.size == 5003 and v.file_count == 2


def test_single_file_reference_defaults_to_its_base_name(repo, tmp_path):
    write_tree(tmp_path, {"x/model.pt": b"weights"})
    a = draft(repo)
    (e,) = a.add_reference((tmp_path / "x" / "model.pt").as_uri())
    assert e.path == "model.pt" and e.size == 7
    (e,) = a.add_reference((tmp_path / "x" / "model.pt").as_uri(), name="m/best.pt")
    assert e.path == "m/best.pt"


def test_download_fetches_file_references_and_detects_change_and_missing(repo, tmp_path):
    write_tree(tmp_path / "ext", {"a.txt": b"alpha", "b.txt": b"beta"})
    a = draft(repo)
    a.add_reference((tmp_path / "ext").as_uri())
    v = repo.log_artifact(a)
    assert read_tree(v.download(tmp_path / "out")) == {"a.txt": b"alpha", "b.txt": b"beta"}
    assert v.verify(tmp_path / "out") == []  # checked by content: nothing unchecked

    write_tree(tmp_path / "ext", {"a.txt": b"ALPHA"})  # same size, other bytes
    with pytest.raises(ReferenceChanged) as exc:
        v.download(tmp_path / "out2")
    assert exc.value.path == "a.txt" and "a.txt" in str(exc.value)
    assert not os.path.exists(tmp_path / "out2" / "a.txt")

    os.remove(tmp_path / "ext" / "b.txt")
    write_tree(tmp_path / "ext", {"a.txt": b"alpha"})
    with pytest.raises(ReferenceMissing) as exc:
        v.download(tmp_path / "out3")
    assert exc.value.refs == [("b.txt", (tmp_path / "ext" / "b.txt").as_uri())]
    assert "b.txt" in str(exc.value) and "allow_missing_references" in str(exc.value)
    root = v.download(tmp_path / "out4", allow_missing_references=True)
    assert read_tree(root) == {"a.txt": b"alpha"}


def test_checksum_false_records_uri_and_size_only(repo, tmp_path):
    write_tree(tmp_path / "ext", {"a.txt": b"alpha"})
    a = draft(repo)
    (e,) = a.add_reference((tmp_path / "ext" / "a.txt").as_uri(), checksum=False)
    assert e.digest is None and e.size == 5 and e.ref.startswith("file://")
    v = repo.log_artifact(a)
    write_tree(tmp_path / "ext", {"a.txt": b"ALPHA"})  # same size: cannot be told apart
    assert read_tree(v.download(tmp_path / "out")) == {"a.txt": b"ALPHA"}
    write_tree(tmp_path / "ext", {"a.txt": b"longer"})
    with pytest.raises(ReferenceChanged, match="5 bytes"):
        v.download(tmp_path / "out2")


def test_logging_the_same_references_twice_is_a_no_op(repo, tmp_path):
    write_tree(tmp_path / "ext", {"a.txt": b"alpha"})
    versions = []
    for _ in range(2):
        a = draft(repo)
        a.add_reference((tmp_path / "ext").as_uri(), name="d")
        versions.append(repo.log_artifact(a))
    assert versions[0].version == versions[1].version == "v0"
    # a changed source gives a new digest
    write_tree(tmp_path / "ext", {"a.txt": b"alpha2"})
    a = draft(repo)
    a.add_reference((tmp_path / "ext").as_uri(), name="d")
    assert repo.log_artifact(a).version == "v1"


def _config(path) -> dict:
    with open(path) as f:
        return json.load(f)


def test_feature_flag_is_required_only_once_a_reference_is_logged(repo, tmp_path):
    log_files(repo, tmp_path, {"x": b"1"})
    config = os.path.join(repo.root, "config")
    assert "tree-reference" not in _config(config).get("features", {}).get("read", [])
    write_tree(tmp_path / "ext", {"a.txt": b"alpha"})
    a = draft(repo)
    a.add_reference((tmp_path / "ext" / "a.txt").as_uri())
    repo.log_artifact(a)
    assert "tree-reference" in _config(config)["features"]["read"]


def test_directory_above_max_objects_is_an_error_naming_uri_and_count(repo, tmp_path):
    write_tree(tmp_path / "ext", {f"f{i}.txt": b"x" for i in range(5)})
    a = draft(repo)
    uri = (tmp_path / "ext").as_uri()
    with pytest.raises(TooManyObjects) as exc:
        a.add_reference(uri, max_objects=4)
    assert exc.value.count == 5 and uri in str(exc.value) and "5" in str(exc.value)
    assert a.file_count == 0  # nothing was added
    assert len(a.add_reference(uri, max_objects=5)) == 5


@pytest.mark.parametrize("uri", ["ftp://host/x", "no-scheme/path", "file://relative/x", "s3://", "gs:///key",
                                 "memory://x", 42])
def test_bad_or_unsupported_uris_are_usage_errors(repo, uri):
    a = draft(repo)
    with pytest.raises(InvalidUri):
        a.add_reference(uri)


def test_missing_source_is_an_error_at_add_time(repo, tmp_path):
    with pytest.raises(ReferenceMissing):
        draft(repo).add_reference((tmp_path / "nope").as_uri())


def test_logged_artifact_refuses_new_references(repo, tmp_path):
    write_tree(tmp_path / "ext", {"a.txt": b"alpha"})
    a = draft(repo)
    a.add_reference((tmp_path / "ext").as_uri())
    repo.log_artifact(a)
    with pytest.raises(ArtifactFinalizedError):
        a.add_reference((tmp_path / "ext").as_uri())


def test_incremental_draft_keeps_references_and_diff_shows_them(repo, tmp_path):
    write_tree(tmp_path / "ext", {"a.txt": b"alpha", "b.txt": b"beta"})
    a = draft(repo)
    a.add_reference((tmp_path / "ext").as_uri(), name="refs")
    v0 = repo.log_artifact(a)
    d = v0.new_draft()
    d.remove("refs/b.txt")
    write_tree(tmp_path / "local", {"c.txt": b"gamma"})
    d.add_file(tmp_path / "local" / "c.txt")
    v1 = repo.log_artifact(d)
    assert v1.get_entry("refs/a.txt").ref == v0.get_entry("refs/a.txt").ref
    changes = {c.path: c.status for c in repo.diff(v0.name, v1.name)}
    assert changes == {"refs/b.txt": "removed", "c.txt": "added"}
    (removed,) = [c for c in repo.diff(v0.name, v1.name) if c.status == "removed"]
    assert removed.to_dict()["old"]["ref"].endswith("/ext/b.txt")


def test_repo_verify_reports_missing_and_changed_references_as_findings(repo, tmp_path):
    write_tree(tmp_path / "ext", {"a.txt": b"alpha", "b.txt": b"beta", "c.txt": b"gamma"})
    a = draft(repo)
    a.add_reference((tmp_path / "ext").as_uri())
    v = repo.log_artifact(a)
    report = repo.verify()
    assert report.ok and report.n_references == 3
    write_tree(tmp_path / "ext", {"a.txt": b"ALPHA"})
    os.remove(tmp_path / "ext" / "b.txt")
    report = repo.verify()
    kinds = {f.kind: f for f in report.findings}
    assert set(kinds) == {"reference-changed", "reference-missing"}
    assert kinds["reference-changed"].key.endswith("/a.txt")
    assert kinds["reference-missing"].affected == [f"{v.qualified_name} b.txt"]
    assert repo.verify(check_references=False).ok
    # the per-version check reports them too
    assert {f.kind for f in repo.verify_version(v)} == {"reference-changed", "reference-missing"}


# s3:// ----------------------------------------------------------------------------------
def test_s3_object_records_size_etag_and_version_id(repo, tmp_path, s3):
    client, bucket = s3
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    put(s3, "models/m.bin", b"weights-v1")
    a = draft(repo)
    (e,) = a.add_reference(f"s3://{bucket}/models/m.bin")
    head = client.head_object(Bucket=bucket, Key="models/m.bin")
    assert e.path == "m.bin" and e.size == 10 and e.ref == f"s3://{bucket}/models/m.bin"
    assert e.digest == "etag:" + head["ETag"].strip('"') and e.version_id == head["VersionId"]
    v = repo.log_artifact(a)
    # the object is overwritten: download still fetches the recorded version
    put(s3, "models/m.bin", b"weights-v2-longer")
    assert read_tree(v.download(tmp_path / "out")) == {"m.bin": b"weights-v1"}


def test_s3_prefix_expands_under_name_and_download_verifies(repo, tmp_path, s3):
    _, bucket = s3
    files = {"data/a.csv": b"1,2\n", "data/sub/b.csv": b"3,4\n", "data/c.bin": os.urandom(3000),
             "other/x": b"not included"}
    for k, data in files.items():
        put(s3, k, data)
    a = draft(repo)
    entries = a.add_reference(f"s3://{bucket}/data", name="train")
    assert sorted(e.path for e in entries) == ["train/a.csv", "train/c.bin", "train/sub/b.csv"]
    assert all(e.digest.startswith("etag:") and e.version_id is None for e in entries)
    v = repo.log_artifact(a)
    got = read_tree(v.download(tmp_path / "out"))
    assert got == {"train/" + k[len("data/"):]: d for k, d in files.items() if k.startswith("data/")}
    # an S3 ETag cannot be recomputed locally: verify checks those copies by size and says so
    assert v.verify(tmp_path / "out") == ["train/a.csv", "train/c.bin", "train/sub/b.csv"]
    with open(tmp_path / "out" / "train" / "a.csv", "ab") as f:
        f.write(b"x")
    with pytest.raises(VerifyError) as exc:
        v.verify(tmp_path / "out")
    assert exc.value.modified == ["train/a.csv"]


def test_s3_prefix_above_max_objects_is_an_error(repo, s3):
    _, bucket = s3
    for i in range(3):
        put(s3, f"p/{i}.txt", b"x")
    a = draft(repo)
    with pytest.raises(TooManyObjects) as exc:
        a.add_reference(f"s3://{bucket}/p", max_objects=2)
    assert exc.value.count == 3 and f"s3://{bucket}/p" in str(exc.value)
    assert len(a.add_reference(f"s3://{bucket}/p", max_objects=3)) == 3


def test_s3_changed_object_is_an_error_naming_it(repo, tmp_path, s3):
    _, bucket = s3
    put(s3, "d/a.txt", b"alpha")
    put(s3, "d/b.txt", b"beta")
    a = draft(repo)
    a.add_reference(f"s3://{bucket}/d")
    v = repo.log_artifact(a)
    put(s3, "d/a.txt", b"ALPHA")  # unversioned bucket: the recorded bytes are gone
    with pytest.raises(ReferenceChanged) as exc:
        v.download(tmp_path / "out")
    assert exc.value.path == "a.txt" and f"s3://{bucket}/d/a.txt" in str(exc.value)
    assert {f.kind for f in repo.verify().findings} == {"reference-changed"}


def test_s3_missing_object_fails_or_is_skipped(repo, tmp_path, s3):
    client, bucket = s3
    put(s3, "d/a.txt", b"alpha")
    put(s3, "d/b.txt", b"beta")
    a = draft(repo)
    a.add_reference(f"s3://{bucket}/d")
    v = repo.log_artifact(a)
    client.delete_object(Bucket=bucket, Key="d/b.txt")
    with pytest.raises(ReferenceMissing) as exc:
        v.download(tmp_path / "out")
    assert exc.value.refs == [("b.txt", f"s3://{bucket}/d/b.txt")]
    assert read_tree(v.download(tmp_path / "out2", allow_missing_references=True)) == {"a.txt": b"alpha"}
    (f,) = repo.verify().findings
    assert f.kind == "reference-missing" and f.key == f"s3://{bucket}/d/b.txt"


def test_s3_checksum_false_and_same_references_twice(repo, s3):
    _, bucket = s3
    put(s3, "d/a.txt", b"alpha")
    a = draft(repo)
    (e,) = a.add_reference(f"s3://{bucket}/d/a.txt", checksum=False)
    assert e.digest is None and e.version_id is None and e.size == 5
    v0 = repo.log_artifact(a)
    b = draft(repo)
    b.add_reference(f"s3://{bucket}/d/a.txt", checksum=False)
    assert repo.log_artifact(b) == v0


def test_unreachable_source_is_a_warning_not_a_crash(repo, tmp_path, s3, monkeypatch):
    _, bucket = s3
    put(s3, "a.txt", b"alpha")
    a = draft(repo)
    a.add_reference(f"s3://{bucket}/a.txt")
    v = repo.log_artifact(a)
    dead = f"http://127.0.0.1:{free_port()}"
    repo.reference_options = {"s3": {"client_kwargs": {"endpoint_url": dead},
                                     "config_kwargs": {"retries": {"max_attempts": 1},
                                                       "connect_timeout": 1}}}
    report = repo.verify()
    assert report.ok
    (w,) = report.warnings
    assert w.kind == "reference-unreachable" and w.key == f"s3://{bucket}/a.txt"
    assert w.affected == [f"{v.qualified_name} a.txt"]


# http(s):// ------------------------------------------------------------------------------
def test_http_reference_records_etag_and_size_and_downloads(repo, tmp_path, web):
    root, url = web
    write_tree(root, {"files/model.bin": b"M" * 2048})
    a = draft(repo)
    (e,) = a.add_reference(f"{url}/files/model.bin")
    assert e.path == "model.bin" and e.size == 2048
    assert e.digest == "etag:" + hashlib.md5(b"M" * 2048).hexdigest()
    v = repo.log_artifact(a)
    assert read_tree(v.download(tmp_path / "out")) == {"model.bin": b"M" * 2048}
    write_tree(root, {"files/model.bin": b"N" * 2048})
    with pytest.raises(ReferenceChanged, match="model.bin"):
        v.download(tmp_path / "out2")
    os.remove(root / "files" / "model.bin")
    with pytest.raises(ReferenceMissing, match="model.bin"):
        v.download(tmp_path / "out3")


# gs:// ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gcs_endpoint():
    saved = {k: os.environ.get(k) for k in ("STORAGE_EMULATOR_HOST", "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT")}
    # gcsfs's experimental bucket-type probe uses gRPC, which the emulator does not speak;
    # gcsfs reads this when it is first imported
    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
    pytest.importorskip("gcsfs")
    pytest.importorskip("gcp_storage_emulator")
    with gcs_server("gbkt") as url:
        os.environ["STORAGE_EMULATOR_HOST"] = url
        yield url
    for k, val in saved.items():
        if val is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = val


def test_gcs_reference_records_md5_and_generation_and_downloads(repo, tmp_path, gcs_endpoint):
    repo.reference_options = {"gcs": {"token": "anon", "project": "test"}}
    fs = repo.reference_client()._fs(__import__("cas.api.references", fromlist=["x"]).parse_uri("gs://gbkt/x"))
    prefix = uuid.uuid4().hex[:8]
    fs.pipe(f"gbkt/{prefix}/a.txt", b"alpha")
    fs.pipe(f"gbkt/{prefix}/sub/b.txt", b"beta")
    a = draft(repo)
    entries = a.add_reference(f"gs://gbkt/{prefix}", name="g")
    assert [e.path for e in entries] == ["g/a.txt", "g/sub/b.txt"]
    assert entries[0].digest == "md5:" + hashlib.md5(b"alpha").hexdigest() and entries[0].version_id
    v = repo.log_artifact(a)
    assert read_tree(v.download(tmp_path / "out")) == {"g/a.txt": b"alpha", "g/sub/b.txt": b"beta"}
    assert v.verify(tmp_path / "out") == []  # MD5 is checked by content
    fs.pipe(f"gbkt/{prefix}/a.txt", b"ALPHA")
    with pytest.raises(ReferenceChanged, match="g/a.txt"):
        v.download(tmp_path / "out2")


def test_cas_module_import_does_not_import_fsspec():
    import subprocess
    import sys

    code = "import sys, cas, cas.api.repo, cas.api.references; print('fsspec' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_new_repo_handle_reads_reference_versions(make_repo, tmp_path):
    repo = make_repo()
    write_tree(tmp_path / "ext", {"a.txt": b"alpha"})
    a = draft(repo)
    a.add_reference((tmp_path / "ext").as_uri())
    v = repo.log_artifact(a)
    root = repo.root
    repo.close()
    with cas.Repo(os.path.dirname(root)) as again:
        w = again.artifact(v.name)
        assert w.get_entry("a.txt").ref == (tmp_path / "ext" / "a.txt").as_uri()
        assert again.verify().ok


def test_gc_keeps_reference_versions_and_their_trees(repo, tmp_path):
    write_tree(tmp_path / "ext", {"a.txt": b"alpha", "sub/b.txt": b"beta"})
    a = draft(repo)
    a.add_reference((tmp_path / "ext").as_uri(), name="r")
    a.add(json.loads('{"k": 1}'), "meta")
    v = repo.log_artifact(a)
    log_files(repo, tmp_path, {"other": b"x" * 3000}, name="junk").delete(delete_aliases=True)
    repo.gc(grace=0, repack_threshold=0.0)
    assert read_tree(v.download(tmp_path / "out")) == {"r/a.txt": b"alpha", "r/sub/b.txt": b"beta",
                                                       "meta.json": b'{"k":1}'}
    report = repo.verify()
    assert report.ok and report.n_references == 2
