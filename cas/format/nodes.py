"""File and tree node encodings and their ids (docs/format.md §8).

A file node lists chunks ``(chunk id, raw length)``; a file with more than
``FANOUT`` chunks becomes a tree of file nodes whose interior entries are
``(child node id, total length)``. A tree node lists entries sorted by the
UTF-8 bytes of their names. Encodings are canonical msgpack; decoders reject
any other byte form so one value has exactly one id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import msgpack

from cas.errors import FormatError, UnsafePath, UnsupportedFormat
from cas.format.digest import DIGEST_SIZE, file_node_id, tree_node_id
from cas.format.names import check_segment

NODE_VERSION = 1
# docs/format.md §8.1: entries per file node before the list splits into levels.
FANOUT = 4096

KIND_FILE = 1
KIND_TREE = 2
KIND_REFERENCE = 3  # reserved for references (docs/format.md §8.3)
KIND_NAMES = {KIND_FILE: "file", KIND_TREE: "tree", KIND_REFERENCE: "reference"}


def _pack(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _unpack(data, what: str):
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise FormatError(f"{what} is not valid msgpack: {exc}") from exc


def _is_id(v) -> bool:
    return isinstance(v, bytes) and len(v) == DIGEST_SIZE


def _is_uint(v) -> bool:
    return type(v) is int and v >= 0


@dataclass(frozen=True)
class FileNode:
    """One level of a file's chunk list: ``level`` 0 lists chunks, >0 child nodes."""

    level: int
    entries: tuple[tuple[bytes, int], ...]

    @property
    def size(self) -> int:
        """Total raw bytes covered by this node."""
        return sum(n for _, n in self.entries)


def encode_file_node(node: FileNode) -> bytes:
    """Return the canonical encoding of a file node."""
    return _pack([NODE_VERSION, node.level, [[i, n] for i, n in node.entries]])


def decode_file_node(data) -> FileNode:
    """Parse and validate an encoded file node.

    Raises:
        FormatError: Not a canonical, well-formed file node.
    """
    v = _unpack(data, "file node")
    if not (isinstance(v, list) and len(v) == 3 and v[0] == NODE_VERSION and _is_uint(v[1])):
        raise FormatError("file node must be [1, level, entries]")
    if not isinstance(v[2], list) or len(v[2]) > FANOUT:
        raise FormatError("file node entries must be a list of at most FANOUT items")
    entries = []
    for e in v[2]:
        if not (isinstance(e, list) and len(e) == 2 and _is_id(e[0]) and _is_uint(e[1])):
            raise FormatError("file node entry must be [id(32 bytes), length]")
        entries.append((e[0], e[1]))
    node = FileNode(v[1], tuple(entries))
    if encode_file_node(node) != bytes(data):
        raise FormatError("file node is not in canonical form")
    return node


def build_file_nodes(chunks: Sequence[tuple[bytes, int]]) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Build the file node tree over a file's chunk list.

    Args:
        chunks: ``(chunk id, raw length)`` in file order.

    Returns:
        ``(root id, [(node id, encoded node), ...])`` with children before parents.
    """
    out: list[tuple[bytes, bytes]] = []
    level = 0
    entries = list(chunks)
    while True:
        if len(entries) <= FANOUT:
            enc = encode_file_node(FileNode(level, tuple(entries)))
            nid = file_node_id(enc)
            out.append((nid, enc))
            return nid, out
        parents = []
        for i in range(0, len(entries), FANOUT):
            group = tuple(entries[i : i + FANOUT])
            enc = encode_file_node(FileNode(level, group))
            nid = file_node_id(enc)
            out.append((nid, enc))
            parents.append((nid, sum(n for _, n in group)))
        entries = parents
        level += 1


@dataclass(frozen=True)
class TreeEntry:
    """One named entry of a tree node.

    ``kind`` is KIND_FILE (``aux`` = 1 if executable else 0) or KIND_TREE
    (``aux`` = number of files below). ``size`` is raw bytes (of all files below,
    for trees).
    """

    name: str
    kind: int
    id: bytes
    size: int
    aux: int

    @property
    def executable(self) -> bool:
        """True for an executable file."""
        return self.kind == KIND_FILE and self.aux == 1

    @property
    def n_files(self) -> int:
        """Files below this entry: 1 for a file."""
        return self.aux if self.kind == KIND_TREE else 1


def _name_key(e: TreeEntry) -> bytes:
    return e.name.encode("utf-8", "surrogatepass")


def encode_tree_node(entries: Iterable[TreeEntry]) -> bytes:
    """Return the canonical encoding of a tree node; entries are sorted here.

    Raises:
        FormatError: Two entries share a name.
    """
    ordered = sorted(entries, key=_name_key)
    for a, b in zip(ordered, ordered[1:]):
        if a.name == b.name:
            raise FormatError(f"tree node has two entries named {a.name!r}")
    return _pack([NODE_VERSION, [[e.name, e.kind, e.id, e.size, e.aux] for e in ordered]])


def decode_tree_node(data) -> list[TreeEntry]:
    """Parse and validate an encoded tree node.

    Raises:
        FormatError: Not canonical, not sorted, unsafe names or bad field types.
    """
    v = _unpack(data, "tree node")
    if not (isinstance(v, list) and len(v) == 2 and v[0] == NODE_VERSION and isinstance(v[1], list)):
        raise FormatError("tree node must be [1, entries]")
    out = []
    for e in v[1]:
        if isinstance(e, list) and len(e) == 5 and _is_uint(e[1]) and e[1] not in (KIND_FILE, KIND_TREE):
            # docs/format.md §8.2: kind 3 (reference) and higher belong to newer format versions
            what = KIND_NAMES.get(e[1], "unknown")
            raise UnsupportedFormat(f"tree entry kind {e[1]} ({what}) is not supported; this tree needs a newer cas")
        if not (
            isinstance(e, list)
            and len(e) == 5
            and isinstance(e[0], str)
            and e[1] in (KIND_FILE, KIND_TREE)
            and _is_id(e[2])
            and _is_uint(e[3])
            and _is_uint(e[4])
        ):
            raise FormatError("tree entry must be [name, kind, id, size, aux]")
        try:
            check_segment(e[0])
        except UnsafePath as exc:
            raise FormatError(f"tree node holds an unsafe name: {exc}") from exc
        if e[1] == KIND_FILE and e[4] not in (0, 1):
            raise FormatError("file entry aux must be 0 or 1")
        out.append(TreeEntry(e[0], e[1], e[2], e[3], e[4]))
    if encode_tree_node(out) != bytes(data):
        raise FormatError("tree node is not in canonical form (unsorted, duplicate or non-minimal)")
    return out


def tree_id(encoded: bytes) -> bytes:
    """Return the id of an encoded tree node."""
    return tree_node_id(encoded)


EMPTY_TREE = encode_tree_node([])
EMPTY_TREE_ID = tree_node_id(EMPTY_TREE)
