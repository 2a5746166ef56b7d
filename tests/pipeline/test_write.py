"""write_glb: plain and quantized GLBs that the real Khronos validator accepts, byte for byte stable.

The asset builders here are shared with test_meshopt.py and test_validate.py.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import numpy as np
import pytest
import trimesh
from numpy.typing import NDArray
from PIL import Image

from pipeline.errors import MeshError, OutputError
from pipeline.meshopt_decode import unpack_glb
from pipeline.model import Asset, Material, Primitive, Texture
from pipeline.validate import validate
from pipeline.write import WriteOptions, write_glb

PLAIN = WriteOptions()
QUANTIZED = WriteOptions(quantize=True)
MESHOPT = WriteOptions(quantize=True, meshopt=True)

_DTYPES = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32}
_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


# --- assets built in code ---------------------------------------------------------------------


def image_bytes(fmt: str, size: int = 8) -> bytes:
    """A tiny checkerboard encoded by Pillow."""
    pixels = np.indices((size, size)).sum(axis=0) % 2 * 255
    image = Image.fromarray(np.stack([pixels, pixels // 2, 255 - pixels], -1).astype(np.uint8))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def textured_box() -> Asset:
    """A unit cube with 4 vertices per face, normals, UVs in [0, 1] and a PNG texture."""
    positions: list[Any] = []
    normals: list[Any] = []
    uvs: list[tuple[int, int]] = []
    indices: list[int] = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            normal = np.zeros(3)
            normal[axis] = sign
            u_axis, v_axis = (axis + 1) % 3, (axis + 2) % 3
            base = len(positions)
            for du, dv in ((0, 0), (1, 0), (1, 1), (0, 1)):
                corner = normal * 0.5
                corner[u_axis], corner[v_axis] = du - 0.5, dv - 0.5
                positions.append(corner)
                normals.append(normal)
                uvs.append((du, dv))
            quad = [base, base + 1, base + 2, base, base + 2, base + 3]
            indices += quad if sign > 0 else [quad[0], quad[2], quad[1], quad[3], quad[5], quad[4]]
    png = Texture(image_bytes("PNG"), "image/png", 8, 8, "checker")
    return Asset(
        primitives=[
            Primitive(
                positions=np.array(positions, dtype=np.float32),
                indices=np.array(indices, dtype=np.uint32),
                normals=np.array(normals, dtype=np.float32),
                uvs=np.array(uvs, dtype=np.float32),
                material=0,
            )
        ],
        materials=[Material(name="box", base_color_texture=0, roughness_factor=0.6)],
        textures=[png],
    )


def grid_indices(rows: int, cols: int) -> NDArray[np.uint32]:
    """Two triangles per cell of a rows x cols vertex grid."""
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols - 1), indexing="ij")
    a = (r * cols + c).ravel()
    b, d = a + 1, a + cols
    quads = np.stack([a, d, b, b, d, d + 1], axis=1)
    return quads.ravel().astype(np.uint32)


def colored_sphere(rings: int = 12, segments: int = 24) -> Asset:
    """A sphere band (no pole singularities) with vertex colours and normals, no material."""
    theta = np.linspace(0.1 * math.pi, 0.9 * math.pi, rings)
    phi = np.linspace(0.0, 2.0 * math.pi, segments)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    unit = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    colors = np.concatenate([(unit + 1.0) / 2.0, np.ones((len(unit), 1))], axis=1)
    return Asset(
        primitives=[
            Primitive(
                positions=(unit * 0.3 + (1.0, 2.0, 3.0)).astype(np.float32),
                indices=grid_indices(rings, segments),
                normals=unit.astype(np.float32),
                colors=colors.astype(np.float32),
            )
        ]
    )


def big_terrain(size: int = 260) -> Asset:
    """size**2 > 65535 vertices, so indices must be uint32."""
    y, x = np.meshgrid(np.linspace(0, 10, size), np.linspace(0, 10, size), indexing="ij")
    z = np.sin(x) * np.cos(y) * 0.2
    positions = np.stack([x, z, y], -1).reshape(-1, 3).astype(np.float32)
    normals = np.tile(np.array([0.0, 1.0, 0.0], dtype=np.float32), (len(positions), 1))
    return Asset(
        primitives=[Primitive(positions, grid_indices(size, size), normals=normals, material=0)],
        materials=[Material(base_color_factor=(0.2, 0.6, 0.3, 1.0))],
    )


def webp_quad(uv_scale: float = 3.0) -> Asset:
    """A double-sided, alpha-masked quad with a tiling WebP texture (UVs 0..3, beyond [0, 1])."""
    positions = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float32)
    uvs = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], dtype=np.float32) * uv_scale
    normals = np.tile(np.array([0.0, 0.0, 1.0], dtype=np.float32), (4, 1))
    material = Material(
        base_color_texture=0, alpha_mode="MASK", alpha_cutoff=0.3, double_sided=True
    )
    return Asset(
        primitives=[
            Primitive(positions, np.array([0, 1, 2, 0, 2, 3], np.uint32), normals, uvs, None, 0)
        ],
        materials=[material],
        textures=[Texture(image_bytes("WEBP"), "image/webp", 8, 8, "leaf")],
    )


ASSETS = {
    "textured_box": textured_box,
    "colored_sphere": colored_sphere,
    "big_terrain": big_terrain,
    "webp_quad": webp_quad,
}


# --- reading our own output back --------------------------------------------------------------


def read_glb(glb: bytes) -> tuple[dict[str, Any], bytes]:
    return unpack_glb(glb)


def accessor_array(document: dict[str, Any], binary: bytes, index: int) -> NDArray[Any]:
    """The accessor's elements as an (count, width) array (plain GLB-stored data only)."""
    accessor = document["accessors"][index]
    view = document["bufferViews"][accessor["bufferView"]]
    dtype = np.dtype(_DTYPES.get(accessor["componentType"], np.float32))
    width = _WIDTHS[accessor["type"]]
    stride = view.get("byteStride", dtype.itemsize * width)
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    rows = np.frombuffer(binary, np.uint8, accessor["count"] * stride, start)
    rows = rows.reshape(accessor["count"], stride)[:, : dtype.itemsize * width]
    return rows.copy().view(dtype).reshape(accessor["count"], width)


