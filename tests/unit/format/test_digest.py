"""Object ids: plain BLAKE3 for chunks, domain-separated keyed BLAKE3 for everything else."""

import blake3
import pytest

from cas.errors import UsageError
from cas.format import digest as D
from cas.format.nodes import FileNode, TreeEntry, KIND_FILE, encode_file_node, encode_tree_node


def test_chunk_id_is_plain_blake3_checkable_with_b3sum():
    data = b"hello world\n"
    assert D.chunk_id(data) == blake3.blake3(data).digest()
    assert len(D.chunk_id(data)) == D.DIGEST_SIZE == 32


def test_chunk_id_accepts_memoryview_and_bytes_alike():
    data = bytes(range(256)) * 3
    assert D.chunk_id(memoryview(data)[10:500]) == D.chunk_id(data[10:500])


def test_contexts_are_distinct():
    contexts = {D.CONTEXT_FILE_NODE, D.CONTEXT_TREE_NODE, D.CONTEXT_LOG_ENTRY, D.CONTEXT_PACK}
    assert len(contexts) == 4


@pytest.mark.parametrize("data", [b"", b"x", b"\x92\x01\x90", bytes(range(256)) * 4])
def test_domain_separation_of_the_same_bytes(data):
    ids = {
        D.chunk_id(data),
        D.file_node_id(data),
        D.tree_node_id(data),
        D.keyed_id(D.CONTEXT_LOG_ENTRY, data),
    }
    h = D.pack_hasher()
    h.update(data)
    ids.add(h.digest())
    assert len(ids) == 5


def test_a_file_node_id_never_equals_the_chunk_id_of_its_bytes():
    enc = encode_file_node(FileNode(0, ((D.chunk_id(b"abc"), 3),)))
    assert D.file_node_id(enc) != D.chunk_id(enc)
    assert D.file_node_id(enc) != D.tree_node_id(enc)


def test_a_tree_node_id_differs_from_a_file_node_id_of_the_same_bytes():
    enc = encode_tree_node([TreeEntry("a", KIND_FILE, b"\x01" * 32, 1, 0)])
    assert D.tree_node_id(enc) != D.file_node_id(enc)
    assert D.tree_node_id(enc) != D.chunk_id(enc)


def test_pack_hasher_is_incremental():
    h = D.pack_hasher()
    h.update(b"abc")
    h.update(b"def")
    assert h.hexdigest() == blake3.blake3(b"abcdef", derive_key_context=D.CONTEXT_PACK).hexdigest()


def test_text_form_round_trips():
    d = D.chunk_id(b"x")
    text = D.to_text(d)
    assert text == "blake3:" + d.hex()
    assert D.from_text(text) == d
    assert D.from_text(d.hex()) == d


@pytest.mark.parametrize(
    "text",
    ["", "blake3:", "blake3:" + "0" * 63, "blake3:" + "0" * 65, "blake3:" + "g" * 64, "sha256:" + "0" * 64, "0" * 62],
)
def test_from_text_rejects_malformed_digests(text):
    with pytest.raises(UsageError):
        D.from_text(text)
