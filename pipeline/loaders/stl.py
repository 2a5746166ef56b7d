"""STL (binary or ASCII) -> Asset, parsed by trimesh after pipeline.guards.meshfile.check_stl.

STL is a triangle soup with per-face normals that exporters often leave zero, so only positions
are kept; welding and normals are later steps.
"""

from __future__ import annotations

import io
import logging
import struct

import numpy as np
from trimesh.exchange.stl import HeaderError, load_stl

from pipeline.errors import MeshError
from pipeline.guards.meshfile import STL_HEADER_BYTES, STL_RECORD_BYTES, check_stl
from pipeline.limits import DEFAULT_LIMITS, Limits
from pipeline.loaders import make_primitive
from pipeline.loaders.obj import PARSER_ERRORS
from pipeline.model import Asset, Format

logger = logging.getLogger(__name__)


def load(data: bytes, fmt: Format, *, limits: Limits = DEFAULT_LIMITS) -> Asset:
    """Load an STL.

    Args:
        data: The upload.
        fmt: ``Format.stl``.
        limits: ``max_triangles``.

    Returns:
        One primitive of unwelded triangles.

    Raises:
        MeshError: ``mesh_header_mismatch``, ``mesh_too_large``, ``mesh_parse_failed``.
    """
    kind = check_stl(data, limits)
    if kind == "binary":
        # Trailing bytes after the declared records would make trimesh fall back to ASCII.
        (count,) = struct.unpack_from("<I", data, 80)
        data = data[: STL_HEADER_BYTES + STL_RECORD_BYTES * count]
    try:
        parsed = load_stl(io.BytesIO(data))
    except (*PARSER_ERRORS, HeaderError, struct.error) as exc:
        raise MeshError(f"STL could not be parsed: {exc}", code="mesh_parse_failed") from exc
    asset = Asset(primitives=[])
    # A multi-solid ASCII STL comes back as {"geometry": {solid name: mesh kwargs}}.
    bodies = parsed["geometry"].values() if "geometry" in parsed else [parsed]
    for body in bodies:
        vertices = np.asarray(body.get("vertices", np.zeros((0, 3))), dtype=np.float64)
        faces = np.asarray(body.get("faces", np.zeros((0, 3))), dtype=np.int64)
        primitive = make_primitive(vertices, faces, asset.warnings)
        if primitive is not None:
            asset.primitives.append(primitive)
    return asset
