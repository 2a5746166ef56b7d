from __future__ import annotations

import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from pipeline.model import Asset
from pipeline.steps.simplify import SPLIT_MIN_TRIANGLES, SimplifyOptions, relative_error, simplify
from pipeline.steps.weld import weld
from tests.pipeline.steps import asset_of, soup, textured_sphere, uv_sphere


@pytest.fixture(scope="module")
def sphere_200k() -> Asset:
    asset = textured_sphere(250, 401)
    assert asset.triangle_count > 199_000
    return asset


def diagonal(asset: Asset) -> float:
    lo, hi = asset.bounds()
    return float(np.linalg.norm(hi - lo))


def test_an_asset_within_budget_is_returned_unchanged() -> None:
    asset = textured_sphere(10, 20)
    assert simplify(asset, SimplifyOptions(max_triangles=asset.triangle_count)) is asset


def test_a_200k_sphere_fits_a_5k_budget_with_uvs_and_bounds_kept(sphere_200k: Asset) -> None:
    result = simplify(sphere_200k, SimplifyOptions(max_triangles=5_000))
    assert 4_000 <= result.triangle_count <= 5_000
    assert result.warnings == []
    prim = result.primitives[0]
    assert prim.uvs is not None
    assert prim.normals is not None
    assert prim.uvs.min() >= 0.0
    assert prim.uvs.max() <= 1.0
    lo, hi = result.bounds()
    lo0, hi0 = sphere_200k.bounds()
    tolerance = 0.01 * diagonal(sphere_200k)
    assert np.abs(lo - lo0).max() <= tolerance
    assert np.abs(hi - hi0).max() <= tolerance
    # The seam survives: the meridian at u = 0 still has a twin at u = 1.
    assert np.any(prim.uvs[:, 0] == 0.0)
    assert np.any(prim.uvs[:, 0] == 1.0)
    assert result.materials == sphere_200k.materials


def test_the_error_at_a_tenth_of_the_triangles_is_under_one_percent_of_the_diagonal(
    sphere_200k: Asset,
) -> None:
    budget = sphere_200k.triangle_count // 10
    result = simplify(sphere_200k, SimplifyOptions(max_triangles=budget))
    assert result.triangle_count <= budget
    error = relative_error(sphere_200k, result)
    assert 0.0 < error <= 0.01
    # Independent check on the sphere: every vertex is still on it, every face centre near it.
    prim = result.primitives[0]
    centres = prim.positions[prim.indices.reshape(-1, 3)].mean(axis=1)
    assert 1.0 - np.linalg.norm(centres, axis=1).min() <= 0.01 * diagonal(sphere_200k)


def test_simplified_normals_stay_unit_and_indices_in_range(sphere_200k: Asset) -> None:
    prim = simplify(sphere_200k, SimplifyOptions(max_triangles=5_000)).primitives[0]
    assert prim.normals is not None
    assert np.linalg.norm(prim.normals, axis=1) == pytest.approx(
        np.ones(prim.vertex_count), abs=1e-5
    )
    assert prim.indices.dtype == np.uint32
    assert int(prim.indices.max()) == prim.vertex_count - 1  # no unused vertices are kept
    assert len(np.unique(prim.indices)) == prim.vertex_count


def test_simplifying_twice_gives_byte_identical_arrays(sphere_200k: Asset) -> None:
    options = SimplifyOptions(max_triangles=5_000)
    first, second = simplify(sphere_200k, options), simplify(sphere_200k, options)
    for name in ("positions", "indices", "normals", "uvs"):
        assert (
            getattr(first.primitives[0], name).tobytes()
            == getattr(second.primitives[0], name).tobytes()
        )


def test_the_budget_is_shared_across_primitives_in_proportion() -> None:
    big = uv_sphere(60, 100, material=None)
    small = uv_sphere(30, 50, material=None, radius=3)
    result = simplify(asset_of(big, small), SimplifyOptions(max_triangles=3_000))
    counts = [p.triangle_count for p in result.primitives]
    assert sum(counts) <= 3_000
    assert counts[0] > 2 * counts[1]


def test_the_input_asset_is_not_modified() -> None:
    asset = textured_sphere(20, 40)
    indices = asset.primitives[0].indices.copy()
    simplify(asset, SimplifyOptions(max_triangles=200))
    assert np.array_equal(asset.primitives[0].indices, indices)
    assert asset.warnings == []


