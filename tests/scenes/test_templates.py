"""Booth templates: structure inside the footprint, slots that do not overlap, boards in place."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scenes.errors import SceneError
from scenes.templates import NOMINAL_SIZES, TEMPLATES, BoothKit, Slot, build_kit

SIZES = [(t, *NOMINAL_SIZES[t]) for t in TEMPLATES] + [("shell", 4.0, 3.0), ("island", 8.0, 6.0)]


def slot_box(slot: Slot) -> tuple[np.ndarray, np.ndarray]:
    base, size = np.array(slot.base), np.array(slot.size)
    low = base - [size[0] / 2, 0, size[2] / 2]
    return low, low + size


@pytest.mark.parametrize(("template", "width", "depth"), SIZES)
def test_the_structure_stays_inside_the_footprint_and_under_the_height(
    template: str, width: float, depth: float
) -> None:
    kit = build_kit(template, width, depth)
    positions = np.concatenate([p.positions for p in kit.structure])
    assert positions[:, 0].min() >= -width / 2 - 1e-5
    assert positions[:, 0].max() <= width / 2 + 1e-5
    assert positions[:, 2].min() >= -depth / 2 - 1e-5
    assert positions[:, 2].max() <= depth / 2 + 1e-5
    assert positions[:, 1].min() >= -1e-6
    assert positions[:, 1].max() <= kit.height


@pytest.mark.parametrize(("template", "width", "depth"), SIZES)
def test_slots_lie_inside_the_booth_and_never_overlap(
    template: str, width: float, depth: float
) -> None:
    kit = build_kit(template, width, depth)
    assert len(kit.slots) >= 5
    boxes = [slot_box(s) for s in kit.slots]
    for low, high in boxes:
        assert low[0] >= -width / 2 - 1e-6
        assert high[0] <= width / 2 + 1e-6
        assert low[2] >= -depth / 2 - 1e-6
        assert high[2] <= depth / 2 + 1e-6
    for (a_low, a_high), (b_low, b_high) in itertools.combinations(boxes, 2):
        overlap = np.all(a_low < b_high - 1e-6) and np.all(b_low < a_high - 1e-6)
        assert not overlap


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_every_template_has_a_fascia_sign_and_a_logo_board(template: str) -> None:
    kit = build_kit(template, *NOMINAL_SIZES[template])
    assert kit.signs
    assert kit.logos
    for board in kit.signs:
        assert board.center[1] > 2.0  # above head height, like a real fascia
        assert board.width > 4 * board.height


def test_an_island_is_named_on_all_four_sides() -> None:
    kit = build_kit("island", 6.0, 6.0)
    assert sorted(b.facing for b in kit.signs) == ["+x", "+z", "-x", "-z"]


def test_the_far_detail_keeps_walls_and_boards_but_no_props() -> None:
    full, far = build_kit("corner", 6.0, 3.0), build_kit("corner", 6.0, 3.0, detail=1)
    assert far.slots == []
    assert far.signs == full.signs
    assert sum(p.triangle_count for p in far.structure) < sum(
        p.triangle_count for p in full.structure
    )


def test_faces_wind_counter_clockwise_around_their_normals() -> None:
    kit: BoothKit = build_kit("shell", 3.0, 3.0)
    for prim in kit.structure:
        tri = prim.positions[prim.indices.reshape(-1, 3)]
        face = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        assert prim.normals is not None
        normal = prim.normals[prim.indices.reshape(-1, 3)].mean(axis=1)
        assert np.all(np.einsum("ij,ij->i", face, normal) > 0)


@pytest.mark.parametrize(
    ("template", "width", "depth", "code"),
    [("pagoda", 3.0, 3.0, "template_unknown"), ("shell", 1.0, 3.0, "booth_size_invalid"),
     ("island", 6.0, 60.0, "booth_size_invalid")],
)  # fmt: skip
def test_unknown_templates_and_absurd_sizes_are_refused_with_a_code(
    template: str, width: float, depth: float, code: str
) -> None:
    with pytest.raises(SceneError) as caught:
        build_kit(template, width, depth)
    assert caught.value.code == code
