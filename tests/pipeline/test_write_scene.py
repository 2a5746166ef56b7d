"""write_scene_glb: meshes placed by a node graph, repeated props as EXT_mesh_gpu_instancing.

World positions are recomputed here from the written JSON and binary (node TRS matrices, then
instance matrices, glTF's order) and compared with the input transformed by plain matrices, so
the writer's own algebra (carrier nodes, instances rewritten into grid units) is checked, not
repeated.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from pipeline.errors import MeshError, OutputError
from pipeline.meshopt_decode import decode_meshopt_glb
from pipeline.model import Asset, Material, Primitive
from pipeline.validate import validate_many
from pipeline.write import (
    Instances,
    SceneDocument,
    SceneNode,
    WriteOptions,
    write_glb,
    write_scene_glb,
)
from tests.pipeline.test_write import (
    ASSETS,
    MESHOPT,
    PLAIN,
    QUANTIZED,
    accessor_array,
    colored_sphere,
    read_glb,
    textured_box,
    webp_quad,
)

OPTIONS = [PLAIN, QUANTIZED, MESHOPT]
OPTION_IDS = ["plain", "quantized", "meshopt"]
EXT = "EXT_mesh_gpu_instancing"
ALLOWED_WARNINGS = {"MESH_PRIMITIVE_GENERATED_TANGENT_SPACE"}
# The validator knows neither extension: it says so, and sees the instance accessors (and, with
# meshopt, the compressed buffer) as unused. Information only.
EXPECTED_INFOS = {"UNSUPPORTED_EXTENSION", "UNUSED_OBJECT"}

Matrix = NDArray[np.float64]


# --- scenes built in code ---------------------------------------------------------------------


def quaternion(axis: Any, degrees: float) -> tuple[float, float, float, float]:
    """The unit quaternion (xyzw) of a rotation about ``axis``."""
    a = np.asarray(axis, dtype=np.float64)
    half = np.radians(degrees) / 2
    xyz = a / np.linalg.norm(a) * np.sin(half)
    return (float(xyz[0]), float(xyz[1]), float(xyz[2]), float(np.cos(half)))


def rough_box() -> Asset:
    """The textured box's PNG under a different material (the image is shared, not the material)."""
    asset = textured_box()
    asset.materials[0].roughness_factor = 0.2
    return asset


def booth() -> SceneDocument:
    """A booth: a rotated root, a counter with a lamp on it, chairs and signs as instances.

    Mesh 3 repeats mesh 0 (same image, same material); mesh 4 shares only the image.
    """
    chairs = Instances(
        translations=np.array([[0, 0, 0], [1.5, 0, 0], [3, 0.2, -1]], dtype=np.float32),
        rotations=np.array(
            [quaternion((0, 1, 0), 0), quaternion((0, 1, 0), 90), quaternion((1, 1, 0), 35)],
            dtype=np.float32,
        ),
        scales=np.array([[1, 1, 1], [2, 2, 2], [1, 0.5, 1.5]], dtype=np.float32),
    )
    signs = Instances(translations=np.array([[0, 3, 0], [4, 3, 0.5]], dtype=np.float32))
    return SceneDocument(
        meshes=[textured_box(), colored_sphere(), webp_quad(), textured_box(), rough_box()],
        nodes=[
            SceneNode(
                "booth A12",
                translation=(10.0, 0.0, -4.0),
                rotation=quaternion((0, 1, 0), 30),
                children=[1, 3, 4, 5, 6],
            ),
            SceneNode("counter", mesh=0, scale=(2.0, 1.0, 0.5), children=[2]),
            SceneNode(
                "lamp",
                mesh=1,
                translation=(0.0, 1.0, 0.0),
                extras={"product": "lamp-7", "hotspot": [0.0, 1.2, 0.0]},
            ),
            SceneNode("chairs", mesh=1, translation=(-2.0, 0.0, 1.0), instances=chairs),
            SceneNode("signs", mesh=2, rotation=quaternion((1, 0, 0), -10), instances=signs),
            SceneNode("crate", mesh=3, translation=(1.0, 0.5, 2.0)),
            SceneNode("shelf", mesh=4, translation=(-1.0, 0.5, 2.0), scale=(1.0, 2.0, 1.0)),
        ],
        roots=[0],
    )


