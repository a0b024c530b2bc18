"""File and tree node encodings and their ids (docs/format.md §8).

A file node lists chunks ``(chunk id, raw length)``; a file with more than
``FANOUT`` chunks becomes a tree of file nodes whose interior entries are
``(child node id, total length)``. A tree node lists entries sorted by the
UTF-8 bytes of their names. Encodings are canonical msgpack; decoders reject
any other byte form so one value has exactly one id.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple, Sequence

import msgpack

from cas.errors import FormatError, UnsafePath, UnsupportedFormat
from cas.format.digest import DIGEST_SIZE, file_node_id, reference_id, tree_node_id
from cas.format.names import MAX_SEGMENT, check_segment

NODE_VERSION = 1
# docs/format.md §8.1: entries per file node before the list splits into levels.
FANOUT = 4096

KIND_FILE = 1
KIND_TREE = 2
KIND_REFERENCE = 3  # docs/format.md §8.3: bytes outside the store, behind feature tree-reference
KIND_NAMES = {KIND_FILE: "file", KIND_TREE: "tree", KIND_REFERENCE: "reference"}
# docs/format.md §8.3: checksum algorithms of a reference record; readers treat others as uncheckable
CHECKSUM_BLAKE3_FILE = "blake3-file"  # the cas file id (§8.1) under the store's chunker, 64 hex
CHECKSUM_MD5 = "md5"  # MD5 of the object's bytes, 32 lowercase hex
CHECKSUM_ETAG = "etag"  # an HTTP/S3 entity tag, as the source reports it without the outer quotes
CHECKSUM_CRC32C = "crc32c"  # CRC32C as GCS reports it (base64 of 4 big-endian bytes)
MAX_URI_BYTES = 4096


def _pack(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


_packers = threading.local()
_SMALL = 64 << 10  # encodings up to this size reuse a per-thread Packer (its buffer stays this size)


def _encodes_to(value, data) -> bool:
    """True if ``value`` encodes to exactly ``data`` (the canonical-form check of a decoded node)."""
    if len(data) > _SMALL:
        return _pack(value) == data
    # msgpack.packb builds (and allocates a buffer for) a new Packer per call
    p = getattr(_packers, "p", None)
    if p is None:
        p = _packers.p = msgpack.Packer(use_bin_type=True, buf_size=_SMALL)
    return p.pack(value) == data


def _unpack(data, what: str):
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise FormatError(f"{what} is not valid msgpack: {exc}") from exc


def _is_id(v) -> bool:
    return isinstance(v, bytes) and len(v) == DIGEST_SIZE


def _is_uint(v) -> bool:
    return type(v) is int and v >= 0


class FileNode(NamedTuple):
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


def decode_file_rows(data) -> tuple[int, list]:
    """Parse and validate an encoded file node: ``(level, [[id, length], ...])``.

    The same checks as ``decode_file_node`` without building a ``FileNode``
    (cheaper for whole-store walks); the lists must not be modified.

    Raises:
        FormatError: Not a canonical, well-formed file node.
    """
    v = _unpack(data, "file node")
    # fast path: exact types, so re-encoding the decoded value is the canonical check
    # (anything else takes decode_file_node's checks, which name the problem)
    if type(v) is list and len(v) == 3 and type(v[0]) is int and v[0] == NODE_VERSION and type(v[1]) is int \
            and v[1] >= 0 and type(v[2]) is list and len(v[2]) <= FANOUT:
        for e in v[2]:
            if not (type(e) is list and len(e) == 2 and type(e[0]) is bytes and len(e[0]) == DIGEST_SIZE
                    and type(e[1]) is int and e[1] >= 0):
                break
        else:
            if _encodes_to(v, data):
                return v[1], v[2]
    node = _decode_file_node(data, v)
    return node.level, [list(e) for e in node.entries]


def decode_file_node(data) -> FileNode:
    """Parse and validate an encoded file node.

    Raises:
        FormatError: Not a canonical, well-formed file node.
    """
    level, rows = decode_file_rows(data)
    return FileNode(level, tuple(map(tuple, rows)))


def _decode_file_node(data, v) -> FileNode:
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


def _canon(value):
    if isinstance(value, dict):
        return {k: _canon(value[k]) for k in sorted(value, key=lambda k: k.encode("utf-8", "surrogatepass"))}
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    return value


@dataclass(frozen=True, eq=False)
class Reference:
    """An object outside the store: its URI, size and checksum (docs/format.md §8.3).

    ``size`` is None only when the source reports none (an HTTP server without
    Content-Length). ``checksum_algo``/``checksum`` are both None for a reference
    added with ``checksum=False``. ``extra`` keeps map keys a newer writer added,
    so re-encoding reproduces the record (and its id) exactly.
    """

    uri: str
    size: int | None
    checksum_algo: str | None = None
    checksum: str | None = None
    version_id: str | None = None
    extra: dict = field(default_factory=dict)

    def to_map(self) -> dict:
        """Return the record as the canonical msgpack map of §8.3 (keys sorted)."""
        m = dict(self.extra)
        m["uri"] = self.uri
        if self.size is not None:
            m["size"] = self.size
        if self.checksum_algo is not None:
            m["checksum_algo"] = self.checksum_algo
            m["checksum"] = self.checksum
        if self.version_id is not None:
            m["version_id"] = self.version_id
        return _canon(m)

    def encode(self) -> bytes:
        """Return the canonical encoding of the record alone (what its id hashes)."""
        return _pack(self.to_map())

    @property
    def id(self) -> bytes:
        """The record's id: keyed BLAKE3 over ``encode()`` (§4, §8.3)."""
        return reference_id(self.encode())

    @property
    def checksum_text(self) -> str | None:
        """``<algo>:<value>`` (``blake3:<hex>`` for a cas file id), or None without checksum."""
        if self.checksum_algo is None:
            return None
        algo = "blake3" if self.checksum_algo == CHECKSUM_BLAKE3_FILE else self.checksum_algo
        return f"{algo}:{self.checksum}"

    def __eq__(self, other) -> bool:
        return isinstance(other, Reference) and self.encode() == other.encode()

    def __hash__(self) -> int:
        return hash(self.encode())


