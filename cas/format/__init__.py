"""Pure bytes <-> values: digests, chunking, codecs, node, pack and log encodings.

Layer L0: no file or network I/O, no lmdb, no fsspec. Every constant here is
specified in docs/format.md.
"""
