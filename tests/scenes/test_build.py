"""Building booths and halls: valid GLBs, a manifest that matches its schema, cheap rebuilds."""

from __future__ import annotations

import json
from dataclasses import replace
from io import BytesIO
from typing import Any

import jsonschema
import numpy as np
import pytest
import trimesh
from PIL import Image, ImageDraw

from pipeline.meshopt_decode import decode_meshopt_glb
from pipeline.run import ALLOWED_WARNINGS, ConvertOptions, convert
from pipeline.validate import validate_many
from scenes.booth import BoothSpec, ProductModel, booth_digest, build_booth
from scenes.build import PlacedBooth, build_hall
from scenes.errors import SceneError
from scenes.layout import SlotSpec, footprint
from scenes.manifest import SCHEMA_PATH, BoothRecord, glb_key
from tests.pipeline.test_write import read_glb


def photo(color: tuple[int, int, int]) -> bytes:
    image = Image.new("RGB", (160, 120), color)
    ImageDraw.Draw(image).ellipse((40, 20, 120, 100), fill=(250, 250, 250))
    out = BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def logo() -> bytes:
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((4, 4, 60, 60), fill=(200, 40, 40, 255))
    out = BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def models(source: bytes, options: ConvertOptions, product_id: str) -> ProductModel:
    files = convert(source, options).files
    return ProductModel(
        product_id, (files["web/lod0.glb"], files["web/lod1.glb"], files["web/lod2.glb"])
    )


@pytest.fixture(scope="module")
def products() -> dict[str, ProductModel]:
    """Three small processed products: two photo cards and a 20 cm box."""
    box: bytes = trimesh.creation.box(extents=(200.0, 200.0, 200.0)).export(file_type="stl")
    return {
        "red": models(photo((200, 30, 30)), ConvertOptions(validate=False), "red"),
        "blue": models(photo((30, 30, 200)), ConvertOptions(validate=False), "blue"),
        "box": models(box, ConvertOptions(unit="mm", name="b.stl", validate=False), "box"),
    }


def spec(pool: dict[str, ProductModel], **changes: Any) -> BoothSpec:
    base = BoothSpec(
        id="b1",
        template="shell",
        width=3.0,
        depth=3.0,
        name="Highland Honey",
        tagline="Since 1998",
        logo=logo(),
        products=(pool["red"], pool["box"]),
    )
    return replace(base, **changes)


def hall_booths(products: dict[str, ProductModel]) -> list[PlacedBooth]:
    return [
        PlacedBooth(spec(products), SlotSpec("A1", 3.0, 3.0, -4.0, 0.0)),
        PlacedBooth(
            spec(
                products,
                id="b2",
                template="corner",
                width=6.0,
                name="Алтайский мёд",
                products=(products["blue"],),
            ),
            SlotSpec("A2", 6.0, 3.0, 4.0, 0.0, 90),
        ),
        PlacedBooth(
            spec(
                products,
                id="b3",
                template="island",
                width=6.0,
                depth=6.0,
                name="锡兰红茶",
                logo=None,
                products=tuple(products.values()),
            ),
            SlotSpec("B1", 6.0, 6.0, 0.0, -10.0, 180),
        ),
    ]


def is_product(node: dict[str, Any]) -> bool:
    return "product_id" in node.get("extras", {})


class Store:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.puts: list[str] = []

    def put(self, key: str, data: bytes) -> None:
        self.puts.append(key)
        self.objects[key] = data


def build(products: dict[str, ProductModel], store: Store, **kwargs: Any) -> Any:
    return build_hall("hall-1", "Hall 1", 40.0, 30.0, hall_booths(products), store.put, **kwargs)


def test_every_glb_of_a_hall_passes_the_khronos_validator(
    products: dict[str, ProductModel],
) -> None:
    store = Store()
    build(products, store)
    items = []
    for key, glb in sorted(store.objects.items()):
        items += [(key, glb), (f"{key} (decoded)", decode_meshopt_glb(glb))]
    reports = validate_many(items, allowed_warnings=ALLOWED_WARNINGS)
    assert len(reports) == 2 * (3 * 3 + 1)
    assert all(r.num_errors == 0 for r in reports)


def test_the_manifest_matches_its_schema_and_names_every_stored_glb(
    products: dict[str, ProductModel],
) -> None:
    store = Store()
    result = build(products, store)
    manifest = json.loads(result.manifest_bytes)
    jsonschema.validate(manifest, json.loads(SCHEMA_PATH.read_text()))
    keys = {manifest["shell"]["key"]} | {
        lod["key"] for b in manifest["booths"] for lod in b["lods"]
    }
    assert keys == set(store.objects)
    for booth in manifest["booths"]:
        for lod in booth["lods"]:
            assert lod["bytes"] == len(store.objects[lod["key"]])
            assert lod["key"] == glb_key(store.objects[lod["key"]])
    assert [b["number"] for b in manifest["booths"]] == ["A1", "A2", "B1"]


