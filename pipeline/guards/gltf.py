"""glTF 2.0 prevalidation: nothing reaches a loader until this module has bounded it.

:func:`parse_glb` walks the GLB container with every length checked (glTF 2.0 §4.4),
:func:`parse_json` caps the JSON's size and nesting depth before ``json.loads`` runs, and
:func:`prevalidate` checks URIs, buffers, bufferViews, accessors (bufferless ones included),
indices, the node graph and ``extensionsRequired``. :func:`read_accessor` then decodes an accessor
with numpy inside bounds that have already been proven. Accessor checks and reads live in
:mod:`pipeline.guards.accessors`, the document and its JSON field readers in
:mod:`pipeline.guards.gltf_document`; both are re-exported here.

Decisions (research-security.md D1-D10):

* URIs are ``data:`` (base64, size-capped before decoding) or a relative member of the same zip;
  ``http(s):``, ``file:``, any other scheme, absolute paths and any ``..`` segment are refused.
* ``extensionsRequired`` must be a subset of :data:`SUPPORTED_REQUIRED`. Draco, meshopt and
  KHR_texture_basisu are refused when required (another decompression surface we do not run);
  when merely used, their uncompressed fallback data is what we read.
* Non-finite floats: the JSON parser refuses ``NaN``/``Infinity`` tokens, accessor ``min``/``max``
  overflowing to infinity (``1e999``) and non-finite POSITION data (checked by the loader) are
  refused with ``gltf_invalid_float``: rejecting is simpler to reason about than sanitising.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import struct
from urllib.parse import unquote

import numpy as np

from pipeline.errors import GltfError
from pipeline.glb import CHUNK_BIN, CHUNK_JSON

# Accessors and the document model live in their own modules; these names stay importable here.
from pipeline.guards.accessors import COMPONENT_DTYPES as COMPONENT_DTYPES
from pipeline.guards.accessors import INDEX_TYPES, check_accessors
from pipeline.guards.accessors import TYPE_SIZES as TYPE_SIZES
from pipeline.guards.accessors import read_accessor as read_accessor
from pipeline.guards.archive import resolve
from pipeline.guards.gltf_document import GltfDocument as GltfDocument
from pipeline.guards.gltf_document import JsonObject as JsonObject
from pipeline.guards.gltf_document import json_index, json_int, json_str
from pipeline.limits import DEFAULT_LIMITS, Limits

logger = logging.getLogger(__name__)

GLB_MAGIC = b"glTF"
SUPPORTED_REQUIRED = frozenset(
    {
        "KHR_mesh_quantization",
        "KHR_texture_transform",
        "KHR_materials_emissive_strength",
        "KHR_materials_unlit",
        "EXT_texture_webp",
        # Deprecated but still exported; approximated by its diffuse (pipeline.loaders.gltf).
        "KHR_materials_pbrSpecularGlossiness",
    }
)
# Unrolled string-literal pattern: linear and ~20x faster than an alternation per character.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_DATA_URI = re.compile(r"^data:[\w.+\-]*/?[\w.+\-]*(?:;[\w=.+\-]+)*;base64,", re.IGNORECASE)


def parse_glb(data: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[JsonObject, bytes | None]:
    """Split a GLB into its JSON object and optional BIN chunk (glTF 2.0 §4.4).

    Args:
        data: The whole GLB.
        limits: ``max_json_bytes`` and ``max_json_depth``.

    Returns:
        The parsed JSON and the BIN chunk's bytes, or None without one.

    Raises:
        GltfError: ``gltf_glb_invalid`` for any container fault; JSON errors as in
            :func:`parse_json`.
    """
    if len(data) < 20 or data[:4] != GLB_MAGIC:
        raise GltfError("not a GLB container", code="gltf_glb_invalid")
    version, length = struct.unpack_from("<II", data, 4)
    if version != 2 or length != len(data):
        raise GltfError(
            f"GLB version {version}, length {length} for {len(data)} bytes",
            code="gltf_glb_invalid",
        )
    chunks: list[tuple[int, bytes]] = []
    offset = 12
    while offset < length:
        if offset + 8 > length:
            raise GltfError("truncated GLB chunk header", code="gltf_glb_invalid")
        size, kind = struct.unpack_from("<II", data, offset)
        if offset + 8 + size > length:
            raise GltfError(f"GLB chunk length {size} runs past the file", code="gltf_glb_invalid")
        if size % 4:
            # §4.4.3.1 wants 4-byte aligned chunks; some exporters (older trimesh) do not pad.
            # Harmless once bounds are checked, and our output is re-written anyway.
            logger.info("unaligned GLB chunk of %d bytes accepted", size)
        chunks.append((kind, data[offset + 8 : offset + 8 + size]))
        offset += 8 + size
    if not chunks or chunks[0][0] != CHUNK_JSON:
        raise GltfError("the first GLB chunk must be JSON", code="gltf_glb_invalid")
    kinds = [kind for kind, _ in chunks]
    if kinds.count(CHUNK_JSON) > 1 or kinds.count(CHUNK_BIN) > 1 or CHUNK_BIN in kinds[2:]:
        raise GltfError("duplicate or misplaced GLB chunks", code="gltf_glb_invalid")
    binary = chunks[1][1] if len(chunks) > 1 and chunks[1][0] == CHUNK_BIN else None
    return parse_json(chunks[0][1], limits), binary


def parse_json(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> JsonObject:
    """Parse glTF JSON after capping its size and nesting depth (no recursion involved).

    Args:
        raw: UTF-8 JSON (GLB JSON chunks may be padded with spaces).
        limits: ``max_json_bytes`` and ``max_json_depth``.

    Returns:
        The root object.

    Raises:
        GltfError: ``gltf_json_too_large``, ``gltf_json_too_deep`` or ``gltf_json_invalid``
            (including ``NaN``/``Infinity`` tokens, which browsers' JSON.parse rejects).
    """
    if len(raw) > limits.max_json_bytes:
        raise GltfError(f"JSON of {len(raw)} bytes", code="gltf_json_too_large")
    depth = json_depth(raw)
    if depth > limits.max_json_depth:
        raise GltfError(f"JSON nested {depth} levels deep", code="gltf_json_too_deep")
    try:
        root = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise GltfError(f"invalid JSON: {exc}", code="gltf_json_invalid") from exc
    if not isinstance(root, dict):
        raise GltfError("the glTF root is not an object", code="gltf_json_invalid")
    return root


def json_depth(raw: bytes) -> int:
    """The maximum ``{``/``[`` nesting of a JSON text, computed with numpy (no recursion)."""
    stripped = _STRING.sub(b'""', raw)
    codes = np.frombuffer(stripped, dtype=np.uint8)
    steps = np.zeros(codes.shape, dtype=np.int32)
    steps[(codes == ord("{")) | (codes == ord("["))] = 1
    steps[(codes == ord("}")) | (codes == ord("]"))] = -1
    return int(np.cumsum(steps).max()) if steps.size else 0


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def prevalidate(
    root: JsonObject,
    binary: bytes | None,
    members: dict[str, bytes] | None = None,
    base_member: str = "",
    limits: Limits = DEFAULT_LIMITS,
) -> GltfDocument:
    """Check a parsed glTF against the spec rules a hostile file would break, then resolve buffers.

    Args:
        root: The JSON object from :func:`parse_glb` or :func:`parse_json`.
        binary: The GLB BIN chunk, if any.
        members: The zip members of the upload (empty for a GLB).
        base_member: The member holding the .gltf, for relative URIs.
        limits: Accessor, node and size caps.

    Returns:
        The document with every buffer's bytes.

    Raises:
        GltfError: With the codes listed in pipeline.guards.
        ArchiveError: A relative URI that names no member of the upload.
    """
    _check_shape(root, limits)
    document = GltfDocument(root, [], members or {}, base_member, limits)
    document.buffers = [
        _buffer_bytes(document, buf, binary, i) for i, buf in enumerate(document.array("buffers"))
    ]
    for image in document.array("images"):
        if "uri" in image:
            check_uri(json_str(image, "uri"))
    _check_buffer_views(document)
    check_accessors(document)
    _check_meshes(document)
    _check_nodes(document)
    _check_textures(document)
    return document


def check_uri(uri: str) -> None:
    """Refuse every URI but ``data:`` and a relative path without ``..`` (glTF 2.0 §3.3.4).

    Raises:
        GltfError: ``gltf_external_uri``.
    """
    if _DATA_URI.match(uri):
        return
    decoded = unquote(uri).replace("\\", "/")
    if (
        re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", decoded)
        or decoded.startswith("/")
        or ".." in decoded.split("/")
        or not decoded.strip()
    ):
        raise GltfError(f"external URI {uri[:80]!r} is forbidden", code="gltf_external_uri")


def uri_bytes(document: GltfDocument, uri: str, cap: int) -> bytes:
    """The bytes a checked URI names: a decoded data URI or a member of the upload.

    Raises:
        GltfError: ``gltf_external_uri``, ``gltf_data_uri_invalid``, ``gltf_uri_too_large``.
        ArchiveError: ``archive_member_missing``.
    """
    check_uri(uri)
    match = _DATA_URI.match(uri)
    if match is None:
        data = resolve(document.members, document.base_member, uri)
        if len(data) > cap:
            raise GltfError(f"{uri[:80]!r} is {len(data)} bytes", code="gltf_uri_too_large")
        return data
    encoded = uri[match.end() :]
    # D2: bound the decoded size from the encoded length before decoding anything.
    if len(encoded) // 4 * 3 > cap:
        raise GltfError(f"data URI of {len(encoded)} characters", code="gltf_uri_too_large")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise GltfError(f"bad base64 data URI: {exc}", code="gltf_data_uri_invalid") from exc


def _buffer_bytes(
    document: GltfDocument, buffer: JsonObject, binary: bytes | None, index: int
) -> bytes:
    length = json_int(buffer, "byteLength", minimum=1)
    cap = document.limits.max_accessor_bytes
    if "uri" in buffer:
        data = uri_bytes(document, json_str(buffer, "uri"), cap)
    elif index == 0 and binary is not None:
        data = binary  # §4.4.3.3: the GLB-stored buffer is buffers[0] without a uri.
    else:
        raise GltfError(f"buffer {index} has no data", code="gltf_buffer_invalid")
    # §3.6.1: the BIN chunk may be padded by up to 3 bytes; other sources must be long enough.
    if len(data) < length:
        raise GltfError(
            f"buffer {index} holds {len(data)} < {length} bytes", code="gltf_buffer_invalid"
        )
    return data[:length]


def _check_shape(root: JsonObject, limits: Limits) -> None:
    asset = root.get("asset")
    if not isinstance(asset, dict) or not str(asset.get("version", "")).startswith("2."):
        raise GltfError("not a glTF 2.0 asset", code="gltf_json_invalid")
    for key in ("buffers", "bufferViews", "accessors", "meshes", "nodes", "scenes", "materials",
                "textures", "images", "samplers", "extensionsUsed", "extensionsRequired"):  # fmt: skip
        value = root.get(key, [])
        if not isinstance(value, list) or not all(
            isinstance(item, str if key.startswith("extensions") else dict) for item in value
        ):
            raise GltfError(f"{key} is not an array of the right type", code="gltf_json_invalid")
    if len(root.get("nodes", [])) > limits.max_nodes:
        raise GltfError(
            f"{len(root['nodes'])} nodes (max {limits.max_nodes})", code="gltf_too_many_nodes"
        )
    unsupported = set(root.get("extensionsRequired", [])) - SUPPORTED_REQUIRED
    if unsupported:
        raise GltfError(
            f"required extensions not supported: {', '.join(sorted(unsupported))}",
            code="gltf_unsupported_extension",
        )


def _check_buffer_views(document: GltfDocument) -> None:
    for i, view in enumerate(document.array("bufferViews")):
        buffer = json_index(view, "buffer", len(document.buffers))
        end = json_int(view, "byteOffset", 0) + json_int(view, "byteLength", minimum=1)
        if end > len(document.buffers[buffer]):
            raise GltfError(
                f"bufferView {i} ends past its buffer", code="gltf_buffer_view_out_of_bounds"
            )
        stride = json_int(view, "byteStride", 0)
        # §3.6.2.4 / schema: byteStride is 4..252 and a multiple of 4.
        if "byteStride" in view and (stride < 4 or stride > 252 or stride % 4):
            raise GltfError(f"bufferView {i} byteStride {stride}", code="gltf_accessor_misaligned")


def _check_meshes(document: GltfDocument) -> None:
    accessors = document.array("accessors")
    for m, mesh in enumerate(document.array("meshes")):
        primitives = mesh.get("primitives")
        if (
            not isinstance(primitives, list)
            or not primitives
            or not all(isinstance(p, dict) for p in primitives)
        ):
            raise GltfError(f"mesh {m} has no primitives", code="gltf_json_invalid")
        for primitive in primitives:
            attributes = primitive.get("attributes")
            if not isinstance(attributes, dict) or "POSITION" not in attributes:
                raise GltfError(f"mesh {m} primitive without POSITION", code="gltf_json_invalid")
            for name in attributes:
                json_index(attributes, name, len(accessors))
            if "material" in primitive:
                json_index(primitive, "material", len(document.array("materials")))
            if "indices" in primitive:
                _check_indices(document, primitive, m)


def _check_indices(document: GltfDocument, primitive: JsonObject, m: int) -> None:
    accessors = document.array("accessors")
    index = json_index(primitive, "indices", len(accessors))
    accessor = accessors[index]
    if accessor.get("componentType") not in INDEX_TYPES or accessor.get("type") != "SCALAR":
        raise GltfError(f"mesh {m} indices accessor type", code="gltf_json_invalid")
    vertices = json_int(accessors[primitive["attributes"]["POSITION"]], "count")
    values = read_accessor(document, index)
    # D5 / ACCESSOR_INDEX_OOB: every index must name a vertex.
    if values.size and int(values.max()) >= vertices:
        raise GltfError(
            f"mesh {m} index {int(values.max())} >= {vertices} vertices",
            code="gltf_index_out_of_range",
        )


def _check_nodes(document: GltfDocument) -> None:
    nodes = document.array("nodes")
    parent: dict[int, int] = {}
    for n, node in enumerate(nodes):
        children = node.get("children", [])
        if not isinstance(children, list):
            raise GltfError(f"node {n} children", code="gltf_json_invalid")
        for c in range(len(children)):
            child = json_index(children, c, len(nodes))
            if child in parent or child == n:
                raise GltfError(
                    f"node {child} has several parents or is its own", code="gltf_node_cycle"
                )
            parent[child] = n
        if "mesh" in node:
            json_index(node, "mesh", len(document.array("meshes")))
        _check_transform(node, n)
    for start in range(len(nodes)):
        # Every node has at most one parent, so a cycle is a parent chain that revisits a node.
        seen = {start}
        current = start
        while current in parent:
            current = parent[current]
            if current in seen:
                raise GltfError(f"node {start} is in a cycle", code="gltf_node_cycle")
            seen.add(current)
    for s, scene in enumerate(document.array("scenes")):
        roots = scene.get("nodes", [])
        if not isinstance(roots, list):
            raise GltfError(f"scene {s} nodes", code="gltf_json_invalid")
        for r in range(len(roots)):
            json_index(roots, r, len(nodes))
    if "scene" in document.json:
        json_index(document.json, "scene", len(document.array("scenes")))


def _check_transform(node: JsonObject, n: int) -> None:
    for key, size in (("matrix", 16), ("translation", 3), ("rotation", 4), ("scale", 3)):
        value = node.get(key)
        if value is not None and (
            not isinstance(value, list)
            or len(value) != size
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):
            raise GltfError(f"node {n} {key} is malformed", code="gltf_json_invalid")


def _check_textures(document: GltfDocument) -> None:
    images = len(document.array("images"))
    for t, texture in enumerate(document.array("textures")):
        webp = texture.get("extensions", {}).get("EXT_texture_webp", {})
        if "source" in texture:
            json_index(texture, "source", images)
        elif isinstance(webp, dict) and "source" in webp:
            json_index(webp, "source", images)
        else:
            logger.debug("texture %d has no source", t)
    for i, image in enumerate(document.array("images")):
        if "bufferView" in image:
            json_index(image, "bufferView", len(document.array("bufferViews")))
        elif "uri" not in image:
            raise GltfError(f"image {i} has neither uri nor bufferView", code="gltf_json_invalid")
