"""Tickets behind the reverse proxy: ``tours.public_url = "same-origin"`` (docs/operations.md).

The ticket's URL is the origin the request came to, ``/ws/`` under it. The app is wrapped in
uvicorn's ProxyHeadersMiddleware, as ``python -m server serve`` runs it (``proxy_headers``),
which sets the scheme from ``X-Forwarded-Proto`` when the peer is trusted
(``FORWARDED_ALLOW_IPS``; compose trusts every peer, since only the proxy reaches the API).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from server.app import create_app
from server.settings import Settings, TourSettings
from tests.conftest import make_settings
from tests.factories import World

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    tours = TourSettings(public_url="same-origin", port=0, gc_freeze=False)
    return make_settings(database_url, tmp_path, tours=tours)


def behind_proxy(settings: Settings, trusted: str) -> FastAPI:
    app = create_app(settings)
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted)
    return app


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return behind_proxy(settings, "*")


def ticket_url(client: TestClient, world: World, headers: dict[str, str]) -> str:
    response = client.post(
        f"/api/halls/{world.hall['id']}/tickets", headers={**world.admin.headers, **headers}
    )
    assert response.status_code == 201, response.text
    url: str = response.json()["url"]
    return url


def test_over_https_the_ticket_points_at_wss_on_the_requests_host_and_port(
    client: TestClient, world: World
) -> None:
    url = ticket_url(
        client, world, {"Host": "expo.example.test:8443", "X-Forwarded-Proto": "https"}
    )
    assert url == f"wss://expo.example.test:8443/ws/halls/{world.hall['id']}"


def test_over_http_the_ticket_points_at_ws_on_the_requests_host(
    client: TestClient, world: World
) -> None:
    url = ticket_url(client, world, {"Host": "127.0.0.1:8080"})
    assert url == f"ws://127.0.0.1:8080/ws/halls/{world.hall['id']}"


def test_the_forwarded_scheme_counts_only_from_a_trusted_proxy(
    client: TestClient, world: World, settings: Settings
) -> None:
    # The TestClient's peer is "testclient", which uvicorn's default (loopback) does not trust.
    untrusting = behind_proxy(settings, "127.0.0.1")
    with TestClient(untrusting) as other:
        url = ticket_url(other, world, {"Host": "expo.example.test", "X-Forwarded-Proto": "https"})
    assert url == f"ws://expo.example.test/ws/halls/{world.hall['id']}"


def test_without_same_origin_the_ticket_keeps_the_tour_servers_own_address(
    database_url: str, tmp_path: Path, client: TestClient, world: World
) -> None:
    own = make_settings(database_url, tmp_path, tours=TourSettings(port=0, gc_freeze=False))
    with TestClient(behind_proxy(own, "*")) as other:
        url = ticket_url(other, world, {"Host": "expo.example.test", "X-Forwarded-Proto": "https"})
        port = other.app.state.tours.server.port  # type: ignore[attr-defined]
    assert url == f"ws://127.0.0.1:{port}/ws/halls/{world.hall['id']}"
