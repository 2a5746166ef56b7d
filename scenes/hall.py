"""The hall shell: what a visitor sees before any booth has loaded, and from far away.

One GLB in hall coordinates (see :mod:`scenes.layout`):

* the floor, a ceiling (facing down only), and four walls with the entrance gap in
  the +z wall under a header that carries the expo's name;
* booth numbers: a plate on a post at the front of each slot, the numbers drawn in one atlas
  texture (one material, one draw call for every plate);
* far-LOD booth boxes: each booth's volume in its primary colour, one instanced unit box
  (instance i is booth i of the manifest, coloured through the instances' ``_COLOR_0``: one
  draw call for the whole hall, and a client hides one booth's box when the booth has loaded);
* repeated props through ``EXT_mesh_gpu_instancing`` (research-pipeline.md T9): the hall's
  columns, its ceiling lights and the number posts are one mesh each, instanced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pipeline.model import Asset, Material, Texture
from pipeline.steps.textures import encode
from pipeline.write import Instances, SceneDocument, SceneNode, WriteOptions, write_scene_glb
from scenes.colors import linear_rgb
from scenes.geometry import MeshBuilder
from scenes.layout import ENTRANCE_WIDTH, HallLayout, SlotSpec, footprint, to_hall
from scenes.signage import SignStyle, render_sign

WALL_HEIGHT = 6.0
WALL_THICKNESS = 0.3
COLUMN_SPACING = 16.0
LIGHT_HEIGHT = 5.2
FAR_BOOTHS = "far_booths"  # no spaces: three.js sanitizes node names
NUMBER_CELL = 128  # px per booth number in the atlas
NUMBER_STYLE = SignStyle(
    width=NUMBER_CELL, height=NUMBER_CELL, background="#ffffff", foreground="#111827",
    padding=14, max_chars=12,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ShellBooth:
    """What the shell shows of a booth: its slot, far-LOD height and colour."""

    slot: SlotSpec
    height: float
    color: str


def build_shell(name: str, layout: HallLayout, booths: list[ShellBooth]) -> tuple[bytes, int]:
    """The hall shell GLB and the triangles it draws (instanced meshes once per instance).

    Args:
        name: shown over the entrance (the expo or hall name; any script).
        layout: from :func:`scenes.layout.hall_layout`.
        booths: every booth in the hall.
    """
    meshes = [_structure(name, layout), _number_plates(booths)]
    nodes = [SceneNode("hall"), SceneNode("structure", mesh=0), SceneNode("booth numbers", mesh=1)]
    if booths:
        # Named so a client can find it: the far-LOD stand-in of every booth, one instance each.
        nodes.append(SceneNode(FAR_BOOTHS, mesh=len(meshes), instances=_far_instances(booths)))
        meshes.append(_far_box())
    props = [
        ("columns", _column(), _column_spots(layout)),
        ("lights", _light(), _light_spots(layout)),
        ("number posts", _post(), [_post_spot(b.slot) for b in booths]),
    ]
    for prop_name, prop, spots in props:
        if spots:  # an instanced node needs at least one instance
            nodes.append(SceneNode(prop_name, mesh=len(meshes), instances=_instances(spots)))
            meshes.append(prop)
    nodes[0].children = list(range(1, len(nodes)))
    glb = write_scene_glb(
        SceneDocument(meshes=meshes, nodes=nodes, roots=[0]),
        WriteOptions(quantize=True, meshopt=True),
    )
    drawn = {
        n.mesh: len(n.instances.translations) if n.instances else 1
        for n in nodes
        if n.mesh is not None
    }
    return glb, sum(meshes[i].triangle_count * copies for i, copies in drawn.items())


def _structure(name: str, layout: HallLayout) -> Asset:
    w, d = layout.width, layout.depth
    mesh = MeshBuilder()
    mesh.box(0, (0.0, -0.05, 0.0), (w, 0.1, d), faces=(2,), uv_scale=4.0)
    t, h = WALL_THICKNESS, WALL_HEIGHT
    # The ceiling faces down only: from inside it closes the hall, from above (an overview
    # camera) it is back-face culled and the hall stays visible.
    mesh.box(4, (0.0, h + 0.05, 0.0), (w + 2 * t, 0.1, d + 2 * t), faces=(3,))
    mesh.box(1, (0.0, h / 2, -d / 2 - t / 2), (w + 2 * t, h, t))
    for side in (-1, 1):
        mesh.box(1, (side * (w / 2 + t / 2), h / 2, 0.0), (t, h, d))
    gap = ENTRANCE_WIDTH
    segment = w / 2 + t - gap / 2  # from the gap to the outer corner
    for side in (-1, 1):
        x = side * (gap / 2 + segment / 2)
        mesh.box(1, (x, h / 2, d / 2 + t / 2), (segment, h, t))
    # Header over the entrance, with the name on both faces.
    mesh.box(2, (0.0, 3.6, d / 2 + t / 2), (gap, 0.8, t))
    mesh.panel(3, (0.0, 3.6, d / 2 + t + 0.002), gap - 0.2, 0.7, facing="+z")
    mesh.panel(3, (0.0, 3.6, d / 2 - 0.002), gap - 0.2, 0.7, facing="-z")
    sign = render_sign(
        name, SignStyle(width=1024, height=128, background="#20242c", foreground="#ffffff")
    )
    materials = [
        Material("hall floor", (0.55, 0.56, 0.58, 1.0), roughness_factor=0.9),
        Material("hall wall", (0.9, 0.9, 0.88, 1.0), roughness_factor=0.9),
        Material("header", (0.016, 0.018, 0.025, 1.0), roughness_factor=0.6),
        Material("entrance sign", base_color_texture=0, roughness_factor=0.6),
        Material("ceiling", (0.22, 0.23, 0.25, 1.0), roughness_factor=1.0),
    ]
    texture = Texture(encode(sign, "WEBP"), "image/webp", sign.width, sign.height, "entrance")
    return Asset(mesh.primitives(), materials, [texture])


def _far_box() -> Asset:
    """A unit box standing on the floor, white: the instances give it size and colour."""
    mesh = MeshBuilder()
    mesh.box(0, (0.0, 0.5, 0.0), (1.0, 1.0, 1.0), faces=(0, 1, 2, 4, 5))
    return Asset(mesh.primitives(), [Material("booth far", roughness_factor=0.8)])


def _far_instances(booths: list[ShellBooth]) -> Instances:
    """One instance per booth, in manifest order: a client hides instance i once booth i has
    loaded (three.js: ``InstancedMesh.setMatrixAt(i, zero)``)."""
    translations, scales, colors = [], [], []
    for booth in booths:
        x0, z0, x1, z1 = footprint(booth.slot)
        translations.append(((x0 + x1) / 2, 0.0, (z0 + z1) / 2))
        scales.append((x1 - x0 - 0.1, booth.height, z1 - z0 - 0.1))
        colors.append(linear_rgb(booth.color))
    return Instances(
        translations=np.asarray(translations, dtype=np.float32),
        scales=np.asarray(scales, dtype=np.float32),
        colors=np.asarray(colors, dtype=np.float32),
    )


def _number_plates(booths: list[ShellBooth]) -> Asset:
    columns = max(1, math.ceil(math.sqrt(len(booths))))
    rows = max(1, math.ceil(len(booths) / columns))
    atlas = Image.new("RGB", (columns * NUMBER_CELL, rows * NUMBER_CELL), "#ffffff")
    mesh = MeshBuilder()
    for index, booth in enumerate(booths):
        row, col = divmod(index, columns)
        label = render_sign(booth.slot.number, NUMBER_STYLE)
        atlas.paste(label, (col * NUMBER_CELL, row * NUMBER_CELL))
        rect = (col / columns, row / rows, (col + 1) / columns, (row + 1) / rows)
        x, _, z = _post_spot(booth.slot)
        facing = _front(booth.slot)
        offset = {"+z": (0, 0.03), "-z": (0, -0.03), "+x": (0.03, 0), "-x": (-0.03, 0)}[facing]
        mesh.panel(0, (x + offset[0], 2.1, z + offset[1]), 0.45, 0.45, facing=facing, uv_rect=rect)
    if not booths:
        mesh.panel(0, (0.0, -1.0, 0.0), 0.01, 0.01)
    texture = Texture(encode(atlas, "WEBP"), "image/webp", atlas.width, atlas.height, "numbers")
    return Asset(mesh.primitives(), [Material("booth numbers", base_color_texture=0)], [texture])


def _front(slot: SlotSpec) -> str:
    return {0: "+z", 90: "+x", 180: "-z", 270: "-x"}[slot.rotation % 360]


def _post_spot(slot: SlotSpec) -> tuple[float, float, float]:
    """The front-left corner of a booth, a little into the aisle."""
    return to_hall(slot, (-slot.width / 2 + 0.15, 0.0, slot.depth / 2 + 0.25))


def _column() -> Asset:
    mesh = MeshBuilder()
    mesh.box(0, (0.0, WALL_HEIGHT / 2, 0.0), (0.5, WALL_HEIGHT, 0.5), faces=(0, 1, 4, 5))
    return Asset(
        mesh.primitives(), [Material("column", (0.7, 0.7, 0.7, 1.0), roughness_factor=0.8)]
    )


def _light() -> Asset:
    mesh = MeshBuilder()
    mesh.box(0, (0.0, 0.0, 0.0), (1.2, 0.08, 0.3))
    material = Material("ceiling light", (1.0, 1.0, 1.0, 1.0), emissive_factor=(1.0, 0.97, 0.9))
    return Asset(mesh.primitives(), [material])


def _post() -> Asset:
    mesh = MeshBuilder()
    mesh.cylinder(0, (0.0, 0.0, 0.0), 0.03, 2.35, segments=8)
    return Asset(mesh.primitives(), [Material("post", (0.2, 0.2, 0.22, 1.0), metallic_factor=0.8)])


def _column_spots(layout: HallLayout) -> list[tuple[float, float, float]]:
    """Columns along the side walls, every ``COLUMN_SPACING`` metres."""
    n = max(1, int(layout.depth // COLUMN_SPACING))
    zs = [-layout.depth / 2 + (i + 0.5) * layout.depth / n for i in range(n)]
    x = layout.width / 2 - 0.25
    return [(side * x, 0.0, z) for z in zs for side in (-1, 1)]


def _light_spots(layout: HallLayout) -> list[tuple[float, float, float]]:
    """Ceiling lights on a 6 m grid."""
    nx, nz = max(1, int(layout.width // 6)), max(1, int(layout.depth // 6))
    return [
        (
            -layout.width / 2 + (i + 0.5) * layout.width / nx,
            LIGHT_HEIGHT,
            -layout.depth / 2 + (j + 0.5) * layout.depth / nz,
        )
        for i in range(nx)
        for j in range(nz)
    ]


def _instances(spots: list[tuple[float, float, float]]) -> Instances:
    return Instances(translations=np.asarray(spots, dtype=np.float32).reshape(-1, 3))
