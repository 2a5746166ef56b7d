"""``python -m pipeline``: convert an upload into web-ready outputs, or inspect one.

Exit codes: 0 success; 2 rejected input or usage (the last stderr line is
``error: <code>: <message>``); 1 an environment fault (e.g. the validator is not installed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import PipelineError, TooLarge
from pipeline.limits import DEFAULT_LIMITS
from pipeline.run import ConvertOptions, Result, convert
from pipeline.validate import ValidatorUnavailable


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Turn a product model or photo into validated, optimized glTF.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    conv = commands.add_parser(
        "convert",
        help="write web/lod*.glb, compat/model.glb, thumbnail.webp and report.json into OUTDIR",
    )
    conv.add_argument("input", type=Path, help="GLB, zipped glTF/OBJ, OBJ, STL, PLY or a photo")
    conv.add_argument("outdir", type=Path)
    for command in (conv, commands.add_parser("inspect", help="print the report as JSON")):
        if command is not conv:
            command.add_argument("input", type=Path)
        command.add_argument("--unit", choices=["mm", "cm", "m", "in"], help="the source unit")
        command.add_argument("--up", choices=["y", "z"], help="the source's up axis")
        command.add_argument(
            "--no-validate",
            action="store_true",
            help="skip the Khronos validator (faster; for experiments only)",
        )
    return parser


def _progress(step: str, fraction: float) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\x1b[K{fraction * 100:3.0f}% {step}")
        sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        data = _read(args.input)
        options = ConvertOptions(
            unit=args.unit, up=args.up, name=args.input.name, validate=not args.no_validate
        )
        result = convert(data, options, progress=_progress)
    except PipelineError as exc:
        _end_progress()
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    except ValidatorUnavailable as exc:
        _end_progress()
        print(f"error: validator_unavailable: {exc}", file=sys.stderr)
        return 1
    _end_progress()
    if args.command == "inspect":
        print(json.dumps(result.report, indent=2, sort_keys=True))
        return 0
    _write(result, args.outdir)
    print(f"wrote {len(result.files)} files to {args.outdir}", file=sys.stderr)
    return 0


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > DEFAULT_LIMITS.max_input_bytes:
            raise TooLarge(f"{size} bytes is over the {DEFAULT_LIMITS.max_input_bytes} byte limit")
        return path.read_bytes()
    except OSError as exc:
        raise PipelineError(f"cannot read {path}: {exc.strerror}", code="unreadable_input") from exc


def _write(result: Result, outdir: Path) -> None:
    for relative, data in sorted(result.files.items()):
        target = outdir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _end_progress() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
