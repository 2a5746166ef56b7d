"""The demo expo behind ``make run``: an SCO special-products pavilion, seeded idempotently.

The definition lives in ``assets/demo/expo.json``; the booth layout and every image (product
photos, logos) are generated here by our own code, so the demo ships no third-party files.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw
from sqlalchemy import select
from sqlalchemy.orm import Session

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
from server.storage.base import IMMUTABLE, BlobStore

logger = logging.getLogger(__name__)

DEFINITION = Path(__file__).resolve().parent.parent / "assets" / "demo" / "expo.json"
SIZES = {
    BoothTemplate.shell: (3.0, 3.0),
    BoothTemplate.corner: (6.0, 3.0),
    BoothTemplate.island: (6.0, 6.0),
}
AISLE = 4.0  # metres between booth rows
MARGIN = 4.0  # metres between the hall walls and the booths
ROW_LENGTH = 27.0  # metres; longer rows make visitors walk too far round


@dataclass(frozen=True, slots=True)
class SlotPlan:
    number: str
    template: BoothTemplate
    width: float
    depth: float
    x: float
    z: float


def plan_slots(
    templates: list[BoothTemplate], hall_width: float, hall_depth: float
) -> list[SlotPlan]:
    """Pack booths into rows from the back wall towards the entrance, aisles between rows."""
    usable = min(hall_width - 2 * MARGIN, ROW_LENGTH)
    rows: list[list[BoothTemplate]] = [[]]
    used = 0.0
    for template in templates:
        width = SIZES[template][0]
        if rows[-1] and used + width > usable:
            rows.append([])
            used = 0.0
        rows[-1].append(template)
        used += width
    # A row never grows past ``usable``, but one booth wider than that still makes a row.
    if any(sum(SIZES[t][0] for t in row) > hall_width - 2 * MARGIN for row in rows):
        raise ValueError("the demo booths do not fit in the hall")
    plans: list[SlotPlan] = []
    z_cursor = -hall_depth / 2 + MARGIN
    for row_index, row in enumerate(rows):
        row_depth = max(SIZES[t][1] for t in row)
        x_cursor = -sum(SIZES[t][0] for t in row) / 2  # centre each row
        for index, template in enumerate(row):
            width, depth = SIZES[template]
            plans.append(
                SlotPlan(
                    number=f"{chr(ord('A') + row_index)}{index + 1}",
                    template=template,
                    width=width,
                    depth=depth,
                    x=x_cursor + width / 2,
                    z=z_cursor + depth / 2,
                )
            )
            x_cursor += width
        z_cursor += row_depth + AISLE
    if z_cursor - AISLE > hall_depth / 2 - MARGIN:
        raise ValueError("the demo booths do not fit in the hall")
    return plans


def _hex(color: str) -> tuple[int, int, int]:
    return (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16))


Rgb = tuple[int, int, int]
LIGHT: Rgb = (250, 246, 238)


def _draw_jar(draw: ImageDraw.ImageDraw, cx: int, ink: Rgb, accent: Rgb) -> None:
    draw.rounded_rectangle([cx - 90, 170, cx + 90, 410], 30, fill=(226, 150, 20))
    draw.rectangle([cx - 70, 140, cx + 70, 175], fill=ink)
    draw.rounded_rectangle([cx - 60, 250, cx + 60, 320], 10, fill=LIGHT)


def _draw_bottle(draw: ImageDraw.ImageDraw, cx: int, ink: Rgb, accent: Rgb) -> None:
    draw.rounded_rectangle([cx - 45, 200, cx + 45, 410], 20, fill=ink)
    draw.rectangle([cx - 14, 90, cx + 14, 210], fill=ink)
    draw.rectangle([cx - 40, 280, cx + 40, 350], fill=LIGHT)


def _draw_cup(draw: ImageDraw.ImageDraw, cx: int, ink: Rgb, accent: Rgb) -> None:
    draw.pieslice([cx - 110, 220, cx + 110, 420], 0, 180, fill=LIGHT)
    draw.arc([cx + 80, 250, cx + 150, 330], 270, 90, fill=LIGHT, width=12)
    draw.ellipse([cx - 110, 300, cx + 110, 340], fill=(120, 60, 20))


def _draw_carpet(draw: ImageDraw.ImageDraw, cx: int, ink: Rgb, accent: Rgb) -> None:
    for i in range(8):
        box = [cx - 150 + i * 12, 150 + i * 12, cx + 150 - i * 12, 410 - i * 12]
        draw.rectangle(box, outline=ink if i % 2 else accent, width=6)


def _draw_cloth(draw: ImageDraw.ImageDraw, cx: int, ink: Rgb, accent: Rgb) -> None:
    for i in range(5):  # a stack of folded cloth
        top = 230 + i * 34
        draw.rounded_rectangle(
            [cx - 130, top, cx + 130, top + 30],
            8,
            fill=accent if i % 2 else LIGHT,
            outline=ink,
            width=3,
        )


def _draw_heap(draw: ImageDraw.ImageDraw, cx: int, ink: Rgb, accent: Rgb) -> None:
    draw.pieslice([cx - 120, 230, cx + 120, 470], 180, 360, fill=accent, outline=ink, width=4)
    draw.pieslice([cx - 150, 300, cx + 150, 440], 0, 180, fill=LIGHT, outline=ink, width=6)


def _draw_parcel(draw: ImageDraw.ImageDraw, cx: int, ink: Rgb, accent: Rgb) -> None:
    draw.rounded_rectangle([cx - 110, 200, cx + 110, 410], 12, fill=LIGHT, outline=ink, width=8)
    draw.rectangle([cx - 12, 200, cx + 12, 410], fill=accent)


_ITEMS = {
    "honey": _draw_jar,
    "wine": _draw_bottle,
    "tea": _draw_cup,
    "carpets": _draw_carpet,
    "textiles": _draw_cloth,
    "spices": _draw_heap,
    "nuts": _draw_heap,
    "dried-fruit": _draw_heap,
    "grains": _draw_heap,
}


def product_photo(category: str, primary: str, accent: str, seed: int) -> bytes:
    """A 640x480 studio-style picture of a product of ``category``, drawn with Pillow (PNG)."""
    width, height = 640, 480
    top, bottom = _hex(accent), _hex(primary)
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / (height - 1)
        draw.line(
            [(0, y), (width, y)],
            fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
        )
    draw.ellipse([140, 380, 500, 440], fill=tuple(c // 2 for c in bottom))  # shadow on the table
    cx = width // 2 + (seed % 5 - 2) * 12
    draw_item = _ITEMS.get(category, _draw_parcel)
    draw_item(draw, cx, _hex(primary), _hex(accent))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def logo(initials: str, primary: str, accent: str) -> bytes:
    """A round emblem in the booth's colours (PNG with transparency); initials as bars, no font."""
    size = 256
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse([8, 8, size - 8, size - 8], fill=_hex(primary), outline=_hex(accent), width=14)
    code = sum(ord(c) for c in initials)
    for i in range(6):  # a sunburst whose rays depend on the name: distinct per exhibitor
        angle = (code * 37 + i * 60) % 360
        x = size / 2 + 70 * math.cos(math.radians(angle))
        y = size / 2 + 70 * math.sin(math.radians(angle))
        draw.line([(size / 2, size / 2), (x, y)], fill=_hex(accent), width=16)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _store(blobs: BlobStore, data: bytes) -> tuple[str, str]:
    digest = hashlib.sha256(data).hexdigest()
    key = f"demo/{digest[:2]}/{digest}.png"
    blobs.put(key, data, content_type="image/png", cache_control=IMMUTABLE)
    return key, digest


def seed_demo(
    session: Session, blobs: BlobStore, password: str, *, now: datetime | None = None
) -> Expo:
    """Create the demo expo unless it exists; returns it either way."""
    spec: dict[str, Any] = json.loads(DEFINITION.read_text(encoding="utf-8"))
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
    plans = plan_slots([BoothTemplate(e["template"]) for e in exhibitors], hall.width, hall.depth)
    booths = [
        _seed_booth(session, blobs, hall, plan, e, password_hash)
        for plan, e in zip(plans, exhibitors, strict=True)
    ]
    _seed_people(session, spec, hall, booths, password_hash, now)
    session.flush()
    logger.info("seeded the demo expo %s with %d booths", expo.slug, len(booths))
    return expo


def _seed_booth(
    session: Session,
    blobs: BlobStore,
    hall: Hall,
    plan: SlotPlan,
    spec: dict[str, Any],
    password_hash: str,
) -> Booth:
    organisation = Organisation(
        name=spec["org"], country=spec["country"], description=spec["tagline"]
    )
    slot = BoothSlot(
        hall_id=hall.id,
        number=plan.number,
        template=plan.template,
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
