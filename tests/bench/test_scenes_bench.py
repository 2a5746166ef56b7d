"""The pure helpers of bench/scenes.py and bench/_scene_inputs.py, on halls of two or three booths."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench._scene_inputs import (
    booth_colors,
    booth_names,
    draw_products,
    hall_booths,
    renamed,
    template_mix,
)
from bench.pipeline import ToolFailed
from bench.scenes import (
    check_stored,
    first_view_bytes,
    floor_distance,
    manifest_parts,
    nearest_booths,
    put_into,
    script_of,
)
from scenes.build import HallBuild, PlacedBooth, build_hall
from scenes.layout import SlotSpec, hall_layout
from scenes.manifest import BoothRecord, ManifestBooth, Stored, build_manifest, dumps

HALL_WIDTH, HALL_DEPTH = 30.0, 20.0  # spawn points at z = 8, x from -3 to 3


def _record(lod0: int) -> BoothRecord:
    lods = [Stored(f"scenes/{lod0}-{i}.glb", lod0 // (i + 1), 100) for i in range(3)]
    return BoothRecord("digest", lods, [], ((-1.5, 0.0, -1.5), (1.5, 2.5, 1.5)))


def _manifest(slots: list[SlotSpec], lod0_bytes: list[int], shell_bytes: int) -> dict[str, Any]:
    layout = hall_layout(HALL_WIDTH, HALL_DEPTH, slots)
    booths = [
        ManifestBooth(f"booth-{slot.number}", slot.number, "shell", slot, _record(size))
        for slot, size in zip(slots, lod0_bytes, strict=True)
    ]
    shell = Stored("scenes/shell.glb", shell_bytes, 10)
    return build_manifest("hall", "Hall", layout, shell, booths)


# Three shells: A1 at the back wall, A2 near the entrance on the right, A3 near it on the left.
# The first spawn point is at (-3, 0, 8): A3 (x -7.5..-4.5, z 3.5..6.5) is nearest, then A2.
SLOTS = [
    SlotSpec("A1", 3.0, 3.0, -3.0, -5.0),
    SlotSpec("A2", 3.0, 3.0, 6.0, 5.0),
    SlotSpec("A3", 3.0, 3.0, -6.0, 5.0),
]


def test_the_floor_distance_is_zero_inside_a_booth_and_euclidean_beyond_a_corner() -> None:
    booth = {"bounds": {"min": [0.0, 0.0, 0.0], "max": [2.0, 2.5, 2.0]}}

    assert floor_distance((1.0, 0.0, 1.0), booth) == 0.0
    assert floor_distance((1.0, 0.0, 5.0), booth) == pytest.approx(3.0)
    assert floor_distance((5.0, 9.0, 6.0), booth) == pytest.approx(5.0)  # height is ignored


def test_booths_are_ranked_by_their_distance_to_the_first_spawn_point_not_by_slot_order() -> None:
    manifest = _manifest(SLOTS, [10_000, 20_000, 40_000], 1_000)

    assert [b["number"] for b in nearest_booths(manifest, 3)] == ["A3", "A2", "A1"]


def test_the_first_view_is_the_shell_plus_the_lod0_of_the_nearest_booths_only() -> None:
    manifest = _manifest(SLOTS, [10_000, 20_000, 40_000], 1_000)

    assert first_view_bytes(manifest) == 1_000 + 40_000
    assert first_view_bytes(manifest, count=2) == 1_000 + 40_000 + 20_000


def test_another_spawn_point_can_have_another_nearest_booth() -> None:
    manifest = _manifest(SLOTS, [10_000, 20_000, 40_000], 1_000)

    assert nearest_booths(manifest, 1, spawn=4)[0]["number"] == "A2"  # spawn point at x = 3


def test_manifest_parts_add_up_to_the_manifest_less_its_punctuation() -> None:
    manifest = _manifest(SLOTS, [10_000, 20_000, 40_000], 1_000)
    parts = manifest_parts(manifest)
    booths = manifest["booths"]
    # Top level: braces and a comma between keys; each booth: braces, commas between its fields
    # and between booths, the brackets of the list and the "booths": key.
    fields = len(booths[0])
    punctuation = 2 + (len(manifest) - 1) + len(booths) * (2 + fields - 1)
    punctuation += len(booths) - 1 + 2 + len('"booths":')

    assert sum(parts.values()) + punctuation == len(dumps(manifest))
    assert parts["booths.lods"] > parts["booths.id"] > 0


def test_scripts_are_told_apart_by_the_first_letter_that_is_not_latin() -> None:
    assert script_of("Nordic Textiles") == "Latin"
    assert script_of("Северные Ремёсла") == "Cyrillic"
    assert script_of("东方茶业") == "CJK"
    assert script_of("さくら茶舗") == "CJK"
    assert script_of("3D Печать") == "Cyrillic"


def test_a_hundred_generated_names_are_distinct_and_cover_latin_cyrillic_and_cjk() -> None:
    names = [name for name, _script in booth_names(100)]
    scripts = [script_of(name) for name in names]

    assert len(set(names)) == 100
    assert {s: scripts.count(s) for s in set(scripts)} == {"Latin": 34, "Cyrillic": 33, "CJK": 33}


def test_a_hundred_generated_colour_pairs_are_distinct() -> None:
    primaries = [primary for primary, _accent in booth_colors(100)]

    assert len(set(primaries)) == 100
    assert all(len(c) == 7 and c.startswith("#") for c in primaries)


def test_the_template_mix_is_six_shells_three_corners_and_one_island_in_ten() -> None:
    mix = template_mix(100)

    assert {t: mix.count(t) for t in set(mix)} == {"shell": 60, "corner": 30, "island": 10}


def test_products_are_drawn_from_the_pool_with_the_same_draw_every_time() -> None:
    pool = [f"p{i}" for i in range(10)]
    drawn = draw_products(50, 5, pool)

    assert drawn == draw_products(50, 5, pool)
    assert all(len(booth) == 5 and set(booth) <= set(pool) for booth in drawn)
    assert {name for booth in drawn for name in booth} == set(pool)
    assert len({tuple(booth) for booth in drawn}) > 1


def test_no_product_repeats_within_a_booth_while_the_pool_is_large_enough() -> None:
    assert all(len(set(booth)) == 5 for booth in draw_products(50, 5, ["a", "b", "c", "d", "e"]))
    assert all(len(booth) == 4 for booth in draw_products(3, 4, ["a", "b"]))
    assert draw_products(3, 0, []) == [[], [], []]


def test_product_ids_are_unique_within_a_booth_even_when_the_same_glb_repeats() -> None:
    pool = {"only": (b"lod0", b"lod1", b"lod2")}
    _width, _depth, booths = hall_booths(pool, count=2, per_booth=3)

    for booth in booths:
        ids = [p.id for p in booth.spec.products]
        assert len(set(ids)) == 3
        assert {p.lods for p in booth.spec.products} == {pool["only"]}
    assert booths[0].spec.logo != booths[1].spec.logo


def test_booth_and_product_ids_are_uuids_like_the_servers_and_the_same_every_run() -> None:
    pool = {"only": (b"lod0", b"lod1", b"lod2")}
    booths = hall_booths(pool, count=2, per_booth=2)[2]
    ids = [b.spec.id for b in booths] + [p.id for b in booths for p in b.spec.products]

    assert all(str(uuid.UUID(i)) == i for i in ids)
    assert len(set(ids)) == 6
    assert ids[0] == hall_booths(pool, count=1, per_booth=0)[2][0].spec.id


@dataclass(frozen=True)
class TinyHall:
    booths: list[PlacedBooth]
    width: float
    depth: float
    folder: Path
    first: HallBuild

    def manifest(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.first.manifest_bytes)
        return document


@pytest.fixture(scope="module")
def tiny_hall(tmp_path_factory: pytest.TempPathFactory) -> TinyHall:
    """Three real booths (no products) built into a folder, as the benchmark's child does."""
    width, depth, booths = hall_booths({}, count=3, per_booth=0)
    folder = tmp_path_factory.mktemp("blobs")
    first = build_hall("tiny", "Tiny", width, depth, booths, put_into(folder))
    return TinyHall(booths, width, depth, folder, first)


