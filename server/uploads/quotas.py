"""Per exhibitor organisation quotas (research-security.md A6), answered before anything is stored.

Bytes: the sizes of the organisation's assets plus the declared sizes of its open upload sessions
(413 ``quota_bytes``); open sessions at once (429 ``quota_uploads``); products (429
``quota_products``). Checks that decide run with the organisation's row locked
(:func:`lock_organisation`), so two concurrent uploads cannot both take the last bytes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from server.db.models import Booth, Organisation, Product, ProductAsset, UploadSession
from server.errors import ExpoError, PayloadTooLarge
from server.settings import LimitSettings


class QuotaExceeded(ExpoError):
    """Too many of something for one organisation (products, open uploads)."""

    status = 429
    code = "quota_exceeded"


def lock_organisation(db: Session, organisation_id: uuid.UUID) -> None:
    """Serialise quota decisions of one organisation until the transaction ends.

    A no-op UPDATE of the organisation's row: on PostgreSQL it takes the row lock (concurrent
    uploads of the same organisation wait, others do not); on SQLite any write takes the
    database's write lock. ``SELECT ... FOR UPDATE`` would do on PostgreSQL only.
    """
    db.execute(
        update(Organisation)
        .where(Organisation.id == organisation_id)
        .values(country=Organisation.country)
        .execution_options(synchronize_session=False)
    )


def organisation_usage(
    db: Session,
    organisation_id: uuid.UUID,
    now: datetime,
    *,
    exclude_session: uuid.UUID | None = None,
) -> int:
    """Bytes an organisation holds: its assets' sizes plus its open sessions' declared sizes."""
    stored = db.scalar(
        select(func.coalesce(func.sum(ProductAsset.size), 0))
        .join(Booth, Booth.id == ProductAsset.booth_id)
        .where(Booth.organisation_id == organisation_id)
    )
    pending = select(func.coalesce(func.sum(UploadSession.size), 0)).where(
        *_open_sessions(organisation_id, now)
    )
    if exclude_session is not None:
        pending = pending.where(UploadSession.id != exclude_session)
    return int(stored or 0) + int(db.scalar(pending) or 0)


def _open_sessions(organisation_id: uuid.UUID, now: datetime) -> tuple[Any, ...]:
    """Sessions that may still receive bytes: not finalized, not expired."""
    return (
        UploadSession.organisation_id == organisation_id,
        UploadSession.finalized_at.is_(None),
        UploadSession.expires_at > now,
    )


def check_bytes_quota(
    db: Session,
    organisation_id: uuid.UUID,
    adding: int,
    limits: LimitSettings,
    now: datetime,
    *,
    exclude_session: uuid.UUID | None = None,
) -> None:
    """Raise PayloadTooLarge ``quota_bytes`` when ``adding`` more bytes would pass the quota."""
    used = organisation_usage(db, organisation_id, now, exclude_session=exclude_session)
    if used + adding > limits.organisation_quota_bytes:
        raise PayloadTooLarge(
            f"the organisation stores {used} bytes; {adding} more would pass its quota of "
            f"{limits.organisation_quota_bytes}: delete files it no longer needs",
            code="quota_bytes",
        )


def check_product_quota(db: Session, organisation_id: uuid.UUID, limits: LimitSettings) -> None:
    """Lock the organisation and raise QuotaExceeded ``quota_products`` when it is at its cap."""
    lock_organisation(db, organisation_id)
    count = db.scalar(
        select(func.count(Product.id))
        .join(Booth, Booth.id == Product.booth_id)
        .where(Booth.organisation_id == organisation_id)
    )
    if (count or 0) >= limits.organisation_quota_products:
        raise QuotaExceeded(
            f"the organisation has {count} products, its quota", code="quota_products"
        )


def check_open_uploads(
    db: Session, organisation_id: uuid.UUID, limits: LimitSettings, now: datetime
) -> None:
    """Raise QuotaExceeded ``quota_uploads`` when the organisation has its cap of open sessions."""
    count = db.scalar(
        select(func.count(UploadSession.id)).where(*_open_sessions(organisation_id, now))
    )
    if (count or 0) >= limits.organisation_open_uploads:
        raise QuotaExceeded(
            f"the organisation has {count} uploads open, its quota: finish one first",
            code="quota_uploads",
        )
