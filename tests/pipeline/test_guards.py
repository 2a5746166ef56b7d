"""pipeline.guards: every hostile input rejected with its code, fast, small and without I/O."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import ArchiveError, GltfError, ImageError, MeshError
from pipeline.guards.archive import normalize_member_name, read_zip, resolve
from pipeline.guards.gltf import json_depth, parse_glb, parse_json, prevalidate, read_accessor
from pipeline.guards.image import image_size, open_image
from pipeline.guards.meshfile import check_ply, check_stl, stl_kind
from pipeline.limits import Limits
from tests.pipeline.hostile import (
    OBJ_TRIANGLE,
    Case,
    cases,
    encoded_image,
    glb,
    ply,
    reject,
    triangle,
    triangle_glb,
    zip_of,
)

REPO = Path(__file__).resolve().parents[2]
MY_MODULES = [
    REPO / "pipeline" / "detect.py",
    *sorted((REPO / "pipeline" / "guards").glob("*.py")),
    *sorted((REPO / "pipeline" / "loaders").glob("*.py")),
]


@pytest.mark.parametrize("case", cases(), ids=lambda case: f"{case.row}-{case.name}")
def test_each_hostile_file_is_rejected_with_its_code(case: Case) -> None:
    assert reject(case.build(), case.limits) == case.code


def test_hostile_files_are_rejected_fast_small_and_without_io() -> None:
    """research-security.md T-A5 / T-A1: < 2 s, < 256 MiB RSS growth, no open or connect."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.pipeline.hostile"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(cases())
    for line, case in zip(lines, cases(), strict=True):
        assert line["code"] == case.code, line
        assert line["seconds"] < 2.0, line
        assert line["rss"] < 256 * 1024 * 1024, line
        assert line["events"] == [], line


# --- archive ----------------------------------------------------------------------------------


def test_a_zip_is_read_in_memory_with_normalized_names() -> None:
    members = read_zip(zip_of({"./a/b.obj": OBJ_TRIANGLE, "a/": b"", "__MACOSX/._b.obj": b"x"}))
    assert members == {"a/b.obj": OBJ_TRIANGLE}


def test_a_small_highly_compressible_member_is_not_a_bomb() -> None:
    members = read_zip(zip_of({"zeros.bin": b"\x00" * 500_000}))
    assert len(members["zeros.bin"]) == 500_000


def test_the_total_uncompressed_size_is_capped_across_members() -> None:
    archive = zip_of({f"{i}.bin": np.random.default_rng(i).bytes(40_000) for i in range(4)})
    with pytest.raises(Exception) as caught:  # noqa: PT011 - TooLarge, checked by code below
        read_zip(archive, Limits(max_zip_total_bytes=100_000))
    assert getattr(caught.value, "code", None) == "archive_too_large"


@pytest.mark.parametrize("name", ["a/../b.obj", "/b.obj", "C:/b.obj", "a\\b.obj", "x" * 300])
def test_unsafe_member_names_are_refused(name: str) -> None:
    with pytest.raises(ArchiveError) as caught:
        normalize_member_name(name)
    assert caught.value.code == "archive_unsafe_path"


def test_references_resolve_relative_to_the_referring_member() -> None:
    members = {"model/scene.gltf": b"{}", "model/tex/a b.png": b"png", "shared/c.bin": b"bin"}
    assert resolve(members, "model/scene.gltf", "tex/a%20b.png") == b"png"
    assert resolve(members, "model/scene.gltf", "./tex/a b.png") == b"png"
    assert resolve(members, "model/scene.gltf", "../shared/c.bin") == b"bin"
    assert resolve(members, "model/scene.gltf", "TEX\\A B.PNG") == b"png"


@pytest.mark.parametrize(
    "reference",
    ["../../etc/passwd", "%2e%2e/%2e%2e/x", "/etc/passwd", "file:///etc/passwd", "http://x/a.png"],
)
def test_references_cannot_leave_the_upload(reference: str) -> None:
    with pytest.raises(ArchiveError) as caught:
        resolve({"model/a.obj": b""}, "model/a.obj", reference)
    assert caught.value.code == "archive_reference_outside"


def test_a_reference_to_a_missing_member_is_its_own_error() -> None:
    with pytest.raises(ArchiveError) as caught:
        resolve({"a.obj": b""}, "a.obj", "b.mtl")
    assert caught.value.code == "archive_member_missing"


# --- images -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_allowed_images_open_fully_decoded(fmt: str, mime: str) -> None:
    assert image_size(encoded_image(fmt, 32)) == (mime, 32, 32)


def test_the_formats_allowlist_is_enforced() -> None:
    with pytest.raises(ImageError) as caught:
        open_image(encoded_image("PNG"), formats=("JPEG",))
    assert caught.value.code == "image_unsupported_format"


def test_the_pixel_cap_is_an_error_not_a_warning() -> None:
    with pytest.raises(ImageError) as caught:
        open_image(encoded_image("PNG", 64), Limits(max_image_pixels=64 * 63))
    assert caught.value.code == "image_too_many_pixels"


def test_only_the_first_frame_is_decoded() -> None:
    frames = [Image.new("RGB", (8, 8), (i, 0, 0)) for i in range(3)]
    out = __import__("io").BytesIO()
    frames[0].save(out, format="WEBP", save_all=True, append_images=frames[1:])
    image = open_image(out.getvalue())
    pixel = image.getpixel((0, 0))
    assert isinstance(pixel, tuple)
    assert pixel[0] < 16


