"""Factories: users with tokens and a small expo built through the API itself."""

from __future__ import annotations

import functools
import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from server.auth import Principal, hash_password, issue_token
from server.db.models import Role, User
from server.settings import Settings

PASSWORD = "correct horse battery"
_counter = itertools.count()


@functools.cache
def _password_hash() -> str:
    # argon2 is slow on purpose (~0.2 s here); the factories hash the shared password once.
    return hash_password(PASSWORD)


@dataclass
class Actor:
    user_id: uuid.UUID | None
    role: Role
    token: str
    organisation_id: uuid.UUID | None = None
    email: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_user(
    sessions: sessionmaker[Session],
    settings: Settings,
    role: Role,
    organisation_id: uuid.UUID | None = None,
) -> Actor:
    email = f"{role.value}{next(_counter)}@test.example"
    with sessions() as session, session.begin():
        user = User(
            email=email,
            display_name=f"{role.value.title()} {email}",
            password_hash=_password_hash(),
            role=role,
            organisation_id=organisation_id,
        )
        session.add(user)
        session.flush()
        user_id = user.id
    principal = Principal(
        subject=str(user_id), role=role, display_name=email, organisation_id=organisation_id
    )
    token = issue_token(settings.auth, principal).token
    return Actor(user_id, role, token, organisation_id, email)


@dataclass
class World:
    """An expo with one hall, two exhibitor organisations each with a booth and a product."""

    admin: Actor
    expo: dict[str, Any]
    hall: dict[str, Any]
    orgs: list[dict[str, Any]] = field(default_factory=list)
    slots: list[dict[str, Any]] = field(default_factory=list)
    booths: list[dict[str, Any]] = field(default_factory=list)
    products: list[dict[str, Any]] = field(default_factory=list)
    exhibitors: list[Actor] = field(default_factory=list)


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


def build_world(client: TestClient, sessions: sessionmaker[Session], settings: Settings) -> World:
    admin = make_user(sessions, settings, Role.admin)
    h = admin.headers
    expo = ok(
        client.post("/api/expos", json={"slug": "test-expo", "name": "Test Expo"}, headers=h), 201
    )
    hall = ok(
        client.post(f"/api/expos/{expo['id']}/halls", json={"name": "Hall A"}, headers=h), 201
    )
    world = World(admin=admin, expo=expo, hall=hall)
    for index, (name, country, category) in enumerate(
        [("Altai Honey", "RU", "honey"), ("Baku Wines", "AZ", "wine")]
    ):
        org = ok(
            client.post("/api/organisations", json={"name": name, "country": country}, headers=h),
            201,
        )
        slot = ok(
            client.post(
                f"/api/halls/{hall['id']}/slots",
                json={
                    "number": f"A{index + 1}",
                    "template": "shell",
                    "width": 3,
                    "depth": 3,
                    "x": index * 3.0,
                    "z": 0,
                },
                headers=h,
            ),
            201,
        )
        booth = ok(
            client.post(
                "/api/booths",
                json={"slot_id": slot["id"], "organisation_id": org["id"], "fascia_name": name},
                headers=h,
            ),
            201,
        )
        exhibitor = make_user(sessions, settings, Role.exhibitor, uuid.UUID(org["id"]))
        product = ok(
            client.post(
                f"/api/booths/{booth['id']}/products",
                json={
                    "name": f"{name} product",
                    "names": {"en": f"{name} product", "ru": "Продукт", "zh": "产品"},
                    "category": category,
                    "country": country,
                    "price": "10.50",
                    "currency": "USD",
                },
                headers=exhibitor.headers,
            ),
            201,
        )
        world.orgs.append(org)
        world.slots.append(slot)
        world.booths.append(booth)
        world.products.append(product)
        world.exhibitors.append(exhibitor)
    return world
