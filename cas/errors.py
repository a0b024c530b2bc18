"""The exception hierarchy of cas: every error raised on purpose is a CasError.

Layer: bottom; imports nothing from cas. Exit codes are class attributes and are
mapped to process exit status only in ``cas.cli.main``.
"""

from __future__ import annotations


class CasError(Exception):
    """Root of every error cas raises on purpose."""

    exit_code = 3

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message or self.__class__.__name__


class UsageError(CasError):
    """The caller passed a value cas cannot accept (bad name, path, option)."""

    exit_code = 2


class InvalidName(UsageError):
    """An artifact, project, alias or tag name breaks the naming rule."""

    exit_code = 2

    def __init__(self, kind: str, name: object, rule: str) -> None:
        self.kind = kind
        self.name = name
        super().__init__(f"invalid {kind} {name!r}: {rule}")


class UnsafePath(UsageError):
    """A logical path is absolute, contains '..', NUL or an empty segment."""

    exit_code = 2

    def __init__(self, path: object, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"unsafe logical path {path!r}: {reason}; use a relative path like 'dir/file.txt'"
        )


class InvalidMetadata(UsageError):
    """Metadata is not a msgpack-serializable mapping of at most 100 keys."""

    exit_code = 2


class InvalidReference(UsageError):
    """An artifact reference string does not parse."""

    exit_code = 2

    def __init__(self, ref: object, reason: str) -> None:
        self.ref = ref
        super().__init__(
            f"invalid artifact reference {ref!r}: {reason}; expected [project/]name[:vN|:alias|:semver]"
        )


class InvalidSemver(UsageError):
    """A semantic version string is not strict MAJOR.MINOR.PATCH[-prerelease][+build]."""

    exit_code = 2

    def __init__(self, text: object, rule: str = "") -> None:
        self.text = text
        super().__init__(
            f"invalid semantic version {text!r}: "
            + (rule or "use MAJOR.MINOR.PATCH with optional -prerelease and +build (semver.org), e.g. '1.2.0'")
        )


class NotALink(UsageError):
    """A link operation on a version that is not a registry link."""

    exit_code = 2

    def __init__(self, name: str, action: str) -> None:
        self.name = name
        super().__init__(f"{name} is not a link, so it cannot be {action}; pass the link version (see its linked_artifacts)")


class ArtifactFinalizedError(CasError):
    """A logged (finalized) artifact cannot be modified."""

    exit_code = 4

    def __init__(self, name: str, action: str) -> None:
        self.name = name
        super().__init__(
            f"artifact {name!r} is finalized; cannot {action}: call version.new_draft() "
            "to make a draft you can change"
        )


class NotFound(CasError, LookupError):
    """Something asked for by name or id does not exist."""

    exit_code = 5


