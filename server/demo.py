"""The demo expo behind ``make run``: an SCO special-products pavilion, seeded idempotently.

The definition lives in ``assets/demo/expo.json``; the booth layout and every image (product
photos, logos) are generated here by our own code, so the demo ships no third-party files.

Two steps, both idempotent: :func:`seed_demo` writes the expo to the database with its photos
and logos; :func:`publish_demo` runs the pipeline on the product photos (as the job system does
for uploads, storing the outputs under ``assets/<sha256>/``) and publishes the demo hall, so its
manifest is served right after ``make run``.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.parallel import map_threads
from pipeline.run import ConvertOptions, convert
from scenes.demo import demo_slots, load_definition, logo, product_photo
from scenes.layout import SlotSpec
from server.auth import hash_password
from server.db.models import (
    AssetKind,
    AssetStatus,
    Booth,
    BoothSlot,
    BoothTemplate,
    Expo,
    Guide,
    Hall,
    Organisation,
    Product,
    ProductAsset,
    Role,
    Tour,
    User,
)
from server.scenes import PublishResult, has_outputs, publish_hall, store_outputs
from server.storage.base import IMMUTABLE, BlobStore

logger = logging.getLogger(__name__)


def _store(blobs: BlobStore, data: bytes) -> tuple[str, str]:
    digest = hashlib.sha256(data).hexdigest()
    key = f"demo/{digest[:2]}/{digest}.png"
    blobs.put(key, data, content_type="image/png", cache_control=IMMUTABLE)
    return key, digest


def seed_demo(
    session: Session, blobs: BlobStore, password: str, *, now: datetime | None = None
) -> Expo:
    """Create the demo expo unless it exists; returns it either way."""
    spec = load_definition()
    existing = session.scalar(select(Expo).where(Expo.slug == spec["expo"]["slug"]))
    if existing is not None:
        return existing
    now = now or datetime.now(UTC)
    # One argon2 hash (~0.2 s) shared by every demo user: they all have the same password.
    password_hash = hash_password(password)
    expo_spec = spec["expo"]
    expo = Expo(
        slug=expo_spec["slug"],
        name=expo_spec["name"],
        description=expo_spec["description"],
        starts_on=date.fromisoformat(expo_spec["starts_on"]),
        ends_on=date.fromisoformat(expo_spec["ends_on"]),
    )
    hall = Hall(name=spec["hall"]["name"], width=spec["hall"]["width"], depth=spec["hall"]["depth"])
    expo.halls.append(hall)
    session.add(expo)
    session.flush()
    exhibitors = spec["exhibitors"]
    # The same floor plan as `python -m scenes build-demo` (scenes.demo.demo_slots).
    plans = demo_slots(spec)
    booths = [
        _seed_booth(session, blobs, hall, plan, e, password_hash)
        for plan, e in zip(plans, exhibitors, strict=True)
    ]
    _seed_people(session, spec, hall, booths, password_hash, now)
    session.flush()
    logger.info("seeded the demo expo %s with %d booths", expo.slug, len(booths))
    return expo


def publish_demo(session: Session, blobs: BlobStore) -> list[PublishResult]:
    """Process the demo's product photos and publish its halls; nothing when it is not seeded.

    Photos whose outputs are stored already are not processed again, and a hall whose inputs
    did not change keeps its manifest version, so running this twice changes nothing.

    Raises:
        PublishError, StorageError: see :func:`server.scenes.publish_hall`.
    """
    slug = load_definition()["expo"]["slug"]
    expo = session.scalar(select(Expo).where(Expo.slug == slug))
    if expo is None:
        return []
    hall_ids = [hall.id for hall in expo.halls]
    processed = process_uploads(session, blobs, hall_ids)
    logger.info("processed %d demo uploads", processed)
    return [publish_hall(session, blobs, hall_id) for hall_id in hall_ids]


def process_uploads(session: Session, blobs: BlobStore, hall_ids: list[uuid.UUID]) -> int:
    """Run the pipeline on the ready product uploads of ``hall_ids`` that have no outputs yet.

    Outputs go to ``assets/<sha256>/<path>`` (:func:`server.scenes.store_outputs`). The job
    system does this for real uploads (issue 5); the demo seed does it here, on threads.

    Returns:
        The number of uploads processed.
    """
    rows = session.execute(
        select(ProductAsset.sha256, ProductAsset.blob_key)
        .join(Booth, ProductAsset.booth_id == Booth.id)
        .where(
            Booth.hall_id.in_(hall_ids),
            ProductAsset.kind.in_([AssetKind.photo, AssetKind.model]),
            ProductAsset.status == AssetStatus.ready,
            ProductAsset.sha256.is_not(None),
            ProductAsset.blob_key.is_not(None),
        )
    )
    todo = sorted({(sha, key) for sha, key in rows if sha and key})
    todo = [(sha, key) for sha, key in todo if not has_outputs(blobs, sha)]

    def process(item: tuple[str, str]) -> None:
        sha, key = item
        result = convert(blobs.get(key), ConvertOptions(validate=False))
        store_outputs(blobs, sha, result.files)

    map_threads(process, todo)
    return len(todo)


def _seed_booth(
    session: Session,
    blobs: BlobStore,
    hall: Hall,
    plan: SlotSpec,
    spec: dict[str, Any],
    password_hash: str,
) -> Booth:
    organisation = Organisation(
        name=spec["org"], country=spec["country"], description=spec["tagline"]
    )
    slot = BoothSlot(
        hall_id=hall.id,
        number=plan.number,
        template=BoothTemplate(spec["template"]),
        width=plan.width,
        depth=plan.depth,
        x=plan.x,
        z=plan.z,
        rotation=0,
    )
    session.add_all([organisation, slot])
    session.flush()
    primary, accent = spec["colors"]
    booth = Booth(
        hall_id=hall.id,
        slot_id=slot.id,
        organisation_id=organisation.id,
        fascia_name=spec["fascia"],
        tagline=spec["tagline"],
        primary_color=primary,
        accent_color=accent,
    )
    session.add(booth)
    session.flush()
    initials = "".join(word[0] for word in spec["org"].split()[:2])
    key, digest = _store(blobs, logo(initials, primary, accent))
    session.add(_ready_asset(booth, None, AssetKind.logo, "logo.png", key, digest, blobs))
    for index, item in enumerate(spec["products"]):
        product = Product(
            booth_id=booth.id,
            name=item["name"],
            names={"en": item["name"], "ru": item["ru"], "zh": item["zh"]},
            description=item["description"],
            category=item["category"],
            country=spec["country"],
            price=Decimal(item["price"]),
            currency=item["currency"],
        )
        session.add(product)
        session.flush()
        key, digest = _store(blobs, product_photo(item["category"], primary, accent, index))
        session.add(_ready_asset(booth, product, AssetKind.photo, "photo.png", key, digest, blobs))
    local = spec["org"].lower().split()[0].replace("'", "")
    session.add(
        User(
            email=f"{local}@exhibitor.demo",
            display_name=spec["org"],
            password_hash=password_hash,
            role=Role.exhibitor,
            organisation_id=organisation.id,
        )
    )
    return booth


def _ready_asset(
    booth: Booth,
    product: Product | None,
    kind: AssetKind,
    name: str,
    key: str,
    digest: str,
    blobs: BlobStore,
) -> ProductAsset:
    return ProductAsset(
        booth_id=booth.id,
        product_id=product.id if product else None,
        kind=kind,
        status=AssetStatus.ready,
        filename=name,
        content_type="image/png",
        size=blobs.head(key).size,
        sha256=digest,
        blob_key=key,
    )


def _seed_people(
    session: Session,
    spec: dict[str, Any],
    hall: Hall,
    booths: list[Booth],
    password_hash: str,
    now: datetime,
) -> None:
    session.add(
        User(
            email="admin@pavilion.demo",
            display_name="Organiser",
            password_hash=password_hash,
            role=Role.admin,
        )
    )
    guide_spec = spec["guide"]
    user = User(
        email=guide_spec["email"],
        display_name=guide_spec["display_name"],
        password_hash=password_hash,
        role=Role.guide,
    )
    session.add(user)
    session.flush()
    guide = Guide(
        user_id=user.id,
        display_name=guide_spec["display_name"],
        languages=guide_spec["languages"],
        bio=guide_spec["bio"],
    )
    session.add(guide)
    session.flush()
    start = (now + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    tours = [
        ("Honey and tea tasting walk", "en", [0, 2, 5, 7]),
        ("Прогулка по винам и коньякам", "ru", [1, 12]),
        ("丝绸之路织物之旅", "zh", [4, 7, 11, 13]),
    ]
    for day, (title, language, stops) in enumerate(tours):
        session.add(
            Tour(
                hall_id=hall.id,
                guide_id=guide.id,
                title=title,
                language=language,
                starts_at=start + timedelta(days=day),
                duration_minutes=30,
                capacity=50,
                route=[str(booths[i].id) for i in stops],
            )
        )
