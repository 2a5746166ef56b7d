"""Booth slots (the organiser's floor plan) and the booths exhibitors put on them.

Hall coordinates are metres with the origin at the hall's centre, x to the right and z towards
the entrance; a slot's (x, z) is the centre of its footprint, rotated by a right angle.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, BackgroundTasks, Request, status
from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import Session, selectinload

from server.api.deps import (
    AdminUser,
    BlobsDep,
    CategoryFilter,
    CountryFilter,
    CurrentUser,
    PageDep,
    SearchFilter,
    SessionDep,
    apply_changes,
    check_booth_owner,
    escape_like,
    get_or_404,
)
from server.api.schemas import (
    BoothCreate,
    BoothPublic,
    BoothUpdate,
    OrganisationPublic,
    Page,
    SlotCreate,
    SlotPublic,
    SlotUpdate,
)
from server.db.models import (
    AssetKind,
    AssetStatus,
    Booth,
    BoothSlot,
    Expo,
    Hall,
    HallManifest,
    Organisation,
    Product,
    ProductAsset,
)
from server.errors import Conflict, Invalid
from server.processing import republish_booth
from server.storage.base import BlobStore

router = APIRouter(tags=["booths"])

Rect = tuple[float, float, float, float]


def footprint(x: float, z: float, width: float, depth: float, rotation: int) -> Rect:
    """(min_x, min_z, max_x, max_z) of a slot."""
    w, d = (depth, width) if rotation in (90, 270) else (width, depth)
    return (x - w / 2, z - d / 2, x + w / 2, z + d / 2)


def _overlap(a: Rect, b: Rect) -> bool:
    eps = 1e-6  # slots may share an edge
    return a[0] < b[2] - eps and b[0] < a[2] - eps and a[1] < b[3] - eps and b[1] < a[3] - eps


def check_slot_placement(session: Session, hall: Hall, slot: BoothSlot) -> None:
    """A slot lies inside its hall and overlaps no other slot.

    Raises:
        Invalid: ``slot_outside_hall``; Conflict: ``slot_overlaps``.
    """
    rect = footprint(slot.x, slot.z, slot.width, slot.depth, slot.rotation)
    half_w, half_d = hall.width / 2, hall.depth / 2
    if rect[0] < -half_w or rect[2] > half_w or rect[1] < -half_d or rect[3] > half_d:
        raise Invalid("the slot does not fit inside the hall", code="slot_outside_hall")
    others = session.scalars(
        select(BoothSlot).where(BoothSlot.hall_id == hall.id, BoothSlot.id != slot.id)
    )
    for other in others:
        if _overlap(rect, footprint(other.x, other.z, other.width, other.depth, other.rotation)):
            raise Conflict(f"the slot overlaps slot {other.number}", code="slot_overlaps")


def _slot_public(slot: BoothSlot) -> SlotPublic:
    public = SlotPublic.model_validate(slot)
    public.booth_id = slot.booth.id if slot.booth else None
    return public


@router.get("/halls/{hall_id}/slots", response_model=Page[SlotPublic])
def list_slots(hall_id: uuid.UUID, session: SessionDep, page: PageDep) -> dict[str, object]:
    """The floor plan of a hall."""
    get_or_404(session, Hall, hall_id, "hall")
    stmt = (
        select(BoothSlot)
        .where(BoothSlot.hall_id == hall_id)
        .options(selectinload(BoothSlot.booth))
        .order_by(BoothSlot.number)
    )
    result = page.page(session, stmt)
    result["items"] = [_slot_public(slot) for slot in result["items"]]
    return result


@router.post(
    "/halls/{hall_id}/slots", response_model=SlotPublic, status_code=status.HTTP_201_CREATED
)
def create_slot(
    hall_id: uuid.UUID, body: SlotCreate, _admin: AdminUser, session: SessionDep
) -> SlotPublic:
    """Add a booth slot to a hall's floor plan (admins only)."""
    hall = get_or_404(session, Hall, hall_id, "hall")
    taken = select(BoothSlot.id).where(
        BoothSlot.hall_id == hall_id, BoothSlot.number == body.number
    )
    if session.scalar(taken) is not None:
        raise Conflict("this hall has a slot with this number", code="slot_exists")
    slot = BoothSlot(hall_id=hall_id, **body.model_dump())
    check_slot_placement(session, hall, slot)
    session.add(slot)
    session.flush()
    return _slot_public(slot)


@router.patch("/slots/{slot_id}", response_model=SlotPublic)
def update_slot(
    slot_id: uuid.UUID, body: SlotUpdate, _admin: AdminUser, session: SessionDep
) -> SlotPublic:
    """Move, resize or re-template a slot (admins only)."""
    slot = get_or_404(session, BoothSlot, slot_id, "slot")
    with session.no_autoflush:
        apply_changes(slot, body)
        check_slot_placement(session, slot.hall, slot)
    session.flush()
    return _slot_public(slot)


