"""Dependencies shared by the routes, as ``Annotated`` aliases (SessionDep, CurrentUser, ...)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from server.api.types import Category, CountryCode, SearchText
from server.auth import Principal, decode_token
from server.db.models import Base, Booth, Role, User
from server.errors import Forbidden, Invalid, NotFound, Unauthorized
from server.settings import Settings
from server.storage.base import BlobStore

M = TypeVar("M", bound=Base)

_bearer = HTTPBearer(auto_error=False, description="Access token from /api/auth/login or /guest")


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """A session per request, committed when the route returns without error."""
    with request.app.state.sessions() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def get_blobs(request: Request) -> BlobStore:
    blobs: BlobStore = request.app.state.blobs
    return blobs


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
# scope="function": the commit happens before the response is sent. With FastAPI's default
# ("request") a dependency's exit runs after the response, so a failing commit would follow a 2xx.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]


def get_principal(
    settings: SettingsDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller; 401 without a valid token, or when its user is gone or disabled."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("authentication required")
    principal = decode_token(settings.auth, credentials.credentials)
    if principal.guest:
        return principal
    user = session.get(User, principal.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("the token's user no longer exists", code="invalid_token")
    # Role and organisation come from the database, so a change applies at once.
    return Principal(
        subject=str(user.id),
        role=user.role,
        display_name=user.display_name,
        organisation_id=user.organisation_id,
    )


CurrentUser = Annotated[Principal, Depends(get_principal)]


def require(*roles: Role) -> Any:
    """A dependency that admits only ``roles`` (admins are always admitted)."""
    allowed = {Role.admin, *roles}

    def check(principal: CurrentUser) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(f"this needs the role {' or '.join(sorted(r.value for r in allowed))}")
        return principal

    return Depends(check)


AdminUser = Annotated[Principal, require()]


def get_or_404(session: Session, model: type[M], id_: uuid.UUID, what: str) -> M:
    obj = session.get(model, id_)
    if obj is None:
        raise NotFound(f"{what} not found", code=f"{what}_not_found")
    return obj


def check_booth_owner(principal: Principal, booth: Booth) -> None:
    """Admins may change any booth; an exhibitor only its organisation's."""
    if principal.role is Role.admin:
        return
    if principal.role is Role.exhibitor and principal.organisation_id == booth.organisation_id:
        return
    raise Forbidden("only the booth's exhibitor may change it", code="not_owner")


class Pagination:
    def __init__(
        self,
        request: Request,
        limit: Annotated[int, Query(ge=1, le=200, description="page size")] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> None:
        self.limit = limit
        self.offset = offset

    def page(self, session: Session, stmt: Select[Any]) -> dict[str, Any]:
        total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
        items = list(session.scalars(stmt.limit(self.limit).offset(self.offset)))
        return {"items": items, "total": total or 0, "limit": self.limit, "offset": self.offset}


PageDep = Annotated[Pagination, Depends()]


def apply_changes(
    obj: Base,
    body: BaseModel,
    nullable: frozenset[str] = frozenset(),
    exclude: frozenset[str] = frozenset(),
) -> None:
    """Copy the fields a PATCH body set onto ``obj``; null only where ``nullable`` allows it."""
    for field, value in body.model_dump(exclude_unset=True, exclude=set(exclude)).items():
        if value is None and field not in nullable:
            raise Invalid(f"{field}: may not be null", code="validation_error")
        setattr(obj, field, value)


# Query filters shared by the list routes.
CountryFilter = Annotated[CountryCode | None, Query(description="exhibitor's country")]
CategoryFilter = Annotated[Category | None, Query(description="shows products of this category")]
SearchFilter = Annotated[
    SearchText | None, Query(description="words in the booth or exhibitor name")
]


def escape_like(text: str | None) -> str | None:
    if text is None:
        return None
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
