"""Validation of names and logical paths (docs/format.md §7.4).

Names follow W&B's rule: letters, digits, ``_``, ``-`` and ``.``. Logical paths
are relative, '/'-separated, with no empty, '.' or '..' segment and no NUL. A
store is never trusted to supply safe paths either: decoders call these too.
"""

from __future__ import annotations

import re

from cas.errors import InvalidName, UnsafePath

NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
VERSION_RE = re.compile(r"^v(0|[1-9][0-9]*)$")
MAX_NAME = 128
MAX_PATH = 4096
MAX_SEGMENT = 255
RULE = "use 1-128 letters, digits, '_', '-' or '.'"


def check_name(name: object, kind: str = "artifact name") -> str:
    """Return ``name`` if it is a valid artifact, project, alias or tag name.

    Raises:
        InvalidName: Wrong type, empty, too long, or a character outside the rule.
    """
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or not NAME_RE.match(name):
        raise InvalidName(kind, name, RULE)
    if name in (".", ".."):
        raise InvalidName(kind, name, "'.' and '..' are reserved")
    return name


def check_alias(alias: object) -> str:
    """Return ``alias`` if users may set it; ``vN`` is reserved for versions.

    Raises:
        InvalidName: Invalid characters or a reserved form.
    """
    check_name(alias, "alias")
    if VERSION_RE.match(alias):  # type: ignore[arg-type]
        raise InvalidName("alias", alias, "'vN' names a version and cannot be an alias")
    return alias  # type: ignore[return-value]


def check_path(path: object) -> str:
    """Return ``path`` if it is a safe logical path.

    Raises:
        UnsafePath: Not a str, empty, absolute, or with NUL, empty, '.' or '..' segments.
    """
    if not isinstance(path, str):
        raise UnsafePath(path, "must be a string")
    if not path:
        raise UnsafePath(path, "is empty")
    if "\x00" in path:
        raise UnsafePath(path, "contains NUL")
    try:
        path.encode("utf-8")  # docs/format.md §8.2: names are stored as UTF-8 str
    except UnicodeEncodeError:
        raise UnsafePath(path, "is not valid UTF-8 (a file name with undecodable bytes?)") from None
    if "\\" in path:
        raise UnsafePath(path, "contains a backslash")
    if path.startswith("/"):
        raise UnsafePath(path, "is absolute")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH:
        raise UnsafePath(path, f"is longer than {MAX_PATH} bytes")
    for seg in path.split("/"):
        if seg == "":
            raise UnsafePath(path, "has an empty segment")
        if seg in (".", ".."):
            raise UnsafePath(path, f"has a {seg!r} segment")
        if len(seg.encode("utf-8", "surrogatepass")) > MAX_SEGMENT:
            raise UnsafePath(path, f"has a segment longer than {MAX_SEGMENT} bytes")
    return path


def check_segment(name: object) -> str:
    """Return ``name`` if it is a safe single path segment (a tree entry name).

    Raises:
        UnsafePath: It is not a valid single segment.
    """
    check_path(name)
    if "/" in name:  # type: ignore[operator]
        raise UnsafePath(name, "a tree entry name cannot contain '/'")
    return name  # type: ignore[return-value]


def normalize_prefix(prefix: str) -> str:
    """Return a path prefix with no leading './' or '/' for string matching.

    Raises:
        UnsafePath: It contains NUL or a '..' segment.
    """
    if "\x00" in prefix:
        raise UnsafePath(prefix, "contains NUL")
    p = prefix.replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    if p.startswith("/"):
        raise UnsafePath(prefix, "is absolute")
    if any(seg == ".." for seg in p.split("/")):
        raise UnsafePath(prefix, "has a '..' segment")
    return p