def hall() -> SceneDocument:
    """Two roots; 40 posts with seeded random rotations and scales on one instanced node."""
    rng = np.random.default_rng(7)
    axes = rng.normal(size=(40, 3))
    angles = rng.uniform(0, 360, size=40)
    posts = Instances(
        translations=(rng.uniform(-30, 30, size=(40, 3)) * (1, 0, 1)).astype(np.float32),
        rotations=np.array(
            [quaternion(a, d) for a, d in zip(axes, angles, strict=True)], np.float32
        ),
        scales=rng.uniform(0.5, 2.0, size=(40, 3)).astype(np.float32),
        colors=rng.uniform(0.0, 1.0, size=(40, 3)).astype(np.float32),
    )
    return SceneDocument(
        meshes=[textured_box(), webp_quad()],
        nodes=[
            SceneNode("posts", mesh=0, instances=posts),
            SceneNode("entrance", translation=(0.0, 0.0, 30.0), children=[2]),
            SceneNode("banner", mesh=1, scale=(8.0, 2.0, 1.0)),
        ],
        roots=[0, 1],
    )


def single(asset: Asset) -> SceneDocument:
    return SceneDocument(meshes=[asset], nodes=[SceneNode(mesh=0)], roots=[0])


# --- reading scenes back ----------------------------------------------------------------------


def trs(
    translation: Any = (0, 0, 0), rotation: Any = (0, 0, 0, 1), scale: Any = (1, 1, 1)
) -> Matrix:
    """T * R * S as a 4x4 matrix (glTF 2.0 §3.5.3), from a unit quaternion xyzw."""
    x, y, z, w = np.asarray(rotation, dtype=np.float64) / np.linalg.norm(rotation)
    r = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    m = np.eye(4)
    m[:3, :3] = r * np.asarray(scale, dtype=np.float64)
    m[:3, 3] = translation
    return m


def apply(matrix: Matrix, points: NDArray[Any]) -> Matrix:
    out: Matrix = points.astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
    return out


def instance_matrices(attributes: dict[str, NDArray[Any] | None], count: int) -> list[Matrix]:
    t, r, s = (attributes.get(k) for k in ("TRANSLATION", "ROTATION", "SCALE"))
    return [
        trs(
            (0, 0, 0) if t is None else t[i],
            (0, 0, 0, 1) if r is None else r[i],
            (1, 1, 1) if s is None else s[i],
        )
        for i in range(count)
    ]


def drawn_points(glb: bytes, caller_nodes: int, *, instancing: bool = True) -> dict[int, Matrix]:
    """World positions of every drawn vertex, by the caller's node that drew them.

    Nodes below ``caller_nodes`` are the caller's; the writer's extra nodes count for their
    nearest caller ancestor. ``instancing=False`` draws as a viewer without the extension.
    """
    document, binary = read_glb(decode_meshopt_glb(glb))
    nodes = document["nodes"]
    drawn: dict[int, list[Matrix]] = {}

    def visit(index: int, parent: Matrix, owner: int) -> None:
        node = nodes[index]
        matrix = parent @ trs(
            node.get("translation", (0, 0, 0)),
            node.get("rotation", (0, 0, 0, 1)),
            node.get("scale", (1, 1, 1)),
        )
        owner = index if index < caller_nodes else owner
        if "mesh" in node:
            local = np.concatenate(
                [
                    accessor_array(document, binary, p["attributes"]["POSITION"])
                    for p in document["meshes"][node["mesh"]]["primitives"]
                ]
            )
            matrices = [matrix]
            if instancing and EXT in node.get("extensions", {}):
                accessors = node["extensions"][EXT]["attributes"]
                arrays = {k: accessor_array(document, binary, a) for k, a in accessors.items()}
                count = len(arrays["TRANSLATION"])
                matrices = [matrix @ m for m in instance_matrices(dict(arrays), count)]
            drawn.setdefault(owner, []).extend(apply(m, local) for m in matrices)
        for child in node.get("children", []):
            visit(child, matrix, owner)

    for root in document["scenes"][document["scene"]]["nodes"]:
        visit(root, np.eye(4), root)
    return {owner: np.concatenate(points) for owner, points in drawn.items()}


