"""Log entries and repository config <-> bytes (docs/format.md §7).

A log entry is ``LOG_MAGIC`` followed by one canonical msgpack map (keys
sorted, smallest integer forms, bytes as bin, text as str). Its id — the
``commit_hash`` of what it publishes — is a keyed BLAKE3 over the whole file.
"""

from __future__ import annotations

import json

import msgpack

from cas.errors import FormatError, InvalidMetadata, InvalidName, UnsupportedFormat
from cas.format.digest import CONTEXT_LOG_ENTRY, DIGEST_SIZE, keyed_id
from cas.format.names import check_name
from cas.format.semver import is_semver

FORMAT_VERSION = 1
LOG_MAGIC = b"CASLOG1\n"
MAX_METADATA_KEYS = 100
MAX_ENTRY = 16 * 1024 * 1024
# docs/format.md §1.2: mandatory feature flags this build implements.
FEATURE_LIFECYCLE = "lifecycle"  # ops delete, collection_update
FEATURE_LINK = "link"  # op link
FEATURE_LINEAGE = "lineage"  # ops run, use
FEATURE_GC = "gc"  # op gc
FEATURE_TREE_REFERENCE = "tree-reference"  # tree entry kind 3
KNOWN_FEATURES: frozenset = frozenset(
    {FEATURE_LIFECYCLE, FEATURE_LINK, FEATURE_LINEAGE, FEATURE_GC, FEATURE_TREE_REFERENCE}
)

OP_VERSION = "version"
OP_ALIASES = "aliases"
OP_TAGS = "tags"
OP_COLLECTION_TAGS = "collection_tags"
OP_UPDATE = "update"
OP_DELETE = "delete"
OP_COLLECTION_UPDATE = "collection_update"
OP_LINK = "link"
OP_RUN = "run"
OP_USE = "use"
OP_GC = "gc"
KNOWN_OPS = {OP_VERSION, OP_ALIASES, OP_TAGS, OP_COLLECTION_TAGS, OP_UPDATE,
             OP_DELETE, OP_COLLECTION_UPDATE, OP_LINK, OP_RUN, OP_USE, OP_GC}
# the feature flag (§1.2) a store must list before its log holds an entry of this op
FEATURE_OF_OP = {
    OP_DELETE: FEATURE_LIFECYCLE, OP_COLLECTION_UPDATE: FEATURE_LIFECYCLE, OP_LINK: FEATURE_LINK,
    OP_RUN: FEATURE_LINEAGE, OP_USE: FEATURE_LINEAGE, OP_GC: FEATURE_GC,
}

# docs/format.md §7.2: the states a run entry may record
RUN_STATES = ("running", "finished", "failed")

# required fields per op (docs/format.md §7.2); unknown extra fields are ignored
REQUIRED = {
    OP_VERSION: {"collection": str, "type": str, "digest": bytes, "size": int, "n_files": int,
                 "version": int, "time_ns": int},
    OP_ALIASES: {"collection": str, "version": int, "set": list, "time_ns": int},
    OP_TAGS: {"collection": str, "version": int, "set": list, "time_ns": int},
    OP_COLLECTION_TAGS: {"collection": str, "set": list, "time_ns": int},
    OP_UPDATE: {"collection": str, "version": int, "fields": dict, "time_ns": int},
    OP_DELETE: {"collection": str, "version": int, "time_ns": int},
    OP_COLLECTION_UPDATE: {"collection": str, "fields": dict, "time_ns": int},
    OP_LINK: {"collection": str, "version": int, "source_collection": str, "source_version": int,
              "time_ns": int},
    OP_RUN: {"run_id": str, "time_ns": int},
    OP_USE: {"run_id": str, "collection": str, "version": int, "time_ns": int},
    OP_GC: {"time_ns": int, "condemned": list},
}


def _canonical(value):
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def pack_canonical(value) -> bytes:
    """Return canonical msgpack: maps with sorted keys, bytes as bin."""
    return msgpack.packb(_canonical(value), use_bin_type=True)


def encode_entry(entry: dict) -> bytes:
    """Return the bytes of a log entry file.

    Raises:
        FormatError: Unknown op or missing/mistyped required field.
    """
    _validate(entry)
    return LOG_MAGIC + pack_canonical(entry)


def decode_entry(data: bytes) -> dict:
    """Parse a log entry file.

    Raises:
        FormatError: Bad magic, not msgpack, or an invalid entry.
        UnsupportedFormat: An op this build does not know (written by a newer cas).
    """
    if len(data) > MAX_ENTRY or not data.startswith(LOG_MAGIC):
        raise FormatError("log entry has bad magic or is too large")
    try:
        entry = msgpack.unpackb(data[len(LOG_MAGIC):], raw=False, strict_map_key=False)
    except Exception as exc:
        raise FormatError(f"log entry is not valid msgpack: {exc}") from exc
    if not isinstance(entry, dict):
        raise FormatError("log entry must be a map")
    _validate(entry)
    return entry


