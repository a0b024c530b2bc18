"""Pack files on a local filesystem: write, seal, list and read by offset.

Layout (docs/format.md §3, §6): ``packs/<2 hex>/<64 hex>.pack``, named by a keyed
BLAKE3 of the whole file. Packs are written under ``tmp/`` and become visible
only by an atomic rename after fsync; a sealed pack is never modified.
"""

from __future__ import annotations

import bisect
import os
from typing import Iterator

from cas.errors import FormatError, StorageError
from cas.format.codec import CODEC_RAW
from cas.format.digest import chunk_id, pack_hasher
from cas.format.pack import (
    HEADER_SIZE,
    KIND_CHUNK,
    RECORD_SIZE,
    TRAILER_SIZE,
    PackEntry,
    decode_footer_rows,
    decode_header,
    decode_trailer,
    encode_footer,
    encode_header,
    encode_record_header,
    scan_records,
)
from cas.storage.crash import crashpoint
from cas.storage.fsutil import fsync_dir

PACK_SUFFIX = ".pack"
WRITE_BUFFER = 1 << 20


class PackWriter:
    """Append objects to one new pack file, then seal it."""

    def __init__(self, packs_dir: str, tmp_dir: str) -> None:
        self.packs_dir = packs_dir
        self.tmp_path = os.path.join(tmp_dir, f"{os.urandom(16).hex()}.pack.tmp")
        try:
            self._f = open(self.tmp_path, "wb", buffering=0)
        except OSError as exc:
            raise StorageError(f"cannot create pack in {tmp_dir}: {exc.strerror}") from exc
        self._hash = pack_hasher()
        self._buf = bytearray()  # written and hashed per WRITE_BUFFER bytes, not per object
        self.entries: list[PackEntry] = []
        self.size = 0
        self._write(encode_header())

    def _write(self, data) -> None:
        self._buf += data
        self.size += len(data)
        if len(self._buf) >= WRITE_BUFFER:
            self._flush_buf()

    def _flush_buf(self) -> None:
        if not self._buf:
            return
        try:
            view = memoryview(self._buf)
            while view:  # a raw write may be short
                view = view[self._f.write(view):]
            view.release()
        except OSError as exc:
            raise StorageError(f"cannot write pack {self.tmp_path}: {exc.strerror}") from exc
        self._hash.update(self._buf)
        self._buf = bytearray()

    def add(self, oid: bytes, kind: int, codec: int, raw_len: int, stored) -> PackEntry:
        """Append one object; return where its payload sits."""
        self._write(encode_record_header(kind, codec, raw_len, len(stored), oid))
        entry = PackEntry(oid, kind, codec, self.size, len(stored), raw_len)
        self._write(stored)
        self.entries.append(entry)
        return entry

    def seal(self, avoid=None) -> str:
        """Write the footer, fsync, and atomically publish the pack.

        Returns:
            The pack's name (64 hex).
        """
        return self.publish(self.finish(avoid))

    def finish(self, avoid=None) -> str:
        """Write the footer; return the pack's name. No more objects may be added.

        The pack is not durable or visible until ``publish``, which may run in
        another thread (the caller hands the writer over and never touches it again).

        Args:
            avoid: ``avoid(name)`` is True for names this pack must not get (packs gc
                condemned); a small random chunk is appended until the name is free.
        """
        while True:
            self._flush_buf()  # the running hash covers everything written so far
            footer = encode_footer(self.entries)
            hasher = self._hash.copy()
            hasher.update(footer)
            name = hasher.hexdigest()
            if avoid is None or not avoid(name):
                break
            pad = os.urandom(32)
            self.add(chunk_id(pad), KIND_CHUNK, CODEC_RAW, len(pad), pad)
        self._write(footer)
        self._flush_buf()
        self.name = name
        return self.name

    def publish(self, name: str) -> str:
        """Fsync the finished pack and rename it into ``packs/`` (docs/format.md §10.2).

        Returns:
            ``name``.

        Raises:
            StorageError: The file cannot be synced or renamed.
        """
        crashpoint("pack-written")
        try:
            os.fsync(self._f.fileno())
            self._f.close()
            crashpoint("pack-synced")
            final_dir = os.path.join(self.packs_dir, name[:2])
            os.makedirs(final_dir, exist_ok=True)
            os.rename(self.tmp_path, os.path.join(final_dir, name + PACK_SUFFIX))
            crashpoint("pack-renamed")
            fsync_dir(final_dir)
        except OSError as exc:
            raise StorageError(f"cannot seal pack {name}: {exc.strerror}") from exc
        return name

    def abort(self) -> None:
        """Discard the unsealed pack."""
        try:
            self._f.close()
        finally:
            try:
                os.unlink(self.tmp_path)
            except OSError:
                pass


