"""The pure GLB helpers of bench/pipeline.py: geometry bytes, image bytes, triangle counts."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from bench.pipeline import (
    geometry_bytes,
    glb_stats,
    image_bytes,
    pack_glb,
    read_glb_json,
    triangle_count,
)


def _document(images: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "asset": {"version": "2.0"},
        "buffers": [{"byteLength": 140}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": 36},  # positions
            {"buffer": 0, "byteOffset": 36, "byteLength": 100},  # an image
            {"buffer": 0, "byteOffset": 136, "byteLength": 4},  # indices
        ],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"},
            {"bufferView": 2, "componentType": 5121, "count": 3, "type": "SCALAR"},
        ],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]}],
        "images": images,
    }


def test_geometry_bytes_are_the_glb_minus_its_image_views() -> None:
    glb = pack_glb(_document([{"bufferView": 1, "mimeType": "image/png"}]), bytes(140))

    assert geometry_bytes(glb) == len(glb) - 100


def test_an_image_view_shared_by_two_images_is_subtracted_once() -> None:
    images = [{"bufferView": 1, "mimeType": "image/png"}] * 2

    assert image_bytes(_document(images)) == 100


def test_a_glb_without_embedded_images_is_all_geometry() -> None:
    glb = pack_glb(_document([{"uri": "texture.png"}]), bytes(140))

    assert geometry_bytes(glb) == len(glb)


def test_the_json_chunk_is_read_back_as_written() -> None:
    document = _document([])

    assert read_glb_json(pack_glb(document, bytes(140))) == document


@pytest.mark.parametrize(
    "data",
    [b"", b"glTF" + bytes(16), struct.pack("<IIIII", 0x46546C67, 2, 40, 999, 0x4E4F534A)],
)
def test_bytes_that_are_not_a_glb_are_rejected(data: bytes) -> None:
    with pytest.raises(ValueError, match="GLB"):
        read_glb_json(data)


def test_triangles_count_indexed_and_unindexed_primitives_but_not_lines() -> None:
    document = _document([])
    document["meshes"][0]["primitives"] += [
        {"attributes": {"POSITION": 0}},  # 3 vertices, no indices: one triangle
        {"attributes": {"POSITION": 0}, "indices": 1, "mode": 1},  # lines
    ]

    assert triangle_count(document) == 2


def test_stats_of_a_file_match_the_in_memory_helpers(tmp_path: Path) -> None:
    glb = pack_glb(_document([{"bufferView": 1, "mimeType": "image/png"}]), bytes(140))
    path = tmp_path / "model.glb"
    path.write_bytes(glb)

    assert glb_stats(path) == (len(glb), geometry_bytes(glb), 1)