@router.delete("/slots/{slot_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_slot(slot_id: uuid.UUID, _admin: AdminUser, session: SessionDep) -> None:
    """Remove a slot and the booth on it (admins only)."""
    session.delete(get_or_404(session, BoothSlot, slot_id, "slot"))


# --- booths ---------------------------------------------------------------------------------


def booth_public(booth: Booth, product_count: int, logo_url: str | None = None) -> BoothPublic:
    return BoothPublic(
        id=booth.id,
        hall_id=booth.hall_id,
        slot_id=booth.slot_id,
        slot_number=booth.slot.number,
        template=booth.slot.template,
        organisation=OrganisationPublic.model_validate(booth.organisation),
        fascia_name=booth.fascia_name,
        tagline=booth.tagline,
        primary_color=booth.primary_color,
        accent_color=booth.accent_color,
        product_count=product_count,
        logo_url=logo_url,
    )


def _logo_urls(
    session: Session, blobs: BlobStore, booth_ids: list[uuid.UUID]
) -> dict[uuid.UUID, str]:
    rows = session.execute(
        select(ProductAsset.booth_id, ProductAsset.blob_key)
        .where(
            ProductAsset.booth_id.in_(booth_ids),
            ProductAsset.kind == AssetKind.logo,
            ProductAsset.status == AssetStatus.ready,
            ProductAsset.blob_key.is_not(None),
        )
        .order_by(ProductAsset.created_at)
    )
    return {booth_id: blobs.url(key) for booth_id, key in rows if key}


def _booth_page(
    session: Session, page: PageDep, blobs: BlobStore, stmt: Select[Booth]
) -> dict[str, object]:
    stmt = stmt.options(selectinload(Booth.slot), selectinload(Booth.organisation))
    result = page.page(session, stmt)
    booths: list[Booth] = result["items"]
    rows = session.execute(
        select(Product.booth_id, func.count())
        .where(Product.booth_id.in_([b.id for b in booths]))
        .group_by(Product.booth_id)
    )
    counts = {booth_id: count for booth_id, count in rows}
    logos = _logo_urls(session, blobs, [b.id for b in booths])
    result["items"] = [booth_public(b, counts.get(b.id, 0), logos.get(b.id)) for b in booths]
    return result


def _filtered_booths(
    stmt: Select[Booth], country: str | None, category: str | None, q: str | None
) -> Select[Booth]:
    stmt = stmt.join(Booth.organisation).join(Booth.slot)
    if country:
        stmt = stmt.where(Organisation.country == country)
    if category:
        stmt = stmt.where(
            exists().where(Product.booth_id == Booth.id, Product.category == category)
        )
    if q:
        pattern = f"%{q.lower()}%"
        stmt = stmt.where(
            func.lower(Booth.fascia_name).like(pattern, escape="\\")
            | func.lower(Organisation.name).like(pattern, escape="\\")
        )
    return stmt.order_by(BoothSlot.number)


@router.get("/halls/{hall_id}/booths", response_model=Page[BoothPublic])
def list_hall_booths(
    hall_id: uuid.UUID,
    session: SessionDep,
    blobs: BlobsDep,
    page: PageDep,
    country: CountryFilter = None,
    category: CategoryFilter = None,
    q: SearchFilter = None,
) -> dict[str, object]:
    """The booths of a hall, filtered by country, product category or name."""
    get_or_404(session, Hall, hall_id, "hall")
    stmt = _filtered_booths(
        select(Booth).where(Booth.hall_id == hall_id), country, category, escape_like(q)
    )
    return _booth_page(session, page, blobs, stmt)


@router.get("/expos/{expo_id}/booths", response_model=Page[BoothPublic])
def list_expo_booths(
    expo_id: uuid.UUID,
    session: SessionDep,
    blobs: BlobsDep,
    page: PageDep,
    country: CountryFilter = None,
    category: CategoryFilter = None,
    q: SearchFilter = None,
) -> dict[str, object]:
    """The booths of every hall of an expo, with the same filters."""
    get_or_404(session, Expo, expo_id, "expo")
    halls = select(Hall.id).where(Hall.expo_id == expo_id)
    stmt = _filtered_booths(
        select(Booth).where(Booth.hall_id.in_(halls)), country, category, escape_like(q)
    )
    return _booth_page(session, page, blobs, stmt)


@router.post("/booths", response_model=BoothPublic, status_code=status.HTTP_201_CREATED)
def create_booth(body: BoothCreate, _admin: AdminUser, session: SessionDep) -> BoothPublic:
    """Give a slot to an exhibitor organisation (admins only)."""
    slot = get_or_404(session, BoothSlot, body.slot_id, "slot")
    get_or_404(session, Organisation, body.organisation_id, "organisation")
    if slot.booth is not None:
        raise Conflict("this slot already has a booth", code="slot_taken")
    booth = Booth(hall_id=slot.hall_id, **body.model_dump())
    session.add(booth)
    session.flush()
    return booth_public(booth, 0)


@router.get("/booths/{booth_id}", response_model=BoothPublic)
def get_booth(booth_id: uuid.UUID, session: SessionDep, blobs: BlobsDep) -> BoothPublic:
    """One booth."""
    booth = get_or_404(session, Booth, booth_id, "booth")
    return booth_public(
        booth, len(booth.products), _logo_urls(session, blobs, [booth.id]).get(booth.id)
    )


@router.patch("/booths/{booth_id}", response_model=BoothPublic)
def update_booth(
    booth_id: uuid.UUID,
    body: BoothUpdate,
    principal: CurrentUser,
    session: SessionDep,
    request: Request,
    background: BackgroundTasks,
) -> BoothPublic:
    """Change a booth's branding: its exhibitor or an admin; a published hall shows it soon after."""
    booth = get_or_404(session, Booth, booth_id, "booth")
    check_booth_owner(principal, booth)
    apply_changes(booth, body)
    session.flush()
    if session.get(HallManifest, booth.hall_id) is not None:
        # After the commit and the response: rebuild this booth, publish, tell the hall's visitors.
        state = request.app.state
        background.add_task(
            republish_booth, state.sessions, state.blobs, state.pubsub.publish, booth.id
        )
    return booth_public(booth, len(booth.products))


@router.delete("/booths/{booth_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_booth(booth_id: uuid.UUID, _admin: AdminUser, session: SessionDep) -> None:
    """Take a booth off its slot, with its products (admins only)."""
    session.delete(get_or_404(session, Booth, booth_id, "booth"))
