"""Semantic versions: strict semver.org syntax, precedence and bumps."""

import pytest

from cas.errors import InvalidSemver, UsageError
from cas.format.semver import bump, check_semver, is_semver, precedence_key

VALID = ["0.0.0", "1.2.0", "10.20.30", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7", "1.0.0-x.7.z.92",
         "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85", "1.0.0-rc.1+build.1", "2.0.0-x-y"]
INVALID = ["", "1", "1.2", "1.2.3.4", "01.2.3", "1.02.3", "1.2.03", "v1.2.3", "1.2.3-", "1.2.3+", "1.2.3-01",
           "1.2.3-a..b", "1.2.3+a..b", " 1.2.3", "1.2.3 ", "1.2.3-ä", "-1.2.3", "1.2.x", "latest", None, 123]


@pytest.mark.parametrize("text", VALID)
def test_valid_semantic_versions_are_accepted(text):
    assert is_semver(text) and check_semver(text) == text


@pytest.mark.parametrize("text", INVALID)
def test_malformed_semantic_versions_are_refused_with_a_usage_error(text):
    assert not is_semver(text)
    with pytest.raises(InvalidSemver) as info:
        check_semver(text)
    assert isinstance(info.value, UsageError) and "MAJOR.MINOR.PATCH" in str(info.value)


def test_precedence_follows_semver_org():
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
               "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "1.10.0", "2.0.0"]
    assert sorted(reversed(ordered), key=precedence_key) == ordered
    assert precedence_key("1.0.0+a") == precedence_key("1.0.0+b")  # build metadata is ignored


@pytest.mark.parametrize("current,part,expected", [
    (None, "major", "1.0.0"), (None, "minor", "0.1.0"), (None, "patch", "0.0.1"),
    ("1.2.3", "patch", "1.2.4"), ("1.2.3", "minor", "1.3.0"), ("1.2.3", "major", "2.0.0"),
    ("1.2.3+b", "patch", "1.2.4"), ("1.2.3-rc.1", "patch", "1.2.3"), ("1.3.0-rc.1", "minor", "1.3.0"),
    ("2.0.0-rc.1", "major", "2.0.0"), ("1.3.0-rc.1", "major", "2.0.0"), ("1.2.9", "patch", "1.2.10"),
])
def test_bumps_increment_one_part_and_reset_the_lower_ones(current, part, expected):
    assert bump(current, part) == expected


def test_an_unknown_bump_is_refused():
    with pytest.raises(InvalidSemver, match="major, minor, patch"):
        bump("1.0.0", "micro")
