"""pipeline.detect: formats from magic bytes, never names; size first; everything else refused."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from pipeline.detect import detect
from pipeline.errors import ArchiveError, MeshError, TooLarge, UnsupportedFormat
from pipeline.limits import Limits
from pipeline.model import Format
from tests.pipeline.hostile import OBJ_TRIANGLE, encoded_image, triangle_glb, zip_of


def binary_stl(header: bytes = b"binary stl", triangles: int = 2) -> bytes:
    return header.ljust(80, b" ") + struct.pack("<I", triangles) + b"\x00" * (50 * triangles)


ASCII_STL = b"solid cube\n  facet normal 0 0 1\n    outer loop\n      vertex 0 0 0\n" \
    b"      vertex 1 0 0\n      vertex 0 1 0\n    endloop\n  endfacet\nendsolid cube\n"  # fmt: skip


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (triangle_glb(), Format.glb),
        (encoded_image("PNG"), Format.png),
        (encoded_image("JPEG"), Format.jpeg),
        (encoded_image("WEBP"), Format.webp),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", Format.avif),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", Format.heic),
        (b"ply\nformat ascii 1.0\nend_header\n", Format.ply),
        (binary_stl(), Format.stl),
        (ASCII_STL, Format.stl),
        (OBJ_TRIANGLE, Format.obj),
        (
            b"# exported\r\nmtllib a.mtl\r\no thing\r\n" + OBJ_TRIANGLE.replace(b"\n", b"\r\n"),
            Format.obj,
        ),
        (zip_of({"scene/model.gltf": b"{}", "scene/model.bin": b"\x00"}), Format.gltf_zip),
        (zip_of({"model.glb": triangle_glb()}), Format.gltf_zip),
        (zip_of({"model.obj": OBJ_TRIANGLE, "model.mtl": b"newmtl a\n"}), Format.obj_zip),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_each_format_is_recognised_from_its_bytes(data: bytes, expected: Format) -> None:
    assert detect(data) == expected


def test_a_binary_stl_whose_header_starts_with_solid_is_binary() -> None:
    assert detect(binary_stl(b"solid exported by a CAD tool")) == Format.stl


def test_empty_input_has_its_own_code() -> None:
    with pytest.raises(MeshError) as caught:
        detect(b"")
    assert caught.value.code == "empty_input"


def test_the_size_cap_is_checked_before_the_bytes_are_looked_at() -> None:
    with pytest.raises(TooLarge) as caught:
        detect(b"%PDF" + b"\x00" * 200, Limits(max_input_bytes=100))
    assert caught.value.code == "too_large"


@pytest.mark.parametrize(
    "data",
    [
        b"Dear exhibitor,\nvery nice booth\nv is for vertex\n",
        b"%PDF-1.4\n",
        b"GIF89a\x01\x00\x01\x00",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b'{"asset": {"version": "2.0"}, "buffers": []}',
        b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n",
        np.random.default_rng(1).bytes(4096),
    ],
)
def test_anything_else_is_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        detect(data)
    assert caught.value.code == "unsupported_format"


def test_text_with_mostly_foreign_lines_is_not_obj() -> None:
    prose = b"v 1 2 3\n" + b"this is a letter, not a mesh\n" * 5
    with pytest.raises(UnsupportedFormat):
        detect(prose)


def test_a_zip_without_a_model_member_is_unsupported() -> None:
    with pytest.raises(UnsupportedFormat):
        detect(zip_of({"part.stl": ASCII_STL, "readme.txt": b"hi"}))


def test_a_zip_naming_an_unsafe_path_is_refused_while_detecting() -> None:
    with pytest.raises(ArchiveError) as caught:
        detect(zip_of({"../../model.obj": OBJ_TRIANGLE}))
    assert caught.value.code == "archive_unsafe_path"
