"""Large uploads: a session declared first, the bytes sent elsewhere, then finalize.

    presigned POST (S3)                        resumable chunks (local blob store)
        open_session -> the browser POSTs          open_session -> append_chunk ... (staged)
        finalize: what arrived is checked against the declaration (size, SHA-256, magic
        bytes); a mismatch deletes what arrived; else blob uploads/<uuid4> -> asset -> job

Finalize stores the verified bytes under a *fresh* key instead of keeping the session's key: a
presigned POST stays usable until it expires, so the client could overwrite the object after the
checks (research-security.md F2); nobody can write to the fresh key. Finalize is idempotent and
safe against itself: see :func:`finalize`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.db.models import Job, ProductAsset, UploadMethod, UploadSession, utcnow
from server.errors import (
    BlobNotFound,
    Conflict,
    ExpoError,
    Invalid,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)
from server.processing import accept_upload
from server.settings import LimitSettings
from server.storage.base import BlobStore, PresignedPost
from server.storage.local import LocalBlobStore
from server.storage.s3 import S3BlobStore
from server.uploads.checks import Checked, check_bytes, clean_filename, new_key
from server.uploads.quotas import check_bytes_quota, check_open_uploads, lock_organisation
from server.uploads.staging import Staging
from server.uploads.store import Accepted, Target, add_asset, delete_quietly, rowcount

logger = logging.getLogger(__name__)

SessionState = Literal["open", "complete", "expired", "finalized"]
# Finalize holds the whole file in memory (up to max_large_upload_bytes) to hash and detect it:
# bound how many do so at once in one process; the others wait for a slot.
MAX_CONCURRENT_CHECKS = 2
CHECK_SLOT_WAIT_SECONDS = 120.0
_CHECK_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT_CHECKS)


@dataclass(frozen=True, slots=True)
class Declaration:
    """What a client announces before a large upload (checked again at finalize)."""

    filename: str
    content_type: str
    size: int
    sha256: str


class OffsetMismatch(Conflict):
    """A chunk does not start where the bytes received so far end; resume from ``offset``."""

    code = "offset_mismatch"

    def __init__(self, offset: int) -> None:
        super().__init__(f"the upload has {offset} bytes: send the chunk that starts there")
        self.offset = offset


def open_session(
    db: Session,
    blobs: BlobStore,
    target: Target,
    declaration: Declaration,
    method: UploadMethod,
    limits: LimitSettings,
) -> tuple[UploadSession, PresignedPost | None]:
    """Open a presigned or resumable upload session and commit it.

    Args:
        db: the request's session; it is committed here.
        blobs: an S3 store for ``presigned``, the local store for ``resumable``.
        target: the product and the kind.
        declaration: the file's name, type, size and SHA-256 as the client announces them.
        method: how the bytes will come.
        limits: size cap, session lifetime, quotas.

    Returns:
        The session and, for ``presigned``, the POST the browser sends the file with: exactly
        the session's key, exactly ``declaration.content_type``, exactly ``size`` bytes,
        expiring within 300 s (F1, F3).

    Raises:
        Conflict: ``presigned_unavailable`` (local store) or ``resumable_unavailable`` (S3).
        PayloadTooLarge: ``upload_too_large``, ``quota_bytes``.
        QuotaExceeded: ``quota_uploads``.
    """
    _check_method(blobs, method)
    if declaration.size > limits.max_large_upload_bytes:
        raise PayloadTooLarge(
            f"{declaration.size} bytes declared (max {limits.max_large_upload_bytes})",
            code="upload_too_large",
        )
    now = utcnow()
    key = new_key()
    post = None
    if method is UploadMethod.presigned:
        assert isinstance(blobs, S3BlobStore)  # checked by _check_method
        post = blobs.presigned_post(
            key,
            content_type=declaration.content_type,
            min_bytes=declaration.size,
            max_bytes=declaration.size,
        )
        expires_at = now + timedelta(seconds=post.expires_in)
    else:
        expires_at = now + timedelta(seconds=limits.resumable_upload_seconds)
    lock_organisation(db, target.organisation_id)
    check_open_uploads(db, target.organisation_id, limits, now)
    check_bytes_quota(db, target.organisation_id, declaration.size, limits, now)
    upload = UploadSession(
        booth_id=target.booth_id,
        product_id=target.product_id,
        organisation_id=target.organisation_id,
        kind=target.kind,
        method=method,
        filename=clean_filename(declaration.filename),
        content_type=declaration.content_type,
        size=declaration.size,
        sha256=declaration.sha256,
        key=key,
        received=0,
        expires_at=expires_at,
    )
    db.add(upload)
    db.commit()
    logger.info("upload session %s: %s, %d bytes declared", upload.id, method.value, upload.size)
    return upload, post


def _check_method(blobs: BlobStore, method: UploadMethod) -> None:
    if method is UploadMethod.presigned and not isinstance(blobs, S3BlobStore):
        raise Conflict(
            "presigned uploads need the S3 blob store; this server stores files locally: "
            "use POST /api/products/{id}/uploads/resumable",
            code="presigned_unavailable",
        )
    if method is UploadMethod.resumable and not isinstance(blobs, LocalBlobStore):
        raise Conflict(
            "resumable uploads need the local blob store; this server uses S3: "
            "use POST /api/products/{id}/uploads/presigned",
            code="resumable_unavailable",
        )


def session_state(upload: UploadSession, now: datetime | None = None) -> SessionState:
    """``finalized``, ``expired`` (no more bytes accepted), ``complete`` (every byte received,
    resumable) or ``open``."""
    if upload.finalized_at is not None:
        return "finalized"
    if upload.expires_at <= (now or utcnow()):
        return "expired"
    if upload.method is UploadMethod.resumable and upload.received == upload.size:
        return "complete"
    return "open"


def append_chunk(
    db: Session,
    staging: Staging,
    upload: UploadSession,
    offset: int,
    data: bytes,
    limits: LimitSettings,
) -> UploadSession:
    """Append one chunk at ``offset`` to a resumable upload and commit the new offset.

    The bytes are written at ``offset`` and the file cut there, so bytes a failed request wrote
    past the recorded offset are overwritten by the retry; the offset in the database moves only
    with a conditional UPDATE (``received = offset``), under the session file's lock.

    Raises:
        Conflict: ``upload_finalized``, ``upload_expired``, ``not_resumable``;
            OffsetMismatch when ``offset`` is not the bytes received so far.
        Invalid: ``empty_chunk``.
        PayloadTooLarge: ``chunk_too_large``, ``size_exceeded`` (past the declared size).
    """
    _check_writable(upload, offset)
    if not data:
        raise Invalid("the chunk is empty", code="empty_chunk")
    if len(data) > limits.upload_chunk_bytes:
        raise PayloadTooLarge(
            f"chunks are at most {limits.upload_chunk_bytes} bytes", code="chunk_too_large"
        )
    if offset + len(data) > upload.size:
        raise PayloadTooLarge(
            f"the chunk ends at byte {offset + len(data)}, past the declared {upload.size}",
            code="size_exceeded",
        )
    with staging.locked(upload.id) as fd:
        db.refresh(upload)  # another request may have appended while this one read its body
        _check_writable(upload, offset)
        os.pwrite(fd, data, offset)
        os.ftruncate(fd, offset + len(data))
        os.fsync(fd)
        moved = db.execute(
            update(UploadSession)
            .where(
                UploadSession.id == upload.id,
                UploadSession.received == offset,
                UploadSession.finalized_at.is_(None),
            )
            .values(received=offset + len(data))
            .execution_options(synchronize_session=False)
        )
        if rowcount(moved) != 1:
            db.rollback()
            db.refresh(upload)
            raise OffsetMismatch(upload.received)
        db.commit()
    db.refresh(upload)
    return upload


def _check_writable(upload: UploadSession, offset: int) -> None:
    if upload.method is not UploadMethod.resumable:
        raise Conflict("this upload goes to S3 with its presigned POST", code="not_resumable")
    if upload.finalized_at is not None:
        raise Conflict("the upload is finalized", code="upload_finalized")
    if upload.expires_at <= utcnow():
        raise Conflict("the upload expired: start a new one", code="upload_expired")
    if offset != upload.received:
        raise OffsetMismatch(upload.received)


# --- finalize ---------------------------------------------------------------------------------


def finalize(
    db: Session,
    blobs: BlobStore,
    staging: Staging,
    upload: UploadSession,
    limits: LimitSettings,
) -> Accepted:
    """Check what arrived for ``upload`` against its declaration and turn it into an asset.

    Idempotent: once finalized, the same asset is returned (``created`` False). Concurrent calls
    may both check the bytes, but only the one whose conditional UPDATE of ``finalized_at``
    matches creates the asset; the other removes its copy and returns the winner's asset. At
    most ``MAX_CONCURRENT_CHECKS`` finalizes of this process hold a file in memory at once.

    Returns:
        The committed asset and the job to enqueue.

    Raises:
        Conflict: ``upload_incomplete`` (nothing or not everything arrived yet),
            ``upload_finalized`` (finalized, but its asset was deleted since).
        Invalid: ``size_mismatch``, ``sha256_mismatch``; ExpoError from :func:`check_bytes`:
            in these cases what arrived is deleted (a resumable upload starts again at 0).
        NotFound: ``upload_not_found`` (removed by the janitor meanwhile).
        PayloadTooLarge: ``quota_bytes``.
        ServiceUnavailable: ``finalize_busy``, every check slot stayed taken: call again.
        StorageError: the blob store failed; nothing changed, call again.
    """
    if upload.finalized_at is not None:
        return _finalized(db, upload)
    db.commit()  # end the read transaction: reading and hashing may take a while
    if not _CHECK_SLOTS.acquire(timeout=CHECK_SLOT_WAIT_SECONDS):
        raise ServiceUnavailable("too many uploads are being checked: retry", code="finalize_busy")
    try:
        upload = _current(db, upload)  # a concurrent call may have finished during the wait
        if upload.finalized_at is not None:
            return _finalized(db, upload)
        try:
            checked, key = _check_and_copy(db, blobs, staging, upload, limits)
        except Conflict:
            # A concurrent call that won removes the client's copy: what looks incomplete
            # may be finalized.
            upload = _current(db, upload)
            if upload.finalized_at is not None:
                return _finalized(db, upload)
            raise
    finally:
        _CHECK_SLOTS.release()
    if not _claim(db, upload):
        delete_quietly(blobs, key)
        logger.info("upload %s: finalized by a concurrent call", upload.id)
        return _finalized(db, _current(db, upload))
    asset, job = _record(db, blobs, upload, checked, key, limits)
    _remove_source(blobs, staging, upload)
    logger.info("upload %s finalized: asset %s, %d bytes", upload.id, asset.id, checked.size)
    return Accepted(asset, job)


def _current(db: Session, upload: UploadSession) -> UploadSession:
    current = db.get(UploadSession, upload.id, populate_existing=True)
    if current is None:
        raise NotFound("the upload was removed", code="upload_not_found")
    return current


def _check_and_copy(
    db: Session, blobs: BlobStore, staging: Staging, upload: UploadSession, limits: LimitSettings
) -> tuple[Checked, str]:
    """Read and check what arrived; store the checked bytes under a fresh key."""
    data = _arrived(db, blobs, staging, upload)
    try:
        checked = _verify(upload, data, limits)
    except ExpoError as exc:
        logger.info("upload %s refused at finalize: %s", upload.id, exc.code)
        _discard(db, blobs, staging, upload)
        raise
    key = new_key()
    blobs.put(key, data, content_type=checked.content_type)
    return checked, key


def _claim(db: Session, upload: UploadSession) -> bool:
    """Mark the session finalized unless a concurrent call did; the transaction stays open."""
    claimed = db.execute(
        update(UploadSession)
        .where(UploadSession.id == upload.id, UploadSession.finalized_at.is_(None))
        .values(finalized_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if rowcount(claimed) == 1:
        return True
    db.rollback()
    return False


def _record(
    db: Session,
    blobs: BlobStore,
    upload: UploadSession,
    checked: Checked,
    key: str,
    limits: LimitSettings,
) -> tuple[ProductAsset, Job | None]:
    """Add the asset and its job to the claimed session's transaction, and commit."""
    try:
        lock_organisation(db, upload.organisation_id)
        check_bytes_quota(
            db, upload.organisation_id, checked.size, limits, utcnow(), exclude_session=upload.id
        )
        target = Target(upload.booth_id, upload.organisation_id, upload.product_id, upload.kind)
        asset = add_asset(db, target, upload.filename, checked, key)
        db.execute(
            update(UploadSession)
            .where(UploadSession.id == upload.id)
            .values(asset_id=asset.id)
            .execution_options(synchronize_session=False)
        )
        job = accept_upload(db, asset)
        db.flush()
    except BaseException:
        db.rollback()
        delete_quietly(blobs, key)
        raise
    db.commit()
    return asset, job


