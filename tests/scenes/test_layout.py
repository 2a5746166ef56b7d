"""Hall layout: rows of booths with aisles, and where visitors spawn, walk and gather."""

from __future__ import annotations

import itertools

import pytest

from scenes.errors import SceneError
from scenes.layout import (
    MARGIN,
    SlotSpec,
    footprint,
    grid_slots,
    hall_layout,
    hall_size_for,
    rotate,
    to_hall,
)

DEMO_SIZES = [(6.0, 3.0), (3.0, 3.0), (6.0, 6.0), (3.0, 3.0)] * 4


def overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] - 1e-6 and b[0] < a[2] - 1e-6 and a[1] < b[3] - 1e-6 and b[1] < a[3] - 1e-6


def test_grid_booths_stay_inside_the_hall_margins_and_never_overlap() -> None:
    slots = grid_slots(DEMO_SIZES, 64.0, 44.0)
    assert len(slots) == len(DEMO_SIZES)
    rects = [footprint(s) for s in slots]
    for x0, z0, x1, z1 in rects:
        assert x0 >= -32 + MARGIN - 1e-6
        assert x1 <= 32 - MARGIN + 1e-6
        assert z0 >= -22 + MARGIN - 1e-6
        assert z1 <= 22 - MARGIN + 1e-6
    assert not any(overlaps(a, b) for a, b in itertools.combinations(rects, 2))


def test_booths_are_numbered_by_row_letter_and_place() -> None:
    numbers = [s.number for s in grid_slots(DEMO_SIZES, 64.0, 44.0)]
    assert numbers[0] == "A1"
    assert len(set(numbers)) == len(numbers)
    assert {n[0] for n in numbers} >= {"A", "B"}


def test_too_many_booths_for_the_hall_are_refused() -> None:
    with pytest.raises(SceneError) as caught:
        grid_slots([(6.0, 6.0)] * 40, 30.0, 20.0)
    assert caught.value.code == "hall_too_small"


def test_a_booth_wider_than_a_narrow_hall_is_refused() -> None:
    with pytest.raises(SceneError) as caught:
        grid_slots([(6.0, 6.0)], 10.0, 100.0)
    assert caught.value.code == "hall_too_small"
    assert len(grid_slots([(6.0, 6.0)], 6.0 + 2 * MARGIN, 100.0)) == 1


def test_a_hall_sized_for_a_hundred_booths_holds_them() -> None:
    sizes = [(3.0, 3.0), (6.0, 3.0), (6.0, 6.0)] * 34
    width, depth = hall_size_for(sizes)
    assert len(grid_slots(sizes, width, depth)) == len(sizes)


def test_rotation_turns_the_front_of_a_booth_counter_clockwise_seen_from_above() -> None:
    assert rotate((0.0, 0.0, 1.0), 90) == pytest.approx((1.0, 0.0, 0.0))
    assert rotate((0.0, 0.0, 1.0), 180) == pytest.approx((0.0, 0.0, -1.0))
    slot = SlotSpec("A1", 6.0, 3.0, 10.0, -5.0, 90)
    assert footprint(slot) == pytest.approx((8.5, -8.0, 11.5, -2.0))
    assert to_hall(slot, (0.0, 0.0, 1.5)) == pytest.approx((11.5, 0.0, -5.0))


def test_each_booth_gets_a_waypoint_in_the_aisle_in_front_looking_at_it() -> None:
    slots = [SlotSpec("A1", 3.0, 3.0, 0.0, 0.0, 0), SlotSpec("A2", 3.0, 3.0, 10.0, 0.0, 90)]
    layout = hall_layout(40.0, 30.0, slots)
    first, second = layout.waypoints
    assert first.position[2] > 1.5
    assert first.yaw == 0.0
    assert second.position[0] > 11.5
    assert second.yaw == 90.0
    for waypoint, slot in zip(layout.waypoints, slots, strict=True):
        x0, z0, x1, z1 = footprint(slot)
        x, _, z = waypoint.position
        assert not (x0 <= x <= x1 and z0 <= z <= z1)


def test_spawn_points_are_by_the_entrance_and_teleport_targets_avoid_booths() -> None:
    slots = grid_slots(DEMO_SIZES, 64.0, 44.0)
    layout = hall_layout(64.0, 44.0, slots)
    assert all(p.position[2] > 44 / 2 - 4 for p in layout.spawn_points)
    rects = [footprint(s) for s in slots]
    assert len(layout.teleport_targets) > 20
    for x, _, z in layout.teleport_targets:
        assert abs(x) < 32
        assert abs(z) < 22
        assert not any(r[0] <= x <= r[2] and r[1] <= z <= r[3] for r in rects)
