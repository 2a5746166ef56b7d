"""POST /api/halls/{hall_id}/tickets: an access token buys a single-use websocket ticket."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from server.settings import Settings
from server.tours.tickets import MemoryTicketLedger, ReplayedTicket, redeem_ticket
from tests.factories import World, ok

PUBLIC_URL = "wss://expo.example.test/"


def _secret(settings: Settings) -> bytes:
    return settings.auth.secret_key.get_secret_value().encode()


def _behind_a_proxy(client: TestClient) -> None:
    # What the lifespan sets from tours.public_url; fixed here so the URL can be checked.
    client.app.state.tours_public_url = PUBLIC_URL  # type: ignore[attr-defined]


def test_an_exhibitor_gets_a_ticket_for_the_halls_websocket(
    client: TestClient, world: World, settings: Settings
) -> None:
    _behind_a_proxy(client)
    exhibitor, hall_id = world.exhibitors[0], world.hall["id"]
    before = time.time()

    response = client.post(f"/api/halls/{hall_id}/tickets", headers=exhibitor.headers)

    body = ok(response, 201)
    assert set(body) == {"ticket", "url", "expires_at"}
    assert body["url"] == f"wss://expo.example.test/ws/halls/{hall_id}"
    assert response.headers["cache-control"] == "no-store"
    expires_at = datetime.fromisoformat(body["expires_at"]).timestamp()
    ttl = settings.tours.ticket_seconds
    # expires_at is shown to the microsecond
    assert before + ttl - 1e-6 <= expires_at <= time.time() + ttl + 1e-6
    claims = redeem_ticket(
        _secret(settings), MemoryTicketLedger(), body["ticket"], uuid.UUID(hall_id), time.time()
    )
    assert (claims.subject, claims.role, claims.guest) == (
        str(exhibitor.user_id),
        "exhibitor",
        False,
    )
    assert claims.expires_at == pytest.approx(expires_at, abs=1e-6)


def test_a_guest_gets_a_ticket_that_says_it_is_a_guest(
    client: TestClient, world: World, settings: Settings
) -> None:
    _behind_a_proxy(client)
    guest = ok(client.post("/api/auth/guest", json={"display_name": "Wanderer"}))
    headers = {"Authorization": f"Bearer {guest['access_token']}"}

    body = ok(client.post(f"/api/halls/{world.hall['id']}/tickets", headers=headers), 201)

    claims = redeem_ticket(
        _secret(settings),
        MemoryTicketLedger(),
        body["ticket"],
        uuid.UUID(world.hall["id"]),
        time.time(),
    )
    assert claims.guest
    assert claims.subject.startswith("guest:")
    assert (claims.display_name, claims.role) == ("Wanderer", "visitor")


def test_two_tickets_are_two_single_use_tickets(
    client: TestClient, world: World, settings: Settings
) -> None:
    _behind_a_proxy(client)
    url, headers = f"/api/halls/{world.hall['id']}/tickets", world.admin.headers
    tickets = [ok(client.post(url, headers=headers), 201)["ticket"] for _ in range(2)]
    ledger, hall = MemoryTicketLedger(), uuid.UUID(world.hall["id"])

    for ticket in tickets:
        redeem_ticket(_secret(settings), ledger, ticket, hall, time.time())
    with pytest.raises(ReplayedTicket):
        redeem_ticket(_secret(settings), ledger, tickets[0], hall, time.time())


def test_a_ticket_needs_an_access_token_and_is_not_one(client: TestClient, world: World) -> None:
    _behind_a_proxy(client)
    url = f"/api/halls/{world.hall['id']}/tickets"
    ticket = ok(client.post(url, headers=world.admin.headers), 201)["ticket"]

    anonymous = client.post(url)
    with_ticket = client.post(url, headers={"Authorization": f"Bearer {ticket}"})

    assert anonymous.status_code == 401
    assert with_ticket.status_code == 401
    assert with_ticket.json()["error"]["code"] == "invalid_token"


def test_an_unknown_hall_has_no_tickets(client: TestClient, world: World) -> None:
    _behind_a_proxy(client)

    response = client.post(f"/api/halls/{uuid.uuid4()}/tickets", headers=world.admin.headers)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "hall_not_found"


def test_without_a_tour_server_there_are_no_tickets(client: TestClient, world: World) -> None:
    client.app.state.tours_public_url = None  # type: ignore[attr-defined]

    response = client.post(f"/api/halls/{world.hall['id']}/tickets", headers=world.admin.headers)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "tours_unavailable"
