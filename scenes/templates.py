"""Booth templates: parametric, procedural stands in booth-local coordinates.

A booth's local frame: metres, Y up, the footprint centred on the origin with its width along x
and its depth along z, the open front towards +z (the aisle) and the back wall at -z. The hall
places it with a translation and a right-angle rotation.

Three templates, after the shell-scheme stands of real trade fairs:

* ``shell`` (3x3 m): three walls, a fascia board over the open front with the exhibitor's name,
  a logo on the back wall, a counter, two pedestals and two wall shelves.
* ``corner`` (6x3 m): open on the front and the right side; back and left walls, a fascia on a
  beam carried by a corner post, more pedestals and shelves.
* ``island`` (6x6 m): open on all four sides around a central tower that carries the name on
  all four faces and the logo, pedestals and counters around it.

Each kit also carries lighting hints (spots over the front edge, aimed into the booth) that the
booth GLB passes on in its root node's ``extras.lights``.

Each template returns a :class:`BoothKit`: the structure as primitives (one per material), where
the signs and logos go, and the product slots for :mod:`scenes.placement`. Sizes other than the
nominal ones scale the layout (a 4x3 shell is a wider shell); the structure stays within the
footprint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

from pipeline.model import Primitive
from scenes.errors import SceneError
from scenes.geometry import MeshBuilder, Vec3

Facing = Literal["+z", "-z", "+x", "-x"]
SlotKind = Literal["pedestal", "shelf", "counter", "wall"]

WALL_HEIGHT = 2.5
WALL = 0.06  # wall thickness
FLOOR = 0.05  # platform height
FASCIA_HEIGHT = 0.4


class Mat(IntEnum):
    """Material slots of a booth; scenes.booth turns them into glTF materials."""

    floor = 0
    wall = 1
    primary = 2
    accent = 3
    metal = 4
    wood = 5
    sign = 6
    logo = 7


@dataclass(frozen=True, slots=True)
class Slot:
    """Room for one product: ``base`` is the bottom centre, ``size`` the (x, y, z) it may fill.

    Products face ``facing`` (their own +z turned that way).
    """

    kind: SlotKind
    base: Vec3
    size: Vec3
    facing: Facing = "+z"


@dataclass(frozen=True, slots=True)
class Board:
    """A rectangle where a texture (sign or logo) is shown: centre, size and facing."""

    center: Vec3
    width: float
    height: float
    facing: Facing = "+z"


@dataclass(frozen=True, slots=True)
class LightHint:
    """A spot light a client may add when the booth is near (not a glTF light: a hundred booths
    with real lights would sink a headset's frame rate; the client lights the nearest few)."""

    position: Vec3
    target: Vec3
    angle: float = 0.6  # radians, the cone's half angle
    intensity: float = 1.0  # relative: the client scales it to its lighting model


@dataclass(slots=True)
class BoothKit:
    """A template's output for one booth size."""

    template: str
    width: float
    depth: float
    height: float
    structure: list[Primitive]
    signs: list[Board]
    logos: list[Board]
    slots: list[Slot]
    lights: list[LightHint] = field(default_factory=list)


def build_kit(template: str, width: float, depth: float, *, detail: int = 0) -> BoothKit:
    """The structure, boards and slots of ``template`` for a ``width`` x ``depth`` footprint.

    Args:
        template: ``shell``, ``corner`` or ``island``.
        width: footprint along x in metres (2..20).
        depth: footprint along z in metres (2..20).
        detail: 0 full (LOD0/1), 1 or more: walls and boards only, no props (far LOD).

    Returns:
        The kit; structure primitives use :class:`Mat` material indices.

    Raises:
        SceneError: ``template_unknown`` or ``booth_size_invalid``.
    """
    if template not in TEMPLATES:
        raise SceneError(f"no booth template {template!r}", code="template_unknown")
    if not (2.0 <= width <= 20.0 and 2.0 <= depth <= 20.0):
        raise SceneError(
            f"booth footprint {width} x {depth} m is outside 2..20 m", code="booth_size_invalid"
        )
    mesh = MeshBuilder()
    mesh.box(Mat.floor, (0.0, FLOOR / 2, 0.0), (width, FLOOR, depth), faces=(0, 1, 2, 4, 5))
    kit = BoothKit(template, width, depth, WALL_HEIGHT + 0.6, [], [], [], [])
    TEMPLATES[template](mesh, kit, detail)
    kit.structure = mesh.primitives()
    kit.lights = _lights(kit)
    return kit


def _lights(kit: BoothKit) -> list[LightHint]:
    """Spots from above the front edge onto the booth's back half, one per 3 m of width."""
    count = max(1, round(kit.width / 3.0))
    xs = [kit.width * ((i + 0.5) / count - 0.5) for i in range(count)]
    y = kit.height + 0.3
    return [
        LightHint((round(x, 3), y, kit.depth / 2), (round(x, 3), 0.8, -kit.depth / 4)) for x in xs
    ]


def _fascia(mesh: MeshBuilder, kit: BoothKit, span: float, z: float, x: float = 0.0) -> None:
    """A fascia board across the front at the top of the walls, with the sign on its face."""
    y = WALL_HEIGHT + FASCIA_HEIGHT / 2
    mesh.box(Mat.primary, (x, y, z - WALL / 2), (span, FASCIA_HEIGHT, WALL))
    kit.signs.append(Board((x, y, z + 0.002), span - 0.1, FASCIA_HEIGHT - 0.06))


def _counter(mesh: MeshBuilder, kit: BoothKit, x: float, z: float, length: float) -> None:
    mesh.box(Mat.primary, (x, FLOOR + 0.5, z), (length, 1.0, 0.5))
    mesh.box(Mat.accent, (x, FLOOR + 1.02, z), (length + 0.04, 0.04, 0.54))
    kit.slots.append(Slot("counter", (x, FLOOR + 1.04, z), (length - 0.1, 0.5, 0.45)))


def _pedestal(mesh: MeshBuilder, kit: BoothKit, x: float, z: float, height: float) -> None:
    mesh.box(Mat.wall, (x, FLOOR + height / 2, z), (0.45, height, 0.45))
    mesh.box(Mat.accent, (x, FLOOR + height + 0.01, z), (0.5, 0.02, 0.5))
    kit.slots.append(Slot("pedestal", (x, FLOOR + height + 0.02, z), (0.45, 0.6, 0.45)))


def _shelf(mesh: MeshBuilder, kit: BoothKit, center: Vec3, length: float, facing: Facing) -> None:
    """A wall shelf; ``center`` is the middle of its top surface against the wall."""
    x, y, z = center
    along_x = facing in ("+z", "-z")
    size = (length, 0.03, 0.3) if along_x else (0.3, 0.03, length)
    offset = {"+z": (0, 0.15), "-z": (0, -0.15), "+x": (0.15, 0), "-x": (-0.15, 0)}[facing]
    mesh.box(Mat.wood, (x + offset[0], y - 0.015, z + offset[1]), size)
    slot_size = (length - 0.05, 0.35, 0.28) if along_x else (0.28, 0.35, length - 0.05)
    kit.slots.append(Slot("shelf", (x + offset[0], y, z + offset[1]), slot_size, facing))


def _shell(mesh: MeshBuilder, kit: BoothKit, detail: int) -> None:
    w, d = kit.width, kit.depth
    back = -d / 2 + WALL / 2
    mesh.box(Mat.wall, (0.0, WALL_HEIGHT / 2, back), (w, WALL_HEIGHT, WALL))
    for side in (-1, 1):
        mesh.box(
            Mat.wall, (side * (w / 2 - WALL / 2), WALL_HEIGHT / 2, 0.0), (WALL, WALL_HEIGHT, d)
        )
    _fascia(mesh, kit, w - 2 * WALL, d / 2)
    kit.logos.append(Board((0.0, 1.75, -d / 2 + WALL + 0.002), 0.8, 0.8))
    if detail:
        return
    _counter(mesh, kit, -w / 2 + 0.75, d / 2 - 0.5, 1.0)
    _pedestal(mesh, kit, w / 2 - 0.5, d / 2 - 0.6, 0.9)
    _pedestal(mesh, kit, w / 2 - 0.5, -0.1, 0.7)
    inner = -d / 2 + WALL
    for y in (1.0, 1.4):
        _shelf(mesh, kit, (-w / 2 + WALL, y, inner + 0.9), min(1.2, d - 1.5), "+x")
    for x in (-w / 4, w / 4):
        _shelf(mesh, kit, (x, 0.9, inner), min(1.0, w / 2 - 0.2), "+z")


def _corner(mesh: MeshBuilder, kit: BoothKit, detail: int) -> None:
    w, d = kit.width, kit.depth
    back = -d / 2 + WALL / 2
    mesh.box(Mat.wall, (0.0, WALL_HEIGHT / 2, back), (w, WALL_HEIGHT, WALL))
    mesh.box(Mat.wall, (-w / 2 + WALL / 2, WALL_HEIGHT / 2, 0.0), (WALL, WALL_HEIGHT, d))
    post = 0.12
    mesh.box(
        Mat.primary,
        (w / 2 - post / 2, WALL_HEIGHT / 2, d / 2 - post / 2),
        (post, WALL_HEIGHT, post),
    )
    _fascia(mesh, kit, w - WALL, d / 2, x=WALL / 2)
    kit.logos.append(Board((-w / 4, 1.75, -d / 2 + WALL + 0.002), 1.0, 1.0))
    kit.logos.append(Board((w / 4, 1.75, -d / 2 + WALL + 0.002), 1.0, 1.0))
    if detail:
        return
    _counter(mesh, kit, 0.0, d / 2 - 0.55, 1.6)
    for x in (-w / 2 + 0.8, w / 2 - 0.6):
        _pedestal(mesh, kit, x, d / 2 - 0.7, 0.9)
    _pedestal(mesh, kit, w / 2 - 0.6, 0.0, 0.7)
    inner = -d / 2 + WALL
    for x in (-w / 2 + 1.3, 0.0, w / 2 - 1.3):
        _shelf(mesh, kit, (x, 0.9, inner), 1.0, "+z")
    for y in (1.0, 1.4):
        _shelf(mesh, kit, (-w / 2 + WALL, y, 0.2), min(1.2, d - 1.6), "+x")


def _island(mesh: MeshBuilder, kit: BoothKit, detail: int) -> None:
    w, d = kit.width, kit.depth
    tower = 1.2
    top = WALL_HEIGHT + FASCIA_HEIGHT
    mesh.box(Mat.wall, (0.0, WALL_HEIGHT / 2, 0.0), (tower, WALL_HEIGHT, tower))
    mesh.box(
        Mat.primary,
        (0.0, WALL_HEIGHT + FASCIA_HEIGHT / 2, 0.0),
        (tower + 0.3, FASCIA_HEIGHT, tower + 0.3),
    )
    half = (tower + 0.3) / 2 + 0.002
    y = WALL_HEIGHT + FASCIA_HEIGHT / 2
    boards: list[tuple[Vec3, Facing]] = [
        ((0.0, y, half), "+z"), ((0.0, y, -half), "-z"), ((half, y, 0.0), "+x"), ((-half, y, 0.0), "-x"),
    ]  # fmt: skip
    kit.signs.extend(Board(c, tower + 0.2, FASCIA_HEIGHT - 0.06, f) for c, f in boards)
    face = tower / 2 + 0.002
    logos: list[tuple[Vec3, Facing]] = [((0.0, 1.7, face), "+z"), ((0.0, 1.7, -face), "-z")]
    kit.logos.extend(Board(c, 0.8, 0.8, f) for c, f in logos)
    kit.height = top + 0.1
    if detail:
        return
    _counter(mesh, kit, -w / 4, d / 2 - 0.6, 1.4)
    _counter(mesh, kit, w / 4, -d / 2 + 0.6, 1.4)
    for x, z in (
        (w / 2 - 0.6, d / 2 - 0.6),
        (-w / 2 + 0.6, -d / 2 + 0.6),
        (w / 2 - 0.6, -0.8),
        (-w / 2 + 0.6, 0.8),
    ):
        _pedestal(mesh, kit, x, z, 0.9)
    for x, z in ((w / 4, d / 2 - 0.6), (-w / 4, -d / 2 + 0.6)):
        _pedestal(mesh, kit, x, z, 0.7)
    # Shelves on the tower's sides.
    _shelf(mesh, kit, (tower / 2, 1.0, 0.0), tower - 0.1, "+x")
    _shelf(mesh, kit, (-tower / 2, 1.0, 0.0), tower - 0.1, "-x")


TEMPLATES: dict[str, Callable[[MeshBuilder, BoothKit, int], None]] = {
    "shell": _shell,
    "corner": _corner,
    "island": _island,
}
NOMINAL_SIZES: dict[str, tuple[float, float]] = {
    "shell": (3.0, 3.0),
    "corner": (6.0, 3.0),
    "island": (6.0, 6.0),
}
