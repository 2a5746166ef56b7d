"""Product placement: each product on a slot of its booth, uniformly scaled only when too big.

Products arrive as boxes: their size in metres (the pipeline's normalised LOD0 bounds: origin at
the centre of the footprint, on the floor, front towards +z). Slots come from the booth template
(:class:`scenes.templates.Slot`): a bottom-centre and the room above it. A slot takes one
product, so products never overlap (slots do not overlap by construction of the templates).

The rule, per product in the exhibitor's order: take the free slot where it keeps the largest
scale (1.0 when it fits as is); among slots where it fits as is, the tightest one (least wasted
volume), so that big slots stay free for big products. Flat products (photo cards: less than
a tenth as deep as they are wide) prefer shelves and counters, where a card stands upright.
A product too big for every slot is scaled down uniformly to the best one, never distorted and
never scaled up. Products beyond the number of slots are not placed (the caller reports them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scenes.templates import Slot

Vec3 = tuple[float, float, float]

# Yaw in degrees (about +Y, counter-clockwise seen from above) that turns +z to each facing.
FACING_YAW = {"+z": 0.0, "+x": 90.0, "-z": 180.0, "-x": 270.0}
HOTSPOT_LIFT = 0.12  # metres above a product's top where its hotspot floats


@dataclass(frozen=True, slots=True)
class ProductBox:
    """What placement needs to know of a product: its id and size (x, y, z) in metres."""

    id: str
    size: Vec3


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a product goes, in booth-local coordinates.

    ``position`` is the bottom centre of the product, ``yaw`` its rotation about +Y in degrees,
    ``scale`` the uniform scale (<= 1), ``anchor`` the hotspot point above it.
    """

    product_id: str
    slot: int
    position: Vec3
    yaw: float
    scale: float
    anchor: Vec3
    size: Vec3  # after scaling, in the product's own axes


def _room(slot: Slot) -> Vec3:
    """The slot's size in the product's own axes (x across its front, z its depth)."""
    sx, sy, sz = slot.size
    return (sz, sy, sx) if slot.facing in ("+x", "-x") else (sx, sy, sz)


def fit_scale(size: Vec3, slot: Slot) -> float:
    """The largest uniform scale <= 1 at which a product of ``size`` fits ``slot``."""
    room = _room(slot)
    ratios = [r / s for r, s in zip(room, size, strict=True) if s > 0]
    return min([1.0, *ratios])


def place(products: list[ProductBox], slots: list[Slot]) -> tuple[list[Placement], list[str]]:
    """Place ``products`` on ``slots``.

    Args:
        products: in the exhibitor's order (earlier ones get the better slots).
        slots: the booth's slots.

    Returns:
        The placements, and the ids of the products that found no free slot.
    """
    free = set(range(len(slots)))
    placements: list[Placement] = []
    unplaced: list[str] = []
    for product in products:
        if not free or not all(math.isfinite(v) and v >= 0 for v in product.size):
            unplaced.append(product.id)
            continue
        best = min(free, key=lambda i: _cost(product.size, slots[i], i))
        free.discard(best)
        placements.append(_placement(product, slots[best], best))
    return placements, unplaced


def _cost(size: Vec3, slot: Slot, index: int) -> tuple[float, int, float, int]:
    scale = fit_scale(size, slot)
    flat = size[2] < 0.1 * max(size[0], 1e-6)
    preferred = 0 if (slot.kind in ("shelf", "counter")) == flat else 1
    room = _room(slot)
    waste = room[0] * room[1] * room[2] - size[0] * size[1] * size[2] * scale**3
    return (-round(scale, 6), preferred, waste, index)


def _placement(product: ProductBox, slot: Slot, index: int) -> Placement:
    scale = fit_scale(product.size, slot)
    scaled = (product.size[0] * scale, product.size[1] * scale, product.size[2] * scale)
    base = slot.base
    anchor = (base[0], base[1] + scaled[1] + HOTSPOT_LIFT, base[2])
    return Placement(
        product_id=product.id,
        slot=index,
        position=base,
        yaw=FACING_YAW[slot.facing],
        scale=scale,
        anchor=anchor,
        size=scaled,
    )
