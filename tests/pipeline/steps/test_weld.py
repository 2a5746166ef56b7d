from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np
import pytest
import trimesh

from pipeline.errors import MeshError
from pipeline.model import Material, Primitive, Texture
from pipeline.steps import weld as weld_module
from pipeline.steps.weld import WeldOptions, weld
from tests.pipeline.steps import asset_of, primitive_from_trimesh, soup, uv_sphere


def triangles(*rows: tuple[int, int, int], vertices: int = 4) -> Primitive:
    positions = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [2, 2, 0]][:vertices])
    return Primitive(
        positions=positions.astype(np.float32),
        indices=np.array(rows, dtype=np.uint32).ravel(),
        normals=np.tile(np.array([0, 0, 1], dtype=np.float32), (vertices, 1)),
    )


def distinct_used_rows(prim: Primitive) -> int:
    """How many bitwise-distinct (position, normal, uv) rows the triangles reference."""
    assert prim.normals is not None
    assert prim.uvs is not None
    rows = np.hstack([prim.positions, prim.normals, prim.uvs])[np.unique(prim.indices)]
    return len(np.unique(np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1] * 4)))))


def test_a_triangle_soup_welds_back_to_shared_vertices() -> None:
    sphere = uv_sphere(8, 16)
    result = weld(asset_of(soup(sphere)))
    prim = result.primitives[0]
    assert prim.triangle_count == sphere.triangle_count
    # Every (position, normal, uv) row of the sphere is used once; only exact copies merge.
    assert prim.vertex_count == distinct_used_rows(sphere)
    assert prim.vertex_count < sphere.vertex_count


def test_seam_vertices_with_different_uvs_are_kept_apart() -> None:
    prim = weld(asset_of(soup(uv_sphere(8, 16)))).primitives[0]
    assert prim.uvs is not None
    equator = np.isclose(prim.positions[:, 1], 0.0, atol=1e-6) & np.isclose(
        prim.positions[:, 2], 0.0, atol=1e-6
    )
    on_seam = equator & (prim.positions[:, 0] > 0)
    assert sorted(prim.uvs[on_seam, 0].tolist()) == [0.0, 1.0]


def test_degenerate_triangles_are_removed() -> None:
    result = weld(asset_of(triangles((0, 1, 2), (1, 1, 3), (2, 3, 3))))
    assert result.triangle_count == 1


def test_duplicate_triangles_are_removed_in_any_rotation_but_back_faces_stay() -> None:
    result = weld(asset_of(triangles((0, 1, 2), (1, 2, 0), (2, 0, 1), (0, 2, 1))))
    tris = result.primitives[0].indices.reshape(-1, 3)
    assert tris.tolist() == [[0, 1, 2], [0, 2, 1]]


def test_vertices_no_triangle_uses_are_dropped() -> None:
    result = weld(asset_of(triangles((0, 1, 2), vertices=5)))
    assert result.primitives[0].vertex_count == 3


def test_a_triangle_whose_corners_weld_together_is_dropped() -> None:
    prim = triangles((0, 1, 2), (0, 1, 3))
    prim.positions[3] = prim.positions[1]  # the second triangle becomes (0, 1, 1) after welding
    assert weld(asset_of(prim)).triangle_count == 1


def test_primitives_sharing_a_material_are_joined_and_others_kept_apart() -> None:
    a, b, c = (replace(uv_sphere(4, 8), material=m) for m in (0, 1, 0))
    materials = [Material(name="red"), Material(name="blue", base_color_factor=(0, 0, 1, 1))]
    result = weld(asset_of(a, b, c, materials=materials))
    assert [p.material for p in result.primitives] == [0, 1]
    # a and c are identical: joined, then welded into one sphere's worth.
    assert result.primitives[0].triangle_count == a.triangle_count


def test_primitives_with_different_attributes_are_not_joined() -> None:
    a = uv_sphere(4, 8, material=0)
    b = replace(uv_sphere(4, 8, material=0, radius=2), uvs=None)
    result = weld(asset_of(a, b, materials=[Material()]))
    assert len(result.primitives) == 2