def _finalized(db: Session, upload: UploadSession) -> Accepted:
    asset = db.get(ProductAsset, upload.asset_id) if upload.asset_id else None
    if asset is None:
        raise Conflict(
            "the upload was finalized and its file deleted since", code="upload_finalized"
        )
    job = db.scalar(select(Job).where(Job.sha256 == asset.sha256)) if asset.sha256 else None
    return Accepted(asset, job, created=False)


def _arrived(db: Session, blobs: BlobStore, staging: Staging, upload: UploadSession) -> bytes:
    """The bytes the client sent, exactly ``upload.size`` of them, or an error."""
    if upload.method is UploadMethod.resumable:
        data = staging.read(upload.id, upload.size) if upload.received == upload.size else None
        if data is None:
            raise Conflict(
                f"{upload.received} of {upload.size} bytes received: send the rest first",
                code="upload_incomplete",
            )
        return data
    try:
        info = blobs.head(upload.key)
    except BlobNotFound as exc:
        raise Conflict(
            "nothing has arrived yet: POST the file with the presigned form first",
            code="upload_incomplete",
        ) from exc
    # Compare before reading, so that an object larger than declared is never read whole.
    if info.size != upload.size:
        _discard(db, blobs, staging, upload)
        raise Invalid(f"{info.size} bytes arrived, {upload.size} declared", code="size_mismatch")
    try:
        return blobs.get(upload.key)
    except BlobNotFound as exc:  # deleted since the HEAD (by a concurrent finalize)
        raise Conflict("the uploaded file is gone", code="upload_incomplete") from exc


