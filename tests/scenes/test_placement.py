"""Product placement: one product per slot, uniform scale only when too big, hotspots above."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scenes.placement import ProductBox, fit_scale, place
from scenes.templates import Slot, build_kit

PEDESTAL = Slot("pedestal", (1.0, 0.9, 0.5), (0.45, 0.6, 0.45))
SHELF = Slot("shelf", (-1.0, 1.0, 0.0), (0.28, 0.35, 1.0), "+x")  # along the left wall


def test_a_product_that_fits_keeps_its_size() -> None:
    [placement], unplaced = place([ProductBox("jar", (0.1, 0.15, 0.1))], [PEDESTAL])
    assert unplaced == []
    assert placement.scale == 1.0
    assert placement.position == PEDESTAL.base
    assert placement.size == (0.1, 0.15, 0.1)


def test_a_product_too_big_for_every_slot_is_scaled_down_uniformly_to_fit() -> None:
    [placement], _ = place([ProductBox("carpet", (2.0, 3.0, 0.05))], [PEDESTAL])
    assert placement.scale == pytest.approx(0.6 / 3.0)
    w, h, d = placement.size
    assert w / 2.0 == pytest.approx(h / 3.0) == pytest.approx(d / 0.05)  # never distorted
    assert w <= 0.45 + 1e-9
    assert h <= 0.6 + 1e-9


def test_a_side_shelf_turns_the_product_to_face_the_booth() -> None:
    [placement], _ = place([ProductBox("tin", (0.8, 0.2, 0.1))], [SHELF])
    assert placement.yaw == 90.0
    assert placement.scale == 1.0  # 0.8 m fits along the shelf's 1.0 m length


def test_every_product_gets_its_own_slot_and_the_rest_are_reported() -> None:
    slots = build_kit("shell", 3.0, 3.0).slots
    products = [ProductBox(f"p{i}", (0.2, 0.3, 0.2)) for i in range(len(slots) + 2)]
    placements, unplaced = place(products, slots)
    assert len({p.slot for p in placements}) == len(slots)
    assert unplaced == [f"p{len(slots)}", f"p{len(slots) + 1}"]


def test_big_slots_are_kept_for_big_products() -> None:
    counter = Slot("counter", (0.0, 1.0, 1.0), (0.9, 0.5, 0.45))
    small, big = ProductBox("small", (0.1, 0.1, 0.1)), ProductBox("big", (0.8, 0.45, 0.4))
    placements, _ = place([small, big], [counter, PEDESTAL])
    by_id = {p.product_id: p for p in placements}
    assert by_id["small"].slot == 1
    assert by_id["big"].slot == 0
    assert by_id["big"].scale == 1.0


def test_the_hotspot_floats_just_above_the_placed_product() -> None:
    [placement], _ = place([ProductBox("jar", (0.1, 0.15, 0.1))], [PEDESTAL])
    x, y, z = placement.anchor
    assert (x, z) == (PEDESTAL.base[0], PEDESTAL.base[2])
    assert PEDESTAL.base[1] + 0.15 < y < PEDESTAL.base[1] + 0.5


def test_a_product_with_a_non_finite_size_is_not_placed() -> None:
    placements, unplaced = place([ProductBox("bad", (math.nan, 1.0, 1.0))], [PEDESTAL])
    assert placements == []
    assert unplaced == ["bad"]


sizes = st.tuples(*[st.floats(0.001, 50.0, allow_nan=False)] * 3)


@given(st.lists(sizes, max_size=12))
def test_placements_never_scale_up_and_always_fit_their_slot(
    boxes: list[tuple[float, ...]],
) -> None:
    slots = build_kit("corner", 6.0, 3.0).slots
    products = [ProductBox(str(i), (b[0], b[1], b[2])) for i, b in enumerate(boxes)]
    placements, unplaced = place(products, slots)
    assert len(placements) + len(unplaced) == len(products)
    assert len({p.slot for p in placements}) == len(placements)
    for p in placements:
        assert 0 < p.scale <= 1.0
        assert p.scale == pytest.approx(fit_scale(products[int(p.product_id)].size, slots[p.slot]))
