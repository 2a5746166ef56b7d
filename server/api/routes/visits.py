"""Booth-visit analytics for the booth's exhibitor (server/tours/visits.py records them)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from server.api.deps import CurrentUser, SessionDep, get_or_404
from server.api.types import AwareDatetime
from server.auth import Principal
from server.db.models import Booth, Role
from server.errors import Forbidden, Invalid
from server.tours.visits import booth_summary

router = APIRouter(tags=["visits"])


class BoothVisitsPublic(BaseModel):
    booth_id: uuid.UUID
    visits: int
    unique_visitors: int
    mean_dwell_seconds: float | None
    hotspot_opens: dict[uuid.UUID, int]
    tour_visits: int


def check_booth_reader(principal: Principal, booth: Booth) -> None:
    """Admins may read any booth's analytics; an exhibitor only its organisation's."""
    if principal.role is Role.admin:
        return
    if principal.role is Role.exhibitor and principal.organisation_id == booth.organisation_id:
        return
    raise Forbidden("only the booth's exhibitor may see its visits", code="not_owner")


@router.get("/booths/{booth_id}/visits", response_model=BoothVisitsPublic)
def get_booth_visits(
    booth_id: uuid.UUID,
    principal: CurrentUser,
    session: SessionDep,
    since: Annotated[AwareDatetime | None, Query(description="from this time on")] = None,
    until: Annotated[AwareDatetime | None, Query(description="before this time")] = None,
) -> BoothVisitsPublic:
    """Visits, unique visitors, dwell, hotspot opens and tour stops of a booth (its exhibitor)."""
    booth = get_or_404(session, Booth, booth_id, "booth")
    check_booth_reader(principal, booth)
    if since is not None and until is not None and since >= until:
        raise Invalid("since must be before until", code="validation_error")
    summary = booth_summary(session, booth.id, since, until)
    return BoothVisitsPublic(
        booth_id=summary.booth_id,
        visits=summary.visits,
        unique_visitors=summary.unique_visitors,
        mean_dwell_seconds=summary.mean_dwell_seconds,
        hotspot_opens=summary.hotspot_opens,
        tour_visits=summary.tour_visits,
    )