def test_identical_textures_and_materials_are_deduplicated() -> None:
    png = Texture(data=b"same bytes", mime_type="image/png", width=1, height=1, name="a")
    copy = Texture(data=b"same bytes", mime_type="image/png", width=1, height=1, name="b")
    other = Texture(data=b"other", mime_type="image/png", width=1, height=1)
    materials = [
        Material(name="one", base_color_texture=0),
        Material(name="two", base_color_texture=1),
        Material(name="three", base_color_texture=2),
    ]
    prims = [uv_sphere(4, 8, material=m, radius=m + 1) for m in (0, 1, 2)]
    result = weld(asset_of(*prims, materials=materials, textures=[png, copy, other]))
    assert [t.data for t in result.textures] == [b"same bytes", b"other"]
    assert [m.name for m in result.materials] == ["one", "three"]
    assert [m.base_color_texture for m in result.materials] == [0, 1]
    assert [p.material for p in result.primitives] == [0, 1]
    assert materials[2].base_color_texture == 2  # the input is untouched


def test_a_missing_material_is_a_mesh_error() -> None:
    with pytest.raises(MeshError) as caught:
        weld(asset_of(uv_sphere(4, 8, material=3)))
    assert caught.value.code == "mesh_reference"


def test_a_box_without_normals_gets_hard_edges() -> None:
    prim = primitive_from_trimesh(trimesh.creation.box(), normals=False)
    result = weld(asset_of(soup(prim))).primitives[0]
    assert result.normals is not None
    assert result.vertex_count == 24  # 4 corners per face, each with the face's normal
    assert sorted({tuple(n) for n in result.normals.round(6).tolist()}) == sorted(
        {(x, y, z) for x, y, z in np.vstack([np.eye(3), -np.eye(3)]).tolist()}
    )


def test_a_sphere_without_normals_gets_smooth_outward_normals() -> None:
    mesh = trimesh.creation.icosphere(subdivisions=3)
    prim = primitive_from_trimesh(mesh, normals=False)
    result = weld(asset_of(soup(prim))).primitives[0]
    assert result.normals is not None
    assert result.vertex_count == len(mesh.vertices)
    radial = result.positions / np.linalg.norm(result.positions, axis=1, keepdims=True)
    assert np.einsum("ij,ij->i", result.normals, radial).min() > 0.99
    assert np.linalg.norm(result.normals, axis=1) == pytest.approx(
        np.ones(result.vertex_count), abs=1e-6
    )


def test_flat_normals_can_be_asked_for_and_none_left_out() -> None:
    prim = primitive_from_trimesh(trimesh.creation.icosphere(subdivisions=1), normals=False)
    flat = weld(asset_of(prim), WeldOptions(normals="flat")).primitives[0]
    assert flat.vertex_count == 3 * prim.triangle_count
    assert weld(asset_of(prim), WeldOptions(normals="none")).primitives[0].normals is None


def test_welding_is_deterministic_and_leaves_the_input_alone() -> None:
    prim = soup(uv_sphere(12, 24))
    before = prim.positions.copy()
    first = weld(asset_of(prim)).primitives[0]
    second = weld(asset_of(prim)).primitives[0]
    for name in ("positions", "indices", "normals", "uvs"):
        assert getattr(first, name).tobytes() == getattr(second, name).tobytes()
    assert np.array_equal(prim.positions, before)
    assert prim.vertex_count == 3 * prim.triangle_count


def test_hash_collisions_are_resolved_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    # A zero multiplier makes every row hash alike: the exact regrouping must do all the work.
    monkeypatch.setattr(weld_module, "_FNV_PRIME", np.uint64(0))
    sphere = uv_sphere(6, 12)
    result = weld(asset_of(soup(sphere), soup(sphere))).primitives[0]
    assert result.triangle_count == sphere.triangle_count
    assert result.vertex_count == distinct_used_rows(sphere)


@pytest.mark.slow
def test_a_million_triangles_weld_quickly(caplog: pytest.LogCaptureFixture) -> None:
    sphere = uv_sphere(500, 1001)
    asset = asset_of(sphere)
    weld(asset_of(uv_sphere(10, 10)))  # warm up imports
    timings = {}
    for name, case in (("indexed", asset), ("soup", asset_of(soup(sphere)))):
        start = time.perf_counter()
        result = weld(case)
        timings[name] = time.perf_counter() - start
        assert result.triangle_count == sphere.triangle_count
    bare = asset_of(replace(soup(sphere), normals=None, uvs=None))
    start = time.perf_counter()
    weld(bare)
    timings["soup without normals"] = time.perf_counter() - start
    with caplog.at_level(logging.INFO):
        logging.getLogger(__name__).info("weld of %d triangles: %s", sphere.triangle_count, timings)
    assert max(timings.values()) < 20.0
