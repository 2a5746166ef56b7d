"""Simplify step: reduce an asset to a triangle budget, keeping UVs, normals and seams.

meshoptimizer's attribute-aware simplifier (``meshopt_simplifyWithAttributes``) collapses edges
onto existing vertices, so every kept vertex keeps its UV, normal and colour; vertices that
share a position but differ in an attribute (UV seams, hard edges) are only collapsed along the
seam, so textures stay attached (research-pipeline.md T8; position-only simplifiers such as
fast-simplification drop UVs). Normals, UVs and colours are weighted into the error metric.

Policy, per primitive, with the budget split across primitives in proportion to their
triangle counts (largest remainder, so the shares sum to the budget):

1. attribute-aware with ``SIMPLIFY_LOCK_BORDER`` (open borders stay put: no growing holes,
   meshoptimizer #518);
2. if that cannot reach the share, attribute-aware without the border lock (warning);
3. if that still cannot, ``simplify_sloppy`` (warning): it ignores topology and attributes,
   but its indices still point at original vertices, so UVs survive where seams do.

Then ``optimize_vertex_cache`` reorders triangles for the post-transform cache and vertices
are renumbered in first-use order (what ``optimize_vertex_fetch`` does), dropping unused ones.

An asset already within budget is returned unchanged (the same object). The achieved error is
logged; :func:`relative_error` measures the geometric error of any result against its source
as a fraction of the bounding-box diagonal (the T8 metric).

Binding note: ``meshoptimizer.simplify_with_attributes`` (PyPI 0.2.30a0) declares no ctypes
argtypes for ``meshopt_simplifyWithAttributes``, so a Python float ``target_error`` is rejected
and the ``size_t`` arguments are passed as 32-bit ints (it crashed here). This module calls the
C function through its own correctly typed prototype on the binding's loaded library.
"""

from __future__ import annotations

import ctypes
import logging
import math
from dataclasses import dataclass, replace

import meshoptimizer  # type: ignore[import-untyped]
import numpy as np
from meshoptimizer._loader import lib as _meshopt_lib  # type: ignore[import-untyped]
from numpy.typing import NDArray

from pipeline.model import F32, U32, Asset, Primitive
from pipeline.parallel import available_cpus, map_threads

logger = logging.getLogger(__name__)

NAME = "simplify"

# A primitive with at least this many triangles per available CPU is cut into slabs that
# simplify on parallel threads (see _run_split); below it one call takes under ~0.1 s.
SPLIT_MIN_TRIANGLES = 150_000
# Each slab aims this much over its share, for the final pass to spend on the cuts.
SPLIT_SLACK = 1.04

F64 = NDArray[np.float64]

# size_t meshopt_simplifyWithAttributes(unsigned int* destination, const unsigned int* indices,
#     size_t index_count, const float* vertex_positions, size_t vertex_count,
#     size_t vertex_positions_stride, const float* vertex_attributes,
#     size_t vertex_attributes_stride, const float* attribute_weights, size_t attribute_count,
#     const unsigned char* vertex_lock, size_t target_index_count, float target_error,
#     unsigned int options, float* result_error)  -- meshoptimizer.h
_SIZE, _PTR = ctypes.c_size_t, ctypes.c_void_p
_SIMPLIFY_WITH_ATTRIBUTES = ctypes.CFUNCTYPE(
    _SIZE, _PTR, _PTR, _SIZE, _PTR, _SIZE, _SIZE, _PTR, _SIZE, _PTR, _SIZE, _PTR, _SIZE,
    ctypes.c_float, ctypes.c_uint, ctypes.POINTER(ctypes.c_float),
)(("meshopt_simplifyWithAttributes", _meshopt_lib))  # fmt: skip


@dataclass(frozen=True, slots=True)
class SimplifyOptions:
    """The budget and how hard to protect attributes.

    Attributes:
        max_triangles: the triangle budget for the whole asset (LOD0 100k, LOD1 25k and LOD2 5k
            are the caller's choice). Default 100_000.
        max_error: the largest error the simplifier may introduce, relative to the mesh extent.
            Default 1.0: the budget alone decides how far to go.
        lock_border: keep open borders in place on the first pass (default True).
        normal_weight: weight of each normal component in the error metric (default 0.5, as
            gltfpack).
        uv_weight: weight of each UV component (default 1.0: a UV shift across the whole
            texture costs as much as a position shift across the whole mesh).
        color_weight: weight of each vertex colour component (default 0.5).
        workers: threads for a large primitive (see ``SPLIT_MIN_TRIANGLES``); default one
            per available CPU. 1 simplifies every primitive in one call.
    """

    max_triangles: int = 100_000
    max_error: float = 1.0
    lock_border: bool = True
    normal_weight: float = 0.5
    uv_weight: float = 1.0
    color_weight: float = 0.5
    workers: int | None = None


