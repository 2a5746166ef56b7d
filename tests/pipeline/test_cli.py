"""``python -m pipeline`` as a user runs it: outputs on success, exit 2 and one error line on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.run import OUTPUT_PATHS
from tests.paths import CORPUS
from tests.pipeline.hostile import cases


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_convert_writes_every_output_and_exits_0(tmp_path: Path) -> None:
    done = _run("convert", CORPUS / "BoxTextured.glb", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    written = {
        str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file()
    }
    assert written == OUTPUT_PATHS
    assert "Traceback" not in done.stderr


def test_inspect_prints_the_report_as_json() -> None:
    done = _run("inspect", CORPUS / "Duck.glb", "--unit", "cm")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["format"] == "glb"
    assert report["source_unit"] == {"unit": "cm", "from": "option"}


def test_a_rejected_file_exits_2_with_the_code_on_the_last_line(tmp_path: Path) -> None:
    case = next(c for c in cases() if c.code == "gltf_external_uri")
    code = case.code
    bad = tmp_path / "upload.glb"
    bad.write_bytes(case.build())
    done = _run("convert", bad, tmp_path / "out")
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {code}: "), last
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args", [["convert"], ["frobnicate", "x"], ["convert", "a", "b", "--unit", "furlong"]]
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert _run(*args).returncode == 2


def test_a_missing_file_exits_2_with_a_code(tmp_path: Path) -> None:
    done = _run("convert", tmp_path / "nope.glb", tmp_path / "out")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: unreadable_input: ")
