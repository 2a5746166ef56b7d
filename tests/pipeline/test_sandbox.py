"""The pipeline in a limited child process: outputs, refusals, and every limit as a code."""

from __future__ import annotations

import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
import trimesh
from PIL import Image

from pipeline.sandbox import SandboxError, SandboxLimits, convert_in_sandbox
from tests.paths import REPO

FAST = {"validate": False}


def photo() -> bytes:
    out = BytesIO()
    Image.new("RGB", (320, 240), (200, 120, 40)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def big_sphere() -> bytes:
    """327,680 triangles as binary STL: seconds of CPU to convert."""
    data: bytes = trimesh.creation.icosphere(subdivisions=7, radius=50.0).export(file_type="stl")
    return data


def test_a_photo_converts_in_the_sandbox_with_progress() -> None:
    steps: list[tuple[str, float]] = []
    result = convert_in_sandbox(photo(), options=FAST, progress=lambda s, f: steps.append((s, f)))
    assert {"web/lod0.glb", "web/lod1.glb", "web/lod2.glb", "compat/model.glb"} <= set(result.files)
    assert result.files["web/lod0.glb"][:4] == b"glTF"
    assert result.report["format"] == "png"
    assert [s for s, _ in steps][:2] == ["detect", "load"]
    assert steps[-1] == ("done", 1.0)


def test_the_validator_runs_inside_the_limits() -> None:
    result = convert_in_sandbox(photo(), options={"validate": True})
    assert "validate" in result.report["timings"]


def test_a_refused_input_keeps_the_pipelines_code_and_is_not_retryable() -> None:
    with pytest.raises(SandboxError) as caught:
        convert_in_sandbox(b"MZ\x90\x00 not a model at all", options=FAST)
    assert caught.value.code == "unsupported_format"
    assert not caught.value.retryable


def test_running_out_of_memory_is_limit_memory(big_sphere: bytes) -> None:
    # A 6000 x 6000 photo decodes to ~100 MB of pixels, then copies: over a 400 MB data limit
    # once the interpreter, numpy and Pillow are in.
    out = BytesIO()
    Image.new("RGB", (6000, 6000), (10, 200, 30)).save(out, "PNG")
    with pytest.raises(SandboxError) as caught:
        convert_in_sandbox(
            out.getvalue(), options=FAST, limits=SandboxLimits(memory_bytes=400 * 1024**2)
        )
    assert caught.value.code == "limit_memory"


def test_running_out_of_cpu_time_is_limit_cpu(big_sphere: bytes) -> None:
    with pytest.raises(SandboxError) as caught:
        convert_in_sandbox(
            big_sphere, options={**FAST, "unit": "mm"}, limits=SandboxLimits(cpu_seconds=1)
        )
    assert caught.value.code == "limit_cpu"


def test_running_past_the_wall_clock_is_limit_wall(big_sphere: bytes) -> None:
    with pytest.raises(SandboxError) as caught:
        convert_in_sandbox(
            big_sphere, options={**FAST, "unit": "mm"}, limits=SandboxLimits(wall_seconds=0.3)
        )
    assert caught.value.code == "limit_wall"


def test_a_child_that_cannot_even_start_is_a_retryable_crash() -> None:
    with pytest.raises(SandboxError) as caught:
        convert_in_sandbox(photo(), options=FAST, limits=SandboxLimits(memory_bytes=8 * 1024**2))
    assert caught.value.code == "crashed"
    assert caught.value.retryable


def test_after_every_kind_of_failure_the_next_conversion_still_works() -> None:
    for limits in (SandboxLimits(wall_seconds=0.01), SandboxLimits(memory_bytes=8 * 1024**2)):
        with pytest.raises(SandboxError):
            convert_in_sandbox(photo(), options=FAST, limits=limits)
    assert "web/lod0.glb" in convert_in_sandbox(photo(), options=FAST).files


def test_the_child_dies_with_a_parent_killed_mid_conversion(
    big_sphere: bytes, tmp_path: Path
) -> None:
    # Two things end an orphaned child: PR_SET_PDEATHSIG (at once) and, in a step that reports
    # progress, the broken pipe of its next line. This checks the outcome (no orphan), which
    # either gives here; PR_SET_PDEATHSIG is what covers a long silent step.
    source = tmp_path / "sphere.stl"
    source.write_bytes(big_sphere)
    script = (
        "import sys; from pathlib import Path; from pipeline.sandbox import convert_in_sandbox; "
        "convert_in_sandbox(Path(sys.argv[1]).read_bytes(), options={'unit': 'mm'})"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(source)], cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        children: list[psutil.Process] = []
        while not children and time.monotonic() < deadline:
            children = psutil.Process(parent.pid).children()
            time.sleep(0.05)
        assert children, "the sandbox child never started"
        [child] = children
        time.sleep(0.5)  # well inside the conversion (seconds of work)
        assert child.is_running()
        parent.kill()
        parent.wait()
        _, alive = psutil.wait_procs([child], timeout=10)
        assert alive == [], "the sandbox child outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