def expected_points(scene: SceneDocument, *, instancing: bool = True) -> dict[int, Matrix]:
    """The same, computed from the input scene with plain matrices."""
    expected: dict[int, list[Matrix]] = {}

    def visit(index: int, parent: Matrix) -> None:
        node = scene.nodes[index]
        matrix = parent @ trs(node.translation, node.rotation, node.scale)
        if node.mesh is not None:
            asset = scene.meshes[node.mesh]
            local = np.concatenate([p.positions for p in asset.primitives if p.triangle_count])
            matrices = [matrix]
            if instancing and node.instances is not None:
                arrays = {
                    "TRANSLATION": node.instances.translations,
                    "ROTATION": node.instances.rotations,
                    "SCALE": node.instances.scales,
                }
                count = len(node.instances.translations)
                matrices = [matrix @ m for m in instance_matrices(arrays, count)]
            expected.setdefault(index, []).extend(apply(m, local) for m in matrices)
        for child in node.children:
            visit(child, matrix)

    for root in scene.roots:
        visit(root, np.eye(4))
    return {index: np.concatenate(points) for index, points in expected.items()}


def farthest_miss(a: Matrix, b: Matrix) -> float:
    """The largest distance from a point of ``a`` to its nearest point of ``b``."""
    worst = 0.0
    for start in range(0, len(a), 512):
        chunk = a[start : start + 512]
        distances = np.linalg.norm(chunk[:, None, :] - b[None, :, :], axis=2)
        worst = max(worst, float(distances.min(axis=1).max()))
    return worst


def quantization_tolerance(scene: SceneDocument, options: WriteOptions) -> float:
    """Half a grid step per axis of the coarsest mesh, times the largest world scale in use."""
    if not options.quantize:
        return 1e-4  # float32 storage of transforms and positions
    steps = []
    for asset in scene.meshes:
        lo, hi = asset.bounds()
        steps.append(float(np.max(hi - lo)) / ((1 << options.position_bits) - 1))
    return max(steps) / 2 * float(np.sqrt(3)) * 4.0 + 1e-4


# --- tests ------------------------------------------------------------------------------------


def test_every_scene_passes_the_khronos_validator_as_written_and_after_meshopt_decoding() -> None:
    items = []
    for scene_name, build in (
        ("booth", booth),
        ("hall", hall),
        ("sphere", lambda: single(colored_sphere())),
    ):
        for options, option_name in zip(OPTIONS, OPTION_IDS, strict=True):
            glb = write_scene_glb(build(), options)
            items.append((f"{scene_name}.{option_name}.glb", glb))
            if options.meshopt:
                items.append((f"{scene_name}.decoded.glb", decode_meshopt_glb(glb)))

    # One validator process for the whole module's scenes.
    reports = validate_many(items, allowed_warnings=ALLOWED_WARNINGS)

    for (name, _), report in zip(items, reports, strict=True):
        assert report.num_errors == 0, (name, report.errors)
        assert {m.code for m in report.warnings} <= ALLOWED_WARNINGS, name
        infos = set(report.codes()) - ALLOWED_WARNINGS
        assert infos <= EXPECTED_INFOS, (name, infos)


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("build", [booth, hall], ids=["booth", "hall"])
def test_world_positions_of_instanced_and_plain_meshes_equal_the_inputs_within_a_step(
    build: Callable[[], SceneDocument], options: WriteOptions
) -> None:
    scene = build()
    drawn = drawn_points(write_scene_glb(scene, options), len(scene.nodes))
    expected = expected_points(scene)
    tolerance = quantization_tolerance(scene, options)

    assert sorted(drawn) == sorted(expected)
    for index, points in expected.items():
        assert drawn[index].shape == points.shape, scene.nodes[index].name
        assert farthest_miss(drawn[index], points) <= tolerance, scene.nodes[index].name
        assert farthest_miss(points, drawn[index]) <= tolerance, scene.nodes[index].name


