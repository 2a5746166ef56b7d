"""Validate GLB bytes with the Khronos glTF-Validator (npm ``gltf-validator``, pinned).

The validator is a JavaScript library, so it runs in a short-lived ``node`` process:
``pipeline/validator/validate.mjs`` reads the asset from stdin and prints the report as JSON. The
Python side parses that report into a :class:`ValidationReport` and raises
:class:`~pipeline.errors.OutputError` (``output_invalid``) when our own output has errors (or
warnings the caller did not allow): a bad output is a pipeline bug, never the uploader's fault.

A missing ``node`` or npm package is an environment fault, not bad input, so it raises
:class:`ValidatorUnavailable`, which is deliberately *not* a :class:`PipelineError`. Install the
package with ``npm ci --prefix pipeline/validator``.

The validator cannot look inside ``EXT_meshopt_compression`` payloads (it reports
``UNSUPPORTED_EXTENSION`` as information and skips the compressed data), so compressed outputs
are validated twice: as written, and after :func:`pipeline.meshopt_decode.decode_meshopt_glb`.
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
import subprocess
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from pipeline.errors import OutputError

logger = logging.getLogger(__name__)

VALIDATOR_DIR: Final = Path(__file__).resolve().parent / "validator"
VALIDATOR_SCRIPT: Final = VALIDATOR_DIR / "validate.mjs"
VALIDATOR_PACKAGE: Final = VALIDATOR_DIR / "node_modules" / "gltf-validator" / "package.json"

# Severities as the validator reports them (glTF-Validator ISSUES.md).
ERROR, WARNING, INFO, HINT = 0, 1, 2, 3
_SEVERITY_NAMES: Final = {ERROR: "error", WARNING: "warning", INFO: "info", HINT: "hint"}

# Exit codes of validate.mjs.
_EXIT_REFUSED = 2
_EXIT_MISSING_PACKAGE = 3


class ValidatorUnavailable(RuntimeError):
    """The validator could not run (no ``node``, package not installed, crash or timeout).

    An environment fault, not a rejection of the input: callers should fail the job as an
    internal error, not report ``invalid_input`` to the uploader.
    """


@dataclass(frozen=True, slots=True)
class ValidationMessage:
    """One issue from the report: a stable ``code`` (see ISSUES.md), severity and location."""

    code: str
    severity: int
    message: str
    pointer: str = ""

    @property
    def severity_name(self) -> str:
        return _SEVERITY_NAMES.get(self.severity, str(self.severity))

    def __str__(self) -> str:
        where = f" at {self.pointer}" if self.pointer else ""
        return f"{self.severity_name} {self.code}{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The parts of the validator's report the pipeline uses."""

    num_errors: int
    num_warnings: int
    num_infos: int
    num_hints: int
    messages: tuple[ValidationMessage, ...]
    validator_version: str = ""
    truncated: bool = False

    def codes(self, severity: int | None = None) -> list[str]:
        """The issue codes, in report order, optionally only those of one severity."""
        return [m.code for m in self.messages if severity is None or m.severity == severity]

    @property
    def errors(self) -> list[ValidationMessage]:
        return [m for m in self.messages if m.severity == ERROR]

    @property
    def warnings(self) -> list[ValidationMessage]:
        return [m for m in self.messages if m.severity == WARNING]


class ValidatorRunner(Protocol):
    """Runs the validator on bytes and returns its raw JSON report (a dict)."""

    def __call__(self, data: bytes) -> Mapping[str, Any]: ...


class NodeValidatorRunner:
    """Runs ``validate.mjs`` under ``node`` (found on PATH unless given) with a timeout."""

    def __init__(
        self,
        *,
        node: str | None = None,
        script: Path = VALIDATOR_SCRIPT,
        timeout: float = 120.0,
        max_issues: int = 1000,
    ) -> None:
        self.node = node
        self.script = script
        self.timeout = timeout
        self.max_issues = max_issues

    def __call__(self, data: bytes) -> Mapping[str, Any]:
        """Validate ``data`` (GLB or glTF JSON bytes).

        Raises:
            ValidatorUnavailable: node or the package is missing, the process crashed or timed
                out, or it printed something that is not a report.
            OutputError: the validator refused the bytes outright (not glTF/GLB at all).
        """
        report = self._run([], data)
        if not isinstance(report, dict):
            raise ValidatorUnavailable("validator report is not a JSON object")
        return report

    def many(self, items: Sequence[bytes]) -> list[Mapping[str, Any]]:
        """Validate several assets in one Node process (one start-up instead of one per file).

        Returns:
            One report per item, in order; an item the validator could not read at all gets
            ``{"refused": message}``.

        Raises:
            ValidatorUnavailable: as for a single asset.
        """
        framed = b"".join(struct.pack("<I", len(item)) + item for item in items)
        reports = self._run(["--batch"], framed)
        if not isinstance(reports, list) or len(reports) != len(items):
            raise ValidatorUnavailable("validator batch output does not match its input")
        if not all(isinstance(report, dict) for report in reports):
            raise ValidatorUnavailable("validator batch output holds a non-object")
        return reports

    def _run(self, extra: list[str], data: bytes) -> Any:
        command = [self._node(), str(self.script), str(self.max_issues), *extra]
        try:
            # Fixed argv, no shell; the asset goes through stdin, so nothing is interpolated.
            done = subprocess.run(  # noqa: S603
                command,
                input=data,
                capture_output=True,
                timeout=self.timeout,
                check=False,
                cwd=self.script.parent,
            )
        except subprocess.TimeoutExpired as exc:
            raise ValidatorUnavailable(f"glTF-Validator timed out after {self.timeout}s") from exc
        except OSError as exc:
            raise ValidatorUnavailable(f"cannot run node: {exc}") from exc
        stderr = done.stderr.decode("utf-8", "replace").strip()
        if done.returncode == _EXIT_REFUSED:
            raise OutputError(f"the validator refused the output: {stderr}")
        if done.returncode == _EXIT_MISSING_PACKAGE:
            raise ValidatorUnavailable(f"{stderr}; run `npm ci --prefix pipeline/validator`")
        if done.returncode != 0:
            raise ValidatorUnavailable(f"validator exited with {done.returncode}: {stderr}")
        try:
            return json.loads(done.stdout)
        except json.JSONDecodeError as exc:
            raise ValidatorUnavailable(f"validator printed no JSON report: {exc}") from exc

    def _node(self) -> str:
        node = self.node or shutil.which("node")
        if node is None:
            raise ValidatorUnavailable("node is not on PATH; the glTF-Validator needs Node.js")
        if not self.script.is_file():
            raise ValidatorUnavailable(f"validator script missing: {self.script}")
        if self.script == VALIDATOR_SCRIPT and not VALIDATOR_PACKAGE.is_file():
            raise ValidatorUnavailable(
                "npm package gltf-validator is not installed; "
                "run `npm ci --prefix pipeline/validator`"
            )
        return node


