"""PLY (ASCII or binary) -> Asset, parsed by trimesh after pipeline.guards.meshfile.check_ply.

Vertex colours are kept (converted from sRGB bytes to linear, as glTF's COLOR_0 is linear);
face colours are kept by unwelding each coloured face into its own three vertices. Texture files
a PLY names in comments are not loaded: the upload is the PLY alone.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray
from trimesh.exchange.ply import load_ply

from pipeline.errors import MeshError
from pipeline.guards.meshfile import check_ply
from pipeline.limits import DEFAULT_LIMITS, Limits
from pipeline.loaders import make_primitive, srgb_to_linear
from pipeline.loaders.obj import PARSER_ERRORS
from pipeline.model import Asset, Format

logger = logging.getLogger(__name__)


def load(data: bytes, fmt: Format, *, limits: Limits = DEFAULT_LIMITS) -> Asset:
    """Load a PLY.

    Args:
        data: The upload.
        fmt: ``Format.ply``.
        limits: ``max_vertices`` and ``max_triangles``.

    Returns:
        One primitive, with UVs, normals and colours when the file has them.

    Raises:
        MeshError: ``mesh_header_invalid``, ``mesh_header_mismatch``, ``mesh_too_large``,
            ``mesh_parse_failed``.
    """
    check_ply(data, limits)
    try:
        parsed = load_ply(io.BytesIO(data), resolver=None, fix_texture=False, skip_materials=True)
    except PARSER_ERRORS as exc:
        raise MeshError(f"PLY could not be parsed: {exc}", code="mesh_parse_failed") from exc
    asset = Asset(primitives=[])
    vertices = np.asarray(parsed.get("vertices", np.zeros((0, 3))), dtype=np.float64)
    faces = _triangles(parsed.get("faces"))
    colors = _linear(parsed.get("vertex_colors"), len(vertices))
    normals = parsed.get("vertex_normals")
    uvs = _uvs(parsed.get("visual"), len(vertices))
    face_colors = _linear(parsed.get("face_colors"), len(faces))
    if colors is None and face_colors is not None and faces.size:
        # Unweld so each face's colour becomes its three vertices' colour.
        vertices, colors = vertices[faces].reshape(-1, 3), np.repeat(face_colors, 3, axis=0)
        normals = None if normals is None else np.asarray(normals)[faces].reshape(-1, 3)
        uvs = None if uvs is None else uvs[faces].reshape(-1, 2)
        faces = np.arange(len(vertices), dtype=np.int64).reshape(-1, 3)
    primitive = make_primitive(
        vertices, faces, asset.warnings, normals=normals, uvs=uvs, colors=colors
    )
    if primitive is not None:
        asset.primitives.append(primitive)
    return asset


def _triangles(faces: Any) -> NDArray[np.int64]:
    """(M, 3) triangles; quads and n-gons are fan-triangulated."""
    if faces is None:
        return np.zeros((0, 3), dtype=np.int64)
    polygons = np.asarray(faces, dtype=np.int64)
    if polygons.ndim != 2 or polygons.shape[1] < 3:
        return np.zeros((0, 3), dtype=np.int64)
    fans = [polygons[:, [0, i, i + 1]] for i in range(1, polygons.shape[1] - 1)]
    return np.concatenate(fans, axis=0)


def _linear(values: Any, rows: int) -> NDArray[np.float32] | None:
    """uint8 sRGB(A) colours -> linear RGBA floats, or None."""
    if values is None:
        return None
    colors = np.asarray(values, dtype=np.float64)
    if colors.ndim != 2 or len(colors) != rows or colors.shape[1] not in (3, 4):
        return None
    colors = colors / 255.0
    alpha = colors[:, 3:] if colors.shape[1] == 4 else np.ones((rows, 1))
    return np.concatenate([srgb_to_linear(colors[:, :3]), alpha], axis=1).astype(np.float32)


def _uvs(visual: Any, rows: int) -> NDArray[np.float64] | None:
    uv = getattr(visual, "uv", None)
    if uv is None:
        return None
    uvs = np.asarray(uv, dtype=np.float64)
    if uvs.shape != (rows, 2):
        return None
    return np.stack([uvs[:, 0], 1.0 - uvs[:, 1]], axis=1)  # PLY UVs are bottom-left