class ObjectNotFound(NotFound, KeyError):
    """An object id is not in the store."""

    exit_code = 6

    def __init__(self, object_id: str, context: str = "") -> None:
        self.object_id = object_id
        extra = f" ({context})" if context else ""
        super().__init__(
            f"object {object_id} is missing from the store{extra}; run 'cas fsck' to see what it affects"
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class EntryNotFound(NotFound, KeyError):
    """No entry exists at a logical path of an artifact."""

    exit_code = 14

    def __init__(self, path: str, artifact: str) -> None:
        self.path = path
        super().__init__(f"no entry {path!r} in artifact {artifact!r}; list entries with 'cas ls'")

    def __str__(self) -> str:
        return self.message


class NothingToRemove(NotFound, FileNotFoundError):
    """``remove`` matched no entry."""

    exit_code = 15

    def __init__(self, path: str, artifact: str) -> None:
        self.path = path
        CasError.__init__(self, f"nothing at {path!r} in draft {artifact!r} to remove")

    def __str__(self) -> str:
        return self.message


class VersionNotFound(NotFound):
    """An artifact reference resolves to no version."""

    exit_code = 7


class CollectionNotFound(VersionNotFound):
    """No artifact collection has this name."""

    exit_code = 8


class RepoNotFound(NotFound):
    """No cas repository exists at the given path."""

    exit_code = 9


class AlreadyExists(CasError):
    """Creating something that already exists."""

    exit_code = 10


class PathConflict(UsageError):
    """A draft already holds different content at a logical path."""

    exit_code = 11


class FileChangedError(CasError):
    """A file added with policy='immutable' changed before the artifact was logged."""

    exit_code = 12


class DownloadConflict(CasError):
    """Download with overwrite_strategy='FAIL' found existing files that differ."""

    exit_code = 13

    def __init__(self, root: str, paths: list[str]) -> None:
        self.root = root
        self.paths = list(paths)
        shown = ", ".join(self.paths[:5]) + (" ..." if len(self.paths) > 5 else "")
        super().__init__(
            f"{len(self.paths)} existing file(s) in {root} differ from the artifact: {shown}; "
            "nothing was written; pass overwrite_strategy='OVERWRITE' or 'PRESERVE'"
        )


class VerifyError(CasError):
    """Files on disk do not match a version's manifest."""

    exit_code = 1

    def __init__(self, root: str, missing: list[str], modified: list[str], unexpected: list[str]):
        self.root = root
        self.missing = list(missing)
        self.modified = list(modified)
        self.unexpected = list(unexpected)
        parts = []
        for label, items in (("missing", missing), ("modified", modified), ("unexpected", unexpected)):
            if items:
                shown = ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")
                parts.append(f"{len(items)} {label}: {shown}")
        super().__init__(f"{root} does not match the artifact: " + "; ".join(parts))


class FormatError(CasError):
    """Bytes do not parse: bad magic, size, truncation, wrong types."""

    exit_code = 20


class UnsupportedFormat(FormatError):
    """The store or object was written by a newer format version."""

    exit_code = 21


class UnknownCodec(FormatError):
    """An object names a codec id this build does not know."""

    exit_code = 22


class IntegrityError(CasError):
    """Data parses but is wrong: a stored object does not hash to its id."""

    exit_code = 23


class DigestMismatch(IntegrityError):
    """Stored bytes hash to something other than their id."""

    exit_code = 24

    def __init__(self, key: str, expected: str, actual: str, where: str = "") -> None:
        self.key = key
        self.expected = expected
        self.actual = actual
        self.where = where
        loc = f" in {where}" if where else ""
        super().__init__(
            f"corrupt object {key}{loc}: content hashes to {actual}, expected {expected}; "
            "run 'cas fsck' to list affected files and versions"
        )


class StorageError(CasError):
    """The backing storage failed (I/O error, permissions, disk full)."""

    exit_code = 30


class IndexDbError(CasError):
    """The LMDB index could not be used."""

    exit_code = 31


class IndexCorrupt(IndexDbError):
    """The LMDB index is damaged; rebuild it with 'cas fsck --rebuild-index'."""

    exit_code = 32


class ConcurrentUpdateError(CasError):
    """Too many concurrent writers raced for the log; retry."""

    exit_code = 33


class VersionDeleted(VersionNotFound):
    """The version was deleted; its history stays visible in 'cas log --all'."""

    exit_code = 40


class DeleteRefused(UsageError):
    """A delete would remove aliases; move them or pass delete_aliases=True (--delete-aliases)."""

    exit_code = 41


class GcBusy(ConcurrentUpdateError):
    """Another gc holds the store's gc lease; wait for it or for the lease to expire."""

    exit_code = 42
class InvalidUri(UsageError):
    """A reference URI does not parse or uses an unsupported scheme."""

    exit_code = 2

    def __init__(self, uri: object, reason: str) -> None:
        self.uri = uri
        super().__init__(f"invalid reference URI {uri!r}: {reason}")


class TooManyObjects(UsageError):
    """A reference prefix or directory holds more objects than ``max_objects`` allows."""

    exit_code = 2

    def __init__(self, uri: str, count: int, limit: int) -> None:
        self.uri = uri
        self.count = count
        self.limit = limit
        super().__init__(
            f"{uri} holds {count} objects, more than max_objects={limit}; nothing was added: "
            f"pass max_objects={count} (or more) or reference a narrower prefix"
        )


class ReferenceMissing(NotFound):
    """A referenced object (or its recorded version) does not exist at its URI."""

    exit_code = 45

    def __init__(self, refs: list, reason: str = "") -> None:
        self.refs = [tuple(r) for r in refs]  # (logical path, uri)
        shown = ", ".join(f"{p} ({u})" if p else u for p, u in self.refs[:5]) + (" ..." if len(self.refs) > 5 else "")
        why = reason or "no longer exist(s) at the source"
        super().__init__(
            f"{len(self.refs)} referenced object(s) {why}: {shown}; restore them, or pass "
            "allow_missing_references=True (cas get --allow-missing-references) to skip them"
        )


class ReferenceChanged(IntegrityError):
    """A referenced object differs from the size or checksum recorded when it was added."""

    exit_code = 46

    def __init__(self, path: str, uri: str, expected: str, actual: str) -> None:
        self.path = path
        self.uri = uri
        self.expected = expected
        self.actual = actual
        at = f"{path} ({uri})" if path else uri
        super().__init__(
            f"referenced object {at} changed since it was added: expected {expected}, found {actual}; "
            "restore the original object or log a new version that references the current one"
        )


class ReferenceUnreachable(StorageError):
    """A referenced object's source cannot be reached (network, credentials, missing filesystem)."""

    exit_code = 47

    def __init__(self, uri: str, reason: str) -> None:
        self.uri = uri
        self.reason = reason
        super().__init__(f"cannot reach {uri}: {reason}")




def render_errors_markdown() -> str:
    """Return docs/errors.md: every error class, its parent and exit code."""
    lines = [
        "# Errors",
        "",
        "Generated from `cas/errors.py` by `python -c 'import cas.errors as e; print(e.render_errors_markdown(), end=\"\")'`;",
        "a test fails when this file is stale. Every error cas raises on purpose is a `CasError`;",
        "the CLI prints its message on one line and exits with its code.",
        "",
        "| class | parent | exit code | meaning |",
        "|---|---|---|---|",
    ]
    classes = sorted(
        (c for c in globals().values() if isinstance(c, type) and issubclass(c, CasError)),
        key=lambda c: (c.exit_code, c.__name__),
    )
    for c in classes:
        parent = next((b.__name__ for b in c.__bases__ if issubclass(b, CasError)), "Exception")
        doc = (c.__doc__ or "").strip().splitlines()[0]
        lines.append(f"| `{c.__name__}` | `{parent}` | {c.exit_code} | {doc} |")
    return "\n".join(lines) + "\n"
