"""Semantic versions (semver.org 2.0.0): validation, precedence, bumps (docs/format.md §7.5).

Pure values; no I/O. A semantic version is an optional label on a logged
version (Comet's ``version="1.2.0"``); version numbers ``vN`` stay positional.
"""

from __future__ import annotations

import re

from cas.errors import InvalidSemver

# semver.org 2.0.0, "Is there a suggested regular expression": no leading zeros in
# numeric identifiers, dot-separated prerelease and build identifiers.
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$",
    re.ASCII,
)
MAX_SEMVER = 128
BUMPS = ("major", "minor", "patch")


def is_semver(text: object) -> bool:
    """Return True if ``text`` is a strict semantic version string."""
    return isinstance(text, str) and len(text) <= MAX_SEMVER and SEMVER_RE.match(text) is not None


def check_semver(text: object) -> str:
    """Return ``text`` if it is a strict semantic version ``MAJOR.MINOR.PATCH[-pre][+build]``.

    Raises:
        InvalidSemver: Anything else (leading zeros, missing parts, a 'v' prefix, ...).
    """
    if not is_semver(text):
        raise InvalidSemver(text)
    return text  # type: ignore[return-value]


def precedence_key(text: str) -> tuple:
    """Return a sort key that orders versions by semver.org precedence (§11).

    Build metadata is ignored; a prerelease sorts before its release; numeric
    prerelease identifiers sort numerically and before alphanumeric ones.
    """
    m = SEMVER_RE.match(text)
    if m is None:
        raise InvalidSemver(text)
    major, minor, patch, pre, _build = m.groups()
    if pre is None:
        pre_key: tuple = (1,)
    else:
        pre_key = (0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
    return int(major), int(minor), int(patch), pre_key


def bump(current: str | None, part: str) -> str:
    """Return the next release after ``current`` with ``part`` incremented.

    ``current`` None means no semantic version yet: the result is 1.0.0, 0.1.0
    or 0.0.1. Incrementing drops prerelease and build; a prerelease bumps to its
    own release when the lower parts are zero (1.1.0-rc.1 + minor = 1.1.0), as
    npm does.

    Raises:
        InvalidSemver: ``part`` is not major, minor or patch, or ``current`` is malformed.
    """
    if part not in BUMPS:
        raise InvalidSemver(part, f"a version bump is one of {', '.join(BUMPS)}")
    if current is None:
        return {"major": "1.0.0", "minor": "0.1.0", "patch": "0.0.1"}[part]
    m = SEMVER_RE.match(current)
    if m is None:
        raise InvalidSemver(current)
    major, minor, patch = int(m.group(1)), int(m.group(2)), int(m.group(3))
    pre = m.group(4) is not None
    if part == "major":
        return f"{major}.0.0" if pre and minor == 0 and patch == 0 else f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor}.0" if pre and patch == 0 else f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch}" if pre else f"{major}.{minor}.{patch + 1}"
