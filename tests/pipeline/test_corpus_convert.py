"""Every real-world file in ../shared/corpus is converted or rejected cleanly, and every output
passes the Khronos validator (meshopt outputs also after decoding): ``convert`` validates them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.run import ConvertOptions, convert
from tests.paths import CORPUS

FILES = sorted(p for p in CORPUS.rglob("*") if p.is_file()) if CORPUS.is_dir() else []


def test_the_corpus_is_there() -> None:
    assert len(FILES) > 100, f"{CORPUS} is missing or incomplete"


@pytest.mark.corpus
@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_every_corpus_file_converts_to_valid_outputs_or_is_rejected_with_a_code(path: Path) -> None:
    rejected: PipelineError | None = None
    try:
        result = convert(path.read_bytes(), ConvertOptions(name=path.name))
    except PipelineError as exc:
        rejected = exc
    if rejected is not None:
        assert re.fullmatch(r"[a-z][a-z_]+", rejected.code)
        assert rejected.code != "output_invalid", f"our output failed validation: {rejected}"
        return
    assert result.report["outputs"]["web/lod0.glb"]["triangles"] > 0
    assert len(result.files["thumbnail.webp"]) > 100
