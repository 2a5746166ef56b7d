"""Decode an ``EXT_meshopt_compression`` GLB back into a plain GLB.

The Khronos validator cannot look inside meshopt payloads (it only reports
``UNSUPPORTED_EXTENSION``), so every compressed output is validated a second time after this
decoder has expanded each compressed bufferView into ordinary GLB-buffer data (research T1:
"validate before compression and after decoding").

The input is treated as untrusted: chunk and view bounds, counts and strides are checked
before meshoptimizer's decoders (which are themselves bounds-checked) allocate anything. Only
GLB-stored data is read: a buffer with a URI is refused, never resolved.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Final

import meshoptimizer as mo  # type: ignore[import-untyped]
import numpy as np

from pipeline.errors import GltfError, TooLarge
from pipeline.glb import pack_glb
from pipeline.glb import unpack_glb as unpack_glb  # re-exported: moved to pipeline.glb
from pipeline.limits import DEFAULT_LIMITS, Limits
from pipeline.write import EXT_MESHOPT_COMPRESSION

logger = logging.getLogger(__name__)

_MODES: Final = frozenset({"ATTRIBUTES", "TRIANGLES", "INDICES"})
_FILTERS: Final[dict[str, Callable[..., Any]]] = {
    "OCTAHEDRAL": mo.decode_filter_oct,
    "QUATERNION": mo.decode_filter_quat,
    "EXPONENTIAL": mo.decode_filter_exp,
}


def _invalid(message: str) -> GltfError:
    return GltfError(message, code="gltf_meshopt_invalid")


def decode_meshopt_glb(glb: bytes, *, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Expand every meshopt-compressed bufferView; return a GLB without the extension.

    Args:
        glb: a GLB, usually written by ``write_glb(..., WriteOptions(meshopt=True))``.
        limits: caps on the JSON size and on each decoded view's bytes.

    Returns:
        A GLB whose bufferViews all live in the GLB buffer, uncompressed, with
        ``EXT_meshopt_compression`` removed from ``extensionsUsed``/``extensionsRequired``
        and the fallback buffer dropped. A GLB without the extension is returned unchanged.

    Raises:
        GltfError: malformed GLB or extension data (``gltf_meshopt_invalid`` for bad payloads).
        TooLarge: a decoded view would exceed ``limits.max_accessor_bytes``.
    """
    document, binary = unpack_glb(glb, limits=limits)
    if EXT_MESHOPT_COMPRESSION not in document.get("extensionsUsed", []):
        return glb
    buffers = _list(document, "buffers")
    blob = bytearray()
    for view in _list(document, "bufferViews"):
        data = _view_bytes(view, buffers, binary, limits)
        view["buffer"] = 0
        view["byteOffset"] = len(blob)
        view["byteLength"] = len(data)
        extensions = view.get("extensions", {})
        extensions.pop(EXT_MESHOPT_COMPRESSION, None)
        if not extensions:
            view.pop("extensions", None)
        blob += data + b"\0" * (-len(data) % 4)
    document["buffers"] = [{"byteLength": len(blob)}]
    for key in ("extensionsUsed", "extensionsRequired"):
        names = [n for n in document.get(key, []) if n != EXT_MESHOPT_COMPRESSION]
        if names:
            document[key] = names
        else:
            document.pop(key, None)
    text = json.dumps(document, separators=(",", ":"), allow_nan=False)
    logger.debug("decoded meshopt GLB: %d -> %d BIN bytes", len(binary), len(blob))
    return pack_glb(text.encode("utf-8"), bytes(blob))


def _list(document: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = document.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise GltfError(f"glTF '{key}' must be an array of objects")
    return items


def _int(obj: dict[str, Any], key: str, default: int | None = None) -> int:
    value = obj.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise GltfError(f"'{key}' must be a non-negative integer")
    return value


def _glb_slice(
    buffers: list[dict[str, Any]], binary: bytes, index: int, offset: int, length: int
) -> bytes:
    """Bytes of the GLB-stored buffer 0; any other source would need a URI (refused)."""
    if index != 0 or not buffers or "uri" in buffers[0]:
        raise GltfError("only GLB-stored data can be decoded", code="gltf_external_uri")
    end = offset + length
    if end > len(binary) or end > _int(buffers[0], "byteLength"):
        raise GltfError("bufferView runs past its buffer", code="gltf_bounds")
    return binary[offset:end]


def _view_bytes(
    view: dict[str, Any], buffers: list[dict[str, Any]], binary: bytes, limits: Limits
) -> bytes:
    extension = view.get("extensions", {}).get(EXT_MESHOPT_COMPRESSION)
    if extension is None:
        offset, length = _int(view, "byteOffset", 0), _int(view, "byteLength")
        return _glb_slice(buffers, binary, _int(view, "buffer"), offset, length)
    if not isinstance(extension, dict):
        raise _invalid("EXT_meshopt_compression must be an object")
    count, stride = _int(extension, "count"), _int(extension, "byteStride")
    mode, filter_name = extension.get("mode"), extension.get("filter", "NONE")
    if mode not in _MODES or (filter_name != "NONE" and filter_name not in _FILTERS):
        raise _invalid(f"unknown mode {mode!r} or filter {filter_name!r}")
    if count * stride != _int(view, "byteLength") or count == 0:
        raise _invalid("bufferView.byteLength must equal count * byteStride")
    if view.get("byteStride", stride) != stride:
        raise _invalid("bufferView.byteStride differs from the extension's")
    if count * stride > limits.max_accessor_bytes:
        raise TooLarge("a compressed bufferView decodes past the accessor byte cap")
    source = _glb_slice(
        buffers,
        binary,
        _int(extension, "buffer"),
        _int(extension, "byteOffset", 0),
        _int(extension, "byteLength"),
    )
    try:
        if mode == "ATTRIBUTES":
            return _decode_attributes(source, count, stride, filter_name)
        return _decode_indices(source, count, stride, triangles=mode == "TRIANGLES")
    except (RuntimeError, ValueError) as exc:
        raise _invalid(f"meshopt payload does not decode: {exc}") from exc


def _decode_attributes(source: bytes, count: int, stride: int, filter_name: str) -> bytes:
    # EXT_meshopt_compression: ATTRIBUTES needs byteStride % 4 == 0 and <= 256.
    if stride % 4 or stride > 256:
        raise _invalid("ATTRIBUTES byteStride must be a multiple of 4, at most 256")
    if filter_name == "OCTAHEDRAL" and stride not in (4, 8):
        raise _invalid("OCTAHEDRAL filter needs byteStride 4 or 8")
    if filter_name == "QUATERNION" and stride != 8:
        raise _invalid("QUATERNION filter needs byteStride 8")
    decoded = mo.decode_vertex_buffer(count, stride, source)
    raw = np.ascontiguousarray(decoded).view(np.uint8).reshape(-1)
    if filter_name != "NONE":
        raw = _FILTERS[filter_name](raw, count, stride)
    return bytes(raw.tobytes())


def _decode_indices(source: bytes, count: int, stride: int, *, triangles: bool) -> bytes:
    if stride not in (2, 4):
        raise _invalid("index byteStride must be 2 or 4")
    if triangles and count % 3:
        raise _invalid("TRIANGLES count must be a multiple of 3")
    decode = mo.decode_index_buffer if triangles else mo.decode_index_sequence
    # The binding decodes into a uint32 array; with 2-byte indices only the first half is used.
    out = np.ascontiguousarray(decode(count, stride, source))
    return bytes(out.view(np.uint8)[: count * stride].tobytes())
