"""Exhibitor organisations."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from sqlalchemy import select

from server.api.deps import (
    AdminUser,
    CountryFilter,
    CurrentUser,
    PageDep,
    SessionDep,
    apply_changes,
    get_or_404,
)
from server.api.schemas import OrganisationCreate, OrganisationPublic, OrganisationUpdate, Page
from server.db.models import Organisation, Role
from server.errors import Conflict, Forbidden

router = APIRouter(prefix="/organisations", tags=["organisations"])


def _unique_name(session: SessionDep, name: str, own_id: uuid.UUID | None = None) -> None:
    existing = session.scalar(select(Organisation.id).where(Organisation.name == name))
    if existing is not None and existing != own_id:
        raise Conflict("an organisation with this name exists", code="organisation_exists")


@router.get("", response_model=Page[OrganisationPublic])
def list_organisations(
    session: SessionDep, page: PageDep, country: CountryFilter = None
) -> dict[str, object]:
    """Exhibitor organisations, optionally of one country."""
    stmt = select(Organisation).order_by(Organisation.name)
    if country:
        stmt = stmt.where(Organisation.country == country)
    return page.page(session, stmt)


@router.post("", response_model=OrganisationPublic, status_code=status.HTTP_201_CREATED)
def create_organisation(
    body: OrganisationCreate, _admin: AdminUser, session: SessionDep
) -> Organisation:
    """Register an exhibitor organisation (admins only)."""
    _unique_name(session, body.name)
    organisation = Organisation(**body.model_dump())
    session.add(organisation)
    session.flush()
    return organisation


@router.get("/{organisation_id}", response_model=OrganisationPublic)
def get_organisation(organisation_id: uuid.UUID, session: SessionDep) -> Organisation:
    """One organisation."""
    return get_or_404(session, Organisation, organisation_id, "organisation")


@router.patch("/{organisation_id}", response_model=OrganisationPublic)
def update_organisation(
    organisation_id: uuid.UUID,
    body: OrganisationUpdate,
    principal: CurrentUser,
    session: SessionDep,
) -> Organisation:
    """Change an organisation: admins, or the organisation's own exhibitors."""
    organisation = get_or_404(session, Organisation, organisation_id, "organisation")
    own = principal.role is Role.exhibitor and principal.organisation_id == organisation.id
    if principal.role is not Role.admin and not own:
        raise Forbidden("only the organisation's exhibitors may change it", code="not_owner")
    if body.name:
        _unique_name(session, body.name, organisation.id)
    apply_changes(organisation, body, nullable=frozenset({"website"}))
    session.flush()
    return organisation


@router.delete("/{organisation_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_organisation(organisation_id: uuid.UUID, _admin: AdminUser, session: SessionDep) -> None:
    """Remove an organisation with its booths and products (admins only)."""
    session.delete(get_or_404(session, Organisation, organisation_id, "organisation"))
