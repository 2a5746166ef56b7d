"""Hall layout: booths on the floor plan, and where visitors can stand, start and gather.

Hall coordinates (shared with the REST API's booth slots): metres, origin at the hall's centre,
x to the right, z towards the entrance, Y up. The entrance is a gap in the +z wall. A booth's
(x, z) is the centre of its footprint and its rotation (0, 90, 180 or 270 degrees about +Y,
counter-clockwise seen from above) turns its open front from +z to where it faces.

:func:`grid_slots` packs booths into rows with aisles (the demo hall and the benchmark use it;
organisers place slots themselves through the API). :func:`hall_layout` derives everything a
visitor's client needs from the slots: the walkable floor, spawn points by the entrance, one tour
waypoint in front of each booth, teleport targets along the aisles, and booth numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scenes.errors import SceneError

Vec3 = tuple[float, float, float]

AISLE = 4.0  # metres between booth rows
MARGIN = 4.0  # metres between the hall walls and the booths
ROW_LENGTH = 27.0  # metres; longer rows make visitors walk too far round
ENTRANCE_WIDTH = 6.0
WAYPOINT_DISTANCE = 1.6  # metres in front of a booth's front edge
TELEPORT_SPACING = 4.0
EYE_CLEARANCE = 0.4  # teleport targets keep this far from booth footprints


@dataclass(frozen=True, slots=True)
class SlotSpec:
    """A booth's place in the hall."""

    number: str
    width: float
    depth: float
    x: float
    z: float
    rotation: int = 0


@dataclass(frozen=True, slots=True)
class Point:
    """A position on the floor and the yaw to look along (degrees about +Y; 0 looks to -z)."""

    position: Vec3
    yaw: float


@dataclass(frozen=True, slots=True)
class HallLayout:
    width: float
    depth: float
    entrance: Point
    walkable: list[tuple[float, float]]  # (x, z) counter-clockwise seen from above
    spawn_points: list[Point]
    waypoints: list[Point]  # one per slot, in slot order
    teleport_targets: list[Vec3]


def rotate(point: Vec3, degrees: float) -> Vec3:
    """``point`` rotated about +Y by ``degrees`` (counter-clockwise seen from above)."""
    theta = math.radians(degrees)
    c, s = math.cos(theta), math.sin(theta)
    x, y, z = point
    return (_r(x * c + z * s), y, _r(-x * s + z * c))


def to_hall(slot: SlotSpec, local: Vec3) -> Vec3:
    """A booth-local point in hall coordinates."""
    x, y, z = rotate(local, slot.rotation)
    return (_r(x + slot.x), _r(y), _r(z + slot.z))


def footprint(slot: SlotSpec) -> tuple[float, float, float, float]:
    """(min_x, min_z, max_x, max_z) of a slot in hall coordinates."""
    w, d = (slot.depth, slot.width) if slot.rotation % 180 == 90 else (slot.width, slot.depth)
    return (slot.x - w / 2, slot.z - d / 2, slot.x + w / 2, slot.z + d / 2)


def grid_slots(
    sizes: list[tuple[float, float]], hall_width: float, hall_depth: float
) -> list[SlotSpec]:
    """Pack booths of ``sizes`` (width, depth) into rows from the back wall to the entrance.

    Rows are centred, at most ``ROW_LENGTH`` long (or the hall's width less the margins), with an
    aisle between rows. Numbers are row letter + position: A1, A2 ... B1.

    Raises:
        SceneError: ``hall_too_small`` when the booths do not fit.
    """
    usable = min(hall_width - 2 * MARGIN, ROW_LENGTH)
    rows: list[list[tuple[float, float]]] = [[]]
    used = 0.0
    for size in sizes:
        if rows[-1] and used + size[0] > usable:
            rows.append([])
            used = 0.0
        rows[-1].append(size)
        used += size[0]
    if any(sum(w for w, _ in row) > hall_width - 2 * MARGIN for row in rows):
        raise SceneError("a booth row is wider than the hall", code="hall_too_small")
    slots: list[SlotSpec] = []
    z_cursor = -hall_depth / 2 + MARGIN
    for row_index, row in enumerate(rows):
        x_cursor = -sum(w for w, _ in row) / 2
        for index, (width, depth) in enumerate(row):
            number = f"{_row_name(row_index)}{index + 1}"
            slots.append(SlotSpec(number, width, depth, x_cursor + width / 2, z_cursor + depth / 2))
            x_cursor += width
        z_cursor += max((d for _, d in row), default=0.0) + AISLE
    if z_cursor - AISLE > hall_depth / 2 - MARGIN:
        raise SceneError("the booths do not fit in the hall's depth", code="hall_too_small")
    return slots


