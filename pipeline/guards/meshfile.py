"""STL and PLY headers checked against the body before any array is allocated (research E1, E2).

A binary STL declares its triangle count in bytes 80-84 and a PLY declares element counts in its
header; both are the attacker's word. Each declared count must fit the bytes actually present
(a binary record has a known minimum size, an ASCII value at least two characters) and the
triangle/vertex caps, or the file is rejected with ``mesh_header_mismatch`` / ``mesh_too_large``.
"""

from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass, field
from typing import Literal

from pipeline.errors import MeshError
from pipeline.limits import DEFAULT_LIMITS, Limits

logger = logging.getLogger(__name__)

STL_HEADER_BYTES = 84
STL_RECORD_BYTES = 50
MAX_PLY_HEADER_BYTES = 64 * 1024
PLY_TYPE_SIZES = {
    "char": 1, "int8": 1, "uchar": 1, "uint8": 1,
    "short": 2, "int16": 2, "ushort": 2, "uint16": 2,
    "int": 4, "int32": 4, "uint": 4, "uint32": 4, "float": 4, "float32": 4,
    "double": 8, "float64": 8,
}  # fmt: skip
_ASCII_FACET = re.compile(rb"^\s*solid[^\n]*\n\s*(facet|endsolid)", re.IGNORECASE)

StlKind = Literal["binary", "ascii"]
PlyEncoding = Literal["ascii", "binary_little_endian", "binary_big_endian"]


@dataclass(frozen=True, slots=True)
class PlyElement:
    """One ``element`` line and its properties: fixed sizes, and list (count, item) sizes."""

    name: str
    count: int
    fixed_bytes: int = 0
    lists: tuple[tuple[int, int], ...] = ()
    property_count: int = 0


@dataclass(frozen=True, slots=True)
class PlyHeader:
    """A parsed PLY header; ``body_offset`` is where element data starts."""

    encoding: PlyEncoding
    body_offset: int
    elements: tuple[PlyElement, ...] = field(default_factory=tuple)

    def count(self, name: str) -> int:
        """The declared count of element ``name`` (0 when absent)."""
        return sum(element.count for element in self.elements if element.name == name)


def stl_kind(data: bytes) -> StlKind | None:
    """Whether ``data`` looks like a binary or an ASCII STL, or ``None``.

    A binary STL whose 80-byte header happens to start with ``solid`` (common from CAD tools) is
    still binary when its declared count matches the body; an ASCII STL starts with ``solid``
    followed by a ``facet`` or ``endsolid`` line.

    Args:
        data: The whole file.

    Returns:
        "binary", "ascii", or None when neither shape fits.
    """
    if len(data) >= STL_HEADER_BYTES:
        (count,) = struct.unpack_from("<I", data, 80)
        if len(data) == STL_HEADER_BYTES + STL_RECORD_BYTES * count:
            return "binary"
    if _ASCII_FACET.match(data[:4096]):
        return "ascii"
    return None


def check_stl(data: bytes, limits: Limits = DEFAULT_LIMITS) -> StlKind:
    """Check an STL's declared or apparent triangle count before parsing.

    Args:
        data: The whole file.
        limits: ``max_triangles``.

    Returns:
        The STL flavour to parse.

    Raises:
        MeshError: ``mesh_header_mismatch`` when a binary count does not match the body (and the
            file is not ASCII), ``mesh_too_large`` over the triangle cap.
    """
    kind = stl_kind(data)
    if kind == "ascii":
        triangles = data.count(b"endfacet") + data.count(b"ENDFACET")
    elif kind == "binary" or len(data) >= STL_HEADER_BYTES:
        (triangles,) = struct.unpack_from("<I", data, 80)
        if STL_HEADER_BYTES + STL_RECORD_BYTES * triangles > len(data):
            raise MeshError(
                f"STL declares {triangles} triangles but holds {len(data)} bytes",
                code="mesh_header_mismatch",
            )
        kind = "binary"  # trailing bytes after the declared records are ignored
    else:
        raise MeshError("STL shorter than its 84-byte header", code="mesh_header_mismatch")
    if triangles > limits.max_triangles:
        raise MeshError(
            f"{triangles} triangles (max {limits.max_triangles})", code="mesh_too_large"
        )
    return kind