def first_primitive(document: dict[str, Any]) -> dict[str, Any]:
    primitive: dict[str, Any] = document["meshes"][0]["primitives"][0]
    return primitive


# --- tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [PLAIN, QUANTIZED], ids=["plain", "quantized"])
@pytest.mark.parametrize("name", sorted(ASSETS))
def test_every_fixture_passes_the_khronos_validator_without_errors_or_warnings(
    name: str, options: WriteOptions
) -> None:
    glb = write_glb(ASSETS[name](), options)

    report = validate(glb, what=f"{name}.glb")  # raises on any error or warning

    assert report.num_errors == 0
    assert report.num_warnings == 0, report.warnings
    assert report.validator_version == "2.0.0-dev.3.10"


@pytest.mark.parametrize("options", [PLAIN, QUANTIZED, MESHOPT], ids=["plain", "q", "meshopt"])
def test_the_same_asset_and_options_give_byte_identical_glbs(options: WriteOptions) -> None:
    for build in (textured_box, colored_sphere, webp_quad):
        assert write_glb(build(), options) == write_glb(build(), options)


def test_the_asset_header_names_pavilion_and_gltf_2() -> None:
    document, _ = read_glb(write_glb(textured_box()))

    assert document["asset"] == {"generator": "Pavilion", "version": "2.0"}
    assert document["scene"] == 0
    assert document["scenes"] == [{"nodes": [0]}]


def test_plain_position_min_max_are_exactly_the_float_bounds() -> None:
    asset = colored_sphere()
    document, binary = read_glb(write_glb(asset))
    accessor = document["accessors"][first_primitive(document)["attributes"]["POSITION"]]

    positions = asset.primitives[0].positions
    assert accessor["min"] == [float(v) for v in positions.min(axis=0)]
    assert accessor["max"] == [float(v) for v in positions.max(axis=0)]
    written = accessor_array(document, binary, first_primitive(document)["attributes"]["POSITION"])
    np.testing.assert_array_equal(written, positions)


