"""Expos and their halls, and the halls' published 3D scenes (manifest and publish)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel
from sqlalchemy import select

from server import scenes
from server.api.deps import AdminUser, BlobsDep, PageDep, SessionDep, apply_changes, get_or_404
from server.api.schemas import (
    ErrorResponse,
    ExpoCreate,
    ExpoPublic,
    ExpoUpdate,
    HallCreate,
    HallPublic,
    HallUpdate,
    Page,
)
from server.db.models import Expo, Hall
from server.errors import Conflict, Invalid
from server.processing import hall_topic

router = APIRouter(tags=["expos"])


@router.get("/expos", response_model=Page[ExpoPublic])
def list_expos(session: SessionDep, page: PageDep) -> dict[str, object]:
    """All expos, newest first."""
    return page.page(session, select(Expo).order_by(Expo.starts_on.desc(), Expo.slug))


@router.post("/expos", response_model=ExpoPublic, status_code=status.HTTP_201_CREATED)
def create_expo(body: ExpoCreate, _admin: AdminUser, session: SessionDep) -> Expo:
    """Create an expo (admins only)."""
    if session.scalar(select(Expo.id).where(Expo.slug == body.slug)) is not None:
        raise Conflict("an expo with this slug exists", code="expo_exists")
    expo = Expo(**body.model_dump())
    session.add(expo)
    session.flush()
    return expo


@router.get("/expos/{expo_id}", response_model=ExpoPublic)
def get_expo(expo_id: uuid.UUID, session: SessionDep) -> Expo:
    """One expo."""
    return get_or_404(session, Expo, expo_id, "expo")


@router.patch("/expos/{expo_id}", response_model=ExpoPublic)
def update_expo(
    expo_id: uuid.UUID, body: ExpoUpdate, _admin: AdminUser, session: SessionDep
) -> Expo:
    """Change an expo (admins only)."""
    expo = get_or_404(session, Expo, expo_id, "expo")
    apply_changes(expo, body, nullable=frozenset({"starts_on", "ends_on"}))
    if expo.starts_on and expo.ends_on and expo.ends_on < expo.starts_on:
        raise Invalid("ends_on is before starts_on")
    session.flush()
    return expo


@router.delete("/expos/{expo_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_expo(expo_id: uuid.UUID, _admin: AdminUser, session: SessionDep) -> None:
    """Delete an expo with everything in it (admins only)."""
    session.delete(get_or_404(session, Expo, expo_id, "expo"))


def _unique_hall_name(
    session: SessionDep, expo_id: uuid.UUID, name: str, own: uuid.UUID | None
) -> None:
    existing = session.scalar(select(Hall.id).where(Hall.expo_id == expo_id, Hall.name == name))
    if existing is not None and existing != own:
        raise Conflict("this expo has a hall with this name", code="hall_exists")


@router.get("/expos/{expo_id}/halls", response_model=Page[HallPublic])
def list_halls(expo_id: uuid.UUID, session: SessionDep, page: PageDep) -> dict[str, object]:
    """The halls of an expo."""
    get_or_404(session, Expo, expo_id, "expo")
    return page.page(session, select(Hall).where(Hall.expo_id == expo_id).order_by(Hall.name))


@router.post(
    "/expos/{expo_id}/halls", response_model=HallPublic, status_code=status.HTTP_201_CREATED
)
def create_hall(
    expo_id: uuid.UUID, body: HallCreate, _admin: AdminUser, session: SessionDep
) -> Hall:
    """Add a hall to an expo (admins only)."""
    get_or_404(session, Expo, expo_id, "expo")
    _unique_hall_name(session, expo_id, body.name, None)
    hall = Hall(expo_id=expo_id, **body.model_dump())
    session.add(hall)
    session.flush()
    return hall


@router.get("/halls/{hall_id}", response_model=HallPublic)
def get_hall(hall_id: uuid.UUID, session: SessionDep) -> Hall:
    """One hall."""
    return get_or_404(session, Hall, hall_id, "hall")


@router.patch("/halls/{hall_id}", response_model=HallPublic)
def update_hall(
    hall_id: uuid.UUID, body: HallUpdate, _admin: AdminUser, session: SessionDep
) -> Hall:
    """Change a hall (admins only)."""
    hall = get_or_404(session, Hall, hall_id, "hall")
    if body.name:
        _unique_hall_name(session, hall.expo_id, body.name, hall.id)
    apply_changes(hall, body)
    session.flush()
    return hall


@router.delete("/halls/{hall_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_hall(hall_id: uuid.UUID, _admin: AdminUser, session: SessionDep) -> None:
    """Delete a hall with its slots, booths and tours (admins only)."""
    session.delete(get_or_404(session, Hall, hall_id, "hall"))


# --- published scenes -----------------------------------------------------------------------

_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "Storage or fonts unavailable"}
}


class PublishPublic(BaseModel):
    """What a publish did (``server.scenes.PublishResult``)."""

    hall_id: uuid.UUID
    version: int
    changed: bool
    manifest_key: str
    booths: int
    rebuilt: list[str]
    objects_written: int
    skipped_products: list[str]
    warnings: list[str]
    timings: dict[str, float]


@router.get(
    "/halls/{hall_id}/manifest",
    response_class=Response,
    responses={
        200: {
            "description": "The hall manifest (docs/manifest.md), a `url` beside every `key`",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
        **_UNAVAILABLE,
    },
)
def get_hall_manifest(
    hall_id: uuid.UUID, request: Request, session: SessionDep, blobs: BlobsDep
) -> Response:
    """The hall's published manifest: what a visitor's client loads first."""
    served = scenes.served_manifest(session, blobs, hall_id)
    headers = {"ETag": served.etag, "Cache-Control": scenes.MANIFEST_CACHE_CONTROL}
    if _etag_matches(request.headers.get("if-none-match"), served.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(served.body, media_type="application/json", headers=headers)


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison against a list of entity tags, or ``*``."""
    if if_none_match is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


@router.post("/halls/{hall_id}/publish", response_model=PublishPublic, responses=_UNAVAILABLE)
def publish_hall(
    hall_id: uuid.UUID, _admin: AdminUser, session: SessionDep, blobs: BlobsDep, request: Request
) -> PublishPublic:
    """Build the booths that changed and publish a new manifest version (admins only)."""
    result = scenes.publish_hall(session, blobs, hall_id)
    session.commit()  # the flip is durable before the answer says it happened
    # Visitors in the hall reload its manifest (booth_id null: any booth may have changed).
    message = {"type": "booth.updated", "hall_id": str(hall_id), "booth_id": None}
    request.app.state.pubsub.publish(
        hall_topic(hall_id), {**message, "manifest_version": result.version}
    )
    return PublishPublic.model_validate(result, from_attributes=True)
