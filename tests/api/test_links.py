"""Registry links: versions of a collection that resolve to another collection's version."""

import pytest

import cas

from cas.errors import InvalidReference, NotALink, UsageError, VersionNotFound
from tests.api.helpers import log_files
from tests.conftest import read_tree

FILES = {"w.bin": b"weights" * 500, "cfg/a.json": b"{}"}


@pytest.fixture
def model(repo, tmp_path):
    log_files(repo, tmp_path, {"w.bin": b"old"}, name="model", type="model")
    return log_files(repo, tmp_path, FILES, name="model", type="model")


def test_a_link_resolves_to_the_source_content(repo, tmp_path, model):
    link = model.link("registry/best-model", aliases=["prod"])
    assert link.qualified_name == "registry/best-model:v0" and link.is_link and not model.is_link
    assert (link.source_collection, link.source_version, link.source_project) == ("model", "v1", "default")
    assert link.source_name == "model:v1" and link.source_qualified_name == "default/model:v1"
    assert link.source_artifact == model and model.source_artifact == model
    assert link.digest == model.digest and link.size == model.size and link.type == "model"
    assert model.linked_artifacts == [link] and link.linked_artifacts == [link]
    assert sorted(link.aliases) == ["latest", "prod"]
    assert repo.artifact("registry/best-model:prod") == link
    assert read_tree(link.download(tmp_path / "dl")) == FILES
    assert link.get_entry("w.bin").digest == model.get_entry("w.bin").digest


def test_link_versions_number_in_order_and_a_link_of_a_link_names_the_source(repo, tmp_path, model):
    first = repo.artifact("model:v0").link("reg")
    second = model.link("reg")
    assert (first.version, second.version) == ("v0", "v1")
    again = second.link("reg2")
    assert again.source_artifact == model
    assert model.linked_artifacts == [second, again]


def test_linking_the_same_source_twice_is_a_no_op(repo, tmp_path, model):
    link = model.link("reg")
    seq = repo.log.last_seq()
    assert model.link("reg") == link and repo.log.last_seq() == seq
    assert model.link("default/reg", aliases=["prod"]) == link  # adds the alias, no new version
    assert "prod" in link.aliases and len(repo.artifacts("reg")) == 1


def test_unlink_removes_the_link_and_never_the_source(repo, tmp_path, model):
    link = model.link("reg", aliases=["prod"])
    link.unlink()
    assert link.state == "DELETED" and model.linked_artifacts == []
    with pytest.raises(VersionNotFound):
        repo.artifact("reg:v0")
    with pytest.raises(VersionNotFound):
        repo.artifact("reg:prod")
    src = repo.artifact("model:v1")
    assert src.state == "COMMITTED" and read_tree(src.download(tmp_path / "dl")) == FILES
    relinked = model.link("reg")  # a new link after an unlink
    assert relinked.version == "v1" and model.linked_artifacts == [relinked]
    link.unlink()  # unlinking twice changes nothing


def test_unlink_of_a_non_link_is_a_clear_error(repo, model):
    with pytest.raises(NotALink, match="not a link"):
        model.unlink()
    assert repo.artifact("model:v1").state == "COMMITTED"


def test_bad_link_targets_are_refused(repo, tmp_path, model):
    with pytest.raises(InvalidReference, match="selector"):
        model.link("reg:v0")
    with pytest.raises(InvalidReference):
        model.link("a/b/c/d")
    with pytest.raises(UsageError, match="own collection"):
        model.link("model")
    log_files(repo, tmp_path, {"x": b"x"}, name="ds")
    with pytest.raises(UsageError, match="type"):
        model.link("ds")
    with pytest.raises(UsageError):
        model.link("reg", aliases=["v3"])
    assert [c["name"] for c in repo.collections()] == ["ds", "model"]


def test_links_survive_an_index_rebuild(repo, tmp_path, model):
    link = model.link("reg", aliases=["prod"])
    repo.rebuild_index()
    again = repo.artifact("reg:prod")
    assert again.is_link and again.source_artifact == model and again.digest == link.digest


def test_a_run_links_what_it_logged(repo, tmp_path):
    from tests.api.helpers import draft

    (tmp_path / "w").write_bytes(b"w")
    with repo.run(job_type="train") as run:
        art = draft(repo, "net", "model")
        with pytest.raises(UsageError, match="not logged"):
            run.link_artifact(art, "registry/net")
        art.add_file(tmp_path / "w")
        run.log_artifact(art)
        link = run.link_artifact(art, "registry/net", aliases=["staging"])
    assert link.source_artifact.logged_by() == run and "staging" in link.aliases
    assert run.link_artifact(link.source_artifact, "registry/net") == link


def test_deleting_the_source_leaves_a_live_link_readable(repo, tmp_path, model):
    import time

    from cas.api.publish import append_entry
    from cas.format import records as R

    link = model.link("reg")
    append_entry(repo, lambda t: {"op": R.OP_DELETE, "collection": "default/model", "version": 1,
                                  "time_ns": time.time_ns()})
    with pytest.raises(VersionNotFound):
        repo.artifact("model:v1")
    again = repo.artifact("reg:v0")
    assert again.is_link and read_tree(again.download(tmp_path / "dl")) == FILES
    assert again.source_artifact.state == "DELETED"
    assert link.linked_artifacts == [again]


def test_the_target_project_defaults_to_the_sources(repo, tmp_path):
    (tmp_path / "f").write_bytes(b"f")
    a = cas.Artifact("net", "model", repo=repo)
    a.add_file(tmp_path / "f")
    v = repo.log_artifact(a, project="team")
    assert v.link("reg").qualified_name == "team/reg:v0"
    assert v.link("other/reg").qualified_name == "other/reg:v0"