def simplify(asset: Asset, options: SimplifyOptions = SimplifyOptions()) -> Asset:
    """Return ``asset`` reduced to at most ``options.max_triangles`` triangles.

    The input is not modified. Primitives whose share of the budget rounds to nothing may
    simplify away entirely; they are then dropped (with a warning).

    Args:
        asset: the welded product (weld first: the simplifier needs shared vertices).
        options: the budget and attribute weights (see :class:`SimplifyOptions`).

    Returns:
        ``asset`` itself when it is within budget, else a new asset whose ``warnings`` say
        when a fallback was needed.
    """
    total = asset.triangle_count
    if total <= options.max_triangles:
        return asset
    warnings = list(asset.warnings)
    shares = _shares([p.triangle_count for p in asset.primitives], options.max_triangles)
    primitives, worst = [], 0.0
    for prim, share in zip(asset.primitives, shares, strict=True):
        if prim.triangle_count <= share:
            primitives.append(prim)
            continue
        simplified, error = _simplify_primitive(prim, share, options, warnings)
        worst = max(worst, error)
        if simplified.triangle_count:
            primitives.append(simplified)
        else:
            warnings.append("a part too small for the triangle budget was removed")
    result = replace(asset, primitives=primitives, warnings=warnings)
    logger.info(
        "simplify: %d -> %d triangles (budget %d), error %.3g of the extent",
        total,
        result.triangle_count,
        options.max_triangles,
        worst,
    )
    return result


def _shares(counts: list[int], budget: int) -> list[int]:
    """Split ``budget`` in proportion to ``counts`` (largest remainder; sums to the budget)."""
    total = sum(counts)
    exact = [count * budget / total for count in counts]
    shares = [int(value) for value in exact]
    by_remainder = sorted(range(len(counts)), key=lambda i: (shares[i] - exact[i], i))
    for i in by_remainder[: budget - sum(shares)]:
        shares[i] += 1
    return shares


def _attributes(prim: Primitive, options: SimplifyOptions) -> tuple[F32, F32]:
    """The per-vertex attribute rows the metric sees and their weights (may have 0 columns)."""
    columns: list[F32] = []
    weights: list[float] = []
    for array, weight in (
        (prim.normals, options.normal_weight),
        (prim.uvs, options.uv_weight),
        (prim.colors, options.color_weight),
    ):
        if array is not None:
            columns.append(array)
            weights.extend([weight] * array.shape[1])
    if not columns:
        return np.zeros((prim.vertex_count, 0), dtype=np.float32), np.zeros(0, dtype=np.float32)
    rows = np.ascontiguousarray(np.concatenate(columns, axis=1), dtype=np.float32)
    return rows, np.asarray(weights, dtype=np.float32)


def _run_attribute_aware(
    prim: Primitive,
    target: int,
    options: SimplifyOptions,
    flags: int,
    *,
    indices: U32 | None = None,
    lock: NDArray[np.uint8] | None = None,
    attributes: tuple[F32, F32] | None = None,
) -> tuple[U32, float]:
    """One attribute-aware pass: the new index buffer and the error (relative to extent).

    ``indices`` simplifies a subset of the triangles (default: all); ``lock`` marks vertices
    that must not move (``vertex_lock``); ``attributes`` reuses :func:`_attributes`' arrays.
    """
    positions = np.ascontiguousarray(prim.positions, dtype=np.float32)
    source = np.ascontiguousarray(prim.indices if indices is None else indices, dtype=np.uint32)
    rows, weights = attributes if attributes is not None else _attributes(prim, options)
    destination = np.empty_like(source)
    error = ctypes.c_float(0.0)
    count = _SIMPLIFY_WITH_ATTRIBUTES(
        destination.ctypes.data, source.ctypes.data, source.size,
        positions.ctypes.data, positions.shape[0], 12,
        rows.ctypes.data if rows.size else None, rows.shape[1] * 4,
        weights.ctypes.data if weights.size else None, weights.size,
        None if lock is None else lock.ctypes.data, target * 3, options.max_error, flags,
        ctypes.byref(error),
    )  # fmt: skip
    return destination[:count].copy(), float(error.value)


