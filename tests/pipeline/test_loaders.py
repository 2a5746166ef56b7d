"""pipeline.loaders: flat Assets from every mesh format, and clean codes for everything else."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline.detect import detect
from pipeline.errors import ArchiveError, MeshError, PipelineError
from pipeline.loaders import load, unit_hint
from pipeline.model import Asset, Format
from tests.paths import CORPUS
from tests.pipeline.hostile import (
    OBJ_TRIANGLE,
    encoded_image,
    glb,
    textured,
    textured_glb,
    triangle,
    triangle_glb,
    zip_of,
)


def load_bytes(data: bytes, name: str | None = None) -> Asset:
    return load(data, detect(data), name=name)


# --- glTF -------------------------------------------------------------------------------------


def test_a_glb_triangle_loads_with_its_indices() -> None:
    asset = load_bytes(triangle_glb())
    assert asset.source_format == Format.glb
    assert asset.triangle_count == 1
    np.testing.assert_array_equal(asset.primitives[0].indices, [0, 1, 2])
    assert asset.z_up_hint is False


def test_node_transforms_are_applied_to_positions_and_normals() -> None:
    document, binary = triangle()
    normals = np.array([[0, 0, 1]] * 3, dtype="<f4").tobytes()
    document["bufferViews"].append({"buffer": 0, "byteOffset": len(binary), "byteLength": 36})
    document["accessors"].append(
        {"bufferView": 2, "componentType": 5126, "count": 3, "type": "VEC3"}
    )
    document["buffers"] = [{"byteLength": len(binary) + 36}]
    document["meshes"][0]["primitives"][0]["attributes"]["NORMAL"] = 2
    # Parent translates by (10, 0, 0); child rotates 90 degrees about X and scales by 2.
    half = math.sqrt(0.5)
    document["nodes"] = [
        {"children": [1], "translation": [10, 0, 0]},
        {"mesh": 0, "rotation": [half, 0, 0, half], "scale": [2, 2, 2]},
    ]
    document["scenes"] = [{"nodes": [0]}]
    primitive = load_bytes(glb(document, binary + normals)).primitives[0]
    np.testing.assert_allclose(primitive.positions, [[10, 0, 0], [12, 0, 0], [10, 0, 2]], atol=1e-5)
    assert primitive.normals is not None
    np.testing.assert_allclose(primitive.normals, [[0, -1, 0]] * 3, atol=1e-5)


def test_a_mirroring_matrix_flips_the_winding() -> None:
    mirror = [-1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    primitive = load_bytes(triangle_glb(nodes=[{"mesh": 0, "matrix": mirror}])).primitives[0]
    np.testing.assert_array_equal(primitive.indices, [0, 2, 1])


def test_triangle_strips_become_triangle_lists() -> None:
    document, binary = triangle()
    document["meshes"][0]["primitives"][0] = {"attributes": {"POSITION": 0}, "mode": 5}
    asset = load_bytes(glb(document, binary))
    np.testing.assert_array_equal(asset.primitives[0].indices, [0, 1, 2])


def test_normalized_integer_uvs_are_dequantized() -> None:
    document, binary = triangle()
    uvs = np.array([[0, 0], [65535, 0], [0, 65535]], dtype="<u2").tobytes()
    document["bufferViews"].append({"buffer": 0, "byteOffset": len(binary), "byteLength": 12})
    document["accessors"].append(
        {"bufferView": 2, "componentType": 5123, "normalized": True, "count": 3, "type": "VEC2"}
    )
    document["buffers"] = [{"byteLength": len(binary) + 12}]
    document["meshes"][0]["primitives"][0]["attributes"]["TEXCOORD_0"] = 2
    uv = load_bytes(glb(document, binary + uvs)).primitives[0].uvs
    assert uv is not None
    np.testing.assert_allclose(uv, [[0, 0], [1, 0], [0, 1]])


def test_textures_keep_their_original_bytes() -> None:
    png = encoded_image("PNG", 16)
    asset = load_bytes(textured_glb(png))
    assert asset.textures[0].data == png
    assert (asset.textures[0].mime_type, asset.textures[0].width) == ("image/png", 16)
    assert asset.materials[0].base_color_texture == 0
    assert asset.primitives[0].material == 0


def test_a_texture_transform_is_ignored_with_a_warning() -> None:
    document, binary = textured(encoded_image("PNG"))
    info = document["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]
    info["extensions"] = {"KHR_texture_transform": {"scale": [2, 2]}}
    asset = load_bytes(glb(document, binary))
    assert any("KHR_texture_transform" in warning for warning in asset.warnings)


def test_a_zipped_gltf_resolves_its_buffer_and_images_inside_the_zip() -> None:
    document, binary = triangle()
    png = encoded_image("PNG", 8)
    document["buffers"] = [{"byteLength": len(binary), "uri": "data/tri%20angle.bin"}]
    document["images"] = [{"uri": "data/tex.png"}]
    document["textures"] = [{"source": 0}]
    document["materials"] = [{"emissiveTexture": {"index": 0}, "emissiveFactor": [1, 1, 1]}]
    archive = zip_of(
        {
            "model/scene.gltf": json.dumps(document).encode(),
            "model/data/tri angle.bin": binary,
            "model/data/tex.png": png,
        }
    )
    asset = load_bytes(archive)
    assert asset.source_format == Format.gltf_zip
    assert asset.triangle_count == 1
    assert asset.textures[0].data == png
    assert asset.materials[0].emissive_texture == 0


def test_a_zipped_gltf_missing_its_buffer_is_refused() -> None:
    document, _ = triangle()
    document["buffers"] = [{"byteLength": 44, "uri": "missing.bin"}]
    with pytest.raises(ArchiveError) as caught:
        load_bytes(zip_of({"scene.gltf": json.dumps(document).encode()}))
    assert caught.value.code == "archive_member_missing"


def test_points_only_glb_has_no_triangles() -> None:
    document, binary = triangle()
    document["meshes"][0]["primitives"][0]["mode"] = 0
    with pytest.raises(MeshError) as caught:
        load_bytes(glb(document, binary))
    assert caught.value.code == "mesh_no_triangles"


# --- OBJ --------------------------------------------------------------------------------------

MTL = b"newmtl wood\nKd 0.5 0.25 1.0\nNs not-a-number\nd 0.5\nmap_Kd -bm 1.0 tex/wood grain.jpg\n" \
    b"newmtl hostile\nmap_Kd ../../../etc/passwd\n"  # fmt: skip
OBJ_QUAD = b"mtllib parts.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n" \
    b"usemtl wood\nf 1/1 2/2 3/3 4/4\nusemtl hostile\nf -4/1 -2/3 -1/4\n"  # fmt: skip


def test_a_zipped_obj_keeps_its_material_texture_and_flips_uvs() -> None:
    jpeg = encoded_image("JPEG", 16)
    archive = zip_of(
        {
            "chair/chair.unitscm.obj": OBJ_QUAD,
            "chair/parts.mtl": MTL,
            "chair/tex/wood grain.jpg": jpeg,
        }
    )
    asset = load_bytes(archive)
    wood = asset.materials[0]
    assert (wood.name, wood.base_color_factor, wood.alpha_mode) == (
        "wood",
        (0.5, 0.25, 1.0, 0.5),
        "BLEND",
    )
    assert wood.roughness_factor == 1.0  # the invalid Ns keeps the default
    assert asset.textures[0].data == jpeg
    assert wood.base_color_texture == 0
    assert asset.materials[1].base_color_texture is None  # ../ escaped the upload: dropped
    assert any("archive_reference_outside" in warning for warning in asset.warnings)
    textured = next(p for p in asset.primitives if p.material == 0)
    assert textured.triangle_count == 2
    assert textured.uvs is not None
    assert {tuple(uv) for uv in textured.uvs.tolist()} == {
        (0, 1),
        (1, 1),
        (1, 0),
        (0, 0),
    }
    assert asset.unit_hint == "cm"
    assert asset.z_up_hint


def test_a_bare_obj_with_negative_indices_loads() -> None:
    asset = load_bytes(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf -3 -2 -1\n")
    assert asset.triangle_count == 1


def test_non_finite_obj_vertices_drop_their_triangles_with_a_warning() -> None:
    asset = load_bytes(OBJ_TRIANGLE + b"v nan 0 0\nf 2 3 4\n")
    assert asset.triangle_count == 1
    assert np.isfinite(asset.primitives[0].positions[asset.primitives[0].indices]).all()
    assert any("non-finite" in warning for warning in asset.warnings)


def test_a_wireframe_obj_has_no_triangles() -> None:
    with pytest.raises(MeshError) as caught:
        load_bytes(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nl 1 2\nl 2 3\n")
    assert caught.value.code == "mesh_no_triangles"


# --- STL / PLY --------------------------------------------------------------------------------


def test_a_binary_stl_loads_with_a_unit_hint_from_its_name() -> None:
    record = np.zeros(1, dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    record["v"] = [[0, 0, 0], [1, 0, 0], [0, 1, 0]]
    data = b"part".ljust(80) + (1).to_bytes(4, "little") + record.tobytes()
    asset = load(data, Format.stl, name="counter.unitsmm.STL")
    assert (asset.triangle_count, asset.unit_hint, asset.z_up_hint) == (1, "mm", True)


def test_ply_vertex_colours_are_kept_as_linear_rgba() -> None:
    header = b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n" \
        b"property uchar red\nproperty uchar green\nproperty uchar blue\nelement face 1\n" \
        b"property list uchar int vertex_indices\nend_header\n"  # fmt: skip
    body = b"0 0 0 255 0 0\n1 0 0 0 255 0\n0 1 0 188 188 188\n3 0 1 2\n"
    primitive = load_bytes(header + body).primitives[0]
    assert primitive.colors is not None
    np.testing.assert_allclose(primitive.colors[0], [1, 0, 0, 1])
    np.testing.assert_allclose(
        primitive.colors[2, :3], [0.5] * 3, atol=0.01
    )  # sRGB 188 ~ linear 0.5


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("counter.unitsmm.STL", "mm"),
        ("a/b/part_units_in.obj", "in"),
        ("x.unitsm.glb", "m"),
        ("minutes.stl", None),
    ],
)
def test_unit_hints_come_from_names(name: str, hint: str | None) -> None:
    assert unit_hint(name) == hint


# --- the real-world corpus --------------------------------------------------------------------

CORPUS_FILES = sorted(p for p in CORPUS.rglob("*") if p.is_file()) if CORPUS.is_dir() else []


def test_the_corpus_is_present() -> None:
    assert CORPUS.is_dir(), f"{CORPUS} is missing (CI has ../shared/corpus next to the repo)"


@pytest.mark.slow
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_every_corpus_file_loads_or_is_rejected_with_a_code(path: Path) -> None:
    data = path.read_bytes()
    try:
        asset = load(data, detect(data), name=path.name)
    except PipelineError as exc:
        code = exc.code
    else:
        code = "loaded"
        assert asset.triangle_count > 0
        for primitive in asset.primitives:
            assert np.isfinite(primitive.positions).all()
            assert primitive.indices.dtype == np.uint32
            assert int(primitive.indices.max()) < primitive.vertex_count
    assert re.fullmatch(r"[a-z_]+", code)
