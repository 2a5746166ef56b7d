"""GLB and zipped glTF -> Asset, decoded with numpy after pipeline.guards.gltf prevalidation.

No third-party glTF reader touches the bytes: pygltflib resolves URIs against the file system
(research-security.md finding 1) and trimesh allocates bufferless accessors unchecked (finding 2).
Node world transforms are applied so the Asset is flat (like gltfpack's flatten); textures keep
their original encoded bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.errors import ArchiveError, GltfError, ImageError, MeshError
from pipeline.guards.archive import read_zip
from pipeline.guards.gltf import (
    TYPE_SIZES,
    GltfDocument,
    JsonObject,
    parse_glb,
    parse_json,
    prevalidate,
    read_accessor,
    uri_bytes,
)
from pipeline.guards.image import image_size
from pipeline.limits import DEFAULT_LIMITS, Limits
from pipeline.loaders import make_primitive, unit_hint
from pipeline.model import Asset, Format, Material, Primitive, Texture

logger = logging.getLogger(__name__)

F64 = NDArray[np.float64]
MODE_TRIANGLES, MODE_STRIP, MODE_FAN = 4, 5, 6
# Normalized integer attributes map to [0, 1] or [-1, 1] (glTF 2.0 §3.11, KHR_mesh_quantization).
_NORMALIZERS = {"i1": 127.0, "u1": 255.0, "i2": 32767.0, "u2": 65535.0, "u4": 4294967295.0}
_IGNORED_TEXTURE_EXTENSIONS = ("KHR_texture_transform",)


@dataclass(slots=True)
class _Build:
    """Loader state: the document, the Asset being filled, image index -> texture index."""

    document: GltfDocument
    asset: Asset
    textures: dict[int, int | None] = field(default_factory=dict)
    triangles: int = 0


def load(data: bytes, fmt: Format, *, limits: Limits = DEFAULT_LIMITS) -> Asset:
    """Load a GLB, or a zip holding a .gltf (plus its buffers and images) or a .glb.

    Args:
        data: The upload.
        fmt: ``Format.glb`` or ``Format.gltf_zip``.
        limits: Caps for the guards.

    Returns:
        The flattened Asset.

    Raises:
        PipelineError: Guard codes, ``gltf_invalid_float`` for non-finite positions,
            ``mesh_too_large`` when instancing multiplies past the triangle cap.
    """
    if fmt == Format.glb:
        return _from_glb(data, limits)
    members = read_zip(data, limits)
    gltf = [name for name in members if name.lower().endswith(".gltf")]
    glb = [name for name in members if name.lower().endswith(".glb")]
    if not gltf and not glb:
        raise ArchiveError("no .gltf or .glb member", code="archive_member_missing")
    chosen = (gltf or glb)[0]
    if gltf:
        document = prevalidate(parse_json(members[chosen], limits), None, members, chosen, limits)
        asset = _asset(document)
    else:
        asset = _from_glb(members[chosen], limits)
    if len(gltf) + len(glb) > 1:
        asset.warnings.append(f"the zip holds several models; loaded {chosen!r}")
    asset.unit_hint = unit_hint(chosen)
    return asset


def _from_glb(data: bytes, limits: Limits) -> Asset:
    root, binary = parse_glb(data, limits)
    return _asset(prevalidate(root, binary, {}, "", limits))


def _asset(document: GltfDocument) -> Asset:
    build = _Build(document, Asset(primitives=[]))
    build.asset.materials = [_material(build, m) for m in document.array("materials")]
    for mesh_index, world in _mesh_instances(document):
        for primitive in document.array("meshes")[mesh_index]["primitives"]:
            loaded = _primitive(build, primitive, world)
            if loaded is not None:
                build.asset.primitives.append(loaded)
    return build.asset


def _mesh_instances(document: GltfDocument) -> list[tuple[int, F64]]:
    """(mesh index, world matrix) for every node with a mesh in the default scene (§3.5).

    Without scenes, every root node is drawn. Iterative, so deep hierarchies cannot overflow.
    """
    nodes = document.array("nodes")
    scenes = document.array("scenes")
    if scenes:
        roots = list(scenes[int(document.json.get("scene", 0))].get("nodes", []))
    else:
        children = {c for node in nodes for c in node.get("children", [])}
        roots = [n for n in range(len(nodes)) if n not in children]
    found: list[tuple[int, F64]] = []
    stack: list[tuple[int, F64]] = [(root, np.eye(4)) for root in reversed(roots)]
    while stack:
        index, parent = stack.pop()
        node = nodes[index]
        world = parent @ _local_matrix(node)
        if "mesh" in node:
            found.append((int(node["mesh"]), world))
        stack.extend((child, world) for child in reversed(node.get("children", [])))
    return found


def _local_matrix(node: JsonObject) -> F64:
    """A node's local transform: ``matrix`` (column-major) or T * R * S (glTF 2.0 §3.5.3)."""
    if "matrix" in node:
        return np.asarray(node["matrix"], dtype=np.float64).reshape(4, 4).T
    x, y, z, w = node.get("rotation", [0.0, 0.0, 0.0, 1.0])
    rotation = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    matrix = np.eye(4)
    matrix[:3, :3] = rotation * np.asarray(node.get("scale", [1.0, 1.0, 1.0]), dtype=np.float64)
    matrix[:3, 3] = node.get("translation", [0.0, 0.0, 0.0])
    return matrix