def pack_path(packs_dir: str, name: str) -> str:
    """Return the file path of a sealed pack."""
    return os.path.join(packs_dir, name[:2], name + PACK_SUFFIX)


def iter_pack_names(packs_dir: str) -> Iterator[str]:
    """Yield the names of all sealed packs, in sorted order."""
    try:
        subdirs = sorted(e.name for e in os.scandir(packs_dir) if e.is_dir() and len(e.name) == 2)
    except FileNotFoundError:
        return
    for sub in subdirs:
        for e in sorted(os.scandir(os.path.join(packs_dir, sub)), key=lambda e: e.name):
            if e.name.endswith(PACK_SUFFIX) and len(e.name) == 64 + len(PACK_SUFFIX):
                yield e.name[:64]


def _read_footer_rows(fd: int, size: int, path: str) -> list[tuple]:
    """Return the checked footer rows of an open pack (``decode_footer_rows``).

    Raises:
        FormatError: The pack is truncated or its footer is damaged.
        OSError: The file cannot be read.
    """
    if size < HEADER_SIZE + TRAILER_SIZE:
        raise FormatError(f"pack {path} is truncated")
    decode_header(os.pread(fd, HEADER_SIZE, 0))
    trailer = os.pread(fd, TRAILER_SIZE, size - TRAILER_SIZE)
    flen = decode_trailer(trailer, size)
    body = os.pread(fd, flen, size - TRAILER_SIZE - flen)
    try:
        return decode_footer_rows(body, trailer, size)
    except FormatError as exc:
        raise FormatError(f"pack {path}: {exc}") from exc


