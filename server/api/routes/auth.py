"""Log in, get a guest visitor token, see who you are; admins create users."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from sqlalchemy import select

from server.api.deps import AdminUser, CurrentUser, PageDep, SessionDep, SettingsDep, get_or_404
from server.api.schemas import (
    GuestRequest,
    LoginRequest,
    Me,
    Page,
    TokenResponse,
    UserCreate,
    UserPublic,
)
from server.auth import Principal, hash_password, issue_token, verify_password
from server.db.models import Organisation, Role, User
from server.errors import Conflict, Invalid, Unauthorized

router = APIRouter(tags=["auth"])


@router.post("/auth/login", response_model=TokenResponse)
def login(body: LoginRequest, session: SessionDep, settings: SettingsDep) -> TokenResponse:
    """Exchange an email and password for a signed access token."""
    user = session.scalar(select(User).where(User.email == body.email))
    ok = verify_password(user.password_hash if user else None, body.password)
    if user is None or not ok or not user.is_active:
        raise Unauthorized("wrong email or password", code="invalid_credentials")
    principal = Principal(
        subject=str(user.id),
        role=user.role,
        display_name=user.display_name,
        organisation_id=user.organisation_id,
    )
    issued = issue_token(settings.auth, principal)
    return TokenResponse(access_token=issued.token, expires_at=issued.expires_at, role=user.role)


@router.post("/auth/guest", response_model=TokenResponse)
def guest(body: GuestRequest, settings: SettingsDep) -> TokenResponse:
    """A visitor token without sign-up, for walking the halls."""
    principal = Principal(
        subject=f"guest:{uuid.uuid4()}",
        role=Role.visitor,
        display_name=body.display_name,
        guest=True,
    )
    issued = issue_token(settings.auth, principal)
    return TokenResponse(access_token=issued.token, expires_at=issued.expires_at, role=Role.visitor)


@router.get("/auth/me", response_model=Me)
def me(principal: CurrentUser) -> Me:
    """Who the token belongs to."""
    return Me(
        subject=principal.subject,
        role=principal.role,
        display_name=principal.display_name,
        organisation_id=principal.organisation_id,
        guest=principal.guest,
    )


@router.get("/users", response_model=Page[UserPublic])
def list_users(_admin: AdminUser, session: SessionDep, page: PageDep) -> dict[str, object]:
    """All users (admins only)."""
    return page.page(session, select(User).order_by(User.email))


@router.post("/users", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, _admin: AdminUser, session: SessionDep) -> User:
    """Create a user (admins only); exhibitors must belong to an organisation."""
    if session.scalar(select(User.id).where(User.email == body.email)) is not None:
        raise Conflict("a user with this email exists", code="user_exists")
    if body.role is Role.exhibitor and body.organisation_id is None:
        raise Invalid("an exhibitor needs an organisation_id", code="organisation_required")
    if body.organisation_id is not None:
        get_or_404(session, Organisation, body.organisation_id, "organisation")
    user = User(
        email=body.email,
        display_name=body.display_name,
        password_hash=hash_password(body.password),
        role=body.role,
        organisation_id=body.organisation_id,
    )
    session.add(user)
    session.flush()
    return user
