"""Guides and their scheduled tours. Admins appoint guides; a guide changes only tours it hosts."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlalchemy import select

from server.api.deps import (
    AdminUser,
    PageDep,
    SessionDep,
    apply_changes,
    get_or_404,
    require,
)
from server.api.schemas import (
    GuideCreate,
    GuidePublic,
    GuideUpdate,
    Page,
    TourCreate,
    TourPublic,
    TourUpdate,
)
from server.api.types import AwareDatetime
from server.auth import Principal
from server.db.models import Booth, Guide, Hall, Role, Tour, User
from server.errors import Conflict, Forbidden, Invalid

router = APIRouter(tags=["tours"])

GuideUser = Annotated[Principal, require(Role.guide)]


@router.get("/guides", response_model=Page[GuidePublic])
def list_guides(session: SessionDep, page: PageDep) -> dict[str, object]:
    """Everyone who hosts tours."""
    return page.page(session, select(Guide).order_by(Guide.display_name, Guide.id))


@router.post("/guides", response_model=GuidePublic, status_code=status.HTTP_201_CREATED)
def appoint_guide(body: GuideCreate, _admin: AdminUser, session: SessionDep) -> Guide:
    """Appoint a user with the guide role as a tour guide (admins only)."""
    user = get_or_404(session, User, body.user_id, "user")
    if user.role is not Role.guide:
        raise Invalid("only users with the guide role can be appointed", code="not_a_guide")
    if session.scalar(select(Guide.id).where(Guide.user_id == user.id)) is not None:
        raise Conflict("this user is already a guide", code="guide_exists")
    guide = Guide(**body.model_dump())
    session.add(guide)
    session.flush()
    return guide


@router.get("/guides/{guide_id}", response_model=GuidePublic)
def get_guide(guide_id: uuid.UUID, session: SessionDep) -> Guide:
    """One guide."""
    return get_or_404(session, Guide, guide_id, "guide")


def _own_guide(session: SessionDep, principal: Principal, guide: Guide) -> None:
    if principal.role is not Role.admin and guide.user_id != principal.user_id:
        raise Forbidden("a guide may change only its own tours and profile", code="not_owner")


@router.patch("/guides/{guide_id}", response_model=GuidePublic)
def update_guide(
    guide_id: uuid.UUID, body: GuideUpdate, principal: GuideUser, session: SessionDep
) -> Guide:
    """Change a guide's profile: the guide or an admin."""
    guide = get_or_404(session, Guide, guide_id, "guide")
    _own_guide(session, principal, guide)
    apply_changes(guide, body)
    session.flush()
    return guide


@router.delete("/guides/{guide_id}", status_code=status.HTTP_204_NO_CONTENT)
def dismiss_guide(guide_id: uuid.UUID, _admin: AdminUser, session: SessionDep) -> None:
    """Dismiss a guide with its tours (admins only)."""
    session.delete(get_or_404(session, Guide, guide_id, "guide"))


@router.get("/tours", response_model=Page[TourPublic])
def list_tours(
    session: SessionDep,
    page: PageDep,
    hall_id: Annotated[uuid.UUID | None, Query()] = None,
    guide_id: Annotated[uuid.UUID | None, Query()] = None,
    starts_after: Annotated[AwareDatetime | None, Query()] = None,
) -> dict[str, object]:
    """Scheduled tours, soonest first."""
    stmt = select(Tour).order_by(Tour.starts_at, Tour.id)
    if hall_id:
        stmt = stmt.where(Tour.hall_id == hall_id)
    if guide_id:
        stmt = stmt.where(Tour.guide_id == guide_id)
    if starts_after:
        stmt = stmt.where(Tour.starts_at >= starts_after)
    return page.page(session, stmt)


def _check_route(session: SessionDep, hall_id: uuid.UUID, route: list[uuid.UUID]) -> None:
    if not route:
        return
    found = set(
        session.scalars(select(Booth.id).where(Booth.id.in_(route), Booth.hall_id == hall_id))
    )
    missing = [str(booth) for booth in route if booth not in found]
    if missing:
        raise Invalid(
            f"not booths of this hall: {', '.join(missing[:5])}", code="booth_not_in_hall"
        )


@router.post("/tours", response_model=TourPublic, status_code=status.HTTP_201_CREATED)
def schedule_tour(body: TourCreate, principal: GuideUser, session: SessionDep) -> Tour:
    """Schedule a tour: a guide for itself, or an admin for any guide."""
    get_or_404(session, Hall, body.hall_id, "hall")
    if principal.role is Role.admin:
        if body.guide_id is None:
            raise Invalid("guide_id is required", code="guide_required")
        guide = get_or_404(session, Guide, body.guide_id, "guide")
    else:
        guide_row = session.scalar(select(Guide).where(Guide.user_id == principal.user_id))
        if guide_row is None:
            raise Forbidden("you have not been appointed as a guide", code="not_a_guide")
        if body.guide_id not in (None, guide_row.id):
            raise Forbidden("a guide schedules only its own tours", code="not_owner")
        guide = guide_row
    _check_route(session, body.hall_id, body.route)
    tour = Tour(**body.model_dump(exclude={"guide_id", "route"}), guide_id=guide.id)
    tour.route = [str(booth) for booth in body.route]
    session.add(tour)
    session.flush()
    return tour


@router.get("/tours/{tour_id}", response_model=TourPublic)
def get_tour(tour_id: uuid.UUID, session: SessionDep) -> Tour:
    """One tour."""
    return get_or_404(session, Tour, tour_id, "tour")


@router.patch("/tours/{tour_id}", response_model=TourPublic)
def update_tour(
    tour_id: uuid.UUID, body: TourUpdate, principal: GuideUser, session: SessionDep
) -> Tour:
    """Change a tour: the guide hosting it or an admin."""
    tour = get_or_404(session, Tour, tour_id, "tour")
    _own_guide(session, principal, tour.guide)
    if body.route is not None:
        _check_route(session, tour.hall_id, body.route)
    apply_changes(tour, body, exclude=frozenset({"route"}))
    if body.route is not None:
        tour.route = [str(booth) for booth in body.route]
    session.flush()
    return tour


@router.delete("/tours/{tour_id}", status_code=status.HTTP_204_NO_CONTENT)
def cancel_tour(tour_id: uuid.UUID, principal: GuideUser, session: SessionDep) -> None:
    """Delete a tour: the guide hosting it or an admin."""
    tour = get_or_404(session, Tour, tour_id, "tour")
    _own_guide(session, principal, tour.guide)
    session.delete(tour)
