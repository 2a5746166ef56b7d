"""Vertex attribute quantization for ``KHR_mesh_quantization`` (used by :mod:`pipeline.write`).

The layout follows gltfpack: positions as uint16 on one uniform grid shared by all primitives
(the node's scale + translation dequantizes them), normals as int8 normalized (or the
``EXT_meshopt_compression`` OCTAHEDRAL filter's input), UVs as uint16 normalized with a
``KHR_texture_transform`` when they leave [0, 1], colours as uint8 normalized. Before
quantizing, :func:`reorder` puts the vertices in vertex cache then fetch order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import meshoptimizer as mo  # type: ignore[import-untyped]
import numpy as np
from numpy.typing import NDArray

from pipeline.model import Primitive

Array = NDArray[Any]
UvTransform = tuple[tuple[float, float], tuple[float, float]]  # (offset, scale)


@dataclass(frozen=True, slots=True)
class Grid:
    """Quantization grid for positions: position = offset + q * scale (uniform, like gltfpack)."""

    offset: tuple[float, float, float]
    scale: float
    bits: int


def reorder(p: Primitive, *, strip: bool = False) -> Primitive:
    """Vertex cache then vertex fetch order (what gltfpack does before quantizing).

    With ``strip`` the triangles follow meshoptimizer's strip-friendly cache order, as gltfpack
    does when it compresses (``-c``): the EXT_meshopt_compression index codec encodes that
    order in fewer bytes, at a slightly lower vertex-cache hit rate.

    Unreferenced vertices are dropped: ``optimize_vertex_fetch_remap`` maps them to ~0.

    Args:
        p: a checked primitive (indices in range).

    Returns:
        A new primitive with the same triangles, vertices in first-use order.
    """
    n = p.vertex_count
    indices = np.ascontiguousarray(p.indices, dtype=np.uint32)
    cached = np.empty_like(indices)
    if strip:
        mo.optimize_vertex_cache_strip(cached, indices, indices.size, n)
    else:
        mo.optimize_vertex_cache(cached, indices, indices.size, n)
    remap = np.empty(n, dtype=np.uint32)
    unique = int(mo.optimize_vertex_fetch_remap(remap, cached, cached.size, n))
    used = remap != np.uint32(0xFFFFFFFF)

    def apply(array: NDArray[np.float32] | None) -> NDArray[np.float32] | None:
        if array is None:
            return None
        out = np.empty((unique, array.shape[1]), dtype=np.float32)
        out[remap[used]] = array[used]
        return out

    positions = apply(p.positions)
    assert positions is not None
    return Primitive(
        positions=positions,
        indices=remap[cached],
        normals=apply(p.normals),
        uvs=apply(p.uvs),
        colors=apply(p.colors),
        material=p.material,
    )


def position_grid(primitives: Sequence[Primitive], bits: int) -> Grid:
    """The grid of ``bits`` bits per axis spanning every primitive's positions.

    Args:
        primitives: the primitives sharing the grid (at least one).
        bits: grid resolution, 1-16.

    Returns:
        The grid; its scale is the largest extent over ``2**bits - 1`` (1.0 for a single point).
    """
    lo = np.min([p.positions.min(axis=0) for p in primitives], axis=0).astype(np.float64)
    hi = np.max([p.positions.max(axis=0) for p in primitives], axis=0).astype(np.float64)
    extent = float(np.max(hi - lo))
    scale = extent / ((1 << bits) - 1) if extent > 0 else 1.0
    return Grid(offset=(float(lo[0]), float(lo[1]), float(lo[2])), scale=scale, bits=bits)


def quantize_positions(positions: NDArray[np.float32], grid: Grid) -> NDArray[np.uint16]:
    """Positions as uint16 grid coordinates, rounded and clamped to the grid."""
    offset = np.array(grid.offset, dtype=np.float64)
    q: NDArray[np.float64] = np.rint((positions.astype(np.float64) - offset) / grid.scale)
    return np.clip(q, 0, (1 << grid.bits) - 1).astype(np.uint16)


def unit_normals(normals: NDArray[np.float32]) -> NDArray[np.float32]:
    """Unit-length normals (the validator checks NORMAL length); zero vectors become +Y."""
    n = normals.astype(np.float64)
    length: NDArray[np.float64] = np.linalg.norm(n, axis=1, keepdims=True)
    zero = length[:, 0] < 1e-12
    n[zero] = (0.0, 1.0, 0.0)
    length[zero] = 1.0
    return (n / length).astype(np.float32)


def snorm8(values: NDArray[np.float32]) -> NDArray[np.int8]:
    """Values in [-1, 1] as int8 normalized (KHR_mesh_quantization NORMAL: BYTE normalized)."""
    return np.clip(np.rint(values.astype(np.float64) * 127.0), -127, 127).astype(np.int8)


def octahedral8(normals: NDArray[np.float32]) -> NDArray[np.int8]:
    """EXT_meshopt_compression Appendix B filter 1 input: (x, y, 1.0, 0) as 8-bit snorm (K=8)."""
    n = normals.astype(np.float64)
    n = n / np.abs(n).sum(axis=1, keepdims=True)
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    sign_x = np.where(x >= 0, 1.0, -1.0)
    sign_y = np.where(y >= 0, 1.0, -1.0)
    fx = np.where(z >= 0, x, (1.0 - np.abs(y)) * sign_x)
    fy = np.where(z >= 0, y, (1.0 - np.abs(x)) * sign_y)
    out = np.zeros((n.shape[0], 4), dtype=np.int8)
    out[:, 0] = np.clip(np.rint(fx * 127.0), -127, 127)
    out[:, 1] = np.clip(np.rint(fy * 127.0), -127, 127)
    out[:, 2] = 127  # 1.0 in K=8 bits: tells the decoder K
    return out


def uv_transforms(primitives: Sequence[Primitive]) -> dict[int | None, UvTransform]:
    """Per material, the UV range when its UVs leave [0, 1] (else no entry).

    uint16 normalized UVs only cover [0, 1]; outside it the stored UVs are remapped to the
    material's range and KHR_texture_transform (offset + scale) maps them back, like gltfpack.

    Args:
        primitives: the primitives to scan; those without UVs are skipped.

    Returns:
        ``{material: (offset, scale)}`` for each material whose UVs need remapping.
    """
    ranges: dict[int | None, tuple[Array, Array]] = {}
    for p in primitives:
        if p.uvs is None:
            continue
        lo, hi = p.uvs.min(axis=0).astype(np.float64), p.uvs.max(axis=0).astype(np.float64)
        if p.material in ranges:
            old_lo, old_hi = ranges[p.material]
            lo, hi = np.minimum(lo, old_lo), np.maximum(hi, old_hi)
        ranges[p.material] = (lo, hi)
    transforms: dict[int | None, UvTransform] = {}
    for material, (lo, hi) in ranges.items():
        if lo.min() >= 0.0 and hi.max() <= 1.0:
            continue
        extent = np.where(hi - lo > 0, hi - lo, 1.0)
        transforms[material] = ((float(lo[0]), float(lo[1])), (float(extent[0]), float(extent[1])))
    return transforms


def unorm16_uvs(uvs: NDArray[np.float32], transform: UvTransform | None) -> NDArray[np.uint16]:
    """UVs as uint16 normalized, first remapped into [0, 1] by ``transform`` if given."""
    u = uvs.astype(np.float64)
    if transform is not None:
        u = (u - np.array(transform[0])) / np.array(transform[1])
    return np.clip(np.rint(u * 65535.0), 0, 65535).astype(np.uint16)


def unorm8_colors(colors: NDArray[np.float64]) -> NDArray[np.uint8]:
    """Colours already clamped to [0, 1] as uint8 normalized (KHR_mesh_quantization COLOR_0)."""
    return np.rint(colors * 255.0).astype(np.uint8)