def _primitive(build: _Build, primitive: JsonObject, world: F64) -> Primitive | None:
    document = build.document
    attributes = primitive["attributes"]
    mode = primitive.get("mode", MODE_TRIANGLES)
    if mode not in (MODE_TRIANGLES, MODE_STRIP, MODE_FAN):
        build.asset.warnings.append(f"skipped a primitive of mode {mode} (points or lines)")
        return None
    positions = _floats(document, attributes["POSITION"], 3)
    if not np.isfinite(positions).all():
        raise GltfError("POSITION holds NaN or infinity", code="gltf_invalid_float")
    if "indices" in primitive:
        order = read_accessor(document, primitive["indices"]).reshape(-1).astype(np.int64)
    else:
        order = np.arange(len(positions), dtype=np.int64)
    faces = _triangles(order, mode)
    build.triangles += len(faces)
    if build.triangles > document.limits.max_triangles:
        raise MeshError("node instancing exceeds the triangle cap", code="mesh_too_large")
    linear = world[:3, :3]
    determinant = float(np.linalg.det(linear))
    if not np.isfinite(world).all() or abs(determinant) < 1e-30:
        build.asset.warnings.append("skipped a primitive with a degenerate node transform")
        return None
    if determinant < 0:
        faces = faces[:, [0, 2, 1]]  # a mirroring transform flips the winding (§3.7.4)
    normals = _optional(document, attributes, "NORMAL", 3)
    if normals is not None:
        normals = normals @ np.linalg.inv(linear)
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return make_primitive(
        positions @ linear.T + world[:3, 3],
        faces,
        build.asset.warnings,
        normals=normals,
        uvs=_optional(document, attributes, "TEXCOORD_0", 2),
        colors=_colors(document, attributes),
        material=primitive.get("material"),
    )


def _triangles(order: NDArray[np.int64], mode: int) -> NDArray[np.int64]:
    """Triangle list from indices in mode 4, 5 or 6 (glTF 2.0 §3.7.2.1)."""
    if mode == MODE_TRIANGLES:
        usable = len(order) - len(order) % 3
        return order[:usable].reshape(-1, 3)
    if len(order) < 3:
        return np.zeros((0, 3), dtype=np.int64)
    k = np.arange(len(order) - 2)
    if mode == MODE_STRIP:
        odd = k % 2
        return np.stack([order[k], order[k + 1 + odd], order[k + 2 - odd]], axis=1)
    return np.stack([order[k + 1], order[k + 2], np.full_like(k, order[0])], axis=1)


def _floats(document: GltfDocument, accessor: int, width: int) -> F64:
    """An attribute as float64, dequantizing normalized integers (§3.11)."""
    values = read_accessor(document, accessor)
    if values.shape[1] != width:
        raise GltfError(
            f"accessor {accessor} has {values.shape[1]} components", code="gltf_json_invalid"
        )
    info = document.array("accessors")[accessor]
    result = values.astype(np.float64)
    if values.dtype.kind in "iu" and info.get("normalized", False):
        result = np.maximum(result / _NORMALIZERS[values.dtype.str[1:]], -1.0)
    return result


def _optional(document: GltfDocument, attributes: JsonObject, name: str, width: int) -> F64 | None:
    if name not in attributes:
        return None
    values = (
        _floats(document, attributes[name], width)
        if _width(document, attributes[name]) == width
        else None
    )
    return values


def _width(document: GltfDocument, accessor: int) -> int:
    return TYPE_SIZES[document.array("accessors")[accessor]["type"]]


