"""Artifact references: ``[project/]name[:selector]`` (API.md "References")."""

from __future__ import annotations

from dataclasses import dataclass

from cas.errors import InvalidName, InvalidReference, UsageError
from cas.format.names import VERSION_RE, check_name
from cas.format.semver import is_semver

DEFAULT_PROJECT = "default"


@dataclass(frozen=True)
class Ref:
    """A parsed reference; ``selector`` is 'vN', a semantic version, an alias, or None for latest."""

    project: str
    name: str
    selector: str | None

    @property
    def collection(self) -> str:
        """The collection key ``project/name``."""
        return f"{self.project}/{self.name}"

    @property
    def version_index(self) -> int | None:
        """N for a 'vN' selector, else None."""
        if self.selector and VERSION_RE.match(self.selector):
            return int(self.selector[1:])
        return None

    @property
    def semver(self) -> str | None:
        """The selector if it is a semantic version ('1.2.0'), else None."""
        return self.selector if self.selector and is_semver(self.selector) else None


def parse_ref(text: str, default_project: str = DEFAULT_PROJECT) -> Ref:
    """Parse a reference string.

    Raises:
        InvalidReference: Wrong shape or invalid names.
    """
    if not isinstance(text, str) or not text:
        raise InvalidReference(text, "empty")
    body, sep, selector = text.partition(":")
    if sep and not selector:
        raise InvalidReference(text, "empty selector after ':'")
    parts = body.split("/")
    if len(parts) == 1:
        project, name = default_project, parts[0]
    elif len(parts) == 2:
        project, name = parts
    elif len(parts) == 3:  # entity/project/name: the entity is the local store
        _entity, project, name = parts
    else:
        raise InvalidReference(text, "too many '/'")
    try:
        check_name(project, "project name")
        check_name(name, "artifact name")
        if selector and not is_semver(selector):  # '1.2.0+build.5' is no name
            check_name(selector, "version, semantic version or alias")
    except InvalidName as exc:
        raise InvalidReference(text, str(exc)) from None
    return Ref(project, name, selector or None)


def split_collection(collection: str) -> tuple[str, str]:
    """Return ``(project, name)`` of a collection key."""
    project, _, name = collection.partition("/")
    return project, name


def ttl_seconds(value) -> int | None:
    """Return a time to live as whole seconds: int seconds, a ``timedelta``, or None.

    Raises:
        UsageError: Negative, or not a number of seconds.
    """
    import datetime

    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise UsageError(f"a ttl must be a non-negative number of seconds, a timedelta or None, not {value!r}")
    return int(value)