def test_a_wrong_instance_translation_would_be_caught_by_the_world_position_check() -> None:
    scene = booth()
    moved = copy.deepcopy(scene)
    chairs = moved.nodes[3].instances
    assert chairs is not None
    moved.nodes[3].instances = Instances(
        chairs.translations + 0.01, chairs.rotations, chairs.scales
    )

    drawn = drawn_points(write_scene_glb(moved, QUANTIZED), len(scene.nodes))

    tolerance = quantization_tolerance(scene, QUANTIZED)
    assert farthest_miss(drawn[3], expected_points(scene)[3]) > tolerance


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_a_viewer_without_instancing_draws_each_instanced_mesh_once_at_its_node(
    options: WriteOptions,
) -> None:
    scene = booth()
    glb = write_scene_glb(scene, options)

    drawn = drawn_points(glb, len(scene.nodes), instancing=False)

    expected = expected_points(scene, instancing=False)
    tolerance = quantization_tolerance(scene, options)
    for index in (3, 4):  # chairs and signs
        assert drawn[index].shape == expected[index].shape
        assert farthest_miss(drawn[index], expected[index]) <= tolerance
        assert farthest_miss(expected[index], drawn[index]) <= tolerance


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_a_one_node_plain_scene_is_byte_identical_to_write_glb(name: str) -> None:
    asset = ASSETS[name]()

    assert write_scene_glb(single(asset)) == write_glb(asset)


@pytest.mark.parametrize("options", [QUANTIZED, MESHOPT], ids=["quantized", "meshopt"])
@pytest.mark.parametrize("name", ["textured_box", "colored_sphere", "webp_quad"])
def test_a_one_node_quantized_scene_differs_from_write_glb_only_by_its_carrier_node(
    name: str, options: WriteOptions
) -> None:
    asset = ASSETS[name]()
    scene_document, scene_binary = read_glb(write_scene_glb(single(asset), options))
    flat_document, flat_binary = read_glb(write_glb(asset, options))

    assert scene_binary == flat_binary
    assert scene_document["nodes"] == [{"children": [1]}, flat_document["nodes"][0]]
    for key in set(scene_document) | set(flat_document):
        if key != "nodes":
            assert scene_document.get(key) == flat_document.get(key), key


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_caller_nodes_keep_their_names_transforms_children_and_extras(
    options: WriteOptions,
) -> None:
    scene = booth()
    scene.nodes[5].extras = {"label": "", "note": None, "tags": [], "meta": {}, "名前": "展示"}
    document, _ = read_glb(write_scene_glb(scene, options))

    for index, node in enumerate(scene.nodes):
        written = document["nodes"][index]
        assert written["name"] == node.name
        assert written.get("translation", [0, 0, 0]) == list(node.translation)
        np.testing.assert_allclose(written.get("rotation", [0, 0, 0, 1]), node.rotation)
        assert written.get("scale", [1, 1, 1]) == list(node.scale)
        assert written.get("children", [])[: len(node.children)] == node.children
        assert written.get("extras") == node.extras
    assert document["scenes"] == [{"nodes": [0]}]
    assert "translation" not in document["nodes"][1]  # defaults are left out (§3.5.3)
    assert "rotation" not in document["nodes"][1]


