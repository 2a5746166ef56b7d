"""Browsing an expo: halls, booths and products with filters and pagination, on both databases."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.factories import World, ok


def test_an_expo_lists_its_halls_booths_and_products(client: TestClient, world: World) -> None:
    expos = ok(client.get("/api/expos"))
    assert [e["slug"] for e in expos["items"]] == ["test-expo"]
    halls = ok(client.get(f"/api/expos/{world.expo['id']}/halls"))
    assert [h["name"] for h in halls["items"]] == ["Hall A"]
    booths = ok(client.get(f"/api/halls/{world.hall['id']}/booths"))
    assert [
        (b["slot_number"], b["organisation"]["country"], b["product_count"])
        for b in booths["items"]
    ] == [
        ("A1", "RU", 1),
        ("A2", "AZ", 1),
    ]
    products = ok(client.get(f"/api/booths/{world.booths[0]['id']}/products"))
    assert products["items"][0]["names"] == {
        "en": "Altai Honey product",
        "ru": "Продукт",
        "zh": "产品",
    }
    assert products["items"][0]["price"] == "10.50"


def test_booths_and_products_filter_by_country_and_category(
    client: TestClient, world: World
) -> None:
    expo = world.expo["id"]
    by_country = ok(client.get(f"/api/expos/{expo}/booths", params={"country": "az"}))
    assert [b["fascia_name"] for b in by_country["items"]] == ["Baku Wines"]
    by_category = ok(
        client.get(f"/api/halls/{world.hall['id']}/booths", params={"category": "honey"})
    )
    assert [b["fascia_name"] for b in by_category["items"]] == ["Altai Honey"]
    wine = ok(client.get(f"/api/expos/{expo}/products", params={"category": "wine"}))
    assert [p["name"] for p in wine["items"]] == ["Baku Wines product"]
    nothing = ok(
        client.get(f"/api/expos/{expo}/products", params={"category": "wine", "country": "RU"})
    )
    assert nothing == {"items": [], "total": 0, "limit": 50, "offset": 0}
    search = ok(client.get(f"/api/expos/{expo}/products", params={"q": "ALTAI"}))
    assert search["total"] == 1
    literal = ok(client.get(f"/api/expos/{expo}/products", params={"q": "%"}))
    assert literal["total"] == 0, "LIKE wildcards in a search are literal characters"
    facets = ok(client.get(f"/api/expos/{expo}/facets"))
    assert facets["categories"] == [{"value": "honey", "count": 1}, {"value": "wine", "count": 1}]


def test_pages_are_stable_and_counted(client: TestClient, world: World) -> None:
    h = world.admin.headers
    for n in range(5):
        ok(
            client.post(
                f"/api/booths/{world.booths[0]['id']}/products",
                json={"name": f"Jar {n}", "category": "honey", "country": "RU"},
                headers=h,
            ),
            201,
        )
    url = f"/api/booths/{world.booths[0]['id']}/products"
    first = ok(client.get(url, params={"limit": 4}))
    second = ok(client.get(url, params={"limit": 4, "offset": 4}))
    assert first["total"] == second["total"] == 6
    names = [p["name"] for p in first["items"] + second["items"]]
    assert len(names) == len(set(names)) == 6
    assert client.get(url, params={"limit": 0}).status_code == 422
    assert client.get(url, params={"limit": 201}).json()["error"]["code"] == "validation_error"


def test_unknown_ids_are_404_with_a_code(client: TestClient, world: World) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    for path, code in [
        (f"/api/expos/{missing}", "expo_not_found"),
        (f"/api/expos/{missing}/halls", "expo_not_found"),
        (f"/api/halls/{missing}/booths", "hall_not_found"),
        (f"/api/booths/{missing}", "booth_not_found"),
        (f"/api/products/{missing}", "product_not_found"),
        (f"/api/tours/{missing}", "tour_not_found"),
    ]:
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == code
    assert client.get("/api/expos/not-a-uuid").json()["error"]["code"] == "validation_error"
    assert client.get("/api/nothing-here").json() == {
        "error": {"code": "not_found", "message": "Not Found"}
    }


def test_deleting_an_expo_removes_everything_in_it(client: TestClient, world: World) -> None:
    h = world.admin.headers
    assert client.delete(f"/api/expos/{world.expo['id']}", headers=h).status_code == 204
    assert client.get(f"/api/halls/{world.hall['id']}").status_code == 404
    assert client.get(f"/api/booths/{world.booths[0]['id']}").status_code == 404
    assert client.get(f"/api/products/{world.products[0]['id']}").status_code == 404
    # Organisations are not part of an expo: they stay.
    assert client.get(f"/api/organisations/{world.orgs[0]['id']}").status_code == 200