def test_hotspots_name_every_placed_product_and_sit_inside_their_booth(
    products: dict[str, ProductModel],
) -> None:
    manifest = json.loads(build(products, Store()).manifest_bytes)
    by_number = {b["number"]: b for b in manifest["booths"]}
    assert [h["product_id"] for h in by_number["A1"]["hotspots"]] == ["red", "box"]
    assert {h["product_id"] for h in by_number["B1"]["hotspots"]} == {"red", "blue", "box"}
    for booth in manifest["booths"]:
        low, high = booth["bounds"]["min"], booth["bounds"]["max"]
        for hotspot in booth["hotspots"]:
            x, y, z = hotspot["anchor"]
            assert low[0] <= x <= high[0]
            assert low[2] <= z <= high[2]
            assert 0.5 < y < high[1]


def test_a_rotated_booth_has_its_bounds_and_waypoint_turned_with_it(
    products: dict[str, ProductModel],
) -> None:
    manifest = json.loads(build(products, Store()).manifest_bytes)
    a2 = next(b for b in manifest["booths"] if b["number"] == "A2")
    x0, _z0, x1, z1 = footprint(SlotSpec("A2", 6.0, 3.0, 4.0, 0.0, 90))
    assert a2["bounds"]["min"][0] == pytest.approx(x0)
    assert a2["bounds"]["max"][2] == pytest.approx(z1)
    assert a2["waypoint"]["position"][0] > x1  # rotated 90: its front faces +x


def test_booth_lods_carry_the_products_and_get_lighter(products: dict[str, ProductModel]) -> None:
    built = build_booth(spec(products))
    triangles = [lod.triangles for lod in built.lods]
    sizes = [len(lod.glb) for lod in built.lods]
    assert triangles[0] >= triangles[1] >= triangles[2] > 0
    assert sizes[0] > sizes[2]
    document, _ = read_glb(decode_meshopt_glb(built.lods[0].glb))
    extras = [n["extras"]["product_id"] for n in document["nodes"] if is_product(n)]
    assert extras == ["red", "box"]
    lights = document["nodes"][0]["extras"]["lights"]
    assert len(lights) == 1  # one spot per 3 m of width
    assert lights[0]["position"][1] > 2.5 > lights[0]["target"][1]
    images = {image["mimeType"] for image in document["images"]}
    assert images == {"image/webp"}


def test_a_product_is_never_distorted_and_never_enlarged(products: dict[str, ProductModel]) -> None:
    built = build_booth(spec(products, products=tuple(products.values())))
    document, _ = read_glb(decode_meshopt_glb(built.lods[0].glb))
    for node in document["nodes"]:
        if is_product(node):
            sx, sy, sz = node.get("scale", [1.0, 1.0, 1.0])
            assert sx == sy == sz
            assert 0 < sx <= 1.0


def test_the_same_booth_gives_the_same_bytes_and_the_same_digest(
    products: dict[str, ProductModel],
) -> None:
    first, second = build_booth(spec(products)), build_booth(spec(products))
    assert [lod.glb for lod in first.lods] == [lod.glb for lod in second.lods]
    assert first.digest == second.digest == booth_digest(spec(products))
    assert booth_digest(spec(products, name="Other")) != first.digest
    assert booth_digest(spec(products, logo=None)) != first.digest


def test_changing_one_booth_rebuilds_only_that_booth(products: dict[str, ProductModel]) -> None:
    store = Store()
    first = build(products, store)
    assert sorted(first.rebuilt) == ["b1", "b2", "b3"]
    booths = hall_booths(products)
    booths[1] = PlacedBooth(replace(booths[1].spec, name="Renamed"), booths[1].slot)
    before = len(store.puts)
    again = build_hall("hall-1", "Hall 1", 40.0, 30.0, booths, store.put, previous=first.records)
    assert again.rebuilt == ["b2"]
    assert len(store.puts) - before == 3 + 1  # the booth's three LODs and the shell
    assert again.records["b1"] == first.records["b1"]
    assert again.manifest_bytes != first.manifest_bytes


def test_booth_records_survive_a_json_round_trip(products: dict[str, ProductModel]) -> None:
    records = build(products, Store()).records
    for record in records.values():
        assert BoothRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def test_more_products_than_slots_are_reported_not_dropped_silently(
    products: dict[str, ProductModel],
) -> None:
    many = tuple(replace(products["red"], id=f"p{i}") for i in range(12))
    built = build_booth(spec(products, products=many))
    assert built.unplaced
    assert len(built.placements) + len(built.unplaced) == 12
    assert all("no room" in w for w in built.warnings)


def test_a_broken_product_glb_is_refused_with_a_code(products: dict[str, ProductModel]) -> None:
    broken = ProductModel("bad", (b"glTF broken", b"x", b"y"))
    with pytest.raises(SceneError) as caught:
        build_booth(spec(products, products=(broken,)))
    assert caught.value.code == "product_invalid"


def test_a_logo_that_is_not_an_image_is_refused_with_a_code(
    products: dict[str, ProductModel],
) -> None:
    with pytest.raises(SceneError) as caught:
        build_booth(spec(products, logo=b"<svg/>"))
    assert caught.value.code == "logo_invalid"


def test_a_logo_with_transparency_is_cut_out(products: dict[str, ProductModel]) -> None:
    document, _ = read_glb(decode_meshopt_glb(build_booth(spec(products)).lods[0].glb))
    logo_material = next(m for m in document["materials"] if m.get("name") == "logo")
    assert logo_material["alphaMode"] == "MASK"
    assert np.isclose(logo_material.get("alphaCutoff", 0.5), 0.5)