def test_quantized_meshes_hang_on_a_child_node_that_dequantizes_them() -> None:
    scene = booth()
    document, _ = read_glb(write_scene_glb(scene, QUANTIZED))
    nodes = document["nodes"]

    counter = nodes[1]
    assert "mesh" not in counter
    assert counter["children"][0] == 2  # the caller's child first, then the carrier
    carrier = nodes[counter["children"][1]]
    assert carrier["mesh"] == 0
    assert set(carrier) == {"mesh", "translation", "scale"}
    lo, hi = scene.meshes[0].bounds()
    assert carrier["translation"] == pytest.approx(lo.tolist())
    assert carrier["scale"] == [pytest.approx(float(np.max(hi - lo)) / 16383)] * 3
    assert len(nodes) == len(scene.nodes) + sum(n.mesh is not None for n in scene.nodes)
    plain, _ = read_glb(write_scene_glb(scene, PLAIN))
    assert plain["nodes"][1]["mesh"] == 0
    assert len(plain["nodes"]) == len(scene.nodes)


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_instance_attributes_are_float_accessors_on_targetless_uncompressed_views(
    options: WriteOptions,
) -> None:
    document, _ = read_glb(write_scene_glb(booth(), options))
    instanced = [n for n in document["nodes"] if EXT in n.get("extensions", {})]

    assert len(instanced) == 2
    assert all("mesh" in node for node in instanced)
    kinds = {"TRANSLATION": "VEC3", "ROTATION": "VEC4", "SCALE": "VEC3"}
    for node in instanced:
        attributes = node["extensions"][EXT]["attributes"]
        accessors = {k: document["accessors"][i] for k, i in attributes.items()}
        assert {a["count"] for a in accessors.values()} in ({3}, {2})
        for key, accessor in accessors.items():
            assert (accessor["type"], accessor["componentType"]) == (kinds[key], 5126)
            view = document["bufferViews"][accessor["bufferView"]]
            assert "target" not in view
            assert "byteStride" not in view
            assert "extensions" not in view  # never meshopt-compressed
            assert view["buffer"] == 0
    assert sorted(instanced[0]["extensions"][EXT]["attributes"]) == [
        "ROTATION",
        "SCALE",
        "TRANSLATION",
    ]
    assert sorted(instanced[1]["extensions"][EXT]["attributes"]) == ["TRANSLATION"]
    assert EXT in document["extensionsUsed"]
    assert EXT not in document.get("extensionsRequired", [])


def test_instance_colours_are_written_as_the_custom_color_attribute() -> None:
    scene = hall()
    document, binary = read_glb(write_scene_glb(scene, MESHOPT))
    [node] = [n for n in document["nodes"] if EXT in n.get("extensions", {})]
    accessor = document["accessors"][node["extensions"][EXT]["attributes"]["_COLOR_0"]]
    assert (accessor["type"], accessor["componentType"], accessor["count"]) == ("VEC3", 5126, 40)
    view = document["bufferViews"][accessor["bufferView"]]
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    colors = np.frombuffer(binary, np.float32, 40 * 3, start).reshape(40, 3)
    instances = scene.nodes[0].instances
    assert instances is not None
    assert instances.colors is not None
    assert np.array_equal(colors, instances.colors)


def test_a_scene_without_instances_does_not_list_the_extension() -> None:
    document, _ = read_glb(write_scene_glb(single(textured_box()), QUANTIZED))

    assert EXT not in document["extensionsUsed"]


def test_identical_images_and_materials_of_different_meshes_are_written_once() -> None:
    document, binary = read_glb(write_scene_glb(booth(), QUANTIZED))

    # Meshes 0, 3 and 4 use one PNG; mesh 2 the WebP; mesh 1 no texture.
    assert len(document["images"]) == len(document["textures"]) == 2
    png = booth().meshes[0].textures[0].data
    view = document["bufferViews"][document["images"][0]["bufferView"]]
    assert binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]] == png
    material_of = [m["primitives"][0].get("material") for m in document["meshes"]]
    assert material_of[3] == material_of[0]  # the same box material
    assert material_of[4] != material_of[0]  # another roughness: its own material
    assert len(document["materials"]) == 3
    rough, box = document["materials"][material_of[4]], document["materials"][material_of[0]]
    assert (
        rough["pbrMetallicRoughness"]["baseColorTexture"]
        == box["pbrMetallicRoughness"]["baseColorTexture"]
    )


