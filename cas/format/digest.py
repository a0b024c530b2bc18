"""Object ids: BLAKE3 digests with domain separation (docs/format.md §4).

Chunks are plain BLAKE3 of their raw bytes, checkable with ``b3sum``. Nodes and
log entries use BLAKE3's derive-key mode with a distinct context string, so a
chunk id can never equal a node id of the same bytes.
"""

from __future__ import annotations

import blake3

from cas.errors import UsageError

DIGEST_SIZE = 32
ALGO = "blake3"

# docs/format.md §4: derive-key contexts. Changing any of these changes every id.
CONTEXT_FILE_NODE = "cas 2026-11-23 file node v1"
CONTEXT_TREE_NODE = "cas 2026-11-23 tree node v1"
CONTEXT_LOG_ENTRY = "cas 2026-11-23 log entry v1"
CONTEXT_PACK = "cas 2026-11-23 pack v1"
CONTEXT_REFERENCE = "cas 2026-11-23 reference v1"  # §8.3: id of a reference record

blake3_hasher = blake3.blake3


def chunk_id(data) -> bytes:
    """Return the id of a chunk: plain BLAKE3-256 of its raw bytes."""
    return blake3.blake3(data).digest()


_DERIVED: dict[str, object] = {}  # context -> an empty derive-key hasher to copy (the context is hashed once)


def keyed_id(context: str, data) -> bytes:
    """Return BLAKE3 in derive-key mode under ``context`` over ``data``."""
    start = _DERIVED.get(context)
    if start is None:
        start = _DERIVED[context] = blake3.blake3(derive_key_context=context)
    h = start.copy()
    h.update(data)
    return h.digest()


def file_node_id(encoded: bytes) -> bytes:
    """Return the id of an encoded file node."""
    return keyed_id(CONTEXT_FILE_NODE, encoded)


def tree_node_id(encoded: bytes) -> bytes:
    """Return the id of an encoded tree node."""
    return keyed_id(CONTEXT_TREE_NODE, encoded)


def reference_id(encoded: bytes) -> bytes:
    """Return the id of an encoded reference record (docs/format.md §8.3)."""
    return keyed_id(CONTEXT_REFERENCE, encoded)


def pack_hasher(threads: int = 1):
    """Return an incremental hasher whose hex digest names a pack file.

    Args:
        threads: Threads BLAKE3 may use for large updates (the result is the same).
    """
    return blake3.blake3(derive_key_context=CONTEXT_PACK, max_threads=threads)


def to_text(digest: bytes) -> str:
    """Render a digest as ``blake3:<64 hex>``."""
    return f"{ALGO}:{digest.hex()}"


def from_text(text: str) -> bytes:
    """Parse ``blake3:<64 hex>`` (or bare 64 hex) into 32 bytes.

    Raises:
        UsageError: The text is not a full BLAKE3 digest.
    """
    body = text[len(ALGO) + 1 :] if text.startswith(ALGO + ":") else text
    if len(body) != 2 * DIGEST_SIZE:
        raise UsageError(f"invalid digest {text!r}: expected 'blake3:' and 64 hex digits")
    try:
        return bytes.fromhex(body)
    except ValueError:
        raise UsageError(f"invalid digest {text!r}: expected 'blake3:' and 64 hex digits") from None
