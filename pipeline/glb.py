"""The GLB container (glTF 2.0 §4.4): pack our own output, unpack a GLB we wrote.

Shared by the writer (:mod:`pipeline.write`) and the meshopt decoder
(:mod:`pipeline.meshopt_decode`). Uploads never come through here: they go through the stricter
:func:`pipeline.guards.gltf.parse_glb`, which also caps the JSON nesting depth, requires the
declared length to match the file exactly and refuses duplicate or misplaced chunks.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Final

from pipeline.errors import GltfError, TooLarge
from pipeline.limits import DEFAULT_LIMITS, Limits

# §4.4.2 header magic ("glTF" little-endian) and version; §4.4.3.2 chunk types.
GLB_MAGIC, GLB_VERSION = 0x46546C67, 2
CHUNK_JSON, CHUNK_BIN = 0x4E4F534A, 0x004E4942
# §4.4.3.1 / §3.6.2.4: chunks and bufferViews start on 4-byte boundaries.
ALIGN: Final = 4


def padded(data: bytes) -> bytes:
    """``data`` followed by zero bytes up to a multiple of :data:`ALIGN`."""
    return data + b"\0" * (-len(data) % ALIGN)


def pack_glb(json_bytes: bytes, bin_chunk: bytes) -> bytes:
    """Pack a GLB container (glTF 2.0 §4.4): header, JSON chunk, optional BIN chunk.

    Args:
        json_bytes: the UTF-8 glTF JSON; padded here with spaces to a multiple of 4.
        bin_chunk: the GLB-stored buffer; padded here with zeros. Omitted when empty.

    Returns:
        The GLB bytes.
    """
    json_chunk = json_bytes + b" " * (-len(json_bytes) % ALIGN)
    parts = [struct.pack("<II", len(json_chunk), CHUNK_JSON), json_chunk]
    if bin_chunk:
        padded_bin = padded(bin_chunk)
        parts += [struct.pack("<II", len(padded_bin), CHUNK_BIN), padded_bin]
    body = b"".join(parts)
    return struct.pack("<III", GLB_MAGIC, GLB_VERSION, 12 + len(body)) + body


def unpack_glb(data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> tuple[dict[str, Any], bytes]:
    """Split a GLB (glTF 2.0 §4.4) into its parsed JSON and its BIN chunk (``b""`` if none).

    Args:
        data: the GLB bytes.
        limits: ``max_json_bytes`` caps the JSON chunk.

    Returns:
        ``(json_document, bin_chunk)``.

    Raises:
        GltfError: not a GLB 2.0, truncated, or a JSON chunk that is not a JSON object.
        TooLarge: the JSON chunk exceeds the cap.
    """
    if len(data) < 20:
        raise GltfError("GLB is truncated", code="gltf_truncated")
    magic, version, length = struct.unpack_from("<III", data, 0)
    if magic != GLB_MAGIC or version != GLB_VERSION:
        raise GltfError("not a glTF 2.0 GLB")
    if length > len(data):
        raise GltfError("GLB is truncated", code="gltf_truncated")
    chunks: list[tuple[int, bytes]] = []
    offset = 12
    while offset + 8 <= length:
        size, kind = struct.unpack_from("<II", data, offset)
        if offset + 8 + size > length:
            raise GltfError("GLB chunk runs past the end", code="gltf_truncated")
        chunks.append((kind, data[offset + 8 : offset + 8 + size]))
        offset += 8 + size + (-size % 4)
    if not chunks or chunks[0][0] != CHUNK_JSON:
        raise GltfError("GLB does not start with a JSON chunk")
    if len(chunks[0][1]) > limits.max_json_bytes:
        raise TooLarge("glTF JSON chunk is too large")
    try:
        document = json.loads(chunks[0][1])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GltfError(f"GLB JSON chunk is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise GltfError("GLB JSON chunk is not an object")
    binary = chunks[1][1] if len(chunks) > 1 and chunks[1][0] == CHUNK_BIN else b""
    return document, binary
