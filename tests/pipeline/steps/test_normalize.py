from __future__ import annotations

import numpy as np
import pytest
import trimesh

from pipeline.errors import MeshError
from pipeline.model import Format, Primitive
from pipeline.steps.normalize import NormalizeOptions, normalize
from tests.pipeline.steps import asset_of, primitive_from_trimesh


def box(
    extents: tuple[float, float, float], at: tuple[float, float, float] = (0, 0, 0)
) -> Primitive:
    mesh = trimesh.creation.box(extents=extents)
    mesh.apply_translation(at)
    return primitive_from_trimesh(mesh)


def extent(prim: Primitive) -> np.ndarray:
    size: np.ndarray = prim.positions.max(axis=0) - prim.positions.min(axis=0)
    return size


def test_a_z_up_box_becomes_y_up_with_its_real_dimensions() -> None:
    asset = asset_of(box((2.0, 3.0, 4.0)), z_up_hint=True, unit_hint="m")
    result, dims = normalize(asset)
    assert dims.rotated
    assert (dims.x, dims.y, dims.z) == pytest.approx((2.0, 4.0, 3.0))
    assert extent(result.primitives[0]) == pytest.approx([2.0, 4.0, 3.0])
    assert not result.z_up_hint


def test_the_up_option_overrides_the_loaders_z_up_hint() -> None:
    asset = asset_of(box((2.0, 3.0, 4.0)), z_up_hint=True, unit_hint="m")
    _, dims = normalize(asset, NormalizeOptions(up="y"))
    assert not dims.rotated
    assert (dims.x, dims.y, dims.z) == pytest.approx((2.0, 3.0, 4.0))


def test_a_millimetre_hint_scales_by_a_thousandth() -> None:
    asset = asset_of(box((300.0, 200.0, 100.0)), unit_hint="mm")
    result, dims = normalize(asset)
    assert (dims.unit, dims.unit_source, dims.scale) == ("mm", "hint", 0.001)
    assert extent(result.primitives[0]) == pytest.approx([0.3, 0.2, 0.1])
    assert result.warnings == []


def test_the_unit_option_wins_over_the_hint() -> None:
    _, dims = normalize(asset_of(box((10, 10, 10)), unit_hint="mm"), NormalizeOptions(unit="in"))
    assert dims.unit == "in"
    assert dims.x == pytest.approx(0.254)


def test_the_product_stands_on_the_floor_with_its_footprint_centred() -> None:
    asset = asset_of(box((2.0, 1.0, 4.0), at=(10.0, 20.0, -30.0)), unit_hint="m")
    result, _ = normalize(asset)
    lo, hi = result.bounds()
    assert lo[1] == pytest.approx(0.0)
    assert hi[1] == pytest.approx(1.0)
    assert (lo[0] + hi[0]) / 2 == pytest.approx(0.0)
    assert (lo[2] + hi[2]) / 2 == pytest.approx(0.0)


def test_a_z_up_product_is_centred_after_rotation_across_primitives() -> None:
    asset = asset_of(box((1, 1, 1), at=(0, 5, 0)), box((1, 1, 1), at=(0, 5, 3)), z_up_hint=True)
    asset.unit_hint = "m"
    result, dims = normalize(asset)
    lo, hi = result.bounds()
    assert lo[1] == pytest.approx(0.0)
    assert hi[1] == pytest.approx(4.0)  # the old z range, -0.5 .. 3.5
    assert (lo[2] + hi[2]) / 2 == pytest.approx(0.0)
    assert dims.y == pytest.approx(4.0)


def test_normals_are_rotated_with_the_positions_and_unit_length() -> None:
    prim = Primitive(
        positions=np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32),
        indices=np.array([0, 1, 2], dtype=np.uint32),
        normals=np.array([[0, 0, 2], [0, 0, 1], [0, 3, 4]], dtype=np.float32),
    )
    result, _ = normalize(asset_of(prim, z_up_hint=True, unit_hint="m"))
    normals = result.primitives[0].normals
    assert normals is not None
    assert normals[0] == pytest.approx([0, 1, 0])  # +Z up becomes +Y up
    assert normals[2] == pytest.approx([0, 0.8, -0.6])  # +Y forward becomes -Z
    assert np.linalg.norm(normals, axis=1) == pytest.approx(np.ones(3))


def test_the_input_asset_is_not_modified() -> None:
    prim = box((300.0, 200.0, 100.0), at=(5, 5, 5))
    before = prim.positions.copy()
    asset = asset_of(prim, z_up_hint=True)
    normalize(asset)
    assert np.array_equal(prim.positions, before)
    assert asset.warnings == []
    assert asset.z_up_hint


@pytest.mark.parametrize(
    ("size", "unit"), [(250.0, "mm"), (51.0, "mm"), (20.0, "cm"), (1.2, "m"), (0.05, "m")]
)
def test_without_a_unit_the_size_heuristic_picks_one_and_says_so(size: float, unit: str) -> None:
    asset = asset_of(box((size, size / 2, size / 2)), source_format=Format.stl)
    result, dims = normalize(asset)
    assert (dims.unit, dims.unit_source) == (unit, "heuristic")
    assert any(f"assumed {unit}" in warning for warning in result.warnings)


def test_gltf_sources_are_metres_by_the_spec_whatever_their_size() -> None:
    result, dims = normalize(asset_of(box((250.0, 1.0, 1.0)), source_format=Format.glb))
    assert (dims.unit, dims.unit_source, dims.scale) == ("m", "spec", 1.0)
    assert any("250 m across" in warning for warning in result.warnings)


def test_a_tiny_product_in_metres_gets_a_warning() -> None:
    result, _ = normalize(asset_of(box((0.001, 0.001, 0.001)), unit_hint="m"))
    assert any("check the unit" in warning for warning in result.warnings)


def test_a_flat_poster_is_accepted() -> None:
    prim = Primitive(
        positions=np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32),
        indices=np.array([0, 1, 2], dtype=np.uint32),
    )
    _, dims = normalize(asset_of(prim, unit_hint="m"))
    assert (dims.x, dims.y, dims.z) == (1.0, 1.0, 0.0)


@pytest.mark.parametrize(
    ("positions", "code"),
    [
        ([[0, 0, 0], [0, 0, 0], [0, 0, 0]], "mesh_degenerate"),
        ([[0, 0, 0], [1, 0, 0], [2, 0, 0]], "mesh_degenerate"),
        ([[0, 0, 0], [1, 0, 0], [0, np.nan, 0]], "mesh_non_finite"),
        ([[0, 0, 0], [1, 0, 0], [0, np.inf, 0]], "mesh_non_finite"),
    ],
)
def test_degenerate_and_non_finite_meshes_are_rejected(
    positions: list[list[float]], code: str
) -> None:
    prim = Primitive(
        positions=np.array(positions, dtype=np.float32),
        indices=np.array([0, 1, 2], dtype=np.uint32),
    )
    with pytest.raises(MeshError) as caught:
        normalize(asset_of(prim, unit_hint="m"))
    assert caught.value.code == code


def test_a_nan_normal_is_rejected() -> None:
    prim = box((1, 1, 1))
    assert prim.normals is not None
    prim.normals[3] = np.nan
    with pytest.raises(MeshError, match="normal"):
        normalize(asset_of(prim))


def test_an_asset_without_triangles_is_rejected() -> None:
    empty = Primitive(positions=np.zeros((0, 3), np.float32), indices=np.zeros(0, np.uint32))
    with pytest.raises(MeshError) as caught:
        normalize(asset_of(empty))
    assert caught.value.code == "mesh_empty"
