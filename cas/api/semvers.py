"""Semantic version labels on logged versions (Comet ``version="1.2.0"``; docs/format.md §7.5).

Chooses the label a new version gets inside the append transaction, so the
duplicate check and the append are atomic against other writers.
"""

from __future__ import annotations

from cas.errors import AlreadyExists
from cas.format.semver import BUMPS, bump, check_semver, precedence_key


def check_request(requested) -> str | None:
    """Return a valid semver request: None, 'major', 'minor', 'patch' or a semantic version.

    Raises:
        InvalidSemver: Anything else.
    """
    if requested is None or requested in BUMPS:
        return requested
    return check_semver(requested)


def highest(t, coll: str) -> str | None:
    """Return the highest semantic version (by semver precedence) in a collection, or None."""
    labels = [s for s, _v in t.iter_semvers(coll)]
    return max(labels, key=precedence_key) if labels else None


def choose(t, coll: str, requested: str | None) -> str | None:
    """Return the semver a new version of ``coll`` gets for ``requested`` (see ``check_request``).

    A bump increments the highest semver of the collection (1.0.0, 0.1.0 or
    0.0.1 when it has none).

    Raises:
        AlreadyExists: The semantic version labels another version of ``coll``.
    """
    if requested is None:
        return None
    semver = bump(highest(t, coll), requested) if requested in BUMPS else requested
    taken = t.get_semver(coll, semver)
    if taken is not None:
        raise AlreadyExists(
            f"{coll} already has semantic version {semver} (v{taken}); log with another version, "
            f"or with version='patch'/'minor'/'major' to take the next free one"
        )
    return semver
