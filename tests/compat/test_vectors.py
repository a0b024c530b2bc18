"""The code reproduces every known-answer vector of docs/format.md §13 exactly.

A failure here means stored ids, chunk boundaries or byte layouts changed: that is a
format change (new format version, docs/format.md §1, §14), never a test to update
casually. Regenerate the vectors only together with such a change:
``python tests/compat/make_vectors.py``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess

import blake3
import pytest

from cas.format import digest as D
from cas.format import records as R
from cas.format.chunker import Chunker, ChunkerParams
from cas.format.codec import Codec
from cas.format.nodes import (
    EMPTY_TREE_ID,
    FANOUT,
    TreeEntry,
    build_file_nodes,
    decode_file_node,
    decode_tree_node,
    encode_tree_node,
)
from cas.format.pack import (
    CONTEXT_FOOTER,
    HEADER_SIZE,
    RECORD_SIZE,
    TRAILER_SIZE,
    decode_footer,
    decode_header,
    decode_trailer,
)
from cas.storage.packs import PackWriter, hash_pack, pack_path, read_pack_index

VECTORS = os.path.join(os.path.dirname(__file__), "vectors", "format_v1.json")
M64 = (1 << 64) - 1


@pytest.fixture(scope="module")
def v() -> dict:
    with open(VECTORS, encoding="utf-8") as f:
        return json.load(f)


def xof(label: str, n: int) -> bytes:
    return blake3.blake3(label.encode()).digest(length=n)


def _bytes(x):
    """Turn the JSON form of an entry ({"hex": ...} for bin) back into values."""
    if isinstance(x, dict):
        return bytes.fromhex(x["hex"]) if set(x) == {"hex"} else {k: _bytes(y) for k, y in x.items()}
    if isinstance(x, list):
        return [_bytes(y) for y in x]
    return x


def _chunk_input(c: dict) -> bytes:
    return bytes.fromhex(c["data"]) if "data" in c else xof(c["xof_label"], c["size"])


# --- §4 digests ---------------------------------------------------------------------------
def test_context_strings_are_the_documented_ones(v):
    assert v["contexts"] == {
        "file_node": D.CONTEXT_FILE_NODE, "tree_node": D.CONTEXT_TREE_NODE,
        "log_entry": D.CONTEXT_LOG_ENTRY, "pack": D.CONTEXT_PACK, "pack_footer": CONTEXT_FOOTER,
        "reference": D.CONTEXT_REFERENCE,
    }
    assert len(set(v["contexts"].values())) == 6


def test_chunk_ids(v):
    for c in v["chunk_ids"]:
        assert D.chunk_id(_chunk_input(c)).hex() == c["id"], c["name"]


def test_keyed_ids_differ_from_plain_blake3(v):
    plain = D.chunk_id(b"abc").hex()
    for k in v["keyed_ids"]:
        assert D.keyed_id(k["context"], bytes.fromhex(k["data"])).hex() == k["id"]
        assert k["id"] != plain


@pytest.mark.skipif(shutil.which("b3sum") is None, reason="b3sum is not installed")
def test_b3sum_agrees_on_chunk_and_keyed_ids(v, tmp_path):
    for i, c in enumerate(v["chunk_ids"]):
        p = tmp_path / f"chunk{i}"
        p.write_bytes(_chunk_input(c))
        out = subprocess.run(["b3sum", "--no-names", str(p)], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == c["id"], c["name"]
    p = tmp_path / "abc"
    p.write_bytes(b"abc")
    for k in v["keyed_ids"]:
        out = subprocess.run(["b3sum", "--no-names", "--derive-key", k["context"], str(p)],
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == k["id"]


# --- §5 chunking --------------------------------------------------------------------------
def test_fastcdc_cut_points(v):
    for case in v["fastcdc"]["cuts"]:
        buf = xof(case["input_xof_label"], case["input_size"])
        cuts = Chunker(ChunkerParams.parse(case["spec"])).cut(buf)
        assert [n for _, n in cuts] == case["lengths"], case["spec"]
        assert sum(case["lengths"]) == len(buf)
        assert D.chunk_id(buf[: cuts[0][1]]).hex() == case["first_chunk_id"]


def reference_cut_points(buf: bytes, spec: str, gear: list[int], masks: list[int]) -> list[int]:
    """FastCDC 2020 written from docs/format.md §5.3 alone, to prove the text is complete."""
    p = ChunkerParams.parse(spec)
    bits = math.floor(math.log2(p.avg_size) + 0.5)
    mask_s, mask_l = masks[bits + p.normalization], masks[bits - p.normalization]
    mask_s_ls, mask_l_ls = (mask_s << 1) & M64, (mask_l << 1) & M64
    gear_ls = [(g << 1) & M64 for g in gear]
    out, start = [], 0
    while start < len(buf):
        remaining = len(buf) - start
        if remaining <= p.min_size:
            out.append(remaining)
            break
        center = p.avg_size
        if remaining > p.max_size:
            remaining = p.max_size
        elif remaining < center:
            center = remaining
        h, cut = 0, remaining
        for lo, hi, m, m_ls in (
            ((p.min_size // 2) * 2, (center // 2) * 2, mask_s, mask_s_ls),
            ((center // 2) * 2, (remaining // 2) * 2, mask_l, mask_l_ls),
        ):
            for i in range(lo, hi, 2):
                h = ((h << 2) + gear_ls[buf[start + i]]) & M64
                if h & m_ls == 0:
                    cut = i
                    break
                h = (h + gear[buf[start + i + 1]]) & M64
                if h & m == 0:
                    cut = i + 1
                    break
            else:
                continue
            break
        out.append(cut)
        start += cut
    return out


def test_reference_chunker_from_the_spec_matches(v):
    gear = [int(g, 16) for g in v["fastcdc"]["gear"]]
    masks = [int(m, 16) for m in v["fastcdc"]["masks"]]
    assert len(gear) == 256 and len(masks) == 26
    # format.md §5.3 prints this digest of the table (256 little-endian u64)
    assert blake3.blake3(b"".join(g.to_bytes(8, "little") for g in gear)).hexdigest() == (
        "9af822d1e10df25d0157a43ccd0a73b56d1c1d0a5d77acb4e6e979522d0fe149"
    )
    for case in v["fastcdc"]["cuts"]:
        buf = xof(case["input_xof_label"], case["input_size"])
        assert reference_cut_points(buf, case["spec"], gear, masks) == case["lengths"], case["spec"]


def test_default_params_are_the_documented_ones():
    # format.md §5.1: the default for new stores (existing stores keep their own)
    assert ChunkerParams().spec == "fastcdc2020/min=4096/avg=16384/max=65536/norm=1"


# --- §8 hash tree -------------------------------------------------------------------------
def test_file_nodes(v):
    for f in v["file_nodes"]:
        if "chunks" in f:
            chunks = [(bytes.fromhex(c), n) for c, n in f["chunks"]]
            root, nodes = build_file_nodes(chunks)
            assert nodes == [(root, bytes.fromhex(f["encoded"]))], f["name"]
            assert root.hex() == f["id"]
            node = decode_file_node(bytes.fromhex(f["encoded"]))
            assert (node.level, list(node.entries)) == (0, chunks)
        else:
            s = f["synthetic_chunks"]
            chunks = [(D.chunk_id(xof(f"cas fanout {i}", 1 + i % 7)), 1 + i % 7) for i in range(s["count"])]
            root, nodes = build_file_nodes(chunks)
            assert [nid.hex() for nid, _ in nodes] == f["node_ids"], f["name"]
            assert root.hex() == f["id"]
            if f["root_encoded"] is not None:
                assert nodes[-1][1].hex() == f["root_encoded"]
                top = decode_file_node(nodes[-1][1])
                assert top.level == 1 and top.size == sum(n for _, n in chunks)
                assert len(top.entries) == -(-s["count"] // FANOUT)


def test_tree_nodes(v):
    for t in v["tree_nodes"]:
        entries = [TreeEntry(n, k, bytes.fromhex(i), s, a) for n, k, i, s, a in t["entries"]]
        enc = encode_tree_node(entries)
        assert enc.hex() == t["encoded"], t["name"]
        assert D.tree_node_id(enc).hex() == t["id"]
        assert [e.name for e in decode_tree_node(enc)] == t["sorted_names"]
    assert v["tree_nodes"][0]["encoded"] == "920190"
    assert v["tree_nodes"][0]["id"] == EMPTY_TREE_ID.hex()


# --- §7 records ---------------------------------------------------------------------------
def test_log_entries(v):
    for e in v["log_entries"]:
        entry = _bytes(e["entry"])
        data = R.encode_entry(entry)
        assert data.hex() == e["encoded"], entry["op"]
        assert R.entry_id(data).hex() == e["entry_id"]
        assert R.decode_entry(data) == entry


def test_config(v):
    assert R.encode_config(v["config"]["value"]).decode() == v["config"]["encoded"]
    assert R.decode_config(v["config"]["encoded"].encode()) == v["config"]["value"]


# --- §6 packs -----------------------------------------------------------------------------
def test_pack_writer_reproduces_the_raw_pack_byte_for_byte(v, tmp_path):
    p = v["packs"][0]
    packs, tmp = tmp_path / "packs", tmp_path / "tmp"
    packs.mkdir()
    tmp.mkdir()
    w = PackWriter(str(packs), str(tmp))
    for o in p["objects"]:
        w.add(bytes.fromhex(o["id"]), o["kind"], o["codec"], o["raw_len"], bytes.fromhex(o["raw"]))
    name = w.seal()
    assert name == p["pack_name"]
    path = pack_path(str(packs), name)
    with open(path, "rb") as f:
        assert f.read().hex() == p["bytes"]
    assert hash_pack(path) == name
    got = [(e.id.hex(), e.kind, e.codec, e.offset, e.stored_len, e.raw_len) for e in read_pack_index(path)]
    assert got == [(o["id"], o["kind"], o["codec"], o["offset"], o["stored_len"], o["raw_len"]) for o in p["objects"]]


def test_every_pack_vector_parses_and_decodes_to_its_objects(v):
    codec = Codec()
    for p in v["packs"]:
        data = bytes.fromhex(p["bytes"])
        h = D.pack_hasher()
        h.update(data)
        assert h.hexdigest() == p["pack_name"]
        decode_header(data[:HEADER_SIZE])
        trailer = data[-TRAILER_SIZE:]
        flen = decode_trailer(trailer, len(data))
        body = data[len(data) - TRAILER_SIZE - flen : len(data) - TRAILER_SIZE]
        entries = decode_footer(body, trailer, len(data))
        assert len(entries) == len(p["objects"])
        for e, o in zip(entries, p["objects"]):
            assert (e.id.hex(), e.offset, e.stored_len, e.raw_len) == (o["id"], o["offset"], o["stored_len"], o["raw_len"])
            assert data[e.offset - RECORD_SIZE] == e.kind  # the record header repeats the kind
            raw = codec.decode(e.codec, data[e.offset : e.offset + e.stored_len], e.raw_len)
            assert raw.hex() == o["raw"]
            hasher = {0: D.chunk_id, 1: D.file_node_id, 2: D.tree_node_id}[e.kind]
            assert hasher(raw) == e.id


# --- the document itself ------------------------------------------------------------------
FORMAT_MD = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "format.md")


def test_ids_and_tables_printed_in_format_md_match_the_vectors(v):
    import re

    with open(FORMAT_MD, encoding="utf-8") as f:
        doc = f.read()
    with open(VECTORS, encoding="utf-8") as f:
        raw = f.read()
    gear_digest = "9af822d1e10df25d0157a43ccd0a73b56d1c1d0a5d77acb4e6e979522d0fe149"
    ids = set(re.findall(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])", doc))
    assert len(ids) >= 15
    for h in ids:
        assert h in raw or h == gear_digest, f"format.md shows {h}, which no vector has"
    appendix = doc.split("## Appendix A", 1)[1]
    tables = re.findall(r"```\n(.*?)```", appendix, re.S)
    assert tables[0].split() == v["fastcdc"]["gear"]
    assert tables[1].split() == v["fastcdc"]["masks"]
    log = next(e for e in v["log_entries"] if e["entry"]["op"] == "aliases")
    block = doc.split("Log entry (`aliases` op", 1)[1].split("```")[1]
    assert "".join(block.split("entry id")[0].split()) == log["encoded"]