def parse_report(raw: Mapping[str, Any]) -> ValidationReport:
    """Turn the validator's JSON report into a :class:`ValidationReport`.

    Raises:
        ValidatorUnavailable: the report lacks the ``issues`` section (not a validator report).
    """
    issues = raw.get("issues")
    if not isinstance(issues, dict):
        raise ValidatorUnavailable("validator report has no 'issues' object")
    messages = tuple(
        ValidationMessage(
            code=str(item.get("code", "")),
            severity=int(item.get("severity", ERROR)),
            message=str(item.get("message", "")),
            pointer=str(item.get("pointer", item.get("offset", ""))),
        )
        for item in issues.get("messages", [])
        if isinstance(item, dict)
    )
    return ValidationReport(
        num_errors=int(issues.get("numErrors", 0)),
        num_warnings=int(issues.get("numWarnings", 0)),
        num_infos=int(issues.get("numInfos", 0)),
        num_hints=int(issues.get("numHints", 0)),
        messages=messages,
        validator_version=str(raw.get("validatorVersion", "")),
        truncated=bool(issues.get("truncated", False)),
    )


def validate(
    glb: bytes,
    *,
    runner: ValidatorRunner | None = None,
    allowed_warnings: Collection[str] | None = (),
    what: str = "output",
) -> ValidationReport:
    """Validate GLB bytes and fail on errors (and on warnings not allowed).

    Args:
        glb: the GLB (or glTF JSON) bytes to check.
        runner: how to run the validator; the real one (node + npm package) by default. Tests of
            callers may pass a fake.
        allowed_warnings: warning codes that do not fail the check; ``None`` allows every
            warning (only errors fail). The default allows none. Infos and hints never fail.
        what: a name for the asset in log lines and error messages (``"lod0.glb"``).

    Returns:
        The parsed report (also when it has allowed warnings, infos or hints).

    Raises:
        OutputError: ``output_invalid`` when the report has errors or disallowed warnings.
        ValidatorUnavailable: the validator could not run.
    """
    raw = (runner or NodeValidatorRunner())(glb)
    return _judged(parse_report(raw), allowed_warnings, what)


def validate_many(
    items: Sequence[tuple[str, bytes]],
    *,
    runner: ValidatorRunner | None = None,
    allowed_warnings: Collection[str] | None = (),
) -> list[ValidationReport]:
    """:func:`validate` for several named assets, in one validator process when it can.

    Args:
        items: (name for messages, GLB bytes) pairs.
        runner: as for :func:`validate`; a runner with a ``many`` method validates them all at
            once, any other is called once per item.
        allowed_warnings: as for :func:`validate`.

    Returns:
        The reports, in order.

    Raises:
        OutputError: the first item whose report fails, named in the message.
        ValidatorUnavailable: the validator could not run.
    """
    chosen = runner or NodeValidatorRunner()
    batch = getattr(chosen, "many", None)
    if callable(batch):
        raws: list[Mapping[str, Any]] = batch([data for _, data in items])
    else:
        raws = [chosen(data) for _, data in items]
    reports = []
    for (what, _), raw in zip(items, raws, strict=True):
        if "refused" in raw:
            raise OutputError(f"{what}: the validator refused the output: {raw['refused']}")
        reports.append(_judged(parse_report(raw), allowed_warnings, what))
    return reports


def _judged(
    report: ValidationReport, allowed_warnings: Collection[str] | None, what: str
) -> ValidationReport:
    failing = report.errors
    if allowed_warnings is not None:
        failing += [m for m in report.warnings if m.code not in allowed_warnings]
    if report.num_errors and not report.errors:
        # The message list was truncated before any error: still a failure.
        failing.append(ValidationMessage("TRUNCATED", ERROR, "errors beyond maxIssues"))
    logger.info(
        "validated %s: %d errors, %d warnings, %d infos, %d hints",
        what,
        report.num_errors,
        report.num_warnings,
        report.num_infos,
        report.num_hints,
    )
    if failing:
        shown = "; ".join(str(m) for m in failing[:5])
        more = f" (+{len(failing) - 5} more)" if len(failing) > 5 else ""
        raise OutputError(f"{what} failed glTF validation: {shown}{more}")
    return report
