"""Wavefront OBJ (bare, or zipped with its MTL and textures) -> Asset.

trimesh parses the geometry with a resolver that serves only ``.mtl`` members of the same upload;
it never sees texture bytes (its MTL reader would hand them to ``PIL.Image.open`` without a
``formats=`` allowlist). Materials are read here from the MTL, and textures go through
pipeline.guards.image and keep their original bytes.
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any

import numpy as np
import trimesh
from numpy.typing import NDArray
from trimesh.exchange.obj import load_obj

from pipeline.errors import ArchiveError, ImageError, MeshError
from pipeline.guards.archive import read_zip, resolve
from pipeline.guards.image import image_size
from pipeline.limits import DEFAULT_LIMITS, Limits
from pipeline.loaders import make_primitive, srgb_to_linear, unit_hint
from pipeline.model import Asset, Format, Material, Primitive, Texture

logger = logging.getLogger(__name__)

# OBJ indices are 1-based; 0 is invalid and trimesh silently accepts it (research E3).
_ZERO_INDEX = re.compile(rb"^f[ \t][^\n#]*?(?<![\d\-.])-?0(?![\d.])", re.MULTILINE)
_MTLLIB = re.compile(rb"^mtllib[ \t]+([^\r\n]+)", re.MULTILINE)
# Map options and how many arguments each takes (MTL spec); -o/-s/-t take up to three.
_MAP_OPTIONS = {"-bm": 1, "-blendu": 1, "-blendv": 1, "-boost": 1, "-cc": 1, "-clamp": 1,
                "-imfchan": 1, "-mm": 2, "-texres": 1, "-type": 1, "-o": 3, "-s": 3, "-t": 3}  # fmt: skip
_WORD_OPTIONS = frozenset({"-clamp", "-blendu", "-blendv", "-imfchan", "-type"})
_SLOTS = {"map_kd": "base_color_texture", "map_bump": "normal_texture", "bump": "normal_texture",
          "norm": "normal_texture", "map_ke": "emissive_texture"}  # fmt: skip
# Exceptions trimesh's OBJ parser has been seen to raise on malformed input (research finding 4).
PARSER_ERRORS = (ValueError, IndexError, TypeError, KeyError, AttributeError, AssertionError,
                 UnboundLocalError, ZeroDivisionError, OverflowError, UnicodeError)  # fmt: skip


class _MtlOnlyResolver(trimesh.resolvers.Resolver):
    """Serves ``.mtl`` members of the upload to trimesh and refuses everything else."""

    def __init__(self, members: dict[str, bytes], base: str) -> None:
        self.members = members
        self.base = base

    def get(self, key: str) -> bytes:
        if not key.lower().strip().endswith(".mtl") or not self.members:
            raise OSError(f"{key!r} is not served to trimesh")
        try:
            return resolve(self.members, self.base, key)
        except ArchiveError as exc:
            raise OSError(str(exc)) from exc

    def write(self, name: str, data: Any) -> None:
        raise OSError("read only")

    def namespaced(self, namespace: str) -> _MtlOnlyResolver:
        return self

    def keys(self) -> list[str]:
        return []


def load(data: bytes, fmt: Format, *, limits: Limits = DEFAULT_LIMITS) -> Asset:
    """Load a bare OBJ or a zip holding one (plus MTL and textures).

    Args:
        data: The upload.
        fmt: ``Format.obj`` or ``Format.obj_zip``.
        limits: Caps for the guards.

    Returns:
        The Asset, one primitive per OBJ material group.

    Raises:
        MeshError: ``mesh_too_large``, ``mesh_invalid_indices``, ``mesh_parse_failed``.
        ArchiveError, ImageError: From the archive and image guards.
    """
    members: dict[str, bytes] = {}
    base = ""
    if fmt == Format.obj_zip:
        members = read_zip(data, limits)
        objs = [name for name in members if name.lower().endswith(".obj")]
        if not objs:
            raise ArchiveError("no .obj member", code="archive_member_missing")
        base, data = objs[0], members[objs[0]]
    _check_counts(data, limits)
    asset = Asset(primitives=[], unit_hint=unit_hint(base) if base else None)
    materials = _materials(data, members, base, asset, limits)
    try:
        parsed = load_obj(
            io.BytesIO(data), resolver=_MtlOnlyResolver(members, base), group_material=True
        )
        for geometry in parsed.get("geometry", {}).values():
            primitive = _primitive(geometry, materials, asset)
            if primitive is not None:
                asset.primitives.append(primitive)
    except PARSER_ERRORS as exc:
        raise MeshError(f"OBJ could not be parsed: {exc}", code="mesh_parse_failed") from exc
    except MemoryError as exc:
        raise MeshError("OBJ too large to parse", code="mesh_too_large") from exc
    asset.primitives.sort(key=lambda p: -1 if p.material is None else p.material)
    return asset


def _check_counts(data: bytes, limits: Limits) -> None:
    """Cheap line counts against the caps before trimesh allocates anything."""
    vertices = data.count(b"\nv ") + data.startswith(b"v ")
    faces = data.count(b"\nf ") + data.startswith(b"f ")
    if vertices > limits.max_vertices or faces > limits.max_triangles:
        raise MeshError(f"OBJ with {vertices} vertices, {faces} faces", code="mesh_too_large")
    if _ZERO_INDEX.search(data):
        raise MeshError("OBJ face index 0 (indices are 1-based)", code="mesh_invalid_indices")


def _primitive(
    geometry: dict[str, Any], materials: dict[str, int], asset: Asset
) -> Primitive | None:
    faces = _triangulate(np.asarray(geometry["faces"], dtype=np.int64))
    visual = geometry.get("visual")
    material_name = getattr(getattr(visual, "material", None), "name", None)
    uvs = getattr(visual, "uv", None)
    if uvs is not None:
        uvs = np.asarray(uvs, dtype=np.float64)
        uvs = np.stack([uvs[:, 0], 1.0 - uvs[:, 1]], axis=1)  # OBJ origin is bottom-left
    return make_primitive(
        np.asarray(geometry["vertices"], dtype=np.float64),
        faces,
        asset.warnings,
        normals=geometry.get("vertex_normals"),
        uvs=uvs,
        colors=_colors(geometry.get("vertex_colors")),
        material=materials.get(material_name) if isinstance(material_name, str) else None,
    )


def _triangulate(faces: NDArray[np.int64]) -> NDArray[np.int64]:
    """Fan-triangulate (n, k) polygons; trimesh returns quads and n-gons as they are written."""
    if faces.ndim != 2 or faces.shape[1] < 3:
        return np.zeros((0, 3), dtype=np.int64)
    fans = [faces[:, [0, i, i + 1]] for i in range(1, faces.shape[1] - 1)]
    return np.concatenate(fans, axis=0)


def _colors(values: Any) -> NDArray[np.float32] | None:
    if values is None:
        return None
    rgba = np.asarray(values, dtype=np.float64) / 255.0
    if rgba.ndim != 2 or rgba.shape[1] != 4:
        return None
    return np.concatenate([srgb_to_linear(rgba[:, :3]), rgba[:, 3:]], axis=1).astype(np.float32)


def _materials(
    data: bytes, members: dict[str, bytes], base: str, asset: Asset, limits: Limits
) -> dict[str, int]:
    """Parse every ``mtllib`` of the OBJ into Asset materials; name -> material index."""
    names: dict[str, int] = {}
    for match in _MTLLIB.finditer(data):
        reference = match.group(1).decode("utf-8", "replace").strip()
        if not members:
            asset.warnings.append(f"material library {reference!r} not uploaded (bare OBJ)")
            continue
        try:
            mtl = resolve(members, base, reference)
        except ArchiveError as exc:
            asset.warnings.append(f"material library {reference!r} skipped: {exc.code}")
            continue
        member = _member_name(members, mtl)
        for material in _parse_mtl(mtl.decode("utf-8", "replace"), members, member, asset, limits):
            names.setdefault(material.name, len(asset.materials))
            asset.materials.append(material)
    return names


def _member_name(members: dict[str, bytes], data: bytes) -> str:
    return next(name for name, body in members.items() if body is data)


def _parse_mtl(
    text: str, members: dict[str, bytes], member: str, asset: Asset, limits: Limits
) -> list[Material]:
    materials: list[Material] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or words[0].startswith("#"):
            continue
        key = words[0].lower()
        if key == "newmtl":
            materials.append(Material(name=" ".join(words[1:]), metallic_factor=0.0))
        elif materials:
            _apply(materials[-1], key, words[1:], members, member, asset, limits)
    return materials


def _apply(
    material: Material,
    key: str,
    args: list[str],
    members: dict[str, bytes],
    member: str,
    asset: Asset,
    limits: Limits,
) -> None:
    """One MTL statement; malformed numbers keep the default (e.g. an invalid ``Ns``)."""
    numbers = _floats(args)
    if key == "kd" and len(numbers) >= 3:
        material.base_color_factor = (*_unit3(numbers), material.base_color_factor[3])
    elif key in ("d", "tr") and numbers:
        alpha = numbers[0] if key == "d" else 1.0 - numbers[0]
        material.base_color_factor = (*material.base_color_factor[:3], min(max(alpha, 0.0), 1.0))
        if alpha < 1.0:
            material.alpha_mode = "BLEND"
    elif key == "ns" and numbers:
        # Phong exponent 0..1000 -> roughness (obj2gltf's approximation).
        material.roughness_factor = 1.0 - min(max(numbers[0] / 1000.0, 0.0), 1.0) ** 0.5
    elif key == "ke" and len(numbers) >= 3:
        material.emissive_factor = _unit3(numbers)
    elif key in _SLOTS:
        setattr(material, _SLOTS[key], _texture(_map_file(args), members, member, asset, limits))


def _floats(args: list[str]) -> list[float]:
    values: list[float] = []
    for arg in args:
        try:
            value = float(arg)
        except ValueError:
            return values
        if not np.isfinite(value):
            return values
        values.append(value)
    return values


def _unit3(numbers: list[float]) -> tuple[float, float, float]:
    r, g, b = (min(max(v, 0.0), 1.0) for v in numbers[:3])
    return (r, g, b)


def _map_file(args: list[str]) -> str:
    """The file name of a ``map_*`` statement, after its options (names may contain spaces)."""
    i = 0
    while i < len(args) - 1 and args[i].lower() in _MAP_OPTIONS:
        option = args[i].lower()
        i += 1
        for _ in range(_MAP_OPTIONS[option]):
            # Numeric arguments, or one word for the on/off and channel options; the last
            # token is always left for the file name.
            if i < len(args) - 1 and (_floats([args[i]]) or option in _WORD_OPTIONS):
                i += 1
    return " ".join(args[i:])


def _texture(
    reference: str, members: dict[str, bytes], member: str, asset: Asset, limits: Limits
) -> int | None:
    if not members or not reference:
        return None
    try:
        data = resolve(members, member, reference)
        mime, width, height = image_size(data, limits)
    except ImageError as exc:
        if exc.code == "image_too_many_pixels":
            raise
        asset.warnings.append(f"texture {reference!r} dropped: {exc.code}")
        return None
    except ArchiveError as exc:
        asset.warnings.append(f"texture {reference!r} dropped: {exc.code}")
        return None
    for index, texture in enumerate(asset.textures):
        if texture.data is data:
            return index
    asset.textures.append(Texture(data, mime, width, height, reference))
    return len(asset.textures) - 1
