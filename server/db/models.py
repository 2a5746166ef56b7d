"""The expo domain as SQLAlchemy 2 models.

One expo has halls; a hall has booth slots (template, size, position) laid out by the organiser;
an exhibitor organisation occupies a slot with a booth (branding) and shows products on it; each
product has assets (uploads, metadata only here). Guides host scheduled tours in a hall.
Ids are UUIDs: they do not leak counts and cannot overflow an integer column.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, uuid.UUID: Uuid}


class Role(enum.StrEnum):
    admin = "admin"
    exhibitor = "exhibitor"
    guide = "guide"
    visitor = "visitor"


class BoothTemplate(enum.StrEnum):
    shell = "shell"
    corner = "corner"
    island = "island"


class AssetKind(enum.StrEnum):
    model = "model"
    photo = "photo"
    logo = "logo"


class AssetStatus(enum.StrEnum):
    pending = "pending"
    processing = "processing"
    ready = "ready"
    failed = "failed"


class TourStatus(enum.StrEnum):
    scheduled = "scheduled"
    live = "live"
    ended = "ended"
    cancelled = "cancelled"


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored as plain strings: adding a value needs no ALTER TYPE on PostgreSQL.
    return Enum(cls, native_enum=False, length=32, validate_strings=True)


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Organisation(IdMixin, Base):
    """An exhibitor company."""

    __tablename__ = "organisations"
    name: Mapped[str] = mapped_column(String(200), unique=True)
    country: Mapped[str] = mapped_column(String(2), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    website: Mapped[str | None] = mapped_column(String(2000))


class User(IdMixin, Base):
    __tablename__ = "users"
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role))
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), index=True
    )
    is_active: Mapped[bool] = mapped_column(default=True)


class Expo(IdMixin, Base):
    __tablename__ = "expos"
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    starts_on: Mapped[date | None] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    halls: Mapped[list[Hall]] = relationship(
        back_populates="expo", cascade="all, delete-orphan", passive_deletes=True
    )


class Hall(IdMixin, Base):
    __tablename__ = "halls"
    __table_args__ = (UniqueConstraint("expo_id", "name"),)
    expo_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("expos.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    width: Mapped[float] = mapped_column(Float)
    depth: Mapped[float] = mapped_column(Float)
    expo: Mapped[Expo] = relationship(back_populates="halls")
    slots: Mapped[list[BoothSlot]] = relationship(
        back_populates="hall", cascade="all, delete-orphan", passive_deletes=True
    )


class BoothSlot(IdMixin, Base):
    """A place in a hall where a booth can stand: the organiser's floor plan."""

    __tablename__ = "booth_slots"
    __table_args__ = (UniqueConstraint("hall_id", "number"),)
    hall_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("halls.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(16))
    template: Mapped[BoothTemplate] = mapped_column(_enum(BoothTemplate))
    width: Mapped[float] = mapped_column(Float)
    depth: Mapped[float] = mapped_column(Float)
    x: Mapped[float] = mapped_column(Float)
    z: Mapped[float] = mapped_column(Float)
    rotation: Mapped[int] = mapped_column(Integer, default=0)
    hall: Mapped[Hall] = relationship(back_populates="slots")
    booth: Mapped[Booth | None] = relationship(back_populates="slot", passive_deletes=True)


class Booth(IdMixin, Base):
    __tablename__ = "booths"
    slot_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("booth_slots.id", ondelete="CASCADE"), unique=True
    )
    hall_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("halls.id", ondelete="CASCADE"), index=True
    )
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    fascia_name: Mapped[str] = mapped_column(String(80))
    tagline: Mapped[str] = mapped_column(String(200), default="")
    primary_color: Mapped[str] = mapped_column(String(7), default="#1f4e79")
    accent_color: Mapped[str] = mapped_column(String(7), default="#f2c14e")
    slot: Mapped[BoothSlot] = relationship(back_populates="booth")
    organisation: Mapped[Organisation] = relationship()
    products: Mapped[list[Product]] = relationship(
        back_populates="booth",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Product.created_at",
    )