def _colors(document: GltfDocument, attributes: JsonObject) -> F64 | None:
    """COLOR_0 as linear RGBA (VEC3 gets alpha 1)."""
    if "COLOR_0" not in attributes or _width(document, attributes["COLOR_0"]) not in (3, 4):
        return None
    colors = _floats(document, attributes["COLOR_0"], _width(document, attributes["COLOR_0"]))
    if colors.shape[1] == 3:
        colors = np.concatenate([colors, np.ones((len(colors), 1))], axis=1)
    return np.clip(colors, 0.0, 1.0)


def _material(build: _Build, source: JsonObject) -> Material:
    """A glTF material; unsupported extensions are dropped with a warning."""
    pbr = source.get("pbrMetallicRoughness", {})
    extensions = source.get("extensions", {})
    spec_gloss = extensions.get("KHR_materials_pbrSpecularGlossiness")
    if isinstance(spec_gloss, dict) and "pbrMetallicRoughness" not in source:
        build.asset.warnings.append(
            "KHR_materials_pbrSpecularGlossiness approximated by its diffuse"
        )
        pbr = {
            "baseColorFactor": spec_gloss.get("diffuseFactor"),
            "baseColorTexture": spec_gloss.get("diffuseTexture"),
        }
    if isinstance(extensions, dict) and "KHR_materials_emissive_strength" in extensions:
        build.asset.warnings.append("KHR_materials_emissive_strength ignored")
    if not isinstance(pbr, dict):
        pbr = {}
    return Material(
        name=str(source.get("name", "")),
        base_color_factor=_factor(pbr.get("baseColorFactor"), (1.0, 1.0, 1.0, 1.0)),  # type: ignore[arg-type]
        base_color_texture=_texture(build, pbr.get("baseColorTexture")),
        metallic_factor=_number(pbr.get("metallicFactor"), 1.0),
        roughness_factor=_number(pbr.get("roughnessFactor"), 1.0),
        metallic_roughness_texture=_texture(build, pbr.get("metallicRoughnessTexture")),
        normal_texture=_texture(build, source.get("normalTexture")),
        occlusion_texture=_texture(build, source.get("occlusionTexture")),
        emissive_factor=_factor(source.get("emissiveFactor"), (0.0, 0.0, 0.0)),  # type: ignore[arg-type]
        emissive_texture=_texture(build, source.get("emissiveTexture")),
        alpha_mode=source.get("alphaMode", "OPAQUE")
        if source.get("alphaMode") in ("OPAQUE", "MASK", "BLEND")
        else "OPAQUE",
        alpha_cutoff=_number(source.get("alphaCutoff"), 0.5),
        double_sided=source.get("doubleSided") is True,
    )


def _factor(value: Any, default: tuple[float, ...]) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != len(default):
        return default
    numbers = [_number(v, d) for v, d in zip(value, default, strict=True)]
    return tuple(min(max(v, 0.0), 1.0) for v in numbers)


def _number(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value):
        return float(value)
    return default


def _texture(build: _Build, info: Any) -> int | None:
    """Asset texture index for a textureInfo, loading each image once with its original bytes."""
    if not isinstance(info, dict) or not isinstance(info.get("index"), int):
        return None
    textures = build.document.array("textures")
    if not 0 <= info["index"] < len(textures):
        raise GltfError(f"texture {info['index']} does not exist", code="gltf_invalid_reference")
    for name in _IGNORED_TEXTURE_EXTENSIONS:
        if name in info.get("extensions", {}):
            build.asset.warnings.append(f"{name} ignored")
    if info.get("texCoord", 0) != 0:
        build.asset.warnings.append("a texture uses TEXCOORD_1+, which is not kept")
    texture = textures[info["index"]]
    source = texture.get(
        "source", texture.get("extensions", {}).get("EXT_texture_webp", {}).get("source")
    )
    if not isinstance(source, int):
        return None
    if source not in build.textures:
        build.textures[source] = _image(build, source)
    return build.textures[source]


def _image(build: _Build, index: int) -> int | None:
    document = build.document
    image = document.array("images")[index]
    try:
        if "bufferView" in image:
            view = document.array("bufferViews")[image["bufferView"]]
            start = int(view.get("byteOffset", 0))
            data = document.buffers[view["buffer"]][start : start + int(view["byteLength"])]
        else:
            data = uri_bytes(document, image["uri"], document.limits.max_accessor_bytes)
        mime, width, height = image_size(data, document.limits)
    except ImageError as exc:
        if exc.code == "image_too_many_pixels":
            raise
        build.asset.warnings.append(f"image {index} dropped: {exc.code}")
        return None
    except ArchiveError as exc:
        build.asset.warnings.append(f"image {index} dropped: {exc.code}")
        return None
    build.asset.textures.append(Texture(data, mime, width, height, str(image.get("name", ""))))
    return len(build.asset.textures) - 1
