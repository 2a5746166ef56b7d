"""``python -m scenes build-demo OUTDIR``: build the demo hall offline, as the server would.

Writes every GLB under ``OUTDIR/scenes/<sha256>.glb`` and the manifest as
``OUTDIR/manifest.json`` (keys in it are paths relative to OUTDIR, so any static file server
rooted there serves the hall). Exit status: 0 on success, 2 when the input is refused (one line
``error: <code>: <message>`` on stderr), 1 on anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import PipelineError
from scenes.build import build_hall
from scenes.demo import demo_booths, load_definition
from scenes.errors import SceneError

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scenes", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("build-demo", help="build the demo hall into OUTDIR")
    demo.add_argument("outdir", type=Path)
    demo.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        return _build_demo(args.outdir)
    except (SceneError, PipelineError) as exc:
        code = getattr(exc, "code", "invalid")
        message = getattr(exc, "message", str(exc))
        print(f"error: {code}: {message}", file=sys.stderr)
        return 2


def _build_demo(outdir: Path) -> int:
    started = time.perf_counter()
    definition = load_definition()
    booths = demo_booths(definition)
    prepared = time.perf_counter() - started

    def put(key: str, data: bytes) -> None:
        path = outdir / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_bytes(data)

    hall = definition["hall"]
    build = build_hall(
        "demo", str(hall["name"]), float(hall["width"]), float(hall["depth"]), booths, put
    )
    (outdir / "manifest.json").write_bytes(build.manifest_bytes)
    total = sum(lod.bytes for record in build.records.values() for lod in record.lods)
    print(
        f"built {len(build.records)} booths into {outdir} in {time.perf_counter() - started:.1f} s "
        f"(products {prepared:.1f} s, hall {build.timings['total']:.1f} s); "
        f"booth GLBs {total / 1e6:.1f} MB, manifest {len(build.manifest_bytes) / 1e3:.1f} KB"
    )
    for warning in build.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