def check_reference(ref: Reference) -> Reference:
    """Validate a reference record's field types and limits.

    Raises:
        FormatError: A field has the wrong type, the URI is empty, too long, has
            no scheme or holds NUL, or only one of checksum_algo/checksum is set.
    """
    uri = ref.uri
    if not isinstance(uri, str) or not uri or "\0" in uri or "://" not in uri:
        raise FormatError(f"reference uri {uri!r} must be a non-empty 'scheme://...' string without NUL")
    if len(uri.encode("utf-8", "surrogatepass")) > MAX_URI_BYTES:
        raise FormatError(f"reference uri is longer than {MAX_URI_BYTES} bytes")
    if ref.size is not None and not _is_uint(ref.size):
        raise FormatError("reference size must be a non-negative integer")
    if (ref.checksum_algo is None) != (ref.checksum is None):
        raise FormatError("reference checksum_algo and checksum must be given together")
    for name in ("checksum_algo", "checksum", "version_id"):
        v = getattr(ref, name)
        if v is not None and not (isinstance(v, str) and v):
            raise FormatError(f"reference {name} must be a non-empty string")
    if not isinstance(ref.extra, dict) or not all(isinstance(k, str) for k in ref.extra):
        raise FormatError("reference record keys must be strings")
    return ref


_KNOWN_REF_KEYS = ("uri", "size", "checksum_algo", "checksum", "version_id")


def reference_from_map(m) -> Reference:
    """Return the Reference of a decoded record map (unknown keys kept in ``extra``).

    Raises:
        FormatError: Not a map, or a field breaks §8.3.
    """
    if not isinstance(m, dict) or "uri" not in m:
        raise FormatError("reference record must be a map with 'uri'")
    ref = Reference(m["uri"], m.get("size"), m.get("checksum_algo"), m.get("checksum"), m.get("version_id"),
                    {k: v for k, v in m.items() if k not in _KNOWN_REF_KEYS})
    return check_reference(ref)


def reference_entry(name: str, ref: Reference) -> "TreeEntry":
    """Return the tree entry of kind 3 that names ``ref`` (§8.2, §8.3)."""
    return TreeEntry(name, KIND_REFERENCE, ref.id, ref.size or 0, ref)


class TreeEntry(NamedTuple):
    """One named entry of a tree node.

    ``kind`` is KIND_FILE (``aux`` = 1 if executable else 0), KIND_TREE
    (``aux`` = number of files below) or KIND_REFERENCE (``aux`` = the
    Reference; ``id`` is the record's id, not an object in the store).
    ``size`` is raw bytes (of all files below, for trees).
    """

    name: str
    kind: int
    id: bytes
    size: int
    aux: object

    @property
    def reference(self) -> Reference | None:
        """The reference record of a kind-3 entry, else None."""
        return self.aux if self.kind == KIND_REFERENCE else None

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
    return _pack([NODE_VERSION, [[e.name, e.kind, e.id, e.size,
                                  e.aux.to_map() if e.kind == KIND_REFERENCE else e.aux] for e in ordered]])


