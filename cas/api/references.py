"""References: artifact entries whose bytes stay outside the store.

Layer: api. The only module that talks to fsspec, and it imports fsspec lazily
(the import costs ~110 ms) when a reference is added, fetched or checked.
``file://`` is read with plain OS calls so the stat cache hashes unchanged files
for free. Records are encoded by ``cas.format.nodes`` (docs/format.md §8.3);
nothing here writes to the store.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qsl, unquote, urlparse

from cas.api.ingest import walk_files
from cas.errors import (
    CasError,
    InvalidUri,
    ReferenceChanged,
    ReferenceMissing,
    ReferenceUnreachable,
    TooManyObjects,
    UsageError,
)
from cas.format.names import check_path
from cas.format.nodes import (
    CHECKSUM_BLAKE3_FILE,
    CHECKSUM_CRC32C,
    CHECKSUM_ETAG,
    CHECKSUM_MD5,
    Reference,
    check_reference,
)

# W&B's default for add_reference(max_objects=None)
DEFAULT_MAX_OBJECTS = 10_000_000
# scheme -> fsspec protocol
PROTOCOLS = {"file": "file", "s3": "s3", "gs": "gcs", "gcs": "gcs", "http": "http", "https": "https"}
INSTALL_HINT = {"s3": "pip install 'cas[s3]' (s3fs)", "gcs": "pip install 'cas[gcs]' (gcsfs)",
                "http": "pip install aiohttp", "https": "pip install aiohttp"}
COPY_BUFFER = 1 << 20


@dataclass(frozen=True)
class Location:
    """A parsed reference URI: ``path`` is what fsspec (or the OS, for file://) takes."""

    scheme: str
    protocol: str
    path: str
    version_id: str | None = None

    def uri(self, path: str | None = None) -> str:
        """Return the canonical URI of ``path`` (default: this location's path)."""
        p = self.path if path is None else path
        if self.scheme == "file":
            return Path(p).as_uri()
        if self.scheme in ("http", "https"):
            return p
        return f"{self.scheme}://{p}"


def parse_uri(uri) -> Location:
    """Parse a reference URI.

    Raises:
        InvalidUri: Not a string, no scheme, an unsupported scheme, or no bucket/host.
    """
    if not isinstance(uri, str) or "\0" in uri:
        raise InvalidUri(uri, "a reference must be a URI string without NUL")
    u = urlparse(uri)
    scheme = u.scheme.lower()
    if "://" not in uri or not scheme:
        raise InvalidUri(uri, "it has no scheme; use file://, s3://, gs:// or http(s)://")
    if scheme not in PROTOCOLS:
        raise InvalidUri(uri, f"scheme {scheme!r} is not supported; use file://, s3://, gs:// or http(s)://")
    if scheme == "file":
        if u.netloc not in ("", "localhost"):
            raise InvalidUri(uri, "a file URI needs an absolute path: file:///abs/path")
        path = unquote(u.path)
        if not path.startswith("/"):
            raise InvalidUri(uri, "a file URI needs an absolute path: file:///abs/path")
        return Location("file", "file", os.path.normpath(path))
    if not u.netloc:
        raise InvalidUri(uri, "it names no bucket or host")
    if scheme in ("http", "https"):
        return Location(scheme, scheme, uri)
    query = dict(parse_qsl(u.query))
    key = u.path.lstrip("/").rstrip("/")
    path = f"{u.netloc}/{key}" if key else u.netloc
    return Location("gs" if scheme == "gcs" else scheme, PROTOCOLS[scheme], path,
                    query.get("versionId") or query.get("generation"))


def _strip_etag(etag) -> str | None:
    if not etag:
        return None
    etag = str(etag)
    weak = etag.startswith("W/")
    body = etag[2:] if weak else etag
    if len(body) >= 2 and body[0] == body[-1] == '"':
        body = body[1:-1]
    return ("W/" + body if weak else body) or None


class ReferenceClient:
    """Lists, fetches and checks referenced objects for one operation.

    Filesystems are created once per client with fsspec's instance cache off,
    so listings and credentials never leak between operations or tests.
    ``options`` maps an fsspec protocol (``s3``, ``gcs``, ``http``) to keyword
    arguments for its filesystem; credentials are never stored in the repository.
    """

    def __init__(self, ingester, options: dict | None = None) -> None:
        self.ingester = ingester
        self.options = options or {}
        self._fss: dict[str, object] = {}

    def _fs(self, loc: Location):
        fs = self._fss.get(loc.protocol)
        if fs is None:
            try:
                import fsspec  # lazy: importing fsspec costs ~110 ms

                kwargs = dict(self.options.get(loc.protocol, {}))
                if loc.protocol == "s3":
                    kwargs.setdefault("version_aware", True)
                fs = fsspec.filesystem(loc.protocol, skip_instance_cache=True, **kwargs)
            except ImportError as exc:
                raise ReferenceUnreachable(
                    f"{loc.scheme}://", f"its filesystem is not installed ({exc}); {INSTALL_HINT[loc.protocol]}"
                ) from exc
            except Exception as exc:  # backends raise many unrelated types
                raise ReferenceUnreachable(f"{loc.scheme}://", f"cannot set up its filesystem: {exc}") from exc
            self._fss[loc.protocol] = fs
        return fs

    # adding -----------------------------------------------------------------------
    def resolve(self, uri, name: str | None = None, checksum: bool = True,
                max_objects: int | None = None) -> list[tuple[str, Reference]]:
        """Return ``(logical path, Reference)`` for the object or every object under a prefix.

        Args:
            uri: ``file://``, ``s3://``, ``gs://`` or ``http(s)://`` URI.
            name: Logical path of a single object, or directory of a prefix
                (default: the object's base name; the prefix's relative paths).
            checksum: Record the strongest checksum the source offers; False
                records the URI and size only.
            max_objects: Most objects a prefix may expand to (default 10,000,000).

        Raises:
            InvalidUri: Bad or unsupported URI.
            TooManyObjects: The prefix holds more than ``max_objects`` objects.
            ReferenceMissing: Nothing exists at the URI.
            ReferenceUnreachable: The source cannot be reached or its filesystem is not installed.
        """
        loc = parse_uri(uri)
        if max_objects is None:
            max_objects = DEFAULT_MAX_OBJECTS
        if isinstance(max_objects, bool) or not isinstance(max_objects, int) or max_objects < 1:
            raise UsageError(f"max_objects must be a positive integer, not {max_objects!r}")
        if name is not None:
            name = check_path(str(name).rstrip("/"))
        if loc.scheme == "file":
            found = self._list_local(loc, uri, max_objects)
        else:
            found = self._list_remote(loc, uri, max_objects)
        out = []
        for rel, make in found:
            if rel is None:  # a single object
                logical = name or _basename(loc)
            else:
                logical = f"{name}/{rel}" if name else rel
            out.append((check_path(logical), check_reference(make(checksum))))
        return out

    def _list_local(self, loc: Location, uri: str, max_objects: int):
        path = loc.path
        if os.path.isfile(path):
            st = os.stat(path)
            return [(None, lambda c, p=path, s=st: self._local_ref(p, s, c))]
        if not os.path.isdir(path):
            raise ReferenceMissing([("", uri)], "does not exist")
        files = list(walk_files(path))
        if len(files) > max_objects:
            raise TooManyObjects(uri, len(files), max_objects)
        files.sort()
        return [(rel, lambda c, p=absp, s=st: self._local_ref(p, s, c)) for rel, absp, st in files]

    def _local_ref(self, path: str, st, checksum: bool) -> Reference:
        if not checksum:
            return Reference(Path(path).as_uri(), st.st_size)
        ref = self.ingester.file(path, store=False, st=st)
        return Reference(Path(path).as_uri(), ref.size, CHECKSUM_BLAKE3_FILE, ref.id.hex())

    def _list_remote(self, loc: Location, uri: str, max_objects: int):
        fs = self._fs(loc)
        kwargs = self._version_kwargs(loc, loc.version_id)
        info = self._call(uri, fs.info, loc.path, **kwargs)
        if info.get("type") != "directory" or loc.scheme in ("http", "https"):
            return [(None, lambda c, i=info: self._remote_ref(loc, loc.path, i, c))]
        listing = self._call(uri, fs.find, loc.path, detail=True)
        objs = []
        base = loc.path.rstrip("/") + "/"
        for p, i in sorted(listing.items()):
            if i.get("type") == "directory" or p.endswith("/") or i.get("IsLatest") is False:
                continue
            if not p.startswith(base):
                continue
            objs.append((p[len(base):], p, i))
        if len(objs) > max_objects:
            raise TooManyObjects(uri, len(objs), max_objects)
        if not objs:
            raise ReferenceMissing([("", uri)], "holds no objects")
        return [(rel, lambda c, p=p, i=i: self._remote_ref(loc, p, i, c)) for rel, p, i in objs]

    def _remote_ref(self, loc: Location, path: str, info: dict, checksum: bool) -> Reference:
        uri = loc.uri(path)
        size = info.get("size")
        size = int(size) if size is not None else None
        if not checksum:
            return Reference(uri, size)
        algo, value = _checksum_of(loc, info)
        return Reference(uri, size, algo, value, _version_of(loc, info))

    # fetching ----------------------------------------------------------------------
    def fetch(self, ref: Reference, dest: str, path: str = "") -> None:
        """Copy a referenced object to ``dest`` and check it against the record.

        Raises:
            ReferenceMissing: The object (or its recorded version) no longer exists.
            ReferenceChanged: Its size or checksum differs from the record.
            ReferenceUnreachable: The source cannot be reached.
        """
        loc = parse_uri(ref.uri)
        if loc.scheme == "file":
            if not os.path.isfile(loc.path):
                raise ReferenceMissing([(path, ref.uri)])
            try:
                shutil.copyfile(loc.path, dest)
            except FileNotFoundError:
                raise ReferenceMissing([(path, ref.uri)]) from None
            except OSError as exc:
                raise ReferenceUnreachable(ref.uri, exc.strerror or str(exc)) from exc
        else:
            fs = self._fs(loc)
            kwargs = self._version_kwargs(loc, ref.version_id)
            info = self._call(ref.uri, fs.info, loc.path, missing=[(path, ref.uri)], **kwargs)
            problem = self._compare_info(loc, ref, info)
            if problem:
                raise ReferenceChanged(path, ref.uri, *problem)
            self._call(ref.uri, fs.get_file, loc.path, dest, missing=[(path, ref.uri)], **kwargs)
        ok = self.check_local(ref, dest)
        if ok is False:
            raise ReferenceChanged(path, ref.uri, *self._describe_local(ref, dest))

    def _describe_local(self, ref: Reference, path: str) -> tuple[str, str]:
        """Return ``(expected, found)`` for a local copy that differs from the record."""
        size = os.path.getsize(path)
        if ref.size is not None and size != ref.size:
            return f"{ref.size} bytes", f"{size} bytes"
        found = self._local_checksum(ref, path)
        algo = "blake3" if ref.checksum_algo == CHECKSUM_BLAKE3_FILE else ref.checksum_algo
        return ref.checksum_text, f"{algo}:{found}"

    # checking ----------------------------------------------------------------------
    def check_local(self, ref: Reference, path: str, st=None) -> bool | None:
        """Compare a local copy with the record: True/False, None if only its size could be checked."""
        if st is None:
            st = os.stat(path)
        if ref.size is not None and st.st_size != ref.size:
            return False
        if ref.checksum_algo in (CHECKSUM_BLAKE3_FILE, CHECKSUM_MD5):
            return self._local_checksum(ref, path, st) == ref.checksum
        return None

    def _local_checksum(self, ref: Reference, path: str, st=None) -> str | None:
        if ref.checksum_algo == CHECKSUM_BLAKE3_FILE:
            return self.ingester.file(path, store=False, st=st).id.hex()
        if ref.checksum_algo == CHECKSUM_MD5:
            h = hashlib.md5(usedforsecurity=False)
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(COPY_BUFFER), b""):
                    h.update(block)
            return h.hexdigest()
        return None

    def check_source(self, ref: Reference) -> tuple[str, str] | None:
        """Check that the source still holds what the record names, without downloading it.

        Returns:
            None if it does (or the record has nothing more to compare), else
            ``(kind, detail)`` with kind ``missing``, ``changed`` or ``unreachable``.
        """
        try:
            loc = parse_uri(ref.uri)
            if loc.scheme == "file":
                if not os.path.isfile(loc.path):
                    return "missing", "no file at this path"
                if self.check_local(ref, loc.path) is False:
                    expected, found = self._describe_local(ref, loc.path)
                    return "changed", f"expected {expected}, found {found}"
                return None
            fs = self._fs(loc)
            info = self._call(ref.uri, fs.info, loc.path, missing=[("", ref.uri)],
                              **self._version_kwargs(loc, ref.version_id))
            problem = self._compare_info(loc, ref, info)
            if problem:
                return "changed", f"expected {problem[0]}, found {problem[1]}"
            return None
        except ReferenceMissing:
            return "missing", "the object (or its recorded version) no longer exists"
        except ReferenceUnreachable as exc:
            return "unreachable", exc.reason
        except CasError as exc:
            return "unreachable", str(exc)

    def _compare_info(self, loc: Location, ref: Reference, info: dict) -> tuple[str, str] | None:
        size = info.get("size")
        if ref.size is not None and size is not None and int(size) != ref.size:
            return f"{ref.size} bytes", f"{int(size)} bytes"
        if ref.checksum_algo in (CHECKSUM_ETAG, CHECKSUM_CRC32C, CHECKSUM_MD5):
            algo, value = _checksum_of(loc, info)
            if algo == ref.checksum_algo and value is not None and value != ref.checksum:
                return ref.checksum_text, f"{algo}:{value}"
        return None

    # helpers -----------------------------------------------------------------------
    def _version_kwargs(self, loc: Location, version_id: str | None) -> dict:
        # S3 objects are fetched at their recorded version; other schemes compare checksums
        if version_id and loc.scheme == "s3":
            return {"version_id": version_id}
        return {}

    def _call(self, uri: str, fn, *args, missing=None, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError:
            raise ReferenceMissing(missing or [("", uri)], "does not exist") from None
        except CasError:
            raise
        except Exception as exc:  # fsspec backends raise botocore, aiohttp, google errors
            text = str(exc) or type(exc).__name__
            if "NoSuchVersion" in text or "does not exist" in text.lower() or "404" in text:
                raise ReferenceMissing(missing or [("", uri)], "does not exist") from exc
            raise ReferenceUnreachable(uri, f"{type(exc).__name__}: {text}") from exc


def _basename(loc: Location) -> str:
    if loc.scheme in ("http", "https"):
        u = urlparse(loc.path)
        return PurePosixPath(unquote(u.path)).name or u.netloc
    return PurePosixPath(loc.path).name


def _checksum_of(loc: Location, info: dict) -> tuple[str | None, str | None]:
    if loc.scheme == "gs":
        md5 = info.get("md5Hash")
        if md5:
            try:
                return CHECKSUM_MD5, base64.b64decode(md5).hex()
            except ValueError:
                pass
        if info.get("crc32c"):
            return CHECKSUM_CRC32C, str(info["crc32c"])
        return None, None
    etag = _strip_etag(info.get("ETag") or info.get("etag"))
    if etag:
        return CHECKSUM_ETAG, etag
    return None, None


def _version_of(loc: Location, info: dict) -> str | None:
    if loc.scheme == "s3":
        vid = info.get("VersionId")
        return None if vid in (None, "", "null") else str(vid)
    if loc.scheme == "gs":
        gen = info.get("generation")
        return str(gen) if gen else None
    return None
