"""The embedded BlobStore: a directory on the server's disk, served by :mod:`server.api.blobs`.

Layout: every key is a directory named by the key itself, holding a metadata sidecar and the
bytes under names that start with ``~``, a character :func:`check_key` never lets into a key
segment, so a key cannot collide with them (and ``a`` and ``a/b`` can both exist, as on S3)::

    <root>/~lock                         writers' lock
    <root>/scenes/hall-1/scene.glb/~meta.json    {"size", "etag", "content_type", "cache_control"}
    <root>/scenes/hall-1/scene.glb/~<md5>.data   the bytes, named by their MD5

A put writes the data file, then replaces ``~meta.json`` with ``os.replace``: that replace is the
commit, so a reader sees the old object or the new one, never a mix. Writers hold one ``flock``
on ``<root>/~lock`` (so old data files can be removed safely); readers take no lock and retry
once when an overwrite removes the data file they were about to open.

Containment: keys pass :func:`check_key`, and every path is resolved (following symlinks) and
must stay under the resolved root, so a symlink planted under the root cannot lead a read or a
write outside it. Final components are opened with ``O_NOFOLLOW``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from server.errors import BlobNotFound, InvalidBlobKey, StorageUnavailable
from server.storage.base import BlobInfo, check_key

logger = logging.getLogger(__name__)

META = "~meta.json"
LOCK = "~lock"
_DATA_SUFFIX = ".data"
_READ_ATTEMPTS = 3
_ETAG = re.compile(r'^"[0-9a-f]{32}"$')


class LocalBlobStore:
    """Blobs in a local directory.

    Args:
        root: the directory (created when missing); it may itself be a symlink.
        url_prefix: the URL path the app serves blobs under, e.g. ``/blobs``.
    """

    def __init__(self, root: Path, url_prefix: str = "/blobs") -> None:
        root.mkdir(parents=True, exist_ok=True)
        self._root = root.resolve(strict=True)
        self._url_prefix = url_prefix.rstrip("/")

    @property
    def root(self) -> Path:
        return self._root

    def put(
        self, key: str, data: bytes, *, content_type: str, cache_control: str | None = None
    ) -> BlobInfo:
        """Store ``data`` at ``key``, replacing what was there.

        Raises:
            InvalidBlobKey: unsafe key, or its directory would resolve outside the root.
            StorageUnavailable: the disk refused the write.
        """
        directory = self._key_dir(key)
        digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
        info = BlobInfo(key, len(data), f'"{digest}"', content_type, cache_control)
        meta = {
            "size": info.size,
            "etag": info.etag,
            "content_type": content_type,
            "cache_control": cache_control,
        }
        try:
            with self._write_lock():
                directory.mkdir(parents=True, exist_ok=True)
                self._contain(directory)  # mkdir may have gone through a symlink made meanwhile
                _atomic_write(directory, _data_name(info.etag), data)
                _atomic_write(directory, META, json.dumps(meta).encode())
                _remove_data_files(directory, keep=_data_name(info.etag))
        except OSError as exc:
            raise StorageUnavailable(f"cannot write blob {key!r}: {exc.strerror}") from exc
        return info

    def get(self, key: str, *, start: int | None = None, end: int | None = None) -> bytes:
        """Read the object, or the inclusive byte range ``start..end`` (clamped to its size).

        Raises:
            BlobNotFound: no object at ``key``.
            InvalidBlobKey: unsafe key.
            ValueError: negative ``start`` or ``end < start``.
        """
        first, last = _check_range(start, end)
        directory = self._key_dir(key)
        for _ in range(_READ_ATTEMPTS):
            meta = self._read_meta(directory, key)
            try:
                with self._open(directory / _data_name(meta["etag"])) as f:
                    f.seek(first)
                    return f.read() if last is None else f.read(max(0, last - first + 1))
            except FileNotFoundError:
                continue  # replaced by a concurrent put: read the new metadata
            except OSError as exc:
                raise StorageUnavailable(f"cannot read blob {key!r}: {exc.strerror}") from exc
        raise BlobNotFound(f"blob {key!r} changed while being read")

    def head(self, key: str) -> BlobInfo:
        """Metadata of the object at ``key``. Raises BlobNotFound, InvalidBlobKey."""
        meta = self._read_meta(self._key_dir(key), key)
        return BlobInfo(
            key=key,
            size=int(meta["size"]),
            etag=str(meta["etag"]),
            content_type=str(meta["content_type"]),
            cache_control=meta.get("cache_control"),
        )

    def delete(self, key: str) -> None:
        """Delete the object and prune emptied directories; a missing key is not an error."""
        directory = self._key_dir(key)
        try:
            with self._write_lock():
                (directory / META).unlink(missing_ok=True)  # the commit point goes first
                if directory.is_dir():
                    _remove_data_files(directory, keep=None)
                self._prune(directory)
        except OSError as exc:
            raise StorageUnavailable(f"cannot delete blob {key!r}: {exc.strerror}") from exc

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Objects whose key starts with ``prefix``, in key order.

        Like S3's ListObjectsV2 this is a listing: ``content_type`` is ``""`` and
        ``cache_control`` is None; call :meth:`head` for those.
        """
        if prefix:
            check_key(prefix.rstrip("/"))
        start = self._root.joinpath(*prefix.split("/")[:-1])
        if not start.is_dir() or not _is_within(start.resolve(), self._root):
            return
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith("~")]
            if META in filenames:
                key = Path(dirpath).relative_to(self._root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        for key in sorted(keys):
            try:
                meta = self._read_meta(self._root / key, key)
            except (BlobNotFound, InvalidBlobKey):
                continue  # deleted meanwhile, or a symlink pointing outside
            yield BlobInfo(key, int(meta["size"]), str(meta["etag"]), "", None)

    def url(self, key: str, *, expires_in: int | None = None) -> str:
        """``{url_prefix}/{key}``; ``expires_in`` is ignored (the app serves these)."""
        return f"{self._url_prefix}/{check_key(key)}"

    def ping(self) -> None:
        """Raise StorageUnavailable when the root is gone or not writable."""
        if not self._root.is_dir() or not os.access(self._root, os.W_OK | os.X_OK):
            raise StorageUnavailable(f"blob directory {self._root} is not writable")

    # -- paths ------------------------------------------------------------------------------

    def _key_dir(self, key: str) -> Path:
        directory = self._root.joinpath(*check_key(key).split("/"))
        self._contain(directory)
        return directory

    def _contain(self, path: Path) -> None:
        # resolve() follows every symlink that exists and keeps the rest as written.
        if not _is_within(path.resolve(), self._root):
            raise InvalidBlobKey("blob key resolves outside the blob directory")

    def _read_meta(self, directory: Path, key: str) -> dict[str, Any]:
        self._contain(directory)
        try:
            with self._open(directory / META) as f:
                meta: dict[str, Any] = json.load(f)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise BlobNotFound(f"no blob at {key!r}") from exc
        except (OSError, ValueError) as exc:
            raise StorageUnavailable(f"cannot read blob {key!r}: {exc}") from exc
        return meta

    @contextmanager
    def _open(self, path: Path) -> Iterator[BinaryIO]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # the final component is a symlink
                raise InvalidBlobKey("blob files must not be symlinks") from exc
            raise
        with os.fdopen(fd, "rb") as f:
            yield f

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        fd = os.open(self._root / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _prune(self, directory: Path) -> None:
        while directory != self._root and _is_within(directory, self._root):
            try:
                directory.rmdir()
            except OSError:
                return  # not empty (another key lives below) or already gone
            directory = directory.parent


def _data_name(etag: str) -> str:
    # The name comes from the sidecar: accept nothing but a quoted MD5 so that a tampered
    # sidecar cannot name a path.
    if not _ETAG.match(etag):
        raise StorageUnavailable(f"corrupt blob metadata (etag {etag!r})")
    return "~" + etag.strip('"') + _DATA_SUFFIX


def _check_range(start: int | None, end: int | None) -> tuple[int, int | None]:
    first = 0 if start is None else start
    if first < 0 or (end is not None and end < first):
        raise ValueError(f"invalid byte range {start}..{end}")
    return first, end


def _is_within(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _atomic_write(directory: Path, name: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix="~tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_data_files(directory: Path, keep: str | None) -> None:
    for entry in directory.iterdir():
        if entry.name.startswith("~") and entry.name.endswith(_DATA_SUFFIX) and entry.name != keep:
            entry.unlink(missing_ok=True)
