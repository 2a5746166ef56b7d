"""Bad input on every write endpoint gets a 4xx with a stable code, never a 500."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.factories import World, ok
from tests.server.api.test_permissions import BODIES, ENDPOINTS, _fill

# Actions without a body (POST /halls/{id}/publish) have no entry in BODIES.
WRITES_WITH_BODY = [e for e in ENDPOINTS if e.method in {"POST", "PATCH"} and e.template in BODIES]


def _assert_error(response: object, statuses: set[int], code: str | None = None) -> None:
    status = response.status_code  # type: ignore[attr-defined]
    assert status in statuses, response.text  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert isinstance(error["message"], str)
    assert error["message"]
    if code is not None:
        assert error["code"] == code


def test_wrong_types_too_long_strings_and_unknown_fields_are_422(
    client: TestClient, world: World, ids: dict[str, str]
) -> None:
    h = world.admin.headers
    for endpoint in WRITES_WITH_BODY:
        body = _fill(BODIES[endpoint.template], ids)
        path = endpoint.path(ids)
        for field, value in body.items():
            for bad in ([1, 2], {"a": 1}, "x" * 10_001, -(10**30), "\x00"):
                if bad == value:
                    continue
                response = client.request(
                    endpoint.method, path, json={**body, field: bad}, headers=h
                )
                _assert_error(response, {422}, "validation_error")
        unknown = client.request(endpoint.method, path, json={**body, "is_admin": True}, headers=h)
        _assert_error(unknown, {422}, "validation_error")
        not_json = client.request(
            endpoint.method,
            path,
            content=b"{not json",
            headers={**h, "Content-Type": "application/json"},
        )
        _assert_error(not_json, {400, 422})
        array = client.request(endpoint.method, path, json=[body], headers=h)
        _assert_error(array, {422}, "validation_error")


def test_unknown_ids_in_paths_and_bodies_are_404(
    client: TestClient, world: World, ids: dict[str, str]
) -> None:
    h = world.admin.headers
    missing = "00000000-0000-4000-8000-000000000000"
    for endpoint in ENDPOINTS:
        if "{" not in endpoint.template:
            continue
        bogus = {key: missing for key in ids}
        body = _fill(BODIES.get(endpoint.template), ids)
        response = client.request(endpoint.method, endpoint.path(bogus), json=body, headers=h)
        _assert_error(response, {404})
        assert response.json()["error"]["code"].endswith("_not_found")
    booth = client.post(
        "/api/booths",
        json={"slot_id": missing, "organisation_id": ids["org"], "fascia_name": "X"},
        headers=h,
    )
    _assert_error(booth, {404}, "slot_not_found")


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("/api/expos", {"slug": "test-expo", "name": "Again"}, "expo_exists"),
        ("/api/organisations", {"name": "Altai Honey", "country": "RU"}, "organisation_exists"),
        ("/api/expos/{expo}/halls", {"name": "Hall A"}, "hall_exists"),
        (
            "/api/halls/{hall}/slots",
            {"number": "A1", "template": "shell", "width": 3, "depth": 3, "x": 20, "z": 10},
            "slot_exists",
        ),
        (
            "/api/halls/{hall}/slots",
            {"number": "Q1", "template": "shell", "width": 3, "depth": 3, "x": 1, "z": 1},
            "slot_overlaps",
        ),
        (
            "/api/booths",
            {"slot_id": "{slot}", "organisation_id": "{org}", "fascia_name": "Twice"},
            "slot_taken",
        ),
        (
            "/api/booths/{booth}/products",
            {"name": "Altai Honey product", "category": "honey", "country": "RU"},
            "product_exists",
        ),
    ],
)
def test_duplicates_are_409_with_a_code(
    client: TestClient,
    world: World,
    ids: dict[str, str],
    path: str,
    body: dict[str, object],
    code: str,
) -> None:
    response = client.post(path.format(**ids), json=_fill(body, ids), headers=world.admin.headers)
    _assert_error(response, {409}, code)


def test_domain_rules_are_422_with_a_code(
    client: TestClient, world: World, ids: dict[str, str]
) -> None:
    h = world.admin.headers
    outside = client.post(
        f"/api/halls/{ids['hall']}/slots",
        json={"number": "Z1", "template": "island", "width": 6, "depth": 6, "x": 1000, "z": 0},
        headers=h,
    )
    _assert_error(outside, {422}, "slot_outside_hall")
    no_currency = client.post(
        f"/api/booths/{ids['booth']}/products",
        json={"name": "P", "category": "tea", "country": "LK", "price": "3"},
        headers=h,
    )
    _assert_error(no_currency, {422}, "validation_error")
    dropped_currency = client.patch(
        f"/api/products/{ids['product']}", json={"currency": None}, headers=h
    )
    _assert_error(dropped_currency, {422}, "validation_error")
    null_name = client.patch(f"/api/expos/{ids['expo']}", json={"name": None}, headers=h)
    _assert_error(null_name, {422}, "validation_error")
    reversed_dates = client.patch(
        f"/api/expos/{ids['expo']}",
        json={"starts_on": "2026-06-10", "ends_on": "2026-06-01"},
        headers=h,
    )
    _assert_error(reversed_dates, {422})
    naive_time = client.post(
        "/api/tours",
        json={
            "hall_id": ids["hall"],
            "guide_id": ids["guide"],
            "title": "T",
            "starts_at": "2030-01-01T10:00:00",
        },
        headers=h,
    )
    _assert_error(naive_time, {422}, "validation_error")
    foreign_booth = client.post(
        "/api/tours",
        json={
            "hall_id": ids["hall"],
            "guide_id": ids["guide"],
            "title": "T",
            "starts_at": "2030-01-01T10:00:00Z",
            "route": [ids["hall"]],
        },
        headers=h,
    )
    _assert_error(foreign_booth, {422}, "booth_not_in_hall")
    bidi = client.post(
        "/api/organisations", json={"name": "evil\u202egpj.exe", "country": "RU"}, headers=h
    )
    _assert_error(bidi, {422}, "validation_error")
    # Nothing above changed what was stored.
    assert ok(client.get(f"/api/products/{ids['product']}"))["currency"] == "USD"
    assert ok(client.get(f"/api/expos/{ids['expo']}"))["name"] == "Test Expo"


def test_an_oversize_body_is_413_whether_declared_or_chunked(
    client: TestClient, world: World
) -> None:
    h = {**world.admin.headers, "Content-Type": "application/json"}
    big = b'{"slug": "big", "name": "' + b"x" * 70_000 + b'"}'
    declared = client.post("/api/expos", content=big, headers=h)
    _assert_error(declared, {413}, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the body arrives in pieces
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    chunked = client.post("/api/expos", content=chunks(), headers=h)
    _assert_error(chunked, {413}, "payload_too_large")
    assert ok(client.get("/api/expos"))["total"] == 1
