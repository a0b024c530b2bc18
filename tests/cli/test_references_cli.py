"""``cas add URI``: references from the command line, against a moto S3 server on 127.0.0.1."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.api.references_servers import s3_server
from tests.cli.test_cli import one_line_error, run
from tests.conftest import read_tree

pytest.importorskip("s3fs")


@pytest.fixture(scope="module")
def s3_endpoint():
    with s3_server() as url:
        yield url


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    import boto3

    for k, v in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                 ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", s3_endpoint)):
        monkeypatch.setenv(k, v)  # inherited by the cas subprocesses
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    name = "b-" + uuid.uuid4().hex[:12]
    client.create_bucket(Bucket=name)
    for key, data in (("pre/a.csv", b"1,2\n"), ("pre/sub/b.csv", b"3,4\n"), ("pre/c.csv", b"5\n")):
        client.put_object(Bucket=name, Key=key, Body=data)
    return client, name


def test_add_prefix_ls_show_get(tmp_path, bucket):
    client, name = bucket
    proj = tmp_path / "proj"
    run("init", proj, check=0)
    repo = ["--repo", proj]
    p = run(*repo, "--json", "add", f"s3://{name}/pre", "--name", "raw", "--type", "dataset", check=0)
    assert json.loads(p.stdout)["file_count"] == 3
    p = run(*repo, "--json", "ls", "raw", check=0)
    entries = {e["path"]: e for e in json.loads(p.stdout)}
    assert entries["sub/b.csv"]["ref"] == f"s3://{name}/pre/sub/b.csv"
    assert entries["a.csv"]["digest"].startswith("etag:") and entries["a.csv"]["size"] == 4
    p = run(*repo, "show", "raw", check=0)
    assert "references" in p.stdout and f"s3://{name}/pre/a.csv" in p.stdout
    run(*repo, "get", "raw", tmp_path / "out", check=0)
    assert read_tree(tmp_path / "out") == {"a.csv": b"1,2\n", "sub/b.csv": b"3,4\n", "c.csv": b"5\n"}
    # a missing object: one-line error naming it, or skipped on request
    client.delete_object(Bucket=name, Key="pre/c.csv")
    p = run(*repo, "get", "raw", tmp_path / "out2", check=45)
    assert f"s3://{name}/pre/c.csv" in one_line_error(p)
    run(*repo, "get", "raw", tmp_path / "out3", "--allow-missing-references", check=0)
    assert set(read_tree(tmp_path / "out3")) == {"a.csv", "sub/b.csv"}
    p = run(*repo, "add", f"s3://{name}/pre", "--name", "other", "--max-objects", "1", check=2)
    line = one_line_error(p)
    assert f"s3://{name}/pre" in line and "2 objects" in line