def test_a_soup_that_cannot_be_simplified_falls_back_with_warnings() -> None:
    # Unwelded triangles are all border: locked borders cannot move, so fallbacks are needed.
    asset = asset_of(soup(uv_sphere(20, 40)))
    result = simplify(asset, SimplifyOptions(max_triangles=300))
    assert result.triangle_count <= 300
    assert any("unlocked open borders" in warning for warning in result.warnings)
    assert any("sloppy" in warning for warning in result.warnings)


def test_relative_error_is_zero_for_the_same_mesh_and_the_offset_for_a_moved_one() -> None:
    asset = textured_sphere(10, 20)
    assert relative_error(asset, asset) == pytest.approx(0.0, abs=1e-6)
    prim = asset.primitives[0]
    moved = replace(asset, primitives=[replace(prim, positions=prim.positions + np.float32(0.1))])
    shift = float(np.linalg.norm([0.1, 0.1, 0.1]))
    assert 0.0 < relative_error(asset, moved) <= shift / diagonal(asset) + 1e-6


@pytest.mark.slow
def test_a_million_triangles_weld_and_simplify_in_time(capsys: pytest.CaptureFixture[str]) -> None:
    source = asset_of(soup(uv_sphere(500, 1001)))
    start = time.perf_counter()
    welded = weld(source)
    welded_at = time.perf_counter()
    lods = [simplify(welded, SimplifyOptions(max_triangles=n)) for n in (100_000, 25_000, 5_000)]
    done = time.perf_counter()
    assert [
        lod.triangle_count <= n for lod, n in zip(lods, (100_000, 25_000, 5_000), strict=True)
    ] == [True] * 3
    with capsys.disabled():
        sys.stderr.write(
            f"\n{source.triangle_count} triangles: weld {welded_at - start:.2f} s, "
            f"simplify to 3 LODs {done - welded_at:.2f} s\n"
        )
    assert done - start < 20.0


@pytest.fixture(scope="module")
def sphere_320k() -> Asset:
    asset = textured_sphere(400, 401)
    assert asset.triangle_count > 2 * SPLIT_MIN_TRIANGLES
    return asset


def open_edges(asset: Asset) -> int:
    """Edges used by one triangle only, with vertices welded by position (UV seams ignored)."""
    [prim] = asset.primitives
    _, welded = np.unique(prim.positions, axis=0, return_inverse=True)
    corners = welded.reshape(-1)[prim.indices].reshape(-1, 3)
    edges = np.sort(np.concatenate([corners[:, [0, 1]], corners[:, [1, 2]], corners[:, [2, 0]]]))
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return int((counts == 1).sum())


def test_a_large_mesh_simplified_in_parallel_slabs_matches_one_pass(sphere_320k: Asset) -> None:
    options = SimplifyOptions(max_triangles=30_000)
    whole = simplify(sphere_320k, replace(options, workers=1))
    split = simplify(sphere_320k, replace(options, workers=2))
    assert split.triangle_count <= 30_000
    assert split.triangle_count > 29_000
    assert split.warnings == whole.warnings == []
    # The locked cut between the slabs costs some accuracy, but not much.
    assert relative_error(sphere_320k, split) <= 1.5 * relative_error(sphere_320k, whole) + 1e-4


def test_slabs_leave_no_crack_along_their_cut(sphere_320k: Asset) -> None:
    # The sphere's only open edges are its UV seam (u = 0 and u = 1 differ in the last bit).
    seam = open_edges(sphere_320k)
    assert 0 < seam < 2_000
    split = simplify(sphere_320k, SimplifyOptions(max_triangles=30_000, workers=2))
    assert open_edges(split) == seam


def test_parallel_slabs_give_the_same_arrays_every_time(sphere_320k: Asset) -> None:
    options = SimplifyOptions(max_triangles=20_000, workers=2)
    first, second = simplify(sphere_320k, options), simplify(sphere_320k, options)
    for a, b in zip(first.primitives, second.primitives, strict=True):
        assert np.array_equal(a.indices, b.indices)
        assert np.array_equal(a.positions, b.positions)