def test_duplicates_inside_one_mesh_stay_as_write_glb_writes_them() -> None:
    asset = textured_box()
    asset.materials.append(copy.deepcopy(asset.materials[0]))
    second = copy.deepcopy(asset.primitives[0])
    second.positions = second.positions + 2
    second.material = 1
    asset.primitives.append(second)
    document, _ = read_glb(write_scene_glb(single(asset)))

    assert len(document["materials"]) == 2


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_the_same_scene_gives_byte_identical_glbs(options: WriteOptions) -> None:
    assert write_scene_glb(booth(), options) == write_scene_glb(booth(), options)
    assert write_scene_glb(hall(), options) == write_scene_glb(hall(), options)


def test_writing_does_not_modify_the_scene() -> None:
    scene = booth()
    before = copy.deepcopy(scene)

    write_scene_glb(scene, MESHOPT)

    assert [n.extras for n in scene.nodes] == [n.extras for n in before.nodes]
    for a, b in zip(scene.meshes, before.meshes, strict=True):
        np.testing.assert_array_equal(a.primitives[0].positions, b.primitives[0].positions)
    chairs, old_chairs = scene.nodes[3].instances, before.nodes[3].instances
    assert chairs is not None
    assert old_chairs is not None
    np.testing.assert_array_equal(chairs.translations, old_chairs.translations)


def test_rotations_are_written_as_unit_quaternions() -> None:
    scene = single(colored_sphere())
    scene.nodes[0].rotation = (0.0, 2.0, 0.0, 2.0)
    document, _ = read_glb(write_scene_glb(scene))

    assert document["nodes"][0]["rotation"] == pytest.approx([0.0, 0.5**0.5, 0.0, 0.5**0.5])


def _lost_cycle(scene: SceneDocument) -> None:
    n = len(scene.nodes)
    scene.nodes += [SceneNode("a", children=[n + 1]), SceneNode("b", children=[n])]


def _set_instances(node: int, **arrays: Any) -> Callable[[SceneDocument], None]:
    def edit(scene: SceneDocument) -> None:
        base = {"translations": np.zeros((3, 3), np.float32)}
        scene.nodes[node].instances = Instances(**{**base, **arrays})

    return edit