def test_quantized_positions_dequantize_through_the_node_transform_within_half_a_step() -> None:
    asset = colored_sphere()
    document, binary = read_glb(write_glb(asset, QUANTIZED))
    index = first_primitive(document)["attributes"]["POSITION"]
    accessor, node = document["accessors"][index], document["nodes"][0]
    q = accessor_array(document, binary, index)

    assert accessor["componentType"] == 5123
    assert accessor["min"] == q.min(axis=0).tolist()
    assert accessor["max"] == q.max(axis=0).tolist()
    assert max(accessor["max"]) == (1 << 14) - 1
    restored = q * np.array(node["scale"]) + np.array(node["translation"])
    original = asset.primitives[0].positions
    step = node["scale"][0]
    # Quantizing reorders vertices: compare the sorted sets of points.
    assert len(restored) == len(original)
    np.testing.assert_allclose(np.sort(restored, axis=0), np.sort(original, axis=0), atol=step)
    assert "KHR_mesh_quantization" in document["extensionsRequired"]


def test_the_json_holds_no_nan_or_infinity() -> None:
    for build in ASSETS.values():
        for options in (PLAIN, QUANTIZED, MESHOPT):
            document_bytes = write_glb(build(), options)
            length = int.from_bytes(document_bytes[12:16], "little")
            text = document_bytes[20 : 20 + length].decode()

            def refuse(constant: str) -> None:
                raise AssertionError(f"{constant} in the glTF JSON")

            json.loads(text, parse_constant=refuse)


def test_a_nan_material_factor_is_refused_instead_of_written() -> None:
    asset = textured_box()
    asset.materials[0].roughness_factor = float("nan")

    with pytest.raises(OutputError) as caught:
        write_glb(asset)
    assert caught.value.code == "output_invalid"


def test_nan_positions_are_refused_as_a_mesh_error() -> None:
    asset = colored_sphere()
    asset.primitives[0].positions[3, 1] = np.nan

    with pytest.raises(MeshError) as caught:
        write_glb(asset)
    assert caught.value.code == "mesh_not_finite"


@pytest.mark.parametrize("options", [PLAIN, QUANTIZED, MESHOPT], ids=["plain", "q", "meshopt"])
def test_every_buffer_view_and_stride_is_four_byte_aligned(options: WriteOptions) -> None:
    for build in ASSETS.values():
        document, binary = read_glb(write_glb(build(), options))
        for view in document["bufferViews"]:
            assert view.get("byteOffset", 0) % 4 == 0
            assert view.get("byteStride", 4) % 4 == 0
            compressed = view.get("extensions", {}).get("EXT_meshopt_compression")
            if compressed:
                assert compressed["byteOffset"] % 4 == 0
        assert len(binary) % 4 == 0
        assert document["buffers"][0]["byteLength"] == len(binary)


def test_small_meshes_use_uint16_indices_and_large_ones_uint32() -> None:
    small, _ = read_glb(write_glb(colored_sphere()))
    large_asset = big_terrain()
    large, binary = read_glb(write_glb(large_asset))

    assert small["accessors"][first_primitive(small)["indices"]]["componentType"] == 5123
    index = first_primitive(large)["indices"]
    assert large["accessors"][index]["componentType"] == 5125
    assert large_asset.primitives[0].vertex_count > 65535
    written = accessor_array(large, binary, index).ravel()
    np.testing.assert_array_equal(written, large_asset.primitives[0].indices)


@pytest.mark.parametrize("name", ["textured_box", "colored_sphere", "webp_quad"])
def test_a_plain_glb_loads_back_in_trimesh_with_the_same_triangle_count(name: str) -> None:
    asset = ASSETS[name]()
    scene: Any = trimesh.load(io.BytesIO(write_glb(asset)), file_type="glb", force="scene")

    assert sum(len(g.faces) for g in scene.geometry.values()) == asset.triangle_count


def test_textures_keep_their_original_bytes_and_mime_type() -> None:
    for asset in (textured_box(), webp_quad()):
        document, binary = read_glb(write_glb(asset, QUANTIZED))
        image = document["images"][0]
        view = document["bufferViews"][image["bufferView"]]

        assert image["mimeType"] == asset.textures[0].mime_type
        stored = binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]]
        assert stored == asset.textures[0].data
        assert "target" not in view
        assert "byteStride" not in view


def test_webp_textures_require_ext_texture_webp_and_carry_no_fallback_source() -> None:
    document, _ = read_glb(write_glb(webp_quad()))

    assert document["textures"] == [
        {"extensions": {"EXT_texture_webp": {"source": 0}}, "sampler": 0}
    ]
    assert document["extensionsRequired"] == ["EXT_texture_webp"]
    png_document, _ = read_glb(write_glb(textured_box()))
    assert png_document["textures"] == [{"sampler": 0, "source": 0}]
    assert "extensionsUsed" not in png_document


