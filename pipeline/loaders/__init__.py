"""Loaders: accepted bytes in, a flat :class:`pipeline.model.Asset` out, one module per format.

Each loader runs its guard (pipeline.guards) before any parser and translates every exception of
the libraries it calls (trimesh, numpy, zipfile, struct, Pillow) into a PipelineError with a
stable code at its boundary. The helpers below are shared by the format modules, which are
imported lazily by :func:`load` so that a missing optional dependency only matters when used.
"""

from __future__ import annotations

import importlib
import logging
import re

import numpy as np
from numpy.typing import NDArray

from pipeline.errors import MeshError, UnsupportedFormat
from pipeline.limits import DEFAULT_LIMITS, Limits
from pipeline.model import F32, U32, Asset, Format, Primitive

logger = logging.getLogger(__name__)

# Format -> loader module (each exposes ``load(data, limits) -> Asset``).
LOADERS: dict[Format, str] = {
    Format.glb: "pipeline.loaders.gltf",
    Format.gltf_zip: "pipeline.loaders.gltf",
    Format.obj: "pipeline.loaders.obj",
    Format.obj_zip: "pipeline.loaders.obj",
    Format.stl: "pipeline.loaders.stl",
    Format.ply: "pipeline.loaders.ply",
}
# STL/PLY/OBJ come from CAD and scanners, which are Z-up by convention; glTF is Y-up (§3.4).
Z_UP_FORMATS = frozenset({Format.stl, Format.ply, Format.obj, Format.obj_zip})
_UNIT_NAME = re.compile(r"(?:^|[._\-\s])units?[_\-]?(mm|cm|m|in)(?=$|[._\-\s])", re.IGNORECASE)


def load(
    data: bytes, fmt: Format, *, limits: Limits = DEFAULT_LIMITS, name: str | None = None
) -> Asset:
    """Load accepted bytes of a detected format into an Asset.

    Args:
        data: The upload (already size-checked by pipeline.detect).
        fmt: Its format from :func:`pipeline.detect.detect`.
        limits: Caps for the guards.
        name: The original file name, only used for a unit hint (``part.unitsmm.stl``).

    Returns:
        An Asset with at least one triangle and finite positions.

    Raises:
        PipelineError: A subclass with a stable code (see pipeline.guards) for every rejection.
    """
    if fmt not in LOADERS:
        raise UnsupportedFormat(f"{fmt} is not a 3D model format")
    module = importlib.import_module(LOADERS[fmt])
    asset: Asset = module.load(data, fmt, limits=limits)
    asset.source_format = fmt
    asset.z_up_hint = fmt in Z_UP_FORMATS
    if name is not None and asset.unit_hint is None:
        asset.unit_hint = unit_hint(name)
    require_triangles(asset)
    logger.debug(
        "loaded %s: %d primitives, %d triangles, %d textures",
        fmt,
        len(asset.primitives),
        asset.triangle_count,
        len(asset.textures),
    )
    return asset


def unit_hint(name: str) -> str | None:
    """The unit a file name declares, e.g. ``counter.unitsmm.STL`` -> "mm".

    Args:
        name: A file or member name (directories are ignored).

    Returns:
        "mm", "cm", "m" or "in", or None.
    """
    match = _UNIT_NAME.search(name.replace("\\", "/").rsplit("/", 1)[-1])
    return match.group(1).lower() if match else None


def require_triangles(asset: Asset) -> None:
    """Refuse point clouds, wireframes and empty meshes.

    Raises:
        MeshError: ``mesh_no_triangles``.
    """
    if asset.triangle_count == 0:
        raise MeshError("the model has no triangles", code="mesh_no_triangles")


def make_primitive(
    positions: NDArray[np.floating],
    faces: NDArray[np.integer],
    warnings: list[str],
    *,
    normals: NDArray[np.floating] | None = None,
    uvs: NDArray[np.floating] | None = None,
    colors: NDArray[np.floating] | None = None,
    material: int | None = None,
) -> Primitive | None:
    """Build a Primitive from loader arrays, dropping triangles that touch non-finite vertices.

    Args:
        positions: (N, 3) vertex positions.
        faces: (M, 3) vertex indices (already checked to be < N by the caller or its parser).
        warnings: Receives a message when triangles are dropped.
        normals: Optional (N, 3) normals; dropped when their row count differs or not finite.
        uvs: Optional (N, 2) glTF-convention UVs.
        colors: Optional (N, 4) linear RGBA.
        material: Index into the Asset's materials.

    Returns:
        The primitive, or None when no triangle is left.

    Raises:
        MeshError: ``mesh_invalid_indices`` when an index is negative or out of range.
    """
    points = np.ascontiguousarray(positions, dtype=np.float32).reshape(-1, 3)
    tris = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if tris.size and (tris.min() < 0 or tris.max() >= len(points)):
        raise MeshError("face index out of range", code="mesh_invalid_indices")
    finite: NDArray[np.bool_] = np.asarray(np.isfinite(points).all(axis=1))
    if not finite.all():
        keep = finite[tris].all(axis=1)
        warnings.append(f"dropped {int((~keep).sum())} triangles with non-finite vertices")
        tris = tris[keep]
    if not tris.size:
        return None
    return Primitive(
        positions=points,
        indices=np.ascontiguousarray(tris.reshape(-1), dtype=np.uint32),
        normals=_rows(normals, len(points), 3),
        uvs=_rows(uvs, len(points), 2),
        colors=_rows(colors, len(points), 4),
        material=material,
    )


def _rows(values: NDArray[np.floating] | None, count: int, width: int) -> F32 | None:
    """Optional attribute with ``count`` finite rows of ``width`` floats, else None."""
    if values is None:
        return None
    array = np.asarray(values, dtype=np.float32)
    if array.shape != (count, width):
        return None
    return np.ascontiguousarray(np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0))


def srgb_to_linear(values: NDArray[np.floating]) -> F32:
    """sRGB-encoded 0..1 colour components to linear (glTF COLOR_0 is linear, §3.7.2.1)."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def as_indices(values: NDArray[np.integer]) -> U32:
    """A flat uint32 index array."""
    return np.ascontiguousarray(np.asarray(values).reshape(-1), dtype=np.uint32)