def _verify(upload: UploadSession, data: bytes, limits: LimitSettings) -> Checked:
    if len(data) != upload.size:  # replaced between the HEAD and the GET
        raise Invalid(f"{len(data)} bytes arrived, {upload.size} declared", code="size_mismatch")
    if hashlib.sha256(data).hexdigest() != upload.sha256:
        raise Invalid("the file's SHA-256 differs from the declared one", code="sha256_mismatch")
    return check_bytes(data, upload.kind, max_bytes=limits.max_large_upload_bytes)


def _discard(db: Session, blobs: BlobStore, staging: Staging, upload: UploadSession) -> None:
    """Delete bytes that failed the checks; the session stays open for another try."""
    if upload.method is UploadMethod.presigned:
        delete_quietly(blobs, upload.key)
        return
    with staging.locked(upload.id):
        staging.remove(upload.id)
        db.execute(
            update(UploadSession)
            .where(UploadSession.id == upload.id, UploadSession.finalized_at.is_(None))
            .values(received=0)
            .execution_options(synchronize_session=False)
        )
        db.commit()
    db.refresh(upload)


def _remove_source(blobs: BlobStore, staging: Staging, upload: UploadSession) -> None:
    """After a finalize: the client's copy is no longer needed (a failure leaves it to the
    janitor: a finalized session's key is referenced by nothing)."""
    if upload.method is UploadMethod.presigned:
        delete_quietly(blobs, upload.key)
    else:
        staging.remove(upload.id)