class Product(IdMixin, Base):
    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("booth_id", "name"),)
    booth_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("booths.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # {"en": ..., "ru": ..., "zh": ...}; the visitor's language, falling back to `name`.
    names: Mapped[dict[str, Any]] = mapped_column(default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(40), index=True)
    country: Mapped[str] = mapped_column(String(2), index=True)
    price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    link: Mapped[str | None] = mapped_column(String(2000))
    booth: Mapped[Booth] = relationship(back_populates="products")
    assets: Mapped[list[ProductAsset]] = relationship(
        back_populates="product",
        cascade="all, delete-orphan",
        passive_deletes=True,
        foreign_keys="ProductAsset.product_id",
        order_by="ProductAsset.created_at",
    )


class ProductAsset(IdMixin, Base):
    """An uploaded file for a product, or a booth's logo (no product). The file name is display
    metadata only: storage keys are generated."""

    __tablename__ = "product_assets"
    product_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    booth_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("booths.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[AssetKind] = mapped_column(_enum(AssetKind))
    status: Mapped[AssetStatus] = mapped_column(_enum(AssetStatus), default=AssetStatus.pending)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    blob_key: Mapped[str | None] = mapped_column(String(512))
    # Why processing failed (a pipeline or sandbox code), shown to the exhibitor in plain words.
    error_code: Mapped[str | None] = mapped_column(String(64))
    product: Mapped[Product | None] = relationship(
        back_populates="assets", foreign_keys=[product_id]
    )


class Guide(IdMixin, Base):
    """A user appointed to host tours, with what visitors see of them."""

    __tablename__ = "guides"
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    display_name: Mapped[str] = mapped_column(String(100))
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    bio: Mapped[str] = mapped_column(Text, default="")
    user: Mapped[User] = relationship()


class Tour(IdMixin, Base):
    __tablename__ = "tours"
    hall_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("halls.id", ondelete="CASCADE"), index=True
    )
    guide_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("guides.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8))
    starts_at: Mapped[datetime] = mapped_column(index=True)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)
    # Ordered booth ids the guide plans to visit.
    route: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[TourStatus] = mapped_column(_enum(TourStatus), default=TourStatus.scheduled)
    guide: Mapped[Guide] = relationship()


class PublishedManifest(IdMixin, Base):
    """One published version of a hall's manifest, kept as history (``created_at``: published).

    The manifest itself is an immutable blob at ``key``; this row remembers what it needs: the
    booth records the next build starts from, and every blob the version names, so that a
    janitor can delete the objects of versions superseded longer ago than the grace period
    (``server.scenes.MANIFEST_GRACE``) while keeping those a newer version still names.
    """

    __tablename__ = "published_manifests"
    __table_args__ = (UniqueConstraint("hall_id", "version"),)
    hall_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("halls.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    # The manifest's key and every GLB key it names.
    keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    # scenes.manifest.BoothRecord.to_json() by booth id: the ``previous`` of the next build.
    records: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # When a newer version replaced this one as the hall's manifest; None while current.
    superseded_at: Mapped[datetime | None] = mapped_column(index=True)


class HallManifest(Base):
    """The pointer to a hall's current manifest; a publish flips it last, in one transaction."""

    __tablename__ = "hall_manifests"
    hall_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("halls.id", ondelete="CASCADE"), primary_key=True
    )
    # No cascade: a janitor must never delete the version a hall points at.
    manifest_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("published_manifests.id"))
    version: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(512))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    manifest: Mapped[PublishedManifest] = relationship()


class JobState(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class Job(IdMixin, Base):
    """Processing of one uploaded file, by content: every asset with this SHA-256 shares it.

    The same bytes uploaded twice (by anyone) are processed once: the second upload finds the
    job, or the outputs under ``assets/<sha256>/``. ``heartbeat_at`` is refreshed while a worker
    runs the job; a running job whose heartbeat is older than the reaper's limit is queued again
    (its worker died), so no job stays running forever.
    """

    __tablename__ = "jobs"
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[JobState] = mapped_column(_enum(JobState), default=JobState.queued, index=True)
    step: Mapped[str] = mapped_column(String(40), default="queued")
    percent: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(500))
    worker: Mapped[str | None] = mapped_column(String(120))
    heartbeat_at: Mapped[datetime | None] = mapped_column(index=True)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class UploadMethod(enum.StrEnum):
    presigned = "presigned"  # the browser POSTs to S3 with a presigned policy, then finalizes
    resumable = "resumable"  # the browser PUTs chunks to the API (local blob store), then finalizes


class UploadSession(IdMixin, Base):
    """A large upload in progress: the key it goes to, what was declared, when it expires.

    Finalizing checks the stored bytes against the declaration (size, magic bytes, SHA-256) and
    turns the session into a ProductAsset (``asset_id``); finalizing again returns that asset.
    Sessions never finalized are removed by the janitor after they expire, with their bytes.
    """

    __tablename__ = "upload_sessions"
    booth_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("booths.id", ondelete="CASCADE"), index=True
    )
    product_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[AssetKind] = mapped_column(_enum(AssetKind))
    method: Mapped[UploadMethod] = mapped_column(_enum(UploadMethod))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(512), unique=True)
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    finalized_at: Mapped[datetime | None] = mapped_column()
    asset_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("product_assets.id", ondelete="SET NULL")
    )


class VisitKind(enum.StrEnum):
    enter = "enter"  # a visitor stepped into a booth
    leave = "leave"  # ... and out again, after dwell_seconds
    hotspot = "hotspot"  # opened a product's hotspot (product_id)
    tour = "tour"  # a guided tour stopped at the booth for dwell_seconds (tour_id)


class VisitEvent(IdMixin, Base):
    """One thing a visitor did at a booth, recorded by the tour server for booth analytics.

    ``product_id`` and ``tour_id`` have no foreign key: a product or tour deleted later keeps
    its history. ``subject`` is a user id or a guest's ``guest:<uuid>``.
    """

    __tablename__ = "visit_events"
    hall_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("halls.id", ondelete="CASCADE"), index=True
    )
    booth_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("booths.id", ondelete="CASCADE"), index=True
    )
    product_id: Mapped[uuid.UUID | None] = mapped_column()
    tour_id: Mapped[uuid.UUID | None] = mapped_column()
    subject: Mapped[str] = mapped_column(String(64))
    guest: Mapped[bool] = mapped_column(default=False)
    kind: Mapped[VisitKind] = mapped_column(_enum(VisitKind))
    at: Mapped[datetime] = mapped_column(index=True)
    # Seconds spent: set on leave (in the booth) and tour (the stop).
    dwell_seconds: Mapped[float | None] = mapped_column(Float)