def test_samplers_are_trilinear_and_repeat() -> None:
    document, _ = read_glb(write_glb(textured_box()))

    assert document["samplers"] == [
        {"magFilter": 9729, "minFilter": 9987, "wrapS": 10497, "wrapT": 10497}
    ]


def test_materials_carry_alpha_mode_cutoff_and_double_sidedness() -> None:
    masked, _ = read_glb(write_glb(webp_quad()))
    opaque, _ = read_glb(write_glb(textured_box()))

    assert masked["materials"][0]["alphaMode"] == "MASK"
    assert masked["materials"][0]["alphaCutoff"] == pytest.approx(0.3)
    assert masked["materials"][0]["doubleSided"] is True
    assert "alphaCutoff" not in opaque["materials"][0]
    assert opaque["materials"][0]["pbrMetallicRoughness"]["roughnessFactor"] == pytest.approx(0.6)


def test_uvs_beyond_the_unit_square_get_a_texture_transform_that_maps_them_back() -> None:
    asset = webp_quad(uv_scale=3.0)
    document, binary = read_glb(write_glb(asset, QUANTIZED))
    texture_info = document["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]
    transform = texture_info["extensions"]["KHR_texture_transform"]
    index = first_primitive(document)["attributes"]["TEXCOORD_0"]
    stored = accessor_array(document, binary, index) / 65535.0

    restored = np.array(transform["offset"]) + stored * np.array(transform["scale"])
    expected = asset.primitives[0].uvs
    assert expected is not None
    np.testing.assert_allclose(np.sort(restored, axis=0), np.sort(expected, axis=0), atol=1e-4)
    assert "KHR_texture_transform" in document["extensionsRequired"]
    in_range, _ = read_glb(write_glb(textured_box(), QUANTIZED))
    assert "KHR_texture_transform" not in in_range["extensionsUsed"]


def test_quantized_normals_and_colors_use_normalized_small_integers() -> None:
    document, binary = read_glb(write_glb(colored_sphere(), QUANTIZED))
    attributes = first_primitive(document)["attributes"]
    normal = document["accessors"][attributes["NORMAL"]]
    color = document["accessors"][attributes["COLOR_0"]]

    assert (normal["componentType"], normal["normalized"]) == (5120, True)
    assert (color["componentType"], color["normalized"], color["type"]) == (5121, True, "VEC4")
    lengths = np.linalg.norm(accessor_array(document, binary, attributes["NORMAL"]) / 127, axis=1)
    np.testing.assert_allclose(lengths, 1.0, atol=0.0068)


def test_unused_materials_and_textures_are_not_written() -> None:
    asset = textured_box()
    asset.materials.insert(0, Material(name="unused", base_color_texture=0))
    asset.textures.insert(0, Texture(image_bytes("PNG", 4), "image/png", 4, 4, "unused"))
    asset.primitives[0].material = 1
    asset.materials[1].base_color_texture = 1

    document, _ = read_glb(write_glb(asset))

    assert [m.get("name") for m in document["materials"]] == ["box"]
    assert [i["name"] for i in document["images"]] == ["checker"]


def test_meshopt_without_quantization_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="quantize"):
        WriteOptions(meshopt=True)


def test_an_index_past_the_last_vertex_is_rejected_before_any_encoder_runs() -> None:
    asset = colored_sphere()
    asset.primitives[0].indices[7] = asset.primitives[0].vertex_count

    with pytest.raises(MeshError) as caught:
        write_glb(asset, MESHOPT)
    assert caught.value.code == "mesh_index_out_of_range"


def test_an_asset_without_triangles_is_rejected() -> None:
    empty = Primitive(np.zeros((0, 3), np.float32), np.zeros(0, np.uint32))

    with pytest.raises(MeshError) as caught:
        write_glb(Asset(primitives=[empty]))
    assert caught.value.code == "mesh_empty"


def test_a_material_pointing_at_a_missing_texture_is_an_output_bug() -> None:
    asset = textured_box()
    asset.materials[0].normal_texture = 5

    with pytest.raises(OutputError):
        write_glb(asset)
