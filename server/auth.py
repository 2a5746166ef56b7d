"""Passwords, signed access tokens and the principal a request acts as.

Tokens are JWTs (HS256 by default) carrying the subject, role and organisation, with ``iat``,
``exp`` and a ``typ`` of ``user`` or ``guest``. Guest visitors get a token without signing up;
they have no row in the database and may only read and (later) join the tour server.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from server.db.models import Role
from server.errors import Unauthorized
from server.settings import AuthSettings

_hasher = PasswordHasher()
# A hash to verify against when the user does not exist, so a login's timing does not tell.
_DUMMY_HASH = _hasher.hash("pavilion-no-such-user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; always spends one argon2 verification."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as."""

    subject: str
    role: Role
    display_name: str
    organisation_id: uuid.UUID | None = None
    guest: bool = False

    @property
    def user_id(self) -> uuid.UUID | None:
        return None if self.guest else uuid.UUID(self.subject)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_at: datetime


def issue_token(
    settings: AuthSettings, principal: Principal, now: datetime | None = None
) -> IssuedToken:
    """Sign an access token for ``principal``."""
    now = now or datetime.now(UTC)
    minutes = settings.guest_token_minutes if principal.guest else settings.access_token_minutes
    expires_at = now + timedelta(minutes=minutes)
    claims = {
        "sub": principal.subject,
        "role": principal.role.value,
        "name": principal.display_name,
        "org": str(principal.organisation_id) if principal.organisation_id else None,
        "typ": "guest" if principal.guest else "user",
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
    }
    token = jwt.encode(claims, settings.secret_key.get_secret_value(), algorithm=settings.algorithm)
    return IssuedToken(token=token, expires_at=expires_at)


def decode_token(settings: AuthSettings, token: str) -> Principal:
    """Verify ``token`` and return its principal.

    Raises:
        Unauthorized: code ``token_expired`` or ``invalid_token``.
    """
    try:
        claims = jwt.decode(
            token,
            settings.secret_key.get_secret_value(),
            algorithms=[settings.algorithm],
            options={"require": ["sub", "role", "typ", "exp", "iat"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("access token expired", code="token_expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("invalid access token", code="invalid_token") from exc
    try:
        guest = claims["typ"] == "guest"
        role = Role(claims["role"])
        if guest and role is not Role.visitor:
            raise ValueError("guest tokens are visitor tokens")
        if not guest:
            uuid.UUID(claims["sub"])
        org = claims.get("org")
        return Principal(
            subject=str(claims["sub"]),
            role=role,
            display_name=str(claims.get("name") or ""),
            organisation_id=uuid.UUID(org) if org else None,
            guest=guest,
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise Unauthorized("invalid access token", code="invalid_token") from exc
