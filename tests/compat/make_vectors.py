"""Generate tests/compat/vectors/format_v1.json: known-answer vectors of docs/format.md §13.

Run from the repository root: ``python tests/compat/make_vectors.py``. The output is
deterministic; regenerating it must not change the file unless the format changed
(which bumps the format version, docs/format.md §1).

Every input is derived from BLAKE3 in XOF mode, so a second implementation can
rebuild the inputs without Python's ``random``: ``xof(label, n)`` is the first ``n``
bytes of BLAKE3's extendable output over the UTF-8 bytes of ``label``.
"""

from __future__ import annotations

import json
import os
import sys

import blake3

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from cas.format import digest as D  # noqa: E402
from cas.format import records as R  # noqa: E402
from cas.format.chunker import Chunker, ChunkerParams  # noqa: E402
from cas.format.codec import CODEC_RAW, CODEC_ZSTD, Codec  # noqa: E402
from cas.format.nodes import (  # noqa: E402
    EMPTY_TREE,
    EMPTY_TREE_ID,
    FANOUT,
    KIND_FILE,
    KIND_TREE,
    TreeEntry,
    build_file_nodes,
    encode_tree_node,
)
from cas.format.pack import (  # noqa: E402
    CONTEXT_FOOTER,
    HEADER_SIZE,
    KIND_CHUNK,
    KIND_FILE_NODE,
    KIND_TREE_NODE,
    RECORD_SIZE,
    PackEntry,
    encode_footer,
    encode_header,
    encode_record_header,
)

# the config vector keeps the default of the first release (new stores get ChunkerParams())
V1_FIRST_DEFAULT = "fastcdc2020/min=16384/avg=65536/max=262144/norm=1"

OUT = os.path.join(HERE, "vectors", "format_v1.json")
MiB = 1024 * 1024


def xof(label: str, n: int) -> bytes:
    """Return ``n`` deterministic bytes: BLAKE3 XOF output over ``label``."""
    return blake3.blake3(label.encode()).digest(length=n)


def gear_table() -> list[str]:
    from pyfastcdc.py.constants import GEAR  # the table the compiled chunker also uses

    return [f"{g:016x}" for g in GEAR]


def mask_table() -> list[str]:
    from pyfastcdc.py.constants import MASKS

    return [f"{m:016x}" for m in MASKS]


def chunk_vectors() -> list[dict]:
    inputs = [
        ("empty", b""),
        ("abc", b"abc"),
        ("hello", b"hello world\n"),
        ("bytes 0..255", bytes(range(256))),
        ("xof 'cas chunk 1025' 1025 bytes", xof("cas chunk 1025", 1025)),
        ("xof 'cas chunk 1 MiB' 1 MiB", xof("cas chunk 1 MiB", MiB)),
    ]
    out = []
    for name, data in inputs:
        v = {"name": name, "size": len(data), "id": D.chunk_id(data).hex()}
        if len(data) <= 1025:
            v["data"] = data.hex()
        else:
            v["xof_label"] = "cas chunk 1 MiB"
        out.append(v)
    return out


def cut_vectors() -> list[dict]:
    buf = xof("cas fastcdc 1 MiB", MiB)
    cases = [
        ChunkerParams(16 * 1024, 64 * 1024, 256 * 1024, 1),
        ChunkerParams(256, 1024, 4096, 1),
        ChunkerParams(256, 1024, 4096, 0),
        ChunkerParams(256, 1024, 4096, 2),
        ChunkerParams(256, 1024, 4096, 3),
    ]
    out = []
    for p in cases:
        cuts = Chunker(p).cut(buf)
        out.append({
            "spec": p.spec,
            "input_xof_label": "cas fastcdc 1 MiB",
            "input_size": len(buf),
            "lengths": [n for _, n in cuts],
            "first_chunk_id": D.chunk_id(buf[: cuts[0][1]]).hex(),
        })
    return out