def _run_split(
    prim: Primitive, target: int, options: SimplifyOptions, flags: int, parts: int
) -> tuple[U32, float]:
    """Simplify ``parts`` slabs of the mesh on threads, then the joined result once more.

    The triangles are cut into slabs by their centroids along the longest axis. Vertices shared
    by two slabs are locked (``vertex_lock``), so each slab simplifies on its own thread
    (ctypes releases the GIL) without opening cracks along the cuts. The slabs aim a little over
    their share; one pass over the joined, much smaller mesh then reaches the target with
    nothing locked, which thins out the full-resolution strip the locks left along the cuts.
    """
    triangles = prim.indices.reshape(-1, 3)
    low, high = prim.positions.min(axis=0), prim.positions.max(axis=0)
    axis = int(np.argmax(high - low))
    keys = prim.positions[triangles[:, 0], axis]  # one corner is enough to sort slabs
    cuts = [len(keys) * k // parts for k in range(1, parts)]
    order = np.argpartition(keys, cuts)
    slabs = [triangles[group] for group in np.split(order, cuts)]
    seen = np.zeros(prim.vertex_count, dtype=np.uint8)
    for slab in slabs:
        mark = np.zeros(prim.vertex_count, dtype=np.uint8)
        mark[slab.reshape(-1)] = 1
        seen += mark
    lock = np.ascontiguousarray(seen > 1, dtype=np.uint8)
    rows, weights = _attributes(prim, options)

    def run(slab: U32) -> tuple[U32, float]:
        share = min(len(slab), math.ceil(target * len(slab) / len(triangles) * SPLIT_SLACK))
        return _run_compact(prim, rows, weights, slab.reshape(-1), lock, share, options, flags)

    results = map_threads(run, slabs, options.workers)
    joined = np.concatenate([indices for indices, _ in results])
    error = max(error for _, error in results)
    if joined.size > target * 3:
        joined, final = _run_compact(prim, rows, weights, joined, None, target, options, flags)
        error = max(error, final)
    return joined, error


def _run_compact(
    prim: Primitive,
    rows: F32,
    weights: F32,
    indices: U32,
    lock: NDArray[np.uint8] | None,
    target: int,
    options: SimplifyOptions,
    flags: int,
) -> tuple[U32, float]:
    """Simplify the triangles ``indices`` with only the vertices they use (the simplifier's
    cost grows with the vertex count it is given, not only with the triangles)."""
    used, local = np.unique(indices, return_inverse=True)
    part = Primitive(positions=prim.positions[used], indices=local.astype(np.uint32))
    result, error = _run_attribute_aware(
        part, target, options, flags,
        lock=None if lock is None else np.ascontiguousarray(lock[used]),
        attributes=(np.ascontiguousarray(rows[used]), weights),
    )  # fmt: skip
    return used[result].astype(np.uint32), error


def _run_sloppy(prim: Primitive, target: int) -> tuple[U32, float]:
    """The topology-ignoring fallback; its indices still refer to the original vertices."""
    indices = np.ascontiguousarray(prim.indices, dtype=np.uint32)
    positions = np.ascontiguousarray(prim.positions, dtype=np.float32)
    destination = np.empty_like(indices)
    error = np.zeros(1, dtype=np.float32)
    count = meshoptimizer.simplify_sloppy(
        destination, indices, positions, target_index_count=target * 3, target_error=1.0,
        result_error=error,
    )  # fmt: skip
    return destination[: int(count)].copy(), float(error[0])


def _simplify_primitive(
    prim: Primitive, target: int, options: SimplifyOptions, warnings: list[str]
) -> tuple[Primitive, float]:
    """Simplify one primitive to ``target`` triangles (see the module docstring's policy)."""
    flags = meshoptimizer.SIMPLIFY_LOCK_BORDER if options.lock_border else 0
    parts = min(options.workers or available_cpus(), prim.triangle_count // SPLIT_MIN_TRIANGLES)
    if parts > 1:
        indices, error = _run_split(prim, target, options, flags, parts)
    else:
        indices, error = _run_attribute_aware(prim, target, options, flags)
    if indices.size > target * 3 and flags:
        warnings.append(f"simplify: unlocked open borders to reach {target} triangles")
        indices, error = _run_attribute_aware(prim, target, options, 0)
    if indices.size > target * 3:
        warnings.append(
            f"simplify: used the sloppy simplifier to reach {target} triangles "
            "(topology and UV seams may suffer)"
        )
        indices, error = _run_sloppy(prim, target)
    scale = float(meshoptimizer.simplify_scale(np.ascontiguousarray(prim.positions)))
    return _optimize(prim, indices), error * scale


def _optimize(prim: Primitive, indices: U32) -> Primitive:
    """Reorder for the vertex cache, renumber vertices in first-use order, drop unused ones."""
    if indices.size == 0:
        return replace(prim, positions=prim.positions[:0], indices=indices)
    ordered = np.empty_like(indices)
    meshoptimizer.optimize_vertex_cache(ordered, indices, indices.size, prim.vertex_count)
    used, first = np.unique(ordered, return_index=True)
    by_first_use = used[np.argsort(first, kind="stable")]
    remap = np.empty(prim.vertex_count, dtype=np.uint32)
    remap[by_first_use] = np.arange(by_first_use.size, dtype=np.uint32)

    def take(array: F32 | None) -> F32 | None:
        return None if array is None else np.ascontiguousarray(array[by_first_use])

    return replace(
        prim,
        positions=np.ascontiguousarray(prim.positions[by_first_use]),
        indices=remap[ordered],
        normals=take(prim.normals),
        uvs=take(prim.uvs),
        colors=take(prim.colors),
    )


def relative_error(original: Asset, simplified: Asset, samples: int = 512) -> float:
    """The geometric error of ``simplified``, as a fraction of ``original``'s bbox diagonal.

    Measured one way, from ``original`` to ``simplified`` (the simplifier only keeps original
    vertices, so the other direction is zero at vertices): the largest distance from up to
    ``samples`` evenly spaced original vertices to the nearest simplified triangle. Cost is
    O(samples x simplified triangles) with a small constant (bounding-sphere pruning).

    Args:
        original: the asset before simplification.
        simplified: the result (same coordinate frame).
        samples: how many original vertices to measure from.

    Returns:
        The error; 0.0 when nothing was measured.
    """
    lo, hi = original.bounds()
    diagonal = float(np.linalg.norm(hi.astype(np.float64) - lo))
    points = np.concatenate([p.positions for p in original.primitives]).astype(np.float64)
    triangles = [p.positions[p.indices.reshape(-1, 3)] for p in simplified.primitives]
    if diagonal == 0 or points.size == 0 or not triangles:
        return 0.0
    step = max(1, points.shape[0] // samples)
    corners = np.concatenate(triangles).astype(np.float64)
    centres = corners.mean(axis=1)
    radii = np.linalg.norm(corners - centres[:, None, :], axis=2).max(axis=1)
    worst = 0.0
    for point in points[::step][:samples]:
        # Bounding spheres prune: only triangles that could beat the best upper bound are tested.
        distance = np.linalg.norm(centres - point, axis=1)
        candidates = distance - radii <= (distance + radii).min()
        worst = max(worst, _nearest(point, corners[candidates]))
    return worst / diagonal


def _nearest(point: F64, corners: F64) -> float:
    """The distance from ``point`` (3,) to the nearest of the triangles ``corners`` (T, 3, 3)."""
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    normal = np.cross(b - a, c - a)
    area2 = np.einsum("ij,ij->i", normal, normal)
    safe = np.where(area2 > 0, area2, 1.0)
    # Barycentric signs of the point's projection: inside when all three edges agree.
    inside = area2 > 0
    for start, end in ((a, b), (b, c), (c, a)):
        inside &= np.einsum("ij,ij->i", np.cross(end - start, point - start), normal) >= 0
    plane = np.abs(np.einsum("ij,ij->i", point - a, normal)) / np.sqrt(safe)
    edges = np.minimum(
        _segment(point, a, b), np.minimum(_segment(point, b, c), _segment(point, c, a))
    )
    return float(np.min(np.where(inside, plane, edges)))


def _segment(point: F64, start: F64, end: F64) -> F64:
    """Distances from ``point`` to the segments ``start``-``end`` (T, 3)."""
    edge = end - start
    length2 = np.einsum("ij,ij->i", edge, edge)
    t = np.einsum("ij,ij->i", point - start, edge) / np.where(length2 > 0, length2, 1.0)
    closest = start + np.clip(t, 0.0, 1.0)[:, None] * edge
    distance: F64 = np.linalg.norm(point - closest, axis=1)
    return distance
