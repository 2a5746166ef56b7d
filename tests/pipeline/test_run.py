"""The whole pipeline on one upload: every output, the budgets, the report, determinism."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
import trimesh
from PIL import Image

from pipeline.errors import PipelineError
from pipeline.run import COMPAT, LODS, OUTPUT_PATHS, ConvertOptions, Result, convert
from tests.paths import CORPUS


def _glb_json(glb: bytes) -> dict[str, Any]:
    length = int.from_bytes(glb[12:16], "little")
    parsed: dict[str, Any] = json.loads(glb[20 : 20 + length])
    return parsed


def _sphere_stl(subdivisions: int) -> bytes:
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=40.0)  # "mm"
    data: bytes = sphere.export(file_type="stl")
    return data


@pytest.fixture(scope="module")
def duck() -> Result:
    return convert((CORPUS / "Duck.glb").read_bytes(), ConvertOptions(name="Duck.glb"))


def test_a_model_becomes_three_web_lods_a_compat_model_a_thumbnail_and_a_report(
    duck: Result,
) -> None:
    assert set(duck.files) == OUTPUT_PATHS
    for lod in LODS:
        document = _glb_json(duck.files[lod.path])
        assert "EXT_meshopt_compression" in document["extensionsRequired"]
        assert "KHR_mesh_quantization" in document["extensionsRequired"]
        assert all("EXT_texture_webp" in t.get("extensions", {}) for t in document["textures"])
    compat = _glb_json(duck.files[COMPAT.path])
    assert "extensionsRequired" not in compat or not compat["extensionsRequired"]
    assert {image["mimeType"] for image in compat["images"]} <= {"image/png", "image/jpeg"}
    thumbnail = Image.open(io.BytesIO(duck.files["thumbnail.webp"]), formats=["WEBP"])
    assert thumbnail.size == (512, 512)
    pixels = np.asarray(thumbnail.convert("RGB"), dtype=np.int16)
    yellow = (pixels[..., 0] > 180) & (pixels[..., 1] > 150) & (pixels[..., 2] < 100)
    assert yellow.mean() > 0.2, "the thumbnail shows the (yellow) duck"


def test_the_report_says_what_was_made(duck: Result) -> None:
    report = json.loads(duck.files["report.json"])
    assert report == duck.report
    assert report["format"] == "glb"
    assert all(report["dimensions_m"][axis] > 0 for axis in "xyz")
    for path in ("web/lod0.glb", "web/lod1.glb", "web/lod2.glb", "compat/model.glb"):
        output = report["outputs"][path]
        assert output["bytes"] == len(duck.files[path])
        assert output["triangles"] > 0
    assert report["outputs"]["web/lod0.glb"]["textures"][0]["mime_type"] == "image/webp"
    assert {"detect", "load", "normalize", "weld", "validate"} <= set(report["timings"])


def test_lods_keep_to_their_triangle_and_texture_budgets() -> None:
    result = convert(_sphere_stl(7), ConvertOptions(name="ball.stl"))  # 327,680 triangles
    report = result.report
    for lod in LODS:
        assert report["outputs"][lod.path]["triangles"] <= lod.max_triangles
    assert report["outputs"]["web/lod0.glb"]["triangles"] > 50_000, "LOD0 is not over-simplified"
    assert report["outputs"]["web/lod2.glb"]["triangles"] > 1_000
    assert report["source_unit"] == {"unit": "mm", "from": "heuristic"}
    assert report["dimensions_m"]["y"] == pytest.approx(0.08, rel=0.01)
    assert report["rotated_to_y_up"] is True


def test_a_photo_becomes_a_product_card_with_no_metadata() -> None:
    image = Image.new("RGB", (1200, 800), (200, 40, 40))
    exif = Image.Exif()
    exif[0x010F] = "SecretPhoneMaker"
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    result = convert(buffer.getvalue())
    assert set(result.files) == OUTPUT_PATHS
    assert result.report["format"] == "jpeg"
    size = result.report["dimensions_m"]
    assert size["x"] / size["y"] == pytest.approx(1.5, rel=0.02)
    assert all(b"SecretPhoneMaker" not in data for data in result.files.values())


def test_the_same_input_gives_byte_identical_outputs(duck: Result) -> None:
    again = convert((CORPUS / "Duck.glb").read_bytes(), ConvertOptions(name="Duck.glb"))
    for path, data in duck.files.items():
        if path != "report.json":
            assert again.files[path] == data, path
    assert {**again.report, "timings": None} == {**duck.report, "timings": None}


def test_progress_is_reported_from_start_to_done() -> None:
    steps: list[tuple[str, float]] = []
    convert(_sphere_stl(2), progress=lambda step, fraction: steps.append((step, fraction)))
    fractions = [fraction for _, fraction in steps]
    assert fractions == sorted(fractions)
    assert steps[0] == ("detect", 0.0)
    assert steps[-1] == ("done", 1.0)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_input"),
        (b"MZ\x90\x00 not a model at all" * 10, "unsupported_format"),
        (b"glTF\x02\x00\x00\x00\xff\xff\xff\x7f", None),
    ],
)
def test_rejected_input_raises_a_pipeline_error_with_a_code(data: bytes, code: str | None) -> None:
    with pytest.raises(PipelineError) as caught:
        convert(data)
    if code is not None:
        assert caught.value.code == code
    assert caught.value.code.replace("_", "").isalpha()