def file_node_vectors() -> list[dict]:
    hello = b"hello world\n"
    cases = [
        ("empty file", []),
        ("one chunk 'hello world\\n'", [(D.chunk_id(hello), len(hello))]),
        ("two chunks 'abc' + 'hello world\\n'", [(D.chunk_id(b"abc"), 3), (D.chunk_id(hello), len(hello))]),
    ]
    out = []
    for name, chunks in cases:
        root, nodes = build_file_nodes(chunks)
        assert len(nodes) == 1
        out.append({"name": name, "chunks": [[c.hex(), n] for c, n in chunks],
                    "encoded": nodes[0][1].hex(), "id": root.hex()})
    # FANOUT boundary: synthetic chunk list, chunk i = xof("cas fanout <i>", 1 + i % 7) by id and length
    for n_chunks in (FANOUT, FANOUT + 1, 2 * FANOUT + 5):
        chunks = [(D.chunk_id(xof(f"cas fanout {i}", 1 + i % 7)), 1 + i % 7) for i in range(n_chunks)]
        root, nodes = build_file_nodes(chunks)
        out.append({
            "name": f"{n_chunks} chunks: chunk i is xof('cas fanout <i>', 1 + i % 7)",
            "synthetic_chunks": {"count": n_chunks, "label": "cas fanout {i}", "length": "1 + i % 7"},
            "node_ids": [nid.hex() for nid, _ in nodes],  # children before parents, root last
            "root_encoded": nodes[-1][1].hex() if len(nodes) > 1 else None,
            "id": root.hex(),
        })
    return out


def tree_vectors() -> tuple[list[dict], dict]:
    hello_id, _ = build_file_nodes([(D.chunk_id(b"hello world\n"), 12)])
    abc_id, _ = build_file_nodes([(D.chunk_id(b"abc"), 3)])
    empty_file_id, _ = build_file_nodes([])
    sub = [TreeEntry("a.csv", KIND_FILE, abc_id, 3, 0)]
    sub_enc = encode_tree_node(sub)
    sub_id = D.tree_node_id(sub_enc)
    root = [
        TreeEntry("run.sh", KIND_FILE, hello_id, 12, 1),
        TreeEntry("hello.txt", KIND_FILE, hello_id, 12, 0),
        TreeEntry("data", KIND_TREE, sub_id, 3, 1),
        TreeEntry("empty", KIND_FILE, empty_file_id, 0, 0),
    ]
    order = [TreeEntry(n, KIND_FILE, abc_id, 3, 0) for n in ("é.txt", "b", "Z", "a", "a.b", "a-b", "ab")]
    trees = []
    for name, entries in (("empty tree", []), ("data/", sub), ("root", root), ("byte order of names", order)):
        enc = encode_tree_node(entries)
        trees.append({
            "name": name,
            "entries": [[e.name, e.kind, e.id.hex(), e.size, e.aux] for e in entries],  # as given, unsorted
            "sorted_names": sorted((e.name for e in entries), key=lambda s: s.encode()),
            "encoded": enc.hex(),
            "id": D.tree_node_id(enc).hex(),
        })
    assert trees[0]["encoded"] == EMPTY_TREE.hex() and trees[0]["id"] == EMPTY_TREE_ID.hex()
    objects = {"hello": hello_id, "abc": abc_id, "sub_enc": sub_enc, "sub_id": sub_id,
               "root_enc": encode_tree_node(root), "root_id": D.tree_node_id(encode_tree_node(root))}
    return trees, objects


def reference_vectors() -> list[dict]:
    """Reference records and a tree holding one (docs/format.md §8.3)."""
    from cas.format.nodes import Reference, reference_entry

    refs = [Reference("s3://bkt/data/a.csv", 4, "etag", "0ba5b0d6e3f2c7d1a7d5b2c9c8f1e5a3",
                      "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"),
            Reference("https://example.org/x.bin", None)]
    out = []
    for name, ref in zip(("a.csv", "x.bin"), refs):
        tree = encode_tree_node([reference_entry(name, ref)])
        out.append({"record": ref.to_map(), "encoded": ref.encode().hex(), "id": ref.id.hex(),
                    "tree_entry_name": name, "tree_encoded": tree.hex(), "tree_id": D.tree_node_id(tree).hex()})
    return out


def log_vectors(root_id: bytes) -> list[dict]:
    entries = [
        {"op": "version", "collection": "default/dataset", "type": "dataset", "digest": root_id,
         "size": 27, "n_files": 4, "version": 0, "time_ns": 1_700_000_000_123_456_789,
         "description": "first", "metadata": {"rows": 1, "split": "train", "score": 0.5},
         "aliases": ["best"], "tags": ["raw"], "packs": ["00" * 32]},
        {"op": "aliases", "collection": "default/dataset", "version": 0, "set": ["best", "prod"],
         "time_ns": 1_700_000_001_000_000_000},
        {"op": "update", "collection": "default/dataset", "version": 0,
         "fields": {"description": "second", "ttl": 86400}, "time_ns": 1_700_000_002_000_000_000},
    ]
    out = []
    for e in entries:
        data = R.encode_entry(e)
        out.append({"entry": _jsonable(e), "encoded": data.hex(), "entry_id": R.entry_id(data).hex()})
    return out


