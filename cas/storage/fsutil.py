"""Durable file primitives: fsync of files and directories, exclusive publish."""

from __future__ import annotations

import errno
import os
import sys

from cas.errors import StorageError


def fsync_dir(path: str) -> None:
    """Flush a directory entry change (create, rename) to disk."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; data fsync still happened
    finally:
        os.close(fd)


def write_durable(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` (replacing it) via a synced temporary file."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}") from exc
    fsync_dir(os.path.dirname(path) or ".")


def publish_exclusive(tmp_path: str, final_path: str) -> bool:
    """Atomically make ``tmp_path`` visible as ``final_path`` unless it exists.

    Uses ``link(2)``, which is atomic and fails if the target exists, also on NFS.
    The temporary file is removed either way.

    Returns:
        True if published, False if ``final_path`` already existed.
    """
    try:
        os.link(tmp_path, final_path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            return False
        raise StorageError(f"cannot create {final_path}: {exc.strerror}") from exc
    finally:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass


_FS_IOC_GETFLAGS = 0x80086601  # linux/fs.h: _IOR('f', 1, long); the kernel reads an int
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000  # chattr +T: "top of directory hierarchies" for the Orlov allocator


def mark_top_dir(path: str) -> bool:
    """Ask the filesystem to spread the subdirectories of ``path`` over free block groups.

    Sets ext2/3/4's ``FS_TOPDIR_FL`` (``chattr +T``) on a directory this process
    owns. New subdirectories of such a directory are placed by the Orlov
    allocator in block groups with many free inodes, as the subdirectories of
    ``/`` are, instead of next to their parent. A best-effort hint: returns
    False where the platform or filesystem has no such flag (nothing changes).
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        return False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        buf = bytearray(4)
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buf, True)
        flags = int.from_bytes(buf, sys.byteorder)
        if not flags & _FS_TOPDIR_FL:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, (flags | _FS_TOPDIR_FL).to_bytes(4, sys.byteorder))
        return True
    except (OSError, ValueError, OverflowError):
        return False
    finally:
        os.close(fd)