def hall_size_for(sizes: list[tuple[float, float]]) -> tuple[float, float]:
    """A hall just big enough for :func:`grid_slots` to fit ``sizes`` (benchmarks, demos)."""
    width = ROW_LENGTH + 2 * MARGIN
    depth = 2 * MARGIN
    for _ in range(1000):
        try:
            grid_slots(sizes, width, depth)
        except SceneError:
            depth += AISLE
            continue
        return width, depth
    raise SceneError("too many booths for one hall", code="hall_too_small")


def hall_layout(width: float, depth: float, slots: list[SlotSpec]) -> HallLayout:
    """The walkable floor, spawn points, waypoints and teleport targets of a hall."""
    inset = 0.3
    walkable = [
        (-width / 2 + inset, depth / 2 - inset),
        (width / 2 - inset, depth / 2 - inset),
        (width / 2 - inset, -depth / 2 + inset),
        (-width / 2 + inset, -depth / 2 + inset),
    ]
    entrance = Point((0.0, 0.0, _r(depth / 2)), 0.0)
    spawn_z = depth / 2 - 2.0
    spawn_points = [Point((_r(x), 0.0, _r(spawn_z)), 0.0) for x in (-3.0, -1.5, 0.0, 1.5, 3.0)]
    waypoints = [_waypoint(slot) for slot in slots]
    return HallLayout(
        width=width,
        depth=depth,
        entrance=entrance,
        walkable=[(_r(x), _r(z)) for x, z in walkable],
        spawn_points=spawn_points,
        waypoints=waypoints,
        teleport_targets=_teleport_targets(width, depth, slots),
    )


def _waypoint(slot: SlotSpec) -> Point:
    """In front of the booth's open side, looking at the booth."""
    position = to_hall(slot, (0.0, 0.0, slot.depth / 2 + WAYPOINT_DISTANCE))
    # Looking back at the booth: along the booth's -z, i.e. yaw = booth rotation (0 looks to -z).
    return Point(position, float(slot.rotation % 360))


def _teleport_targets(width: float, depth: float, slots: list[SlotSpec]) -> list[Vec3]:
    rects = [footprint(s) for s in slots]
    targets: list[Vec3] = []
    nx = int((width - 2) // TELEPORT_SPACING)
    nz = int((depth - 2) // TELEPORT_SPACING)
    for i in range(nx + 1):
        for j in range(nz + 1):
            x = -nx * TELEPORT_SPACING / 2 + i * TELEPORT_SPACING
            z = -nz * TELEPORT_SPACING / 2 + j * TELEPORT_SPACING
            if not any(_inside(x, z, r, EYE_CLEARANCE) for r in rects):
                targets.append((_r(x), 0.0, _r(z)))
    return targets


def _inside(x: float, z: float, rect: tuple[float, float, float, float], margin: float) -> bool:
    return rect[0] - margin < x < rect[2] + margin and rect[1] - margin < z < rect[3] + margin


def _row_name(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


def _r(value: float) -> float:
    """Millimetre precision for everything that reaches the manifest (and no -0.0)."""
    return round(value, 3) + 0.0