def check_ply(data: bytes, limits: Limits = DEFAULT_LIMITS) -> PlyHeader:
    """Parse a PLY header and check every declared count against the body.

    Args:
        data: The whole file.
        limits: ``max_vertices`` and ``max_triangles``.

    Returns:
        The parsed header.

    Raises:
        MeshError: ``mesh_header_invalid`` for an unreadable header, ``mesh_too_large`` over the
            caps, ``mesh_header_mismatch`` when the counts cannot fit in the body.
    """
    header = parse_ply_header(data)
    total = sum(element.count for element in header.elements)
    if (
        header.count("vertex") > limits.max_vertices
        or header.count("face") > limits.max_triangles
        or total > limits.max_vertices + limits.max_triangles
    ):
        raise MeshError(
            f"PLY declares {header.count('vertex')} vertices and {header.count('face')} faces",
            code="mesh_too_large",
        )
    body = len(data) - header.body_offset
    needed = sum(
        element.count * _min_row_bytes(element, header.encoding) for element in header.elements
    )
    if needed > body:
        raise MeshError(
            f"PLY header needs at least {needed} body bytes, the file has {body}",
            code="mesh_header_mismatch",
        )
    return header


def parse_ply_header(data: bytes) -> PlyHeader:
    """Parse the ``ply`` ... ``end_header`` block.

    Args:
        data: The whole file.

    Returns:
        The header, without checking counts.

    Raises:
        MeshError: ``mesh_header_invalid``.
    """
    end = data.find(b"end_header", 0, MAX_PLY_HEADER_BYTES)
    newline = data.find(b"\n", end)
    if not data.startswith(b"ply") or end < 0 or newline < 0:
        raise MeshError("no PLY header within 64 KiB", code="mesh_header_invalid")
    lines = data[:end].decode("ascii", "replace").splitlines()[1:]
    encoding: PlyEncoding | None = None
    elements: list[PlyElement] = []
    for line in lines:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) >= 2:
            encoding = _encoding(words[1])
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append(PlyElement(words[1], int(words[2])))
        elif words[0] == "property" and elements:
            elements[-1] = _add_property(elements[-1], words)
        else:
            raise MeshError(f"bad PLY header line {line[:80]!r}", code="mesh_header_invalid")
    if encoding is None:
        raise MeshError("PLY header has no format line", code="mesh_header_invalid")
    if any(element.count and not element.property_count for element in elements):
        raise MeshError("PLY element without properties", code="mesh_header_invalid")
    return PlyHeader(encoding, newline + 1, tuple(elements))


def _encoding(word: str) -> PlyEncoding:
    if word == "ascii":
        return "ascii"
    if word == "binary_little_endian":
        return "binary_little_endian"
    if word == "binary_big_endian":
        return "binary_big_endian"
    raise MeshError(f"unknown PLY format {word[:40]!r}", code="mesh_header_invalid")


def _add_property(element: PlyElement, words: list[str]) -> PlyElement:
    if (
        len(words) == 5
        and words[1] == "list"
        and words[2] in PLY_TYPE_SIZES
        and words[3] in PLY_TYPE_SIZES
    ):
        lists = (*element.lists, (PLY_TYPE_SIZES[words[2]], PLY_TYPE_SIZES[words[3]]))
        return PlyElement(
            element.name, element.count, element.fixed_bytes, lists, element.property_count + 1
        )
    if len(words) == 3 and words[1] in PLY_TYPE_SIZES:
        return PlyElement(
            element.name,
            element.count,
            element.fixed_bytes + PLY_TYPE_SIZES[words[1]],
            element.lists,
            element.property_count + 1,
        )
    raise MeshError(f"bad PLY property {' '.join(words)[:80]!r}", code="mesh_header_invalid")


def _min_row_bytes(element: PlyElement, encoding: PlyEncoding) -> int:
    """The fewest bytes one row of ``element`` can take.

    Binary: the fixed properties plus each list's count field (a list may be empty). ASCII: one
    digit and one separator per property.
    """
    if encoding == "ascii":
        return 2 * element.property_count
    return element.fixed_bytes + sum(count_size for count_size, _item in element.lists)