def test_the_first_view_counts_the_bytes_of_the_files_a_visitor_downloads(
    tiny_hall: TinyHall,
) -> None:
    manifest = tiny_hall.manifest()
    nearest = nearest_booths(manifest, 1)[0]
    on_disk = (tiny_hall.folder / manifest["shell"]["key"]).stat().st_size
    on_disk += (tiny_hall.folder / nearest["lods"][0]["key"]).stat().st_size
    every_file = sum(p.stat().st_size for p in tiny_hall.folder.rglob("*.glb"))

    assert first_view_bytes(manifest) == on_disk
    assert check_stored(manifest, tiny_hall.folder) == every_file


def test_a_stored_glb_of_another_size_fails_the_check(tiny_hall: TinyHall) -> None:
    manifest = tiny_hall.manifest()
    manifest["shell"]["bytes"] += 1

    with pytest.raises(ToolFailed, match="is not stored with"):
        check_stored(manifest, tiny_hall.folder)


def test_renaming_one_booth_of_the_tiny_hall_rebuilds_that_booth_only(tiny_hall: TinyHall) -> None:
    changed = renamed(tiny_hall.booths, 1)

    again = build_hall(
        "tiny", "Tiny", tiny_hall.width, tiny_hall.depth, changed, put_into(tiny_hall.folder),
        tiny_hall.first.records,
    )  # fmt: skip

    assert changed[1].spec.name != tiny_hall.booths[1].spec.name
    assert again.rebuilt == [changed[1].spec.id]
