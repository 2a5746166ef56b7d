"""The auth matrix: every write endpoint x {no token, expired, wrong role, other exhibitor}.

None of them may answer 2xx. The endpoint list is checked against the app's routes, so a new
write endpoint without a row here fails the suite.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from server.auth import Principal, issue_token
from server.db.models import Role
from server.settings import AuthSettings, Settings
from tests.factories import Actor, World, make_user, ok


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str
    # Who may call it: roles, plus "owner" for the booth's own exhibitor and "host" for the guide.
    allowed: frozenset[str]

    def path(self, ids: dict[str, str]) -> str:
        return self.template.format(**ids)


def _e(method: str, template: str, *allowed: str) -> Endpoint:
    return Endpoint(method, template, frozenset(allowed))


ENDPOINTS = [
    _e("POST", "/api/users"),
    _e("POST", "/api/organisations"),
    _e("PATCH", "/api/organisations/{org}", "owner"),
    _e("DELETE", "/api/organisations/{org}"),
    _e("POST", "/api/expos"),
    _e("PATCH", "/api/expos/{expo}"),
    _e("DELETE", "/api/expos/{expo}"),
    _e("POST", "/api/expos/{expo}/halls"),
    _e("PATCH", "/api/halls/{hall}"),
    _e("DELETE", "/api/halls/{hall}"),
    _e("POST", "/api/halls/{hall}/tickets", "any"),
    _e("POST", "/api/halls/{hall}/publish"),
    _e("POST", "/api/halls/{hall}/slots"),
    _e("PATCH", "/api/slots/{slot}"),
    _e("DELETE", "/api/slots/{slot}"),
    _e("POST", "/api/booths"),
    _e("PATCH", "/api/booths/{booth}", "owner"),
    _e("DELETE", "/api/booths/{booth}"),
    _e("POST", "/api/booths/{booth}/products", "owner"),
    _e("PATCH", "/api/products/{product}", "owner"),
    _e("DELETE", "/api/products/{product}", "owner"),
    _e("POST", "/api/products/{product}/assets", "owner"),
    _e("DELETE", "/api/assets/{asset}", "owner"),
    _e("POST", "/api/products/{product}/uploads", "owner"),
    _e("POST", "/api/products/{product}/uploads/presigned", "owner"),
    _e("POST", "/api/products/{product}/uploads/resumable", "owner"),
    _e("PUT", "/api/uploads/{upload}", "owner"),
    _e("POST", "/api/uploads/{upload}/finalize", "owner"),
    _e("POST", "/api/booths/{booth}/logo", "owner"),
    _e("POST", "/api/guides"),
    _e("PATCH", "/api/guides/{guide}", "host"),
    _e("DELETE", "/api/guides/{guide}"),
    _e("POST", "/api/tours", "host"),
    _e("PATCH", "/api/tours/{tour}", "host"),
    _e("DELETE", "/api/tours/{tour}", "host"),
]
# Reads restricted to some callers (an upload's state is its exhibitor's business).
ADMIN_READS = [
    _e("GET", "/api/users"),
    _e("GET", "/api/auth/me", "any"),
    _e("GET", "/api/uploads/{upload}", "owner"),
    _e("GET", "/api/booths/{booth}/visits", "owner"),
]
_DECLARATION = {
    "kind": "model",
    "filename": "x.glb",
    "content_type": "model/gltf-binary",
    "size": 1000,
    "sha256": "a" * 64,
}

BODIES: dict[str, dict[str, Any]] = {
    "/api/users": {
        "email": "x@y.example",
        "display_name": "X",
        "password": "long-enough-pw",
        "role": "visitor",
    },
    "/api/organisations": {"name": "Intruder Ltd", "country": "FR"},
    "/api/organisations/{org}": {"description": "changed"},
    "/api/expos": {"slug": "intruder", "name": "Intruder"},
    "/api/expos/{expo}": {"name": "Renamed"},
    "/api/expos/{expo}/halls": {"name": "Hall Z"},
    "/api/halls/{hall}": {"name": "Renamed hall"},
    "/api/halls/{hall}/slots": {
        "number": "Z9",
        "template": "shell",
        "width": 3,
        "depth": 3,
        "x": -20,
        "z": -10,
    },
    "/api/slots/{slot}": {"x": 0.5},
    "/api/booths": {
        "slot_id": "{free_slot}",
        "organisation_id": "{org}",
        "fascia_name": "Mine now",
    },
    "/api/booths/{booth}": {"tagline": "pwned"},
    "/api/booths/{booth}/products": {"name": "Fake", "category": "honey", "country": "RU"},
    "/api/products/{product}": {"description": "pwned"},
    "/api/products/{product}/assets": {
        "kind": "photo",
        "filename": "a.png",
        "content_type": "image/png",
        "size": 10,
    },
    "/api/products/{product}/uploads/presigned": _DECLARATION,
    "/api/products/{product}/uploads/resumable": _DECLARATION,
    "/api/guides": {"user_id": "{guide_user}", "display_name": "Fake guide"},
    "/api/guides/{guide}": {"bio": "pwned"},
    "/api/tours": {
        "hall_id": "{hall}",
        "guide_id": "{guide}",
        "title": "Hijack",
        "starts_at": "2030-01-01T10:00:00Z",
    },
    "/api/tours/{tour}": {"title": "pwned"},
}


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _expired(settings: Settings, actor: Actor) -> str:
    principal = Principal(str(actor.user_id), actor.role, "x", actor.organisation_id)
    return issue_token(settings.auth, principal, now=datetime.now(UTC) - timedelta(days=2)).token


def _callers(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> dict[str, dict[str, str]]:
    other_exhibitor = world.exhibitors[1]  # owns booth 1, not booth 0
    visitor = make_user(sessions, settings, Role.visitor)
    other_guide = make_user(sessions, settings, Role.guide)
    guest = issue_token(
        settings.auth, Principal(f"guest:{uuid.uuid4()}", Role.visitor, "g", guest=True)
    ).token
    forged = issue_token(
        AuthSettings(secret_key=SecretStr("another-secret-key-of-enough-length")),
        Principal(str(world.admin.user_id), Role.admin, "x"),
    ).token
    return {
        "no token": {},
        "malformed token": {"Authorization": "Bearer not.a.jwt"},
        "forged token": {"Authorization": f"Bearer {forged}"},
        "expired admin token": {"Authorization": f"Bearer {_expired(settings, world.admin)}"},
        "visitor": visitor.headers,
        "guest": {"Authorization": f"Bearer {guest}"},
        "guide who hosts nothing": other_guide.headers,
        "other exhibitor": other_exhibitor.headers,
    }


def test_every_write_route_is_in_the_matrix(app: Any) -> None:
    operations = {
        (method.upper(), _normalise(path))
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in {"post", "patch", "put", "delete"}
    }
    public = {("POST", "/api/auth/login"), ("POST", "/api/auth/guest")}
    assert public <= operations
    listed = {(e.method, _normalise(e.template)) for e in ENDPOINTS}
    assert operations - public - listed == set()


def _normalise(path: str) -> str:
    import re

    return re.sub(r"\{[^}]+\}", "{}", path)


def test_no_caller_without_the_right_gets_a_2xx_from_any_write_endpoint(
    client: TestClient,
    world: World,
    ids: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    callers = _callers(world, sessions, settings)
    failures = []
    for endpoint in ENDPOINTS + ADMIN_READS:
        for who, headers in callers.items():
            if "any" in endpoint.allowed and who in {
                "visitor",
                "guest",
                "guide who hosts nothing",
                "other exhibitor",
            }:
                continue
            body = _fill(BODIES.get(endpoint.template), ids)
            response = client.request(
                endpoint.method, endpoint.path(ids), json=body, headers=headers
            )
            expected = (
                {401}
                if who in {"no token", "malformed token", "forged token", "expired admin token"}
                else {403, 404}
            )
            if response.status_code not in expected or "error" not in response.json():
                failures.append(
                    (
                        endpoint.method,
                        endpoint.template,
                        who,
                        response.status_code,
                        response.text[:120],
                    )
                )
    assert failures == []


def test_unauthenticated_answers_say_why_with_a_stable_code(
    client: TestClient, world: World, settings: Settings
) -> None:
    expired = client.post(
        "/api/expos",
        json={"slug": "x", "name": "X"},
        headers={"Authorization": f"Bearer {_expired(settings, world.admin)}"},
    )
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "token_expired"
    assert expired.headers["www-authenticate"] == "Bearer"
    missing = client.post("/api/expos", json={"slug": "x", "name": "X"})
    assert missing.json()["error"]["code"] == "unauthorized"
    other = client.patch(
        f"/api/booths/{world.booths[0]['id']}",
        json={"tagline": "x"},
        headers=world.exhibitors[1].headers,
    )
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "not_owner"


def test_the_owning_exhibitor_and_the_hosting_guide_may_write(
    client: TestClient,
    world: World,
    ids: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    owner = world.exhibitors[0].headers
    assert (
        client.patch(
            f"/api/booths/{ids['booth']}", json={"tagline": "Fresh honey"}, headers=owner
        ).status_code
        == 200
    )
    assert (
        client.patch(
            f"/api/organisations/{ids['org']}", json={"description": "Bees"}, headers=owner
        ).status_code
        == 200
    )
    assert (
        client.patch(
            f"/api/products/{ids['product']}", json={"price": "12.00"}, headers=owner
        ).status_code
        == 200
    )
    # The guide the tour belongs to: log in as the user behind the guide profile.
    guide = ok(client.get(f"/api/guides/{ids['guide']}"))
    token = issue_token(settings.auth, Principal(guide["user_id"], Role.guide, "G")).token
    hosting = {"Authorization": f"Bearer {token}"}
    assert (
        client.patch(
            f"/api/tours/{ids['tour']}", json={"title": "Honey walk"}, headers=hosting
        ).status_code
        == 200
    )
    created = client.post(
        "/api/tours",
        json={
            "hall_id": ids["hall"],
            "title": "Second walk",
            "starts_at": "2030-01-02T10:00:00+03:00",
        },
        headers=hosting,
    )
    assert created.status_code == 201, created.text
    assert created.json()["guide_id"] == ids["guide"]
    assert created.json()["starts_at"].startswith("2030-01-02T07:00:00")
    assert client.delete(f"/api/tours/{ids['tour']}", headers=hosting).status_code == 204


def test_a_user_removed_after_login_is_refused(
    client: TestClient, world: World, sessions: sessionmaker[Session]
) -> None:
    from server.db.models import User

    exhibitor = world.exhibitors[0]
    with sessions() as session, session.begin():
        user = session.get(User, exhibitor.user_id)
        assert user is not None
        user.is_active = False
    response = client.patch(
        f"/api/booths/{world.booths[0]['id']}", json={"tagline": "x"}, headers=exhibitor.headers
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"