def _validate(entry: dict) -> None:
    op = entry.get("op")
    if not isinstance(op, str):
        raise FormatError("log entry has no 'op'")
    if op not in KNOWN_OPS:
        raise UnsupportedFormat(f"log entry op {op!r} needs a newer cas")
    for field, typ in REQUIRED[op].items():
        v = entry.get(field)
        if not isinstance(v, typ) or (typ is int and (isinstance(v, bool) or v < 0)):
            raise FormatError(f"log entry {op!r} field {field!r} is missing or not {typ.__name__}")
    # docs/format.md §7.2: the index trusts these shapes, so a foreign or damaged
    # entry must fail here (and be skipped by replay), not deep inside replay.
    for field in ("collection", "source_collection"):
        if field in REQUIRED[op]:
            _check_collection(entry[field])
    if op == OP_VERSION and len(entry["digest"]) != DIGEST_SIZE:
        raise FormatError(f"log entry digest must be {DIGEST_SIZE} bytes")
    _validate_lineage(op, entry)
    for field in ("set", "aliases", "tags", "packs", "condemned"):
        v = entry.get(field)
        if v is not None and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            raise FormatError(f"log entry field {field!r} must be a list of strings")
    for where in (entry, entry["fields"]) if op in (OP_UPDATE, OP_COLLECTION_UPDATE) else (entry,):
        d, m, t = where.get("description"), where.get("metadata"), where.get("ttl")
        if d is not None and not isinstance(d, str):
            raise FormatError("log entry description must be a string or nil")
        if m is not None and not isinstance(m, dict):
            raise FormatError("log entry metadata must be a map or nil")
        if t is not None and (type(t) is not int or t < 0):
            raise FormatError("log entry ttl must be a non-negative integer or nil")


def _validate_lineage(op: str, entry: dict) -> None:
    """Optional fields of lineage, link and semver (§7.2)."""
    run_id = entry.get("run_id")
    if run_id is not None:
        try:
            check_name(run_id, "run id")
        except InvalidName as exc:
            raise FormatError(f"log entry run_id {run_id!r} is not a name") from exc
    semver = entry.get("semver")
    if semver is not None and not is_semver(semver):
        raise FormatError(f"log entry semver {semver!r} is not a semantic version")
    if op == OP_RUN:
        for field in ("name", "job_type"):
            v = entry.get(field)
            if v is not None and not isinstance(v, str):
                raise FormatError(f"log entry run field {field!r} must be a string or nil")
        c, st = entry.get("config"), entry.get("state")
        if c is not None and not isinstance(c, dict):
            raise FormatError("log entry run config must be a map or nil")
        if st is not None and st not in RUN_STATES:
            raise FormatError(f"log entry run state must be one of {', '.join(RUN_STATES)}")


def _check_collection(coll: str) -> None:
    project, _, name = coll.partition("/")
    try:
        check_name(project, "project name")
        check_name(name)
    except InvalidName as exc:
        raise FormatError(f"log entry collection {coll!r} is not 'project/name'") from exc


def entry_id(data: bytes) -> bytes:
    """Return the id (commit hash) of a log entry file's bytes."""
    return keyed_id(CONTEXT_LOG_ENTRY, data)


def check_metadata(metadata) -> dict:
    """Return a copy of ``metadata`` if it is storable.

    Raises:
        InvalidMetadata: Not a mapping with str keys, over 100 keys, or not serializable.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidMetadata(f"metadata must be a dict, got {type(metadata).__name__}")
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidMetadata(
            f"metadata has {len(metadata)} keys; at most {MAX_METADATA_KEYS} are allowed: "
            "nest related values under one key"
        )
    try:
        packed = msgpack.packb(metadata, use_bin_type=True, strict_types=False)
        out = msgpack.unpackb(packed, raw=False, strict_map_key=False)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidMetadata(f"metadata is not serializable: {exc}; use str, numbers, bools, lists, dicts") from exc
    _check_keys(out)
    return out


def _check_keys(value) -> None:
    """Reject non-str map keys at any depth: canonical encoding sorts keys (§7.1)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidMetadata(f"metadata key {k!r} must be a string (also in nested maps)")
            _check_keys(v)
    elif isinstance(value, list):
        for v in value:
            _check_keys(v)


def encode_config(config: dict) -> bytes:
    """Return the JSON bytes of a repository config."""
    return (json.dumps(config, indent=1, sort_keys=True) + "\n").encode()


def decode_config(data: bytes) -> dict:
    """Parse a repository config.

    Raises:
        FormatError: Not JSON or missing fields.
        UnsupportedFormat: A newer format version.
    """
    try:
        config = json.loads(data)
    except ValueError as exc:
        raise FormatError(f"repository config is not JSON: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("format_version"), int):
        raise FormatError("repository config has no format_version")
    if config["format_version"] > FORMAT_VERSION:
        raise UnsupportedFormat(
            f"repository format {config['format_version']} is newer than this cas ({FORMAT_VERSION}); upgrade cas"
        )
    for field in ("chunker", "zstd_level", "store_id"):
        if field not in config:
            raise FormatError(f"repository config has no {field!r}")
    features = config.get("features", {})
    if not isinstance(features, dict) or not all(isinstance(v, list) for v in features.values()):
        raise FormatError("repository config 'features' must map an operation to a list of names")
    unknown = sorted({str(f) for names in features.values() for f in names} - KNOWN_FEATURES)
    if unknown:
        raise UnsupportedFormat(
            f"this repository needs format features {', '.join(unknown)} that this cas does not know; upgrade cas"
        )
    return config
