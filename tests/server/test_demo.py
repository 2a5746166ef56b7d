"""The demo expo: seeded once per module into a migrated SQLite copy with a local blob store."""

from __future__ import annotations

import hashlib
import io
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from scenes.layout import MARGIN
from scenes.templates import NOMINAL_SIZES
from server.api.routes.booths import footprint
from server.auth import verify_password
from server.db.models import (
    AssetKind,
    AssetStatus,
    Base,
    Booth,
    BoothSlot,
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
from server.db.session import build_engine, session_factory, transaction
from server.demo import seed_demo
from server.settings import DatabaseSettings
from server.storage import IMMUTABLE, LocalBlobStore
from tests.databases import sqlite_copy

PASSWORD = "demo-password-for-tests"
NOW = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
CATEGORIES = {"honey", "wine", "tea", "spices", "carpets"}


@dataclass(frozen=True)
class Demo:
    engine: Engine
    blobs: LocalBlobStore
    expo_id: uuid.UUID


@pytest.fixture(scope="module")
def demo(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """Seeding draws ~50 images and hashes ~16 passwords (~6 s): it is done once per module."""
    directory = tmp_path_factory.mktemp("demo")
    engine = build_engine(DatabaseSettings(url=sqlite_copy(sqlite_template, directory)))
    blobs = LocalBlobStore(directory / "blobs")
    with transaction(session_factory(engine)) as session:
        expo_id = seed_demo(session, blobs, PASSWORD, now=NOW).id
    yield Demo(engine, blobs, expo_id)
    engine.dispose()


@pytest.fixture
def session(demo: Demo) -> Iterator[Session]:
    with Session(demo.engine) as session:
        yield session


def _hall(session: Session, demo: Demo) -> Hall:
    return session.scalars(select(Hall).where(Hall.expo_id == demo.expo_id)).one()


def _booths(session: Session) -> list[Booth]:
    return list(session.scalars(select(Booth).order_by(Booth.created_at)))


def _png(blobs: LocalBlobStore, asset: ProductAsset) -> tuple[tuple[int, int], str]:
    """Check the asset's blob against its row; returns the decoded image's size and mode."""
    assert asset.status is AssetStatus.ready
    assert asset.blob_key is not None
    info = blobs.head(asset.blob_key)
    assert info.content_type == asset.content_type == "image/png"
    assert info.cache_control == IMMUTABLE
    data = blobs.get(asset.blob_key)
    assert len(data) == asset.size == info.size
    assert hashlib.sha256(data).hexdigest() == asset.sha256
    with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
        image.load()  # decodes every pixel: a truncated or corrupt file raises here
        return image.size, image.mode


def _table_counts(session: Session) -> dict[str, int]:
    return {
        table.name: session.scalar(select(func.count()).select_from(table)) or 0
        for table in Base.metadata.sorted_tables
    }


def test_the_demo_has_one_expo_one_hall_and_at_least_12_booths(
    session: Session, demo: Demo
) -> None:
    expo = session.get_one(Expo, demo.expo_id)
    assert expo.slug == "sco-special-products-2026"
    assert expo.starts_on is not None
    assert expo.ends_on is not None
    assert expo.starts_on <= expo.ends_on
    hall = _hall(session, demo)
    booths = _booths(session)
    assert len(booths) >= 12
    assert {b.hall_id for b in booths} == {hall.id}
    assert len({b.organisation_id for b in booths}) == len(booths)


def test_the_booths_come_from_at_least_12_countries(session: Session) -> None:
    countries = {booth.organisation.country for booth in _booths(session)}
    assert len(countries) >= 12
    assert all(len(c) == 2 and c.isupper() for c in countries)


def test_the_products_span_the_expected_categories(session: Session) -> None:
    categories = set(session.scalars(select(Product.category).distinct()))
    assert len(categories) >= 5
    assert categories >= CATEGORIES
    assert all(booth.products for booth in _booths(session)), "every booth shows products"


def test_every_product_is_named_in_english_russian_and_chinese(session: Session) -> None:
    products = list(session.scalars(select(Product)))
    assert products
    for product in products:
        assert set(product.names) >= {"en", "ru", "zh"}, product.name
        assert product.names["en"] == product.name
        assert all(isinstance(product.names[lang], str) for lang in ("ru", "zh"))
        assert product.names["ru"].strip()
        assert product.names["zh"].strip()
        assert any("\u0400" <= ch <= "\u04ff" for ch in product.names["ru"]), product.names
        assert any("\u4e00" <= ch <= "\u9fff" for ch in product.names["zh"]), product.names
        assert product.country == product.booth.organisation.country


def test_every_booth_has_one_ready_png_logo(session: Session, demo: Demo) -> None:
    digests = set()
    for booth in _booths(session):
        logos = list(
            session.scalars(
                select(ProductAsset).where(
                    ProductAsset.booth_id == booth.id, ProductAsset.kind == AssetKind.logo
                )
            )
        )
        assert len(logos) == 1, booth.fascia_name
        assert logos[0].product_id is None
        assert _png(demo.blobs, logos[0]) == ((256, 256), "RGBA")
        digests.add(logos[0].sha256)
    assert len(digests) == len(_booths(session)), "each exhibitor has its own logo"


def test_every_product_has_one_ready_png_photo(session: Session, demo: Demo) -> None:
    products = list(session.scalars(select(Product)))
    digests = set()
    for product in products:
        photos = [a for a in product.assets if a.kind is AssetKind.photo]
        assert len(photos) == 1, product.name
        assert photos[0].booth_id == product.booth_id
        assert _png(demo.blobs, photos[0]) == ((640, 480), "RGB")
        digests.add(photos[0].sha256)
    assert len(digests) == len(products), "no two products share a picture"
    assets = session.scalar(select(func.count()).select_from(ProductAsset))
    assert assets == len(products) + len(_booths(session)), "only logos and photos are seeded"


def test_slot_footprints_lie_inside_the_hall_and_do_not_overlap(
    session: Session, demo: Demo
) -> None:
    hall = _hall(session, demo)
    slots = list(session.scalars(select(BoothSlot).where(BoothSlot.hall_id == hall.id)))
    assert len(slots) == len(_booths(session))
    assert len({s.number for s in slots}) == len(slots)
    rects = []
    for slot in slots:
        assert (slot.width, slot.depth) == NOMINAL_SIZES[slot.template.value]
        rect = footprint(slot.x, slot.z, slot.width, slot.depth, slot.rotation)
        assert -hall.width / 2 + MARGIN <= rect[0], slot.number
        assert rect[2] <= hall.width / 2 - MARGIN, slot.number
        assert -hall.depth / 2 + MARGIN <= rect[1], slot.number
        assert rect[3] <= hall.depth / 2 - MARGIN, slot.number
        rects.append((slot.number, rect))
    for (a, ra), (b, rb) in itertools.combinations(rects, 2):
        overlap_x = min(ra[2], rb[2]) - max(ra[0], rb[0])
        overlap_z = min(ra[3], rb[3]) - max(ra[1], rb[1])
        assert overlap_x <= 1e-6 or overlap_z <= 1e-6, f"slots {a} and {b} overlap"


def test_seeding_twice_returns_the_same_expo_and_changes_nothing(demo: Demo) -> None:
    blobs_before = sorted((b.key, b.etag) for b in demo.blobs.list())
    with Session(demo.engine) as session:
        counts_before = _table_counts(session)
    with transaction(session_factory(demo.engine)) as session:
        again = seed_demo(session, demo.blobs, "another-password", now=NOW + timedelta(days=3))
        assert again.id == demo.expo_id
    with Session(demo.engine) as session:
        assert _table_counts(session) == counts_before
    assert sorted((b.key, b.etag) for b in demo.blobs.list()) == blobs_before
    assert counts_before["expos"] == 1


def test_the_demo_users_have_the_given_password(session: Session) -> None:
    users = {u.email: u for u in session.scalars(select(User))}
    admin = users["admin@pavilion.demo"]
    assert admin.role is Role.admin
    guide = session.scalars(select(Guide)).one()
    assert guide.user.role is Role.guide
    exhibitors = [u for u in users.values() if u.role is Role.exhibitor]
    assert len(exhibitors) == len(_booths(session))
    organisations = {b.organisation_id for b in _booths(session)}
    assert {u.organisation_id for u in exhibitors} == organisations
    # argon2 takes ~0.2 s a check: the admin, the guide and the first and last exhibitors.
    for user in (admin, guide.user, exhibitors[0], exhibitors[-1]):
        assert verify_password(user.password_hash, PASSWORD), user.email
    assert not verify_password(admin.password_hash, "pavilion-demo")
    assert all(u.password_hash.startswith("$argon2") for u in users.values())


def test_the_tours_visit_booths_of_their_hall(session: Session, demo: Demo) -> None:
    hall = _hall(session, demo)
    booth_ids = {str(b.id) for b in _booths(session)}
    guide = session.scalars(select(Guide)).one()
    tours = list(session.scalars(select(Tour).order_by(Tour.starts_at)))
    assert [t.language for t in tours] == ["en", "ru", "zh"]
    for tour in tours:
        assert tour.hall_id == hall.id
        assert tour.guide_id == guide.id
        assert tour.language in guide.languages
        assert tour.route
        assert len(set(tour.route)) == len(tour.route)
        assert set(tour.route) <= booth_ids, tour.title
        assert tour.starts_at > NOW
    assert tours[0].starts_at == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_each_tour_visits_booths_that_sell_its_theme(session: Session) -> None:
    themes = {"en": {"honey", "tea"}, "ru": {"wine"}, "zh": {"carpets", "textiles"}}
    for tour in session.scalars(select(Tour)):
        for booth_id in tour.route:
            booth = session.get_one(Booth, uuid.UUID(booth_id))
            categories = {p.category for p in booth.products}
            assert categories & themes[tour.language], (tour.title, booth.fascia_name)


def test_the_seeded_organisations_are_the_booths_organisations(session: Session) -> None:
    organisations = set(session.scalars(select(Organisation.id)))
    assert organisations == {b.organisation_id for b in _booths(session)}
