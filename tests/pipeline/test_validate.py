"""validate(): the real Khronos validator catches broken GLBs; faults of the environment are distinct."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import OutputError, PipelineError
from pipeline.validate import (
    VALIDATOR_SCRIPT,
    NodeValidatorRunner,
    ValidatorUnavailable,
    parse_report,
    validate,
    validate_many,
)
from pipeline.write import WriteOptions, pack_glb, write_glb
from tests.pipeline.test_write import accessor_array, colored_sphere, first_primitive, read_glb


def fake_runner(*messages: dict[str, Any]) -> Any:
    """A runner returning a canned report with the given messages."""

    def run(data: bytes) -> Mapping[str, Any]:
        counts = [sum(m["severity"] == s for m in messages) for s in range(4)]
        return {
            "validatorVersion": "fake",
            "issues": {
                "numErrors": counts[0],
                "numWarnings": counts[1],
                "numInfos": counts[2],
                "numHints": counts[3],
                "messages": list(messages),
                "truncated": False,
            },
        }

    return run


def with_index_past_the_end(glb: bytes) -> bytes:
    """The same GLB with one index rewritten to point one past the last vertex."""
    document, binary = read_glb(glb)
    primitive = first_primitive(document)
    accessor = document["accessors"][primitive["indices"]]
    view = document["bufferViews"][accessor["bufferView"]]
    vertex_count = document["accessors"][primitive["attributes"]["POSITION"]]["count"]
    assert accessor["componentType"] == 5123
    broken = bytearray(binary)
    struct.pack_into("<H", broken, view["byteOffset"] + 2 * 4, vertex_count)
    length = int.from_bytes(glb[12:16], "little")
    return pack_glb(glb[20 : 20 + length], bytes(broken))


def test_an_index_past_the_last_vertex_is_caught_by_the_real_validator() -> None:
    glb = write_glb(colored_sphere())
    validate(glb)  # the untouched GLB is clean
    broken = with_index_past_the_end(glb)
    document, binary = read_glb(broken)
    primitive = first_primitive(document)
    indices = accessor_array(document, binary, primitive["indices"])
    assert indices.max() == document["accessors"][primitive["attributes"]["POSITION"]]["count"]

    with pytest.raises(OutputError) as caught:
        validate(broken, what="broken.glb")

    assert caught.value.code == "output_invalid"
    assert "ACCESSOR_INDEX_OOB" in caught.value.message
    assert "broken.glb" in caught.value.message


def test_the_report_lists_the_codes_of_a_broken_glb() -> None:
    broken = with_index_past_the_end(write_glb(colored_sphere()))

    report = parse_report(NodeValidatorRunner()(broken))

    assert report.num_errors >= 1
    assert "ACCESSOR_INDEX_OOB" in report.codes(severity=0)
    assert report.errors[0].pointer.startswith("/meshes/0/primitives/0")


def test_bytes_that_are_not_gltf_at_all_are_refused() -> None:
    with pytest.raises(OutputError):
        validate(b"this is not a model")


def test_a_truncated_glb_is_an_error() -> None:
    glb = write_glb(colored_sphere())

    with pytest.raises(OutputError):
        validate(glb[: len(glb) // 2])


def test_warnings_fail_unless_the_caller_allows_them() -> None:
    warning = {"code": "SOME_WARNING", "severity": 1, "message": "hm", "pointer": "/nodes/0"}
    runner = fake_runner(warning)

    with pytest.raises(OutputError, match="SOME_WARNING"):
        validate(b"glTF", runner=runner)
    assert validate(b"glTF", runner=runner, allowed_warnings={"SOME_WARNING"}).num_warnings == 1
    assert validate(b"glTF", runner=runner, allowed_warnings=None).num_warnings == 1


def test_errors_fail_even_when_every_warning_is_allowed() -> None:
    error = {"code": "ACCESSOR_INDEX_OOB", "severity": 0, "message": "bad", "pointer": "/x"}

    with pytest.raises(OutputError, match="ACCESSOR_INDEX_OOB"):
        validate(b"glTF", runner=fake_runner(error), allowed_warnings=None)


def test_infos_and_hints_never_fail() -> None:
    info = {"code": "UNSUPPORTED_EXTENSION", "severity": 2, "message": "meshopt"}
    hint = {"code": "BUFFER_VIEW_TARGET_MISSING", "severity": 3, "message": "target"}

    report = validate(b"glTF", runner=fake_runner(info, hint))

    assert (report.num_infos, report.num_hints) == (1, 1)
    assert report.codes() == ["UNSUPPORTED_EXTENSION", "BUFFER_VIEW_TARGET_MISSING"]


def test_a_truncated_message_list_with_errors_still_fails() -> None:
    def run(data: bytes) -> Mapping[str, Any]:
        return {"issues": {"numErrors": 3, "messages": [], "truncated": True}}

    with pytest.raises(OutputError):
        validate(b"glTF", runner=run)


def test_a_missing_node_is_an_environment_fault_not_a_pipeline_error() -> None:
    runner = NodeValidatorRunner(node="/nonexistent/bin/node")

    with pytest.raises(ValidatorUnavailable) as caught:
        validate(write_glb(colored_sphere()), runner=runner)
    assert not isinstance(caught.value, PipelineError)


def test_a_missing_npm_package_is_an_environment_fault(tmp_path: Path) -> None:
    script = tmp_path / "validate.mjs"
    shutil.copy(VALIDATOR_SCRIPT, script)  # no node_modules beside it

    with pytest.raises(ValidatorUnavailable, match="npm ci --prefix pipeline/validator"):
        NodeValidatorRunner(script=script)(b"glTF")


def test_a_hung_validator_times_out(tmp_path: Path) -> None:
    script = tmp_path / "hang.mjs"
    script.write_text("setTimeout(() => {}, 60000);\n")

    with pytest.raises(ValidatorUnavailable, match="timed out"):
        NodeValidatorRunner(script=script, timeout=1.0)(b"glTF")


def test_a_report_without_issues_is_not_mistaken_for_a_clean_one() -> None:
    with pytest.raises(ValidatorUnavailable):
        validate(b"glTF", runner=lambda data: {"validatorVersion": "?"})


def test_the_real_validator_sees_the_accessor_data() -> None:
    """The clean report counts the vertices: the validator read the BIN chunk, not just JSON."""
    asset = colored_sphere()
    raw = NodeValidatorRunner()(write_glb(asset))

    assert raw["info"]["totalVertexCount"] == asset.primitives[0].vertex_count
    assert raw["info"]["totalTriangleCount"] == asset.triangle_count


# --- several assets in one validator process --------------------------------------------------


def test_a_batch_gives_the_same_reports_as_one_call_per_asset() -> None:
    plain = write_glb(colored_sphere())
    quantized = write_glb(colored_sphere(), WriteOptions(quantize=True))
    batch = validate_many([("plain.glb", plain), ("quantized.glb", quantized)])
    singles = [validate(plain), validate(quantized)]
    assert [r.num_errors for r in batch] == [0, 0]
    assert [(r.num_warnings, r.num_infos, r.codes()) for r in batch] == [
        (r.num_warnings, r.num_infos, r.codes()) for r in singles
    ]


def test_a_batch_whose_reports_exceed_a_pipe_buffer_arrives_whole() -> None:
    # Node cut piped stdout at 64 KiB when the script exited right after writing.
    glb = write_glb(colored_sphere(), WriteOptions(quantize=True))
    raw = NodeValidatorRunner().many([glb] * 250)
    assert len(raw) == 250
    assert len(json.dumps(raw)) > 2 * 65536  # several pipe buffers' worth of report
    assert all(report["issues"]["numErrors"] == 0 for report in raw)


def test_a_batch_names_the_asset_that_fails() -> None:
    good = write_glb(colored_sphere())
    with pytest.raises(OutputError) as caught:
        validate_many([("good.glb", good), ("broken.glb", with_index_past_the_end(good))])
    assert "broken.glb" in caught.value.message
    assert "ACCESSOR_INDEX_OOB" in caught.value.message
    with pytest.raises(OutputError) as refused:
        validate_many([("good.glb", good), ("noise.glb", b"definitely not gltf")])
    assert "noise.glb" in refused.value.message


def test_a_runner_without_batches_is_called_once_per_asset() -> None:
    calls: list[bytes] = []
    canned = fake_runner()

    def runner(data: bytes) -> Mapping[str, Any]:
        calls.append(data)
        result: Mapping[str, Any] = canned(data)
        return result

    reports = validate_many([("a", b"1"), ("b", b"2")], runner=runner)
    assert calls == [b"1", b"2"]
    assert len(reports) == 2
