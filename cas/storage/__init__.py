"""Bytes by key on a filesystem: pack files and the append-only log.

Layer L1: knows nothing about versions, trees or the index.
"""
