"""Normalize step: Y-up, metres, origin at the footprint centre on the floor.

glTF 2.0 §3.4 ("Coordinate System and Units"): +Y is up, +Z is forward, the frame is
right-handed and linear distances are metres. Exhibitors upload CAD exports that are often Z-up
and in millimetres (STL, PLY, OBJ), so this step

1. rotates Z-up to Y-up when asked (``up="z"``) or when the loader says the source is Z-up by
   convention (``Asset.z_up_hint``): -90 degrees about X, ``(x, y, z) -> (x, z, -y)``, applied
   to positions and normals (a rotation keeps the winding and unit normals);
2. scales to metres, from ``options.unit``, else ``Asset.unit_hint``, else metres for glTF
   sources (the spec's unit), else the size heuristic below, with a warning naming the unit
   it assumed;
3. translates so the bounding box's x/z centre is at 0 and its lowest point at y = 0, so the
   product stands on the booth floor where it is placed;
4. records the real-world size in :class:`Dimensions` for ``report.json``.

Size heuristic (largest bounding-box extent ``L`` in file units), for products between a ring
and a car:

- ``L > 50``: millimetres (a 5 cm .. 10 m product; CAD tools default to mm);
- ``5 < L <= 50``: centimetres (5 cm .. 50 cm; 3ds Max / Maya scenes are often cm);
- ``L <= 5``: metres (already plausible; below 5 mm a warning says the product looks tiny).

Inches are never guessed: a 12-unit model is as likely 12 cm as 12 in, and cm is the more common
export unit; pass ``unit="in"`` to override.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from pipeline.errors import MeshError
from pipeline.model import Asset, Format, Primitive

logger = logging.getLogger(__name__)

NAME = "normalize"

Unit = Literal["mm", "cm", "m", "in"]
UnitSource = Literal["option", "hint", "spec", "heuristic"]

UNIT_SCALE: dict[str, float] = {"mm": 0.001, "cm": 0.01, "m": 1.0, "in": 0.0254}

# glTF is metres and Y-up by definition (glTF 2.0 §3.4): never guess for these sources.
_GLTF_FORMATS = frozenset({Format.glb, Format.gltf_zip})

# Plausibility bounds for a product, in metres, used only to word warnings.
_TINY_M = 0.005
_HUGE_M = 20.0

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class NormalizeOptions:
    """How to orient and scale the asset.

    Attributes:
        up: ``"y"`` or ``"z"``: the source's up axis. ``None`` (default) trusts
            ``Asset.z_up_hint`` (set by the STL/PLY/OBJ loaders), else Y-up.
        unit: ``"mm"``, ``"cm"``, ``"m"`` or ``"in"``: the source's unit. ``None`` (default)
            trusts ``Asset.unit_hint``, then glTF's metres, then the size heuristic.
    """

    up: Literal["y", "z"] | None = None
    unit: Unit | None = None


@dataclass(frozen=True, slots=True)
class Dimensions:
    """The normalized product's real-world size (Y-up, metres) and how it was obtained.

    Attributes:
        x: width in metres (bounding-box extent along X).
        y: height in metres (extent along Y, up).
        z: depth in metres (extent along Z).
        scale: the factor applied to the source coordinates (metres per source unit).
        unit: the source unit used for that factor.
        unit_source: where the unit came from: ``"option"``, ``"hint"`` (the loader),
            ``"spec"`` (glTF is metres) or ``"heuristic"`` (guessed from the size).
        rotated: True when Z-up was rotated to Y-up.
    """

    x: float
    y: float
    z: float
    scale: float
    unit: Unit
    unit_source: UnitSource
    rotated: bool


def normalize(
    asset: Asset, options: NormalizeOptions = NormalizeOptions()
) -> tuple[Asset, Dimensions]:
    """Return a Y-up, metre-scaled copy of ``asset`` standing on y = 0, and its dimensions.

    The input asset and its arrays are not modified; materials and textures are shared.

    Args:
        asset: the loaded product.
        options: up axis and unit overrides (see :class:`NormalizeOptions`).

    Returns:
        The normalized asset (with any unit warning appended to ``warnings``) and its size.

    Raises:
        MeshError: ``mesh_empty`` without triangles; ``mesh_non_finite`` when a position,
            normal or UV is NaN or infinite; ``mesh_degenerate`` when the bounding box has
            less than two non-zero extents (a point or a line: nothing to show).
    """
    _check(asset)
    rotated = options.up == "z" or (options.up is None and asset.z_up_hint)
    lo, hi = _bounds(asset.primitives, rotated)
    extent = hi - lo
    if np.count_nonzero(extent > 0) < 2:
        raise MeshError(f"the mesh has no area (extent {extent.tolist()})", code="mesh_degenerate")
    warnings = list(asset.warnings)
    unit, source = _pick_unit(asset, options, float(extent.max()), warnings)
    scale = UNIT_SCALE[unit]
    # Footprint centre on the floor: x/z centred, lowest point at y = 0 (after scaling).
    offset = -np.array([(lo[0] + hi[0]) / 2, lo[1], (lo[2] + hi[2]) / 2]) * scale
    primitives = [_transform(p, rotated, scale, offset) for p in asset.primitives]
    size = extent * scale
    _warn_implausible(float(size.max()), warnings)
    dims = Dimensions(
        x=float(size[0]),
        y=float(size[1]),
        z=float(size[2]),
        scale=scale,
        unit=unit,
        unit_source=source,
        rotated=rotated,
    )
    logger.debug("normalized: %s", dims)
    return replace(asset, primitives=primitives, warnings=warnings, z_up_hint=False), dims


def _check(asset: Asset) -> None:
    """Reject assets with no triangles or non-finite attribute values."""
    if asset.triangle_count == 0:
        raise MeshError("the model has no triangles", code="mesh_empty")
    for prim in asset.primitives:
        for name, array in (
            ("position", prim.positions),
            ("normal", prim.normals),
            ("uv", prim.uvs),
        ):
            if array is not None and not np.isfinite(array).all():
                raise MeshError(f"a vertex {name} is NaN or infinite", code="mesh_non_finite")


def _rotate(values: F64) -> F64:
    """Z-up to Y-up: -90 degrees about X, ``(x, y, z) -> (x, z, -y)`` (right-handed kept)."""
    return np.stack([values[:, 0], values[:, 2], -values[:, 1]], axis=1)


def _bounds(primitives: list[Primitive], rotated: bool) -> tuple[F64, F64]:
    """Bounding box over every referenced and unreferenced vertex, in the output orientation."""
    lows = [p.positions.min(axis=0) for p in primitives if p.vertex_count]
    highs = [p.positions.max(axis=0) for p in primitives if p.vertex_count]
    lo = np.min(np.stack(lows), axis=0).astype(np.float64)
    hi = np.max(np.stack(highs), axis=0).astype(np.float64)
    if rotated:
        # (x, y, z) -> (x, z, -y): the new z range is the negated old y range.
        lo, hi = (np.array([lo[0], lo[2], -hi[1]]), np.array([hi[0], hi[2], -lo[1]]))
    return lo, hi


def _pick_unit(
    asset: Asset, options: NormalizeOptions, largest: float, warnings: list[str]
) -> tuple[Unit, UnitSource]:
    """The source unit and where it came from (see the module docstring for the heuristic)."""
    if options.unit is not None:
        return options.unit, "option"
    hint = asset.unit_hint
    if hint is not None:
        if hint not in UNIT_SCALE:
            raise MeshError(f"unknown unit hint {hint!r}", code="mesh_unit_invalid")
        return hint, "hint"  # type: ignore[return-value]  # checked against UNIT_SCALE above
    if asset.source_format in _GLTF_FORMATS:
        return "m", "spec"
    unit: Unit = "mm" if largest > 50 else "cm" if largest > 5 else "m"
    warnings.append(
        f"no unit given: assumed {unit} from the largest extent ({largest:.4g} units); "
        "pass --unit to override"
    )
    logger.info("unit heuristic: largest extent %.4g -> %s", largest, unit)
    return unit, "heuristic"


def _warn_implausible(largest_m: float, warnings: list[str]) -> None:
    if largest_m < _TINY_M:
        warnings.append(f"the product is only {largest_m * 1000:.3g} mm across; check the unit")
    elif largest_m > _HUGE_M:
        warnings.append(f"the product is {largest_m:.3g} m across; check the unit")


def _transform(prim: Primitive, rotated: bool, scale: float, offset: F64) -> Primitive:
    """A new primitive with positions rotated, scaled and moved, normals rotated and unit."""
    positions = prim.positions.astype(np.float64)
    normals = prim.normals.astype(np.float64) if prim.normals is not None else None
    if rotated:
        positions = _rotate(positions)
        normals = _rotate(normals) if normals is not None else None
    positions = positions * scale + offset
    return replace(
        prim,
        positions=positions.astype(np.float32),
        normals=_unit(normals) if normals is not None else None,
    )


def _unit(normals: F64) -> NDArray[np.float32]:
    """Renormalize to unit length (glTF 2.0 §3.7.2.1: NORMAL is unit length); zeros stay zero."""
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    safe = np.where(length > 0, length, 1.0)
    return (normals / safe).astype(np.float32)
