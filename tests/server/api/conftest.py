"""Fixtures for the API tests: the ids of a small world with an asset, a free slot, a guide, a tour
and an upload session."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from server.db.models import Role
from server.settings import Settings
from tests.factories import World, make_user, ok


@pytest.fixture
def ids(
    client: TestClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> dict[str, str]:
    h = world.admin.headers
    booth = world.booths[0]
    asset = ok(
        client.post(
            f"/api/products/{world.products[0]['id']}/assets",
            json={
                "kind": "model",
                "filename": "m.glb",
                "content_type": "model/gltf-binary",
                "size": 100,
            },
            headers=world.exhibitors[0].headers,
        ),
        201,
    )
    free_slot = ok(
        client.post(
            f"/api/halls/{world.hall['id']}/slots",
            json={"number": "F1", "template": "shell", "width": 3, "depth": 3, "x": 10, "z": 10},
            headers=h,
        ),
        201,
    )
    guide_user = make_user(sessions, settings, Role.guide)
    guide = ok(
        client.post(
            "/api/guides", json={"user_id": str(guide_user.user_id), "display_name": "G"}, headers=h
        ),
        201,
    )
    tour = ok(
        client.post(
            "/api/tours",
            json={
                "hall_id": world.hall["id"],
                "guide_id": guide["id"],
                "title": "T",
                "starts_at": "2030-01-01T10:00:00Z",
            },
            headers=h,
        ),
        201,
    )
    spare_guide_user = make_user(sessions, settings, Role.guide)
    upload = ok(
        client.post(
            f"/api/products/{world.products[0]['id']}/uploads/resumable",
            json={
                "kind": "model",
                "filename": "big.glb",
                "content_type": "model/gltf-binary",
                "size": 1000,
                "sha256": "0" * 64,
            },
            headers=world.exhibitors[0].headers,
        ),
        201,
    )
    return {
        "org": world.orgs[0]["id"],
        "expo": world.expo["id"],
        "hall": world.hall["id"],
        "slot": world.slots[0]["id"],
        "free_slot": free_slot["id"],
        "booth": booth["id"],
        "product": world.products[0]["id"],
        "asset": asset["id"],
        "guide": guide["id"],
        "guide_user": str(spare_guide_user.user_id),
        "tour": tour["id"],
        "upload": upload["upload_id"],
    }