def read_pack_index(path: str) -> list[PackEntry]:
    """Read the footer of a sealed pack.

    Raises:
        FormatError: The pack is truncated or its footer is damaged.
        StorageError: The file cannot be read.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            rows = _read_footer_rows(fd, os.fstat(fd).st_size, path)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(f"cannot read pack {path}: {exc.strerror}") from exc
    return [PackEntry(*row) for row in rows]


class PackScan:
    """One sealed pack read front to back exactly once, every byte fed to the hash that names it.

    ``footer()`` reads the footer (three small reads at the ends); ``blocks()``
    then reads the whole file in order into caller-owned buffers, in blocks
    that end on payload ends where possible so an object normally lies inside
    one block; ``hexdigest()`` is the name those bytes hash to. Not thread-safe:
    one scan belongs to one thread. Use as a context manager.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise StorageError(f"cannot read pack {path}: {exc.strerror}") from exc
        try:
            self.size = os.fstat(self._fd).st_size
        except OSError as exc:
            os.close(self._fd)
            raise StorageError(f"cannot read pack {path}: {exc.strerror}") from exc
        try:
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except (OSError, AttributeError):
            pass
        self._hash = pack_hasher()
        self.read = 0  # bytes read and hashed so far

    def __enter__(self) -> "PackScan":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the file handle."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def footer(self) -> list[tuple]:
        """Return the footer rows ``(id, kind, codec, offset, stored_len, raw_len)``.

        Raises:
            FormatError: The pack is truncated or its footer is damaged.
            StorageError: The file cannot be read.
        """
        try:
            return _read_footer_rows(self._fd, self.size, self.path)
        except OSError as exc:
            raise StorageError(f"cannot read pack {self.path}: {exc.strerror}") from exc

    def blocks(self, ends: list[int], take, block: int) -> Iterator[tuple[int, memoryview, bytearray]]:
        """Read the whole file once, in order, yielding ``(offset, view, buffer)`` per block.

        Args:
            ends: Sorted payload end offsets; blocks end on the largest one that
                keeps the block within ``block`` bytes (or the next one, for a
                larger object).
            take: ``take()`` returns the buffer to read the next block into (the
                caller pools them); a block that does not fit gets a new
                buffer of its own, which is what the tuple then carries.
            block: Target block size.

        Raises:
            StorageError: The file cannot be read.
        """
        size, fd, h, pos = self.size, self._fd, self._hash, 0
        try:
            while pos < size:
                target = pos + block
                i = bisect.bisect_right(ends, target) - 1
                if i >= 0 and ends[i] > pos:
                    end = ends[i]
                else:
                    j = bisect.bisect_right(ends, pos)
                    end = ends[j] if j < len(ends) else target
                n = min(end, size) - pos
                buf = take()
                if n > len(buf):
                    buf = bytearray(n)
                view = memoryview(buf)[:n]
                got = 0
                while got < n:  # preadv may return less than asked
                    k = os.preadv(fd, [view[got:]], pos + got)
                    if not k:
                        break
                    got += k
                if not got:
                    break
                view = view[:got]
                h.update(view)
                self.read = pos + got
                yield pos, view, buf
                pos += got
        except OSError as exc:
            raise StorageError(f"cannot read pack {self.path}: {exc.strerror}") from exc

    def hexdigest(self) -> str:
        """Return the name the bytes read so far hash to."""
        return self._hash.hexdigest()


def salvage_pack_index(path: str) -> list[PackEntry]:
    """Recover a damaged pack's entries by scanning its object records."""
    with open(path, "rb") as f:
        return scan_records(f.read())


def hash_pack(path: str) -> str:
    """Return the name a pack's bytes hash to (for verification)."""
    h = pack_hasher()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 22)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


class PackReader:
    """Read object payloads from sealed packs, keeping a few handles open."""

    def __init__(self, packs_dir: str, max_open: int = 64) -> None:
        self.packs_dir = packs_dir
        self._fds: dict[str, int] = {}
        self._max_open = max_open

    def _fd(self, name: str) -> int:
        fd = self._fds.get(name)
        if fd is None:
            if len(self._fds) >= self._max_open:
                old, ofd = next(iter(self._fds.items()))
                del self._fds[old]
                os.close(ofd)
            try:
                fd = os.open(pack_path(self.packs_dir, name), os.O_RDONLY)
            except FileNotFoundError as exc:
                raise StorageError(f"pack {name} is missing from {self.packs_dir}; run 'cas fsck'") from exc
            except OSError as exc:
                raise StorageError(f"cannot open pack {name}: {exc.strerror}") from exc
            self._fds[name] = fd
        return fd

    def read(self, name: str, offset: int, length: int) -> bytes:
        """Return ``length`` bytes at ``offset`` of pack ``name``.

        Raises:
            StorageError: The pack is missing, unreadable or too short.
        """
        try:
            data = os.pread(self._fd(name), length, offset)
        except OSError as exc:
            raise StorageError(f"cannot read pack {name}: {exc.strerror}") from exc
        if len(data) != length:
            raise StorageError(f"pack {name} is truncated at offset {offset}; run 'cas fsck'")
        return data

    def prefetch(self, name: str, offset: int, length: int) -> None:
        """Ask the kernel to start reading a range that will be read soon (a hint only)."""
        try:
            os.posix_fadvise(self._fd(name), offset, length, os.POSIX_FADV_WILLNEED)
        except (OSError, AttributeError, StorageError):
            pass

    def close(self) -> None:
        """Close all open handles."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


assert RECORD_SIZE == 42
