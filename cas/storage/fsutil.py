"""Durable file primitives: fsync of files and directories, exclusive publish."""

from __future__ import annotations

import errno
import os

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
