"""The janitor: removes what uploads leave behind (research-security.md F9).

:func:`sweep_uploads` removes, in this order:

1. upload sessions never finalized whose expiry is older than the grace period, with their bytes
   (the object at the session's key, or the staged chunks), and finalized sessions whose asset
   was deleted since;
2. staged chunk files that no open session owns, older than the grace period;
3. objects under ``uploads/`` that no asset and no open session names, older than the grace
   period: a multipart upload whose row never committed, the copy of a finalize that lost a race,
   a presigned POST sent again after its finalize;
4. with S3, incomplete multipart uploads started before the grace period.

Nothing referenced is touched: rows are read *after* the listing they are compared with, and an
object is deleted only when old, because an upload writes its object before its row commits
(the grace period covers work in flight). A session is deleted with a conditional DELETE (still
not finalized), so a finalize that wins the race keeps it. Running it twice changes nothing more.

Run it from cron or a scheduler: ``python -m server janitor [--grace-hours N]``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from server.db.models import ProductAsset, UploadMethod, UploadSession, utcnow
from server.errors import BlobNotFound
from server.storage.base import BlobStore
from server.storage.local import META, LocalBlobStore
from server.storage.s3 import S3BlobStore
from server.uploads import UPLOAD_PREFIX, Staging, delete_quietly, rowcount

logger = logging.getLogger(__name__)

_BATCH = 500


@dataclass(frozen=True, slots=True)
class UploadSweep:
    """How many of each thing one run removed."""

    sessions: int = 0
    staged_files: int = 0
    objects: int = 0
    multipart_uploads: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def sweep_uploads(
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    staging: Staging,
    *,
    grace: timedelta,
    now: datetime | None = None,
) -> UploadSweep:
    """Remove expired sessions, orphaned staged files and objects, stale multipart uploads.

    Args:
        sessions: the database.
        blobs: the blob store the uploads are in.
        staging: where resumable chunks are staged.
        grace: how old a leftover must be before it is removed.
        now: the current time (tests pass a later one instead of waiting).

    Returns:
        The counts of what was removed.

    Raises:
        StorageError: the blob store failed (what was removed before stays removed; run again).
    """
    cutoff = (now or utcnow()) - grace
    result = UploadSweep(
        sessions=_sweep_sessions(sessions, blobs, staging, cutoff),
        staged_files=_sweep_staging(sessions, staging, cutoff),
        objects=_sweep_objects(sessions, blobs, cutoff),
        multipart_uploads=(
            blobs.abort_multipart_uploads(initiated_before=cutoff)
            if isinstance(blobs, S3BlobStore)
            else 0
        ),
    )
    logger.info("janitor: removed %s", result.as_dict())
    return result


def _sweep_sessions(
    sessions: sessionmaker[Session], blobs: BlobStore, staging: Staging, cutoff: datetime
) -> int:
    with sessions() as db:
        expired = db.execute(
            select(UploadSession.id, UploadSession.method, UploadSession.key).where(
                UploadSession.finalized_at.is_(None), UploadSession.expires_at < cutoff
            )
        ).all()
        # Finalized, and its asset deleted since (asset_id SET NULL): nothing left to answer.
        emptied = db.execute(
            delete(UploadSession).where(
                UploadSession.finalized_at.is_not(None),
                UploadSession.finalized_at < cutoff,
                UploadSession.asset_id.is_(None),
            )
        )
        db.commit()
    removed = rowcount(emptied)
    for upload_id, method, key in expired:
        with sessions() as db:
            gone = db.execute(
                delete(UploadSession).where(
                    UploadSession.id == upload_id, UploadSession.finalized_at.is_(None)
                )
            )
            db.commit()
        if rowcount(gone) != 1:
            continue  # finalized meanwhile
        if method is UploadMethod.presigned:
            delete_quietly(blobs, key)  # a failure leaves an orphan for step 3 of a later run
        staging.remove(upload_id)
        removed += 1
    return removed


def _sweep_staging(sessions: sessionmaker[Session], staging: Staging, cutoff: datetime) -> int:
    if not staging.directory.is_dir():
        return 0
    files = {upload_id: path for path in staging.directory.iterdir() if (upload_id := _id(path))}
    if not files:
        return 0
    with sessions() as db:
        open_ids = set(
            db.scalars(
                select(UploadSession.id).where(
                    UploadSession.id.in_(list(files)), UploadSession.finalized_at.is_(None)
                )
            )
        )
    removed = 0
    for upload_id, path in files.items():
        if upload_id in open_ids:
            continue
        try:
            if _mtime(path) >= cutoff:
                continue
            path.unlink()
        except FileNotFoundError:
            continue
        removed += 1
    return removed


def _id(path: Path) -> uuid.UUID | None:
    """The session id a staged file is named by; None for anything that is not ours."""
    try:
        upload_id = uuid.UUID(hex=path.name)
    except ValueError:
        return None
    return upload_id if upload_id.hex == path.name and path.is_file() else None


def _sweep_objects(sessions: sessionmaker[Session], blobs: BlobStore, cutoff: datetime) -> int:
    removed = 0
    for batch in _batches(info.key for info in blobs.list(UPLOAD_PREFIX)):
        with sessions() as db:
            referenced = set(
                db.scalars(select(ProductAsset.blob_key).where(ProductAsset.blob_key.in_(batch)))
            )
            referenced |= set(
                db.scalars(
                    select(UploadSession.key).where(
                        UploadSession.key.in_(batch), UploadSession.finalized_at.is_(None)
                    )
                )
            )
        for key in batch:
            if key in referenced:
                continue
            modified = _modified(blobs, key)
            if modified is None or modified >= cutoff:
                continue
            blobs.delete(key)
            logger.info("janitor: deleted orphaned upload %s (written %s)", key, modified)
            removed += 1
    return removed


def _batches(keys: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for key in keys:
        batch.append(key)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _modified(blobs: BlobStore, key: str) -> datetime | None:
    """When the object was written; None when unknown (then it is kept)."""
    try:
        if isinstance(blobs, S3BlobStore):
            return blobs.last_modified(key)
        if isinstance(blobs, LocalBlobStore):
            # The local store's commit point is its metadata sidecar (server.storage.local).
            return _mtime(blobs.root.joinpath(*key.split("/"), META))
    except (BlobNotFound, FileNotFoundError):
        return None  # deleted meanwhile
    return None


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)