def _jsonable(v):
    if isinstance(v, bytes):
        return {"hex": v.hex()}
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def build_pack(objects: list[tuple[bytes, int, int, int, bytes]]) -> tuple[bytes, list[PackEntry]]:
    """Return the bytes of a pack holding ``(id, kind, codec, raw_len, stored)`` in order."""
    buf = bytearray(encode_header())
    entries = []
    for oid, kind, codec, raw_len, stored in objects:
        buf += encode_record_header(kind, codec, raw_len, len(stored), oid)
        entries.append(PackEntry(oid, kind, codec, len(buf), len(stored), raw_len))
        buf += stored
    buf += encode_footer(entries)
    return bytes(buf), entries


def pack_vectors(t: dict) -> list[dict]:
    hello = b"hello world\n"
    _, hello_nodes = build_file_nodes([(D.chunk_id(hello), len(hello))])
    raw_objects = [
        (D.chunk_id(hello), KIND_CHUNK, CODEC_RAW, len(hello), hello),
        (hello_nodes[0][0], KIND_FILE_NODE, CODEC_RAW, len(hello_nodes[0][1]), hello_nodes[0][1]),
        (t["sub_id"], KIND_TREE_NODE, CODEC_RAW, len(t["sub_enc"]), t["sub_enc"]),
    ]
    text = b"id,value\n" + b"".join(b"%d,%d\n" % (i, i * i % 97) for i in range(400))
    codec, stored = Codec(3).encode(text)
    assert codec == CODEC_ZSTD
    zstd_objects = [(D.chunk_id(text), KIND_CHUNK, CODEC_ZSTD, len(text), stored)]
    out = []
    for name, objs, note in (
        ("three raw objects", raw_objects, "byte-exact: a writer given these objects in this order MUST produce these bytes"),
        ("one zstd chunk", zstd_objects, "decode-only: zstd output may differ between zstd versions"),
    ):
        data, entries = build_pack(objs)
        h = D.pack_hasher()
        h.update(data)
        out.append({
            "name": name, "note": note, "bytes": data.hex(), "pack_name": h.hexdigest(),
            "objects": [{"id": e.id.hex(), "kind": e.kind, "codec": e.codec, "offset": e.offset,
                         "stored_len": e.stored_len, "raw_len": e.raw_len,
                         "raw": (text if e.codec == CODEC_ZSTD else objs[i][4]).hex()}
                        for i, e in enumerate(entries)],
        })
    return out


def main() -> None:
    trees, t = tree_vectors()
    vectors = {
        "format_version": R.FORMAT_VERSION,
        "generated_by": "python tests/compat/make_vectors.py",
        "contexts": {
            "file_node": D.CONTEXT_FILE_NODE, "tree_node": D.CONTEXT_TREE_NODE,
            "log_entry": D.CONTEXT_LOG_ENTRY, "pack": D.CONTEXT_PACK, "pack_footer": CONTEXT_FOOTER,
            "reference": D.CONTEXT_REFERENCE,
        },
        "constants": {"fanout": FANOUT, "pack_header_size": HEADER_SIZE, "record_header_size": RECORD_SIZE},
        "keyed_ids": [
            {"context": c, "data": b"abc".hex(), "id": D.keyed_id(c, b"abc").hex()}
            for c in (D.CONTEXT_FILE_NODE, D.CONTEXT_TREE_NODE, D.CONTEXT_LOG_ENTRY, D.CONTEXT_PACK, CONTEXT_FOOTER)
        ],
        "chunk_ids": chunk_vectors(),
        "fastcdc": {"gear": gear_table(), "masks": mask_table(), "cuts": cut_vectors()},
        "file_nodes": file_node_vectors(),
        "tree_nodes": trees,
        "references": reference_vectors(),
        "log_entries": log_vectors(t["root_id"]),
        "config": {
            "value": {"format_version": 1, "chunker": V1_FIRST_DEFAULT, "zstd_level": 3,
                      "store_id": "0123456789abcdef0123456789abcdef"},
            "encoded": R.encode_config({"format_version": 1, "chunker": V1_FIRST_DEFAULT, "zstd_level": 3,
                                        "store_id": "0123456789abcdef0123456789abcdef"}).decode(),
        },
        "packs": pack_vectors(t),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(vectors, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
