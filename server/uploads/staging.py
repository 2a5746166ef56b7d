"""Resumable chunks on disk, one file per upload session, never in the database."""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from server.settings import Settings


class Staging:
    """Resumable uploads' bytes on disk, one file per session named by its id (never the DB).

    Writers of one session take an ``flock`` on its file, so two requests carrying the same
    chunk (a client retrying) write one after the other, each checking the offset first.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, upload_id: uuid.UUID) -> Path:
        return self.directory / upload_id.hex

    @contextlib.contextmanager
    def locked(self, upload_id: uuid.UUID) -> Iterator[int]:
        """The session's file, opened for writing and locked; yields its descriptor."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(
            self.path(upload_id), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # closing releases the lock

    def read(self, upload_id: uuid.UUID, size: int) -> bytes | None:
        """The first ``size`` bytes, or None when the file is missing or shorter."""
        try:
            with open(self.path(upload_id), "rb") as f:
                data = f.read(size)
        except FileNotFoundError:
            return None
        return data if len(data) == size else None

    def remove(self, upload_id: uuid.UUID) -> None:
        self.path(upload_id).unlink(missing_ok=True)


def staging_directory(settings: Settings) -> Path:
    """Where resumable chunks are staged (see ``LimitSettings.upload_staging_dir``)."""
    return settings.limits.upload_staging_dir or settings.blobs.local_dir / "~staging"
