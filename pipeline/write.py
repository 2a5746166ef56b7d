"""Write an :class:`~pipeline.model.Asset` as GLB bytes: plain, quantized, or meshopt-compressed.

pygltflib is used only as the glTF data model and JSON serializer; the GLB container is packed
by :mod:`pipeline.glb` (glTF 2.0 §4.4) so that no pygltflib function ever resolves a URI or
touches a file. Quantization (``KHR_mesh_quantization``) lives in :mod:`pipeline.quantize`. The
document is one mesh with one primitive per input primitive, one node and scene 0. Every
attribute gets its own bufferView (non-interleaved), 4-byte aligned (§3.6.2.4); each image
shares the BIN chunk with the geometry, with its original bytes.

:func:`write_scene_glb` writes several meshes placed by a node graph (the types and the node
layout live in :mod:`pipeline.scene`) with the same machinery, :class:`GltfBuilder`: one glTF
mesh per :meth:`GltfBuilder.add_mesh` call, then :meth:`GltfBuilder.finish`. Across the meshes
of one document, identical images (with their texture) and identical materials are written
once; within one mesh nothing is merged (an asset's own duplicates stay as :func:`write_glb`
has always written them).

Options (defaults mirror gltfpack/glTF-Transform):

* ``quantize`` (``KHR_mesh_quantization``, required): vertex cache + fetch optimisation, then
  positions as uint16 on a ``position_bits`` grid shared by all primitives, dequantized by the
  node's uniform scale + translation (gltfpack's layout); normals int8 normalized; UVs uint16
  normalized (plus ``KHR_texture_transform`` on the material's textures when its UVs leave
  [0, 1]); colours uint8 normalized.
* ``meshopt`` (``EXT_meshopt_compression``, required; needs ``quantize``): every geometry
  bufferView is compressed into the GLB buffer (mode ATTRIBUTES for vertex streams, TRIANGLES
  for indices; normals optionally with the OCTAHEDRAL filter). The parent bufferViews point at a
  fallback buffer with no URI and ``extensions.EXT_meshopt_compression.fallback = true``.
  Views without a target (images, ``EXT_mesh_gpu_instancing`` data) stay uncompressed.

WebP textures use ``EXT_texture_webp`` with no ``texture.source`` fallback (the asset holds one
encoding per texture), so the extension is *required*: three.js' GLTFLoader then throws "WebP
required by asset but unsupported" on a browser without WebP instead of silently rendering
untextured. The AR/compat variant must therefore carry no WebP (the textures step's job).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import meshoptimizer as mo  # type: ignore[import-untyped]
import numpy as np
import pygltflib as gl  # type: ignore[import-untyped]
from numpy.typing import NDArray

from pipeline.errors import MeshError, OutputError

# The GLB container moved to pipeline.glb; its names stay importable from here.
from pipeline.glb import ALIGN as ALIGN
from pipeline.glb import CHUNK_BIN as CHUNK_BIN
from pipeline.glb import CHUNK_JSON as CHUNK_JSON
from pipeline.glb import GLB_MAGIC as GLB_MAGIC
from pipeline.glb import GLB_VERSION as GLB_VERSION
from pipeline.glb import pack_glb as pack_glb
from pipeline.glb import padded
from pipeline.model import Asset, Material, Primitive, Texture
from pipeline.quantize import (
    Grid,
    octahedral8,
    position_grid,
    quantize_positions,
    reorder,
    snorm8,
    unit_normals,
    unorm8_colors,
    unorm16_uvs,
    uv_transforms,
)
from pipeline.quantize import UvTransform as UvTransform

# The scene graph types live in pipeline.scene (which imports this module only for typing).
from pipeline.scene import EXT_MESH_GPU_INSTANCING as EXT_MESH_GPU_INSTANCING
from pipeline.scene import Instances as Instances
from pipeline.scene import SceneDocument as SceneDocument
from pipeline.scene import SceneNode as SceneNode
from pipeline.scene import check_scene, write_nodes

logger = logging.getLogger(__name__)

NAME: Final = "write"
GENERATOR: Final = "Pavilion"

KHR_MESH_QUANTIZATION: Final = "KHR_mesh_quantization"
KHR_TEXTURE_TRANSFORM: Final = "KHR_texture_transform"
EXT_MESHOPT_COMPRESSION: Final = "EXT_meshopt_compression"
EXT_TEXTURE_WEBP: Final = "EXT_texture_webp"

# glTF 2.0 §3.6.2.2 componentType / §3.6.3 bufferView.target / §3.8.4 sampler values.
BYTE, UNSIGNED_BYTE, SHORT, UNSIGNED_SHORT, UNSIGNED_INT, FLOAT = 5120, 5121, 5122, 5123, 5125, 5126
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
LINEAR, LINEAR_MIPMAP_LINEAR, REPEAT = 9729, 9987, 10497

IMAGE_MIME_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/webp"})

Array = NDArray[Any]


@dataclass(frozen=True, slots=True)
class WriteOptions:
    """How to encode the geometry.

    Attributes:
        quantize: KHR_mesh_quantization (and vertex cache/fetch reordering). Default off.
        meshopt: EXT_meshopt_compression on top of quantization. Default off.
        position_bits: grid resolution for quantized positions, 1-16 (gltfpack default 14).
        octahedral_normals: with meshopt, store normals with the OCTAHEDRAL filter (smaller).
    """

    quantize: bool = False
    meshopt: bool = False
    position_bits: int = 14
    octahedral_normals: bool = True

    def __post_init__(self) -> None:
        if self.meshopt and not self.quantize:
            raise ValueError("meshopt compression needs quantize=True (EXT_meshopt_compression)")
        if not 1 <= self.position_bits <= 16:
            raise ValueError("position_bits must be within 1..16")


@dataclass(slots=True)
class _Stream:
    """The bytes of one bufferView, before layout."""

    data: bytes
    count: int
    stride: int  # element size: byteStride of vertex streams, 2 or 4 for indices, 1 for images
    target: int | None  # ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER or None (images, instance data)
    meshopt_filter: str = "NONE"


@dataclass(slots=True)
class GltfBuilder:
    """A glTF document being built: meshes, then nodes and scenes, then :meth:`finish`.

    Shared by :func:`write_glb` and :func:`pipeline.scene.write_scene_glb`. bufferView i is
    ``streams[i]``; the layout (plain or meshopt) is decided by :meth:`finish`.

    Attributes:
        options: how every mesh of the document is encoded.
        gltf: the pygltflib document; callers append nodes and scenes to it.
    """

    options: WriteOptions = field(default_factory=WriteOptions)
    gltf: Any = field(default_factory=lambda: gl.GLTF2())
    streams: list[_Stream] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    required: set[str] = field(default_factory=set)
    # Cross-mesh deduplication: key -> (texture or material index, the mesh that wrote it).
    texture_cache: dict[tuple[str, bytes], tuple[int, int]] = field(default_factory=dict)
    material_cache: dict[str, tuple[int, int]] = field(default_factory=dict)

    def add_view(self, stream: _Stream) -> int:
        self.streams.append(stream)
        return len(self.streams) - 1

    def add_accessor(self, view: int, component: int, count: int, kind: str, **extra: Any) -> int:
        self.gltf.accessors.append(
            gl.Accessor(bufferView=view, componentType=component, count=count, type=kind, **extra)
        )
        return len(self.gltf.accessors) - 1

    def add_data_accessor(self, values: NDArray[np.float32]) -> int:
        """A FLOAT VEC3/VEC4 accessor on its own bufferView without a target (instance data).

        Such views are never meshopt-compressed: they stay in the GLB buffer like images.
        """
        data = np.ascontiguousarray(values, dtype=np.float32)
        view = self.add_view(_Stream(data.tobytes(), len(data), data.shape[1] * 4, None))
        kind = {3: "VEC3", 4: "VEC4"}[data.shape[1]]
        return self.add_accessor(view, FLOAT, len(data), kind)

    def use(self, name: str) -> None:
        self.used.add(name)

    def require(self, name: str) -> None:
        self.used.add(name)
        self.required.add(name)

    def add_mesh(self, asset: Asset, *, what: str = "the asset") -> tuple[int, Grid | None]:
        """Write the asset as one glTF mesh, with the materials, textures and images it uses.

        Args:
            asset: the primitives, materials and textures to write (not modified).
            what: how error messages name the asset.

        Returns:
            ``(mesh index, grid)``: with quantization, positions are stored on ``grid`` and a
            node must dequantize them (``translation = grid.offset``, uniform
            ``scale = grid.scale``); ``None`` for plain float positions.

        Raises:
            MeshError: no triangles, or malformed arrays (shapes, NaN, index range).
            OutputError: a missing material or texture, or an image type glTF cannot carry.
        """
        options = self.options
        primitives = [_checked(p) for p in asset.primitives if p.triangle_count]
        if not primitives:
            raise MeshError(f"{what} has no triangles to write", code="mesh_empty")
        if options.quantize:
            # Strip order whenever quantizing, so a meshopt file decodes to exactly the quantized
            # one.
            primitives = [reorder(p, strip=True) for p in primitives]
        grid = position_grid(primitives, options.position_bits) if options.quantize else None
        transforms = uv_transforms(primitives) if options.quantize else {}
        material_map = _write_materials(self, asset, primitives, transforms)
        gl_primitives = [
            _write_primitive(self, p, material_map, grid, transforms.get(p.material), options)
            for p in primitives
        ]
        self.gltf.meshes.append(gl.Mesh(primitives=gl_primitives))
        if options.quantize:
            self.require(KHR_MESH_QUANTIZATION)
        return len(self.gltf.meshes) - 1, grid

    def finish(self, node_extras: dict[int, dict[str, Any]] | None = None) -> bytes:
        """Lay out the buffers and pack the GLB.

        Args:
            node_extras: ``node.extras`` by node index, JSON-safe; written verbatim.

        Returns:
            The GLB bytes.

        Raises:
            OutputError: a non-finite number would reach the JSON.
        """
        return _finish(self, meshopt=self.options.meshopt, node_extras=node_extras or {})


def write_glb(asset: Asset, options: WriteOptions | None = None) -> bytes:
    """Encode an asset as a GLB.

    Args:
        asset: the primitives, materials and textures to write (not modified).
        options: quantization and compression; plain float32 geometry by default.

    Returns:
        The GLB bytes; the same asset and options always give the same bytes.

    Raises:
        MeshError: the asset has no triangles, or malformed arrays (shapes, NaN, index range).
        OutputError: a material points at a missing texture, an image type glTF cannot carry,
            or a non-finite number would reach the JSON.
    """
    doc = GltfBuilder(options or WriteOptions())
    mesh, grid = doc.add_mesh(asset)
    doc.gltf.nodes.append(_node(mesh, grid))
    doc.gltf.scenes.append(gl.Scene(nodes=[0]))
    doc.gltf.scene = 0
    glb = doc.finish()
    logger.debug("wrote GLB: %d bytes, %d primitives", len(glb), len(doc.gltf.meshes[0].primitives))
    return glb


def write_scene_glb(scene: SceneDocument, options: WriteOptions | None = None) -> bytes:
    """Encode a scene graph as a GLB: each mesh once, placed (or instanced) by the nodes.

    Args:
        scene: the meshes, nodes and roots to write (not modified).
        options: quantization and compression, as for :func:`write_glb`.

    Returns:
        The GLB bytes; the same scene and options always give the same bytes. Node ``i`` is
        ``scene.nodes[i]`` and mesh ``i`` is ``scene.meshes[i]`` (see :mod:`pipeline.scene`).

    Raises:
        MeshError: no meshes, a mesh without triangles, or malformed arrays.
        OutputError: a bad graph (index out of range, a cycle, a node with two parents or one
            the roots do not reach), a non-finite transform, bad instance arrays, extras that
            are not JSON, or any :func:`write_glb` output error.
    """
    nodes, roots = check_scene(scene)
    doc = GltfBuilder(options or WriteOptions())
    grids = [doc.add_mesh(asset, what=f"scene mesh {i}")[1] for i, asset in enumerate(scene.meshes)]
    write_nodes(doc, nodes, grids)
    doc.gltf.scenes.append(gl.Scene(nodes=roots))
    doc.gltf.scene = 0
    glb = doc.finish(node_extras={i: node.extras for i, node in enumerate(nodes) if node.extras})
    logger.debug("wrote scene GLB: %d bytes, %d meshes, %d nodes", len(glb), len(grids), len(nodes))
    return glb


# --- input checks ----------------------------------------------------------------------------


def _checked(p: Primitive) -> Primitive:
    """Reject arrays the writer (and meshoptimizer's C code) cannot safely encode."""
    n = p.vertex_count
    if p.positions.ndim != 2 or p.positions.shape[1] != 3:
        raise MeshError("positions must be an (N, 3) array")
    if p.indices.ndim != 1 or p.indices.size % 3:
        raise MeshError("indices must be a flat array of triangles")
    if int(p.indices.max()) >= n or int(p.indices.min()) < 0:
        raise MeshError("an index points outside the vertices", code="mesh_index_out_of_range")
    for name, array, width in (
        ("positions", p.positions, 3),
        ("normals", p.normals, 3),
        ("uvs", p.uvs, 2),
        ("colors", p.colors, 4),
    ):
        if array is None:
            continue
        if array.shape != (n, width):
            raise MeshError(f"{name} must have shape ({n}, {width}), not {array.shape}")
        if not np.isfinite(array).all():
            raise MeshError(f"{name} contain NaN or infinity", code="mesh_not_finite")
    return p


# --- streams, accessors and primitives -------------------------------------------------------


def _vertex_stream(values: Array, meshopt_filter: str = "NONE") -> _Stream:
    """Rows padded to a multiple of 4 bytes (§3.6.2.4: byteStride multiple of 4)."""
    rows, width = values.shape
    item = values.dtype.itemsize
    stride = -(-width * item // ALIGN) * ALIGN
    padded = np.zeros((rows, stride // item), dtype=values.dtype)
    padded[:, :width] = values
    return _Stream(padded.tobytes(), rows, stride, ARRAY_BUFFER, meshopt_filter)


def _add_attribute(
    doc: GltfBuilder,
    values: Array,
    component: int,
    *,
    normalized: bool = False,
    bounds: bool = False,
    stream: _Stream | None = None,
) -> int:
    """A VEC2/3/4 accessor on its own bufferView (``stream``, or ``values`` padded to 4 bytes)."""
    view = doc.add_view(stream or _vertex_stream(values))
    kind = {2: "VEC2", 3: "VEC3", 4: "VEC4"}[values.shape[1]]
    extra = _bounds(values) if bounds else {}
    return doc.add_accessor(
        view, component, values.shape[0], kind, normalized=normalized or None, **extra
    )


def _bounds(values: Array) -> dict[str, list[float] | list[int]]:
    """accessor.min/max (§3.6.2.5; required on POSITION), exact in the accessor's type."""
    lo, hi = values.min(axis=0), values.max(axis=0)
    if np.issubdtype(values.dtype, np.integer):
        return {"min": [int(v) for v in lo], "max": [int(v) for v in hi]}
    return {"min": [float(v) for v in lo], "max": [float(v) for v in hi]}


def _write_primitive(
    doc: GltfBuilder,
    p: Primitive,
    material_map: dict[int, int],
    grid: Grid | None,
    uv_transform: UvTransform | None,
    options: WriteOptions,
) -> Any:
    attributes = gl.Attributes()
    if grid is None:
        positions: Array = np.ascontiguousarray(p.positions, dtype=np.float32)
        attributes.POSITION = _add_attribute(doc, positions, FLOAT, bounds=True)
    else:
        q = quantize_positions(p.positions, grid)
        attributes.POSITION = _add_attribute(doc, q, UNSIGNED_SHORT, bounds=True)
    if p.normals is not None:
        attributes.NORMAL = _write_normals(doc, unit_normals(p.normals), options)
    if p.uvs is not None:
        if options.quantize:
            uv16 = unorm16_uvs(p.uvs, uv_transform)
            attributes.TEXCOORD_0 = _add_attribute(doc, uv16, UNSIGNED_SHORT, normalized=True)
        else:
            attributes.TEXCOORD_0 = _add_attribute(doc, p.uvs.astype(np.float32), FLOAT)
    if p.colors is not None:
        colors = np.clip(p.colors.astype(np.float64), 0.0, 1.0)
        if options.quantize:
            c8 = unorm8_colors(colors)
            attributes.COLOR_0 = _add_attribute(doc, c8, UNSIGNED_BYTE, normalized=True)
        else:
            attributes.COLOR_0 = _add_attribute(doc, colors.astype(np.float32), FLOAT)
    material = material_map.get(p.material) if p.material is not None else None
    return gl.Primitive(
        attributes=attributes,
        indices=_write_indices(doc, p.indices, p.vertex_count),
        material=material,
        mode=gl.TRIANGLES,
    )


def _write_normals(doc: GltfBuilder, normals: NDArray[np.float32], options: WriteOptions) -> int:
    if not options.quantize:
        return _add_attribute(doc, normals, FLOAT)
    if options.meshopt and options.octahedral_normals:
        # The OCTAHEDRAL filter needs byteStride 4; decoded, the first three bytes are snorm8 xyz.
        stream = _Stream(
            octahedral8(normals).tobytes(), len(normals), 4, ARRAY_BUFFER, "OCTAHEDRAL"
        )
        return _add_attribute(doc, snorm8(normals), BYTE, normalized=True, stream=stream)
    return _add_attribute(doc, snorm8(normals), BYTE, normalized=True)


def _write_indices(doc: GltfBuilder, indices: NDArray[np.uint32], vertex_count: int) -> int:
    # §3.7.2.1: the maximum value of the component type is reserved (primitive restart), so
    # uint16 holds indices up to 65534, i.e. up to 65535 vertices.
    if vertex_count < 0xFFFF + 1:
        data, component, size = indices.astype(np.uint16), UNSIGNED_SHORT, 2
    else:
        data, component, size = indices.astype(np.uint32), UNSIGNED_INT, 4
    view = doc.add_view(_Stream(data.tobytes(), data.size, size, ELEMENT_ARRAY_BUFFER))
    return doc.add_accessor(view, component, int(data.size), "SCALAR", normalized=None)


def _node(mesh: int, grid: Grid | None) -> Any:
    if grid is None:
        return gl.Node(mesh=mesh)
    # KHR_mesh_quantization: the node transform dequantizes (uniform scale keeps normals right).
    return gl.Node(mesh=mesh, translation=list(grid.offset), scale=[grid.scale] * 3)


# --- materials, textures, images -------------------------------------------------------------


def _write_materials(
    doc: GltfBuilder,
    asset: Asset,
    primitives: Sequence[Primitive],
    transforms: dict[int | None, UvTransform],
) -> dict[int, int]:
    """Write the materials the primitives use (and their textures); returns old -> new index.

    A material identical to one an earlier mesh of the document wrote (same name, factors,
    images and texture transforms) is reused; the materials of one asset are kept apart.
    """
    used = sorted({p.material for p in primitives if p.material is not None})
    material_map: dict[int, int] = {}
    texture_map: dict[int, int] = {}
    mesh = len(doc.gltf.meshes)  # the mesh being written
    for old in used:
        if not 0 <= old < len(asset.materials):
            raise OutputError(f"a primitive uses material {old}, which does not exist")
        material = asset.materials[old]
        for index in sorted(material.texture_slots().values()):
            if index not in texture_map:
                texture_map[index] = _write_texture(doc, asset, index)
        gl_material = _material(material, texture_map)
        if old in transforms:
            _apply_uv_transform(doc, gl_material, transforms[old])
        key = repr(gl_material)
        first, owner = doc.material_cache.setdefault(key, (len(doc.gltf.materials), mesh))
        if owner != mesh:
            material_map[old] = first
            continue
        material_map[old] = len(doc.gltf.materials)
        doc.gltf.materials.append(gl_material)
    return material_map


def _write_texture(doc: GltfBuilder, asset: Asset, index: int) -> int:
    """The texture (and image) for ``asset.textures[index]``; one per image bytes across meshes."""
    if not 0 <= index < len(asset.textures):
        raise OutputError(f"a material uses texture {index}, which does not exist")
    texture: Texture = asset.textures[index]
    if texture.mime_type not in IMAGE_MIME_TYPES:
        raise OutputError(f"glTF cannot carry {texture.mime_type!r} images")
    mesh = len(doc.gltf.meshes)
    key = (texture.mime_type, texture.data)
    first, owner = doc.texture_cache.setdefault(key, (len(doc.gltf.textures), mesh))
    if owner != mesh:
        return first
    if not doc.gltf.samplers:
        doc.gltf.samplers.append(
            gl.Sampler(magFilter=LINEAR, minFilter=LINEAR_MIPMAP_LINEAR, wrapS=REPEAT, wrapT=REPEAT)
        )
    view = doc.add_view(_Stream(texture.data, len(texture.data), 1, None))
    image = len(doc.gltf.images)
    doc.gltf.images.append(
        gl.Image(bufferView=view, mimeType=texture.mime_type, name=texture.name or None)
    )
    if texture.mime_type == "image/webp":
        # EXT_texture_webp with no fallback source: required (see the module docstring).
        gl_texture = gl.Texture(sampler=0, extensions={EXT_TEXTURE_WEBP: {"source": image}})
        doc.require(EXT_TEXTURE_WEBP)
    else:
        gl_texture = gl.Texture(sampler=0, source=image)
    doc.gltf.textures.append(gl_texture)
    return len(doc.gltf.textures) - 1


def _material(m: Material, texture_map: dict[int, int]) -> Any:
    def info(index: int | None, cls: Any = gl.TextureInfo) -> Any:
        return None if index is None else cls(index=texture_map[index])

    return gl.Material(
        name=m.name or None,
        pbrMetallicRoughness=gl.PbrMetallicRoughness(
            baseColorFactor=[float(v) for v in m.base_color_factor],
            metallicFactor=float(m.metallic_factor),
            roughnessFactor=float(m.roughness_factor),
            baseColorTexture=info(m.base_color_texture),
            metallicRoughnessTexture=info(m.metallic_roughness_texture),
        ),
        normalTexture=info(m.normal_texture, gl.NormalMaterialTexture),
        occlusionTexture=info(m.occlusion_texture, gl.OcclusionTextureInfo),
        emissiveTexture=info(m.emissive_texture),
        emissiveFactor=[float(v) for v in m.emissive_factor],
        alphaMode=m.alpha_mode,
        # §3.9.4: alphaCutoff only applies to MASK (the validator warns otherwise).
        alphaCutoff=float(m.alpha_cutoff) if m.alpha_mode == "MASK" else None,
        doubleSided=m.double_sided,
    )


def _apply_uv_transform(doc: GltfBuilder, m: Any, transform: UvTransform) -> None:
    """Put KHR_texture_transform on every texture slot of a material with remapped UVs."""
    offset, scale = transform
    pbr = m.pbrMetallicRoughness
    slots = [pbr.baseColorTexture, pbr.metallicRoughnessTexture]
    slots += [m.normalTexture, m.occlusionTexture, m.emissiveTexture]
    for slot in slots:
        if slot is not None:
            slot.extensions = {
                KHR_TEXTURE_TRANSFORM: {"offset": list(offset), "scale": list(scale)}
            }
            doc.require(KHR_TEXTURE_TRANSFORM)


# --- layout and JSON -------------------------------------------------------------------------


def _layout_plain(doc: GltfBuilder) -> bytes:
    """Every view in the GLB buffer, each at a 4-byte aligned offset (§3.6.2.4)."""
    blob = bytearray()
    for stream in doc.streams:
        doc.gltf.bufferViews.append(_buffer_view(stream, 0, len(blob)))
        blob += padded(stream.data)
    doc.gltf.buffers.append(gl.Buffer(byteLength=len(blob)))
    return bytes(blob)


def _layout_meshopt(doc: GltfBuilder) -> bytes:
    """Geometry compressed into buffer 0; parent views address fallback buffer 1."""
    blob = bytearray()
    fallback_length = 0
    mo.encode_vertex_version(0)  # EXT_meshopt_compression: vertex header byte 0xa0
    mo.encode_index_version(1)  # and index (TRIANGLES) header byte 0xe1
    for stream in doc.streams:
        if stream.target is None:  # images and instance data stay as they are in the GLB buffer
            doc.gltf.bufferViews.append(_buffer_view(stream, 0, len(blob)))
            blob += padded(stream.data)
            continue
        encoded, mode = _meshopt_encode(stream)
        view = _buffer_view(stream, 1, fallback_length)
        view.extensions = {
            EXT_MESHOPT_COMPRESSION: {
                "buffer": 0,
                "byteOffset": len(blob),
                "byteLength": len(encoded),
                "byteStride": stream.stride,
                "mode": mode,
                "count": stream.count,
                **({"filter": stream.meshopt_filter} if stream.meshopt_filter != "NONE" else {}),
            }
        }
        doc.gltf.bufferViews.append(view)
        blob += padded(encoded)
        fallback_length += len(padded(stream.data))
    doc.gltf.buffers.append(gl.Buffer(byteLength=len(blob)))
    doc.gltf.buffers.append(
        gl.Buffer(
            byteLength=fallback_length, extensions={EXT_MESHOPT_COMPRESSION: {"fallback": True}}
        )
    )
    doc.require(EXT_MESHOPT_COMPRESSION)
    return bytes(blob)


def _meshopt_encode(stream: _Stream) -> tuple[bytes, str]:
    raw = np.frombuffer(stream.data, dtype=np.uint8)
    if stream.target == ELEMENT_ARRAY_BUFFER:
        dtype = np.uint16 if stream.stride == 2 else np.uint32
        indices = np.frombuffer(stream.data, dtype=dtype).astype(np.uint32)
        vertex_count = int(indices.max()) + 1
        return bytes(mo.encode_index_buffer(indices, indices.size, vertex_count)), "TRIANGLES"
    rows = raw.reshape(stream.count, stream.stride)
    return bytes(mo.encode_vertex_buffer(rows, stream.count, stream.stride)), "ATTRIBUTES"


def _buffer_view(stream: _Stream, buffer: int, offset: int) -> Any:
    vertex = stream.target == ARRAY_BUFFER
    return gl.BufferView(
        buffer=buffer,
        byteOffset=offset,
        byteLength=len(stream.data),
        byteStride=stream.stride if vertex else None,
        target=stream.target,
    )


def _finish(doc: GltfBuilder, *, meshopt: bool, node_extras: dict[int, dict[str, Any]]) -> bytes:
    gltf = doc.gltf
    gltf.asset = gl.Asset(generator=GENERATOR, version="2.0")
    blob = _layout_meshopt(doc) if meshopt else _layout_plain(doc)
    gltf.extensionsUsed = sorted(doc.used)
    gltf.extensionsRequired = sorted(doc.required)
    try:
        # allow_nan=False: NaN/Infinity are not JSON and not glTF (§3.2); fail loudly instead.
        text = str(gltf.to_json(allow_nan=False, separators=(",", ":")))
        if node_extras:
            text = _with_node_extras(text, node_extras)
    except ValueError as exc:
        raise OutputError(f"non-finite number in the glTF JSON: {exc}") from exc
    return pack_glb(text.encode("utf-8"), blob)


def _with_node_extras(text: str, node_extras: dict[int, dict[str, Any]]) -> str:
    """Set ``node.extras`` after pygltflib's serializer, which drops empty values recursively.

    pygltflib deletes every ``None``, ``""``, ``[]`` and ``{}`` below a node, extras included;
    application data must come through as given. Python's JSON round trip keeps every number
    (shortest repr) and key order, so the rest of the document is unchanged.
    """
    document = json.loads(text)
    for index, extras in sorted(node_extras.items()):
        document["nodes"][index]["extras"] = extras
    return json.dumps(document, allow_nan=False, separators=(",", ":"))
