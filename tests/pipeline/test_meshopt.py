"""EXT_meshopt_compression: valid as written, valid after decoding, and lossless over quantization."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from pipeline.errors import GltfError
from pipeline.meshopt_decode import decode_meshopt_glb, unpack_glb
from pipeline.validate import validate
from pipeline.write import pack_glb, write_glb
from tests.pipeline.test_write import (
    ASSETS,
    MESHOPT,
    QUANTIZED,
    accessor_array,
    big_terrain,
    colored_sphere,
    first_primitive,
    textured_box,
)

EXT = "EXT_meshopt_compression"


def rewrite(glb: bytes, edit: Any, binary_edit: Any = None) -> bytes:
    """The GLB with its JSON (and optionally BIN) passed through edit functions."""
    document, binary = unpack_glb(glb)
    edit(document)
    if binary_edit is not None:
        binary = binary_edit(binary)
    return pack_glb(json.dumps(document).encode(), binary)


def canonical_triangles(indices: Any) -> Any:
    """Each triangle rotated so that its smallest index comes first (winding kept)."""
    triangles = indices.reshape(-1, 3)
    shift = np.argmin(triangles, axis=1)
    columns = (shift[:, None] + np.arange(3)) % 3
    return np.take_along_axis(triangles, columns, axis=1)


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_meshopt_output_passes_the_validator_as_written_and_after_decoding(name: str) -> None:
    glb = write_glb(ASSETS[name](), MESHOPT)

    as_written = validate(glb, what=f"{name}.meshopt.glb")
    decoded = validate(decode_meshopt_glb(glb), what=f"{name}.decoded.glb")

    # The validator cannot see inside the compressed views: it says so, as information (and,
    # when no image shares the GLB buffer, thinks that buffer unused).
    assert as_written.num_errors == as_written.num_warnings == 0
    assert "UNSUPPORTED_EXTENSION" in as_written.codes()
    assert set(as_written.codes()) <= {"UNSUPPORTED_EXTENSION", "UNUSED_OBJECT"}
    assert decoded.num_errors == decoded.num_warnings == 0
    assert "UNSUPPORTED_EXTENSION" not in decoded.codes()


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_decoded_positions_and_indices_equal_the_quantized_ones_exactly(name: str) -> None:
    quantized, q_binary = unpack_glb(write_glb(ASSETS[name](), QUANTIZED))
    decoded, d_binary = unpack_glb(decode_meshopt_glb(write_glb(ASSETS[name](), MESHOPT)))
    q_primitive, d_primitive = first_primitive(quantized), first_primitive(decoded)

    for key in ("POSITION", "TEXCOORD_0", "COLOR_0"):
        if key in q_primitive["attributes"]:
            expected = accessor_array(quantized, q_binary, q_primitive["attributes"][key])
            actual = accessor_array(decoded, d_binary, d_primitive["attributes"][key])
            np.testing.assert_array_equal(actual, expected)
    # The index codec may rotate a triangle's corners (keeping its winding), nothing more.
    np.testing.assert_array_equal(
        canonical_triangles(accessor_array(decoded, d_binary, d_primitive["indices"])),
        canonical_triangles(accessor_array(quantized, q_binary, q_primitive["indices"])),
    )
    assert decoded["nodes"] == quantized["nodes"]


def test_octahedral_normals_decode_to_unit_vectors_close_to_the_originals() -> None:
    asset = colored_sphere()
    quantized, q_binary = unpack_glb(write_glb(asset, QUANTIZED))
    decoded, d_binary = unpack_glb(decode_meshopt_glb(write_glb(asset, MESHOPT)))
    index = first_primitive(decoded)["attributes"]["NORMAL"]
    view = decoded["bufferViews"][decoded["accessors"][index]["bufferView"]]

    normals = accessor_array(decoded, d_binary, index) / 127.0
    expected = accessor_array(
        quantized, q_binary, first_primitive(quantized)["attributes"]["NORMAL"]
    )
    assert view["byteStride"] == 4
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=0.0068)
    np.testing.assert_allclose(normals, expected / 127.0, atol=0.03)


def test_meshopt_is_required_and_parent_views_point_at_a_uri_less_fallback_buffer() -> None:
    document, binary = unpack_glb(write_glb(textured_box(), MESHOPT))

    assert EXT in document["extensionsRequired"]
    assert "KHR_mesh_quantization" in document["extensionsRequired"]
    fallback = document["buffers"][1]
    assert fallback["extensions"] == {EXT: {"fallback": True}}
    assert "uri" not in fallback
    modes = []
    for view in document["bufferViews"]:
        compressed = view.get("extensions", {}).get(EXT)
        if compressed is None:
            assert view["buffer"] == 0  # images are stored as they are
            continue
        assert view["buffer"] == 1
        assert compressed["buffer"] == 0
        assert view["byteLength"] == compressed["count"] * compressed["byteStride"]
        end = compressed["byteOffset"] + compressed["byteLength"]
        assert end <= len(binary)
        assert view.get("byteOffset", 0) + view["byteLength"] <= fallback["byteLength"]
        modes.append((compressed["mode"], compressed.get("filter", "NONE")))
    assert sorted(modes) == [
        ("ATTRIBUTES", "NONE"),
        ("ATTRIBUTES", "NONE"),
        ("ATTRIBUTES", "OCTAHEDRAL"),
        ("TRIANGLES", "NONE"),
    ]


def test_compressed_payloads_carry_the_ext_header_bytes() -> None:
    document, binary = unpack_glb(write_glb(colored_sphere(), MESHOPT))

    for view in document["bufferViews"]:
        compressed = view["extensions"][EXT]
        header = binary[compressed["byteOffset"]]
        # EXT_meshopt_compression Appendix A: 0xa0 for attributes, 0xe1 for triangles.
        assert header == (0xA0 if compressed["mode"] == "ATTRIBUTES" else 0xE1)


def test_meshopt_shrinks_the_geometry_of_a_large_mesh() -> None:
    asset = big_terrain()
    quantized = write_glb(asset, QUANTIZED)
    compressed = write_glb(asset, MESHOPT)

    assert len(compressed) < len(quantized) / 2


def test_a_glb_without_meshopt_comes_back_unchanged() -> None:
    glb = write_glb(colored_sphere(), QUANTIZED)

    assert decode_meshopt_glb(glb) is glb


def test_a_corrupt_payload_is_a_gltf_error_not_a_crash() -> None:
    glb = write_glb(colored_sphere(), MESHOPT)

    def shorten(document: dict[str, Any]) -> None:
        document["bufferViews"][0]["extensions"][EXT]["byteLength"] = 3

    with pytest.raises(GltfError) as caught:
        decode_meshopt_glb(rewrite(glb, shorten))
    assert caught.value.code == "gltf_meshopt_invalid"


def test_a_compressed_view_past_the_end_of_the_buffer_is_refused() -> None:
    glb = write_glb(colored_sphere(), MESHOPT)

    def overrun(document: dict[str, Any]) -> None:
        document["bufferViews"][0]["extensions"][EXT]["byteOffset"] = 1 << 30

    with pytest.raises(GltfError) as caught:
        decode_meshopt_glb(rewrite(glb, overrun))
    assert caught.value.code == "gltf_bounds"


def test_a_count_that_disagrees_with_the_parent_view_is_refused() -> None:
    glb = write_glb(colored_sphere(), MESHOPT)

    def lie(document: dict[str, Any]) -> None:
        document["bufferViews"][0]["extensions"][EXT]["count"] *= 1000

    with pytest.raises(GltfError, match="count"):
        decode_meshopt_glb(rewrite(glb, lie))


def test_compressed_data_behind_a_uri_is_never_fetched() -> None:
    glb = write_glb(colored_sphere(), MESHOPT)

    def external(document: dict[str, Any]) -> None:
        document["buffers"][0]["uri"] = "https://example.invalid/data.bin"

    with pytest.raises(GltfError) as caught:
        decode_meshopt_glb(rewrite(glb, external))
    assert caught.value.code == "gltf_external_uri"


def test_decoding_is_deterministic() -> None:
    glb = write_glb(textured_box(), MESHOPT)

    assert decode_meshopt_glb(glb) == decode_meshopt_glb(glb)