@pytest.mark.skipif(
    importlib.util.find_spec("pillow_heif") is not None, reason="pillow-heif installed"
)
def test_heic_without_pillow_heif_is_a_clear_error() -> None:
    with pytest.raises(ImageError) as caught:
        open_image(b"\x00\x00\x00\x18ftypheic", formats=("HEIF",))
    assert caught.value.code == "image_plugin_missing"


# --- glTF -------------------------------------------------------------------------------------


def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth(b'{"a": "[[[[{{{{", "b": [[1]], "c": "\\"]]]"}') == 3


def test_trailing_bytes_after_the_declared_glb_length_are_refused() -> None:
    with pytest.raises(GltfError) as caught:
        parse_glb(triangle_glb() + b"\x00" * 4)
    assert caught.value.code == "gltf_glb_invalid"


def test_interleaved_accessors_are_read_with_their_stride() -> None:
    vertices = np.arange(3 * 5, dtype="<f4").reshape(3, 5)  # xyz + uv per vertex
    document, _ = triangle()
    document["bufferViews"][0] = {"buffer": 0, "byteLength": 60, "byteStride": 20}
    document["bufferViews"][1]["byteOffset"] = 60
    document["accessors"].append(
        {"bufferView": 0, "byteOffset": 12, "componentType": 5126, "count": 3, "type": "VEC2"}
    )
    binary = vertices.tobytes() + np.array([0, 1, 2, 0], dtype="<u2").tobytes()
    document["buffers"] = [{"byteLength": len(binary)}]
    parsed = prevalidate(*parse_glb(glb(document, binary)))
    np.testing.assert_array_equal(read_accessor(parsed, 0), vertices[:, :3])
    np.testing.assert_array_equal(read_accessor(parsed, 2), vertices[:, 3:])


def test_sparse_accessors_substitute_their_values() -> None:
    document, binary = triangle()
    extra = (
        np.array([1], dtype="<u2").tobytes() + b"\x00\x00" + np.array([5, 6, 7], "<f4").tobytes()
    )
    document["bufferViews"] += [
        {"buffer": 0, "byteOffset": 44, "byteLength": 2},
        {"buffer": 0, "byteOffset": 48, "byteLength": 12},
    ]
    document["buffers"] = [{"byteLength": 60}]
    document["accessors"][0]["sparse"] = {
        "count": 1,
        "indices": {"bufferView": 2, "componentType": 5123},
        "values": {"bufferView": 3},
    }
    positions = read_accessor(prevalidate(*parse_glb(glb(document, binary + extra))), 0)
    np.testing.assert_array_equal(positions[1], [5, 6, 7])


def test_a_node_with_two_parents_is_refused() -> None:
    nodes = [{"children": [2]}, {"children": [2]}, {"mesh": 0}]
    with pytest.raises(GltfError) as caught:
        prevalidate(*parse_glb(triangle_glb(nodes=nodes, scenes=[{"nodes": [0, 1]}])))
    assert caught.value.code == "gltf_node_cycle"


def test_supported_required_extensions_pass() -> None:
    root, binary = parse_glb(
        triangle_glb(extensionsRequired=["KHR_mesh_quantization", "KHR_texture_transform"])
    )
    assert prevalidate(root, binary).json["extensionsRequired"]


def test_json_that_is_not_an_object_is_invalid() -> None:
    with pytest.raises(GltfError) as caught:
        parse_json(b"[1, 2]")
    assert caught.value.code == "gltf_json_invalid"


# --- STL / PLY headers ------------------------------------------------------------------------


def test_an_exact_binary_stl_is_binary_even_with_a_solid_header() -> None:
    data = b"solid but binary".ljust(80) + (1).to_bytes(4, "little") + b"\x00" * 50
    assert stl_kind(data) == "binary"
    assert check_stl(data) == "binary"


def test_ply_body_size_is_computed_from_the_declared_properties() -> None:
    # 3 float32 per vertex = 12 bytes; one face = 1 (count) + 12 (three int32).
    body = b"\x00" * (12 * 3) + b"\x03" + b"\x00" * 12
    assert check_ply(ply("element vertex 3", body)).count("vertex") == 3
    with pytest.raises(MeshError) as caught:
        check_ply(ply("element vertex 4", body[:-13]))
    assert caught.value.code == "mesh_header_mismatch"


# --- source hygiene (research-security.md §4.4) -----------------------------------------------


def _calls_and_imports(path: Path) -> tuple[list[ast.Call], set[str]]:
    tree = ast.parse(path.read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    imports = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imports |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    return calls, imports


def test_every_image_open_in_ingest_passes_a_formats_allowlist() -> None:
    opened = 0
    for path in MY_MODULES:
        for call in _calls_and_imports(path)[0]:
            func = call.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "open"
                and ast.unparse(func.value) == "Image"
            ):
                opened += 1
                assert "formats" in {keyword.arg for keyword in call.keywords}, path
    assert opened >= 1


def test_ingest_never_imports_pygltflib() -> None:
    for path in MY_MODULES:
        assert not any(name.startswith("pygltflib") for name in _calls_and_imports(path)[1]), path
