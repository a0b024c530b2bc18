"""Artifact names, aliases and logical paths: what users may name things."""

import pytest

from cas.errors import InvalidName, UnsafePath, UsageError
from cas.format.names import check_alias, check_name, check_path, check_segment, normalize_prefix


@pytest.mark.parametrize("name", ["a", "data", "my-model_v2.1", "A" * 128, "0", "x.y-z_w", "..."])
def test_valid_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "a/b", "a b", "ä", "a:b", "A" * 129, ".", "..", "a\x00", "tab\t", None, 3, b"abc", "x@y"],
)
def test_invalid_names(name):
    with pytest.raises(InvalidName) as info:
        check_name(name)
    assert isinstance(info.value, UsageError)


def test_invalid_name_names_the_kind():
    with pytest.raises(InvalidName, match="project name"):
        check_name("bad name", "project name")


@pytest.mark.parametrize("alias", ["best", "prod", "v", "vx", "v1a", "V1", "v01", "version1", "v-1"])
def test_valid_aliases(alias):
    assert check_alias(alias) == alias


@pytest.mark.parametrize("alias", ["v0", "v1", "v12", "v999"])
def test_version_like_aliases_are_reserved(alias):
    with pytest.raises(InvalidName, match="vN"):
        check_alias(alias)


@pytest.mark.parametrize("alias", ["", "a b", "a/b", "."])
def test_aliases_follow_the_name_rule(alias):
    with pytest.raises(InvalidName):
        check_alias(alias)


@pytest.mark.parametrize(
    "path",
    ["a", "a/b/c.txt", "dir/.hidden", "a..b", "...", "é/ü.txt", "a b/c", "x/y z"],
)
def test_safe_paths(path):
    assert check_path(path) == path


@pytest.mark.parametrize(
    "path, reason",
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("a/..", "'..'"),
        ("a\x00b", "NUL"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("a\\b", "backslash"),
        ("..\\x", "backslash"),
        (".", "'.'"),
        ("./a", "'.'"),
        ("a/./b", "'.'"),
        ("a" * 256, "longer"),
        ("a/" * 2100 + "b", "longer"),
        ("\udcff", "UTF-8"),
    ],
)
def test_unsafe_paths(path, reason):
    with pytest.raises(UnsafePath, match=reason):
        check_path(path)


@pytest.mark.parametrize("path", [None, b"a", 1, ["a"]])
def test_non_string_paths_are_unsafe(path):
    with pytest.raises(UnsafePath):
        check_path(path)


def test_segments_cannot_contain_a_slash():
    assert check_segment("file.txt") == "file.txt"
    with pytest.raises(UnsafePath):
        check_segment("a/b")
    with pytest.raises(UnsafePath):
        check_segment("..")


@pytest.mark.parametrize("prefix, out", [("a/b", "a/b"), ("./a", "a"), ("././a/", "a/"), ("a\\b", "a/b"), ("", "")])
def test_normalize_prefix(prefix, out):
    assert normalize_prefix(prefix) == out


@pytest.mark.parametrize("prefix", ["/a", "../a", "a/../b", "a\x00"])
def test_normalize_prefix_rejects_escapes(prefix):
    with pytest.raises(UnsafePath):
        normalize_prefix(prefix)