BAD_SCENES: dict[str, tuple[Callable[[SceneDocument], None], str]] = {
    "colour above one": (
        _set_instances(1, colors=np.full((3, 3), 1.5, np.float32)),
        "instance colours outside 0..1",
    ),
    "colour count": (_set_instances(1, colors=np.zeros((2, 3), np.float32)), "2 colours"),
    "child out of range": (lambda s: s.nodes[0].children.append(99), "child 99 does not exist"),
    "negative child": (lambda s: s.nodes[0].children.append(-1), "child -1 does not exist"),
    "float child": (lambda s: s.nodes[0].children.append(1.0), "integer index"),  # type: ignore[arg-type]
    "root out of range": (lambda s: s.roots.append(70), "scene root 70 does not exist"),
    "mesh out of range": (lambda s: setattr(s.nodes[1], "mesh", 5), "mesh 5 does not exist"),
    "two parents": (lambda s: s.nodes[3].children.append(2), "node 2 has two parents"),
    "self parent": (lambda s: s.nodes[5].children.append(5), "node 5 has two parents"),
    "cycle": (_lost_cycle, "cycle"),
    "root is a child": (lambda s: s.roots.append(1), "scene root 1 is a child of node 0"),
    "unreachable": (lambda s: s.nodes.append(SceneNode("lost")), "node 7 is not reachable"),
    "no roots": (lambda s: s.roots.clear(), "no root nodes"),
    "duplicate roots": (lambda s: s.roots.append(0), "listed twice"),
    "nan translation": (
        lambda s: setattr(s.nodes[1], "translation", (0.0, float("nan"), 0.0)),
        "node 1 translation contains NaN",
    ),
    "infinite scale": (
        lambda s: setattr(s.nodes[2], "scale", (1.0, float("inf"), 1.0)),
        "node 2 scale contains NaN or infinity",
    ),
    "zero rotation": (
        lambda s: setattr(s.nodes[0], "rotation", (0.0, 0.0, 0.0, 0.0)),
        "node 0 has a rotation quaternion of zero length",
    ),
    "short translation": (
        lambda s: setattr(s.nodes[0], "translation", (1.0, 2.0)),
        "shape (N, 3)",
    ),
    "fewer rotations": (
        _set_instances(3, rotations=np.tile(np.array([0, 0, 0, 1], np.float32), (2, 1))),
        "3 instance translations but 2 rotations",
    ),
    "more scales": (
        _set_instances(3, scales=np.ones((4, 3), np.float32)),
        "3 instance translations but 4 scales",
    ),
    "flat translations": (
        _set_instances(3, translations=np.zeros(9, np.float32)),
        "instance translations must have shape (N, 3)",
    ),
    "no instances": (
        _set_instances(3, translations=np.zeros((0, 3), np.float32)),
        "empty instance list",
    ),
    "nan instance": (
        _set_instances(3, translations=np.full((3, 3), np.nan, np.float32)),
        "instance translations contains NaN",
    ),
    "zero instance rotation": (
        _set_instances(3, rotations=np.zeros((3, 4), np.float32)),
        "node 3 has a rotation quaternion of zero length",
    ),
    "instances without mesh": (_set_instances(0), "node 0 has instances but no mesh"),
    "float32 overflow": (
        _set_instances(3, translations=np.full((3, 3), 1e300)),
        "does not fit in a float32",
    ),
    "extras not json": (
        lambda s: setattr(s.nodes[2], "extras", {"when": object()}),
        "node 2 extras are not JSON",
    ),
    "extras nan": (
        lambda s: setattr(s.nodes[2], "extras", {"x": float("nan")}),
        "node 2 extras are not JSON",
    ),
    "extras not a dict": (
        lambda s: setattr(s.nodes[2], "extras", ["a"]),
        "node 2 extras must be a dict",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SCENES))
def test_a_bad_scene_is_refused_as_an_output_error(case: str) -> None:
    edit, reason = BAD_SCENES[case]
    scene = booth()
    edit(scene)

    with pytest.raises(OutputError, match=reason.replace("(", r"\(").replace(")", r"\)")) as caught:
        write_scene_glb(scene, QUANTIZED)
    assert caught.value.code == "output_invalid"


def test_a_scene_without_meshes_or_with_an_empty_mesh_is_a_mesh_error() -> None:
    with pytest.raises(MeshError) as caught:
        write_scene_glb(SceneDocument(meshes=[], nodes=[SceneNode()], roots=[0]))
    assert caught.value.code == "mesh_empty"
    empty = Asset([Primitive(np.zeros((0, 3), np.float32), np.zeros(0, np.uint32))])
    scene = booth()
    scene.meshes[2] = empty
    with pytest.raises(MeshError, match="scene mesh 2 has no triangles") as caught:
        write_scene_glb(scene)
    assert caught.value.code == "mesh_empty"


def test_writer_errors_of_a_mesh_are_raised_as_for_write_glb() -> None:
    scene = booth()
    scene.meshes[1].materials.append(Material(name="broken", base_color_texture=4))
    scene.meshes[1].primitives[0].material = 0

    with pytest.raises(OutputError, match="texture 4"):
        write_scene_glb(scene)


def test_node_extras_come_through_as_json_in_the_glb() -> None:
    glb = write_scene_glb(booth(), MESHOPT)
    length = int.from_bytes(glb[12:16], "little")
    document = json.loads(glb[20 : 20 + length])

    assert document["nodes"][2]["extras"] == {"product": "lamp-7", "hotspot": [0.0, 1.2, 0.0]}