def decode_tree_rows(data) -> list[list]:
    """Parse and validate an encoded tree node: ``[[name, kind, id, size, aux], ...]``.

    The same checks as ``decode_tree_node`` without building ``TreeEntry``
    objects (cheaper for whole-store walks); ``aux`` of a reference entry is
    its ``Reference``. The lists must not be modified.

    Raises:
        FormatError: Not canonical, not sorted, unsafe names or bad field types.
    """
    v = _unpack(data, "tree node")
    if _common_tree(v) and _encodes_to(v, data):
        return v[1]
    return [[e.name, e.kind, e.id, e.size, e.aux] for e in _decode_tree_node(data, v)]


def decode_tree_node(data) -> list[TreeEntry]:
    """Parse and validate an encoded tree node.

    Raises:
        FormatError: Not canonical, not sorted, unsafe names or bad field types.
    """
    v = _unpack(data, "tree node")
    if _common_tree(v) and _encodes_to(v, data):
        return [TreeEntry(*e) for e in v[1]]
    return _decode_tree_node(data, v)


def _decode_tree_node(data, v) -> list[TreeEntry]:
    if not (isinstance(v, list) and len(v) == 2 and v[0] == NODE_VERSION and isinstance(v[1], list)):
        raise FormatError("tree node must be [1, entries]")
    out = []
    for e in v[1]:
        if isinstance(e, list) and len(e) == 5 and _is_uint(e[1]) and e[1] not in KIND_NAMES:
            # docs/format.md §8.2: higher kinds belong to newer format versions
            raise UnsupportedFormat(f"tree entry kind {e[1]} is not supported; this tree needs a newer cas")
        if not (
            isinstance(e, list)
            and len(e) == 5
            and isinstance(e[0], str)
            and _is_uint(e[1]) and e[1] in KIND_NAMES
            and _is_id(e[2])
            and _is_uint(e[3])
            and (_is_uint(e[4]) or (e[1] == KIND_REFERENCE and isinstance(e[4], dict)))
        ):
            raise FormatError("tree entry must be [name, kind, id, size, aux]")
        try:
            check_segment(e[0])
        except UnsafePath as exc:
            raise FormatError(f"tree node holds an unsafe name: {exc}") from exc
        if e[1] == KIND_FILE and e[4] not in (0, 1):
            raise FormatError("file entry aux must be 0 or 1")
        if e[1] == KIND_REFERENCE:
            out.append(_decode_reference_entry(e))
            continue
        out.append(TreeEntry(e[0], e[1], e[2], e[3], e[4]))
    if encode_tree_node(out) != bytes(data):
        raise FormatError("tree node is not in canonical form (unsorted, duplicate or non-minimal)")
    return out


def _common_tree(v) -> bool:
    """True if a decoded tree node has the common form, where re-encoding it is the canonical check.

    The common form: exact types, file and tree entries only, ASCII names that
    are safe segments, strictly increasing. Anything else goes through the full
    validation, which names the problem.
    """
    if not (type(v) is list and len(v) == 2 and type(v[0]) is int and v[0] == NODE_VERSION and type(v[1]) is list):
        return False
    prev = ""
    for e in v[1]:
        if type(e) is not list or len(e) != 5:
            return False
        name, kind, oid, size, aux = e
        if not (type(name) is str and name > prev and name.isascii() and len(name) <= MAX_SEGMENT
                and name != "." and name != ".." and "/" not in name and "\\" not in name and "\x00" not in name
                and type(oid) is bytes and len(oid) == DIGEST_SIZE and type(size) is int and size >= 0
                and type(aux) is int and aux >= 0 and type(kind) is int
                and (kind == KIND_TREE or (kind == KIND_FILE and aux <= 1))):
            return False
        prev = name
    return True


def _decode_reference_entry(e: list) -> TreeEntry:
    if not isinstance(e[4], dict):
        raise FormatError(f"reference entry {e[0]!r} must hold its record map in aux")
    ref = reference_from_map(e[4])
    if ref.id != e[2]:
        raise FormatError(f"reference entry {e[0]!r}: id does not match its record")
    if (ref.size or 0) != e[3]:
        raise FormatError(f"reference entry {e[0]!r}: size does not match its record")
    return TreeEntry(e[0], KIND_REFERENCE, e[2], e[3], ref)


def tree_id(encoded: bytes) -> bytes:
    """Return the id of an encoded tree node."""
    return tree_node_id(encoded)


EMPTY_TREE = encode_tree_node([])
EMPTY_TREE_ID = tree_node_id(EMPTY_TREE)
