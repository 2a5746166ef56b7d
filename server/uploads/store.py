"""Small uploads in one request, and what every way in shares: the target, the asset, the result.

Order of effects: the blob is written before its row commits, so a committed row always has its
object; an object whose row never committed is an orphan the janitor removes after the grace
period. Functions that create rows commit before they return, and return the job to enqueue only
then: a job is never enqueued for a row that was rolled back.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult
from sqlalchemy.orm import Session

from server.db.models import AssetKind, Booth, Job, Product, ProductAsset, utcnow
from server.errors import StorageError
from server.processing import accept_upload
from server.settings import LimitSettings
from server.storage.base import BlobStore
from server.uploads.checks import Checked, check_bytes, clean_filename, new_key
from server.uploads.quotas import check_bytes_quota, lock_organisation

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Target:
    """Where an upload goes: a product's model or photo, or a booth's logo."""

    booth_id: uuid.UUID
    organisation_id: uuid.UUID
    product_id: uuid.UUID | None
    kind: AssetKind

    @classmethod
    def for_product(cls, product: Product, kind: AssetKind) -> Target:
        return cls(product.booth_id, product.booth.organisation_id, product.id, kind)

    @classmethod
    def for_logo(cls, booth: Booth) -> Target:
        return cls(booth.id, booth.organisation_id, None, AssetKind.logo)


@dataclass(frozen=True, slots=True)
class Accepted:
    """A stored upload: its asset, the job to enqueue (None: nothing to run) and whether this
    call created it (False when a finalize is repeated: the job was enqueued the first time)."""

    asset: ProductAsset
    job: Job | None
    created: bool = True


def store_upload(
    db: Session,
    blobs: BlobStore,
    target: Target,
    filename: str | None,
    data: bytes,
    limits: LimitSettings,
) -> Accepted:
    """Check and store a small upload, add its asset and job, and commit.

    Args:
        db: the request's session; it is committed here.
        blobs: where the bytes go.
        target: the product or booth and the kind.
        filename: the client's file name (cleaned here).
        data: the whole file.
        limits: the size cap and the quotas.

    Returns:
        The committed asset and the job to enqueue.

    Raises:
        ExpoError: see :func:`check_bytes`; PayloadTooLarge ``quota_bytes``; StorageError.
    """
    checked = check_bytes(data, target.kind, max_bytes=limits.max_upload_bytes)
    # Refuse before storing anything (A6); the decisive check is repeated under the lock below.
    check_bytes_quota(db, target.organisation_id, checked.size, limits, utcnow())
    db.commit()  # end the read transaction: the blob write below may take a while
    key = new_key()
    blobs.put(key, data, content_type=checked.content_type)
    try:
        lock_organisation(db, target.organisation_id)
        check_bytes_quota(db, target.organisation_id, checked.size, limits, utcnow())
        asset = add_asset(db, target, clean_filename(filename), checked, key)
        job = accept_upload(db, asset)
        db.flush()
    except BaseException:
        db.rollback()
        delete_quietly(blobs, key)
        raise
    # A commit that fails leaves the object: the janitor removes it if the row did not commit.
    db.commit()
    logger.info(
        "upload %s: %s %s, %d bytes",
        asset.id,
        target.kind.value,
        checked.format.value,
        checked.size,
    )
    return Accepted(asset, job)


def add_asset(
    db: Session, target: Target, filename: str, checked: Checked, key: str
) -> ProductAsset:
    """Add the asset row of checked bytes stored at ``key`` (flushed, not committed)."""
    asset = ProductAsset(
        product_id=target.product_id,
        booth_id=target.booth_id,
        kind=target.kind,
        filename=filename,
        content_type=checked.content_type,
        size=checked.size,
        sha256=checked.sha256,
        blob_key=key,
    )
    db.add(asset)
    db.flush()
    return asset


def delete_quietly(blobs: BlobStore, key: str) -> None:
    """Delete an object; a failure is logged, and the janitor removes the orphan later."""
    try:
        blobs.delete(key)
    except StorageError as exc:  # the janitor removes it later
        logger.warning("could not delete %s: %s", key, exc.message)


def rowcount(result: Any) -> int:
    """Rows an UPDATE or DELETE matched (``Session.execute`` is typed as returning Result)."""
    return cast(CursorResult[Any], result).rowcount
