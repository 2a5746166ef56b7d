"""Benchmark the scenes: build a generated 100-booth hall, rebuild one booth, weigh what streams.

    python bench/scenes.py [--repeats N] [--booths 100] [--products 5] [--workers W] [--steps]

The hall (``bench/_scene_inputs.py``): 100 booths in a mix of the three templates (60 shell 3x3,
30 corner 6x3, 10 island 6x6), distinct Latin, Cyrillic and CJK names, distinct colours, a
1024 px logo each, and 5 distinct products per booth drawn from a pool of ten (five kinds of
source, two variants each) that the pipeline converts once (cached under ``var/bench/scenes-v1/``).
Many booths carry the same product GLB bytes under their own product ids;
:func:`scenes.booth.build_booth` decodes its products per booth, so that cost is paid in every
booth all the same.

Each run is one subprocess (``python -m bench.scenes --child ...``) that:

1. times ``scenes.build.build_hall`` of the whole hall from scratch, its ``put`` writing every GLB
   into a fresh temporary directory (threads: one per CPU unless ``--workers``);
2. changes the name of the booth with the largest LOD0 (the slowest kind to build) and times
   ``build_hall`` again with ``previous=`` the first build's records; exactly one booth must be
   rebuilt, or the run fails.

This process then reads the manifest and weighs the first view: the hall shell plus the LOD0 of
the booth nearest to the first spawn point (distance on the floor to the booth's bounds), checked
against the files written. The full-build and one-booth times are the best of N runs; the peak
RSS is the largest ``ru_maxrss`` of a run (``os.wait4``), so this process never imports numpy.
``--steps`` adds one more run with every step of ``build_booth`` timed (thread CPU time and wall
time summed over threads) and prints where the time goes; it is not part of the measured runs.

Targets (issue 4): full build <= 60 s on 2 cores, one booth <= 3 s, manifest <= 100 KB, first view
(shell + nearest booth) <= 5 MB; KB and MB are 1,000 and 1,000,000 bytes. The exit status is 0
even when a target is missed (this is a benchmark, not a test) and 1 when a run fails.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if __package__ in (None, ""):  # `python bench/scenes.py`: import bench.* from the repository
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pipeline import ROOT, ToolFailed, ensure_inputs, glb_stats, run_once

if TYPE_CHECKING:  # the child imports scenes (and numpy) itself; this process never does
    from scenes.build import PlacedBooth
    from scenes.manifest import BoothRecord

CACHE = ROOT / "var" / "bench"
HALL_ID, HALL_NAME = "bench-hall", "Pavilion benchmark hall · Зал · 展厅"

MAX_FULL_SECONDS = 60.0
MAX_ONE_BOOTH_SECONDS = 3.0
MAX_MANIFEST_KB = 100.0
MAX_FIRST_VIEW_MB = 5.0

Target = tuple[str, float, float]  # (what, measured, limit); lower is better


# --- what a visitor loads first (pure: reads the manifest only) ---


def floor_distance(point: Sequence[float], booth: dict[str, Any]) -> float:
    """Distance on the floor (x, z) from a point to a booth's bounds; 0 inside them.

    Args:
        point: (x, y, z) in hall coordinates (a spawn point's ``position``).
        booth: a manifest booth (its ``bounds.min`` and ``bounds.max`` are used).
    """
    (x0, _, z0), (x1, _, z1) = booth["bounds"]["min"], booth["bounds"]["max"]
    x, z = point[0], point[2]
    return math.hypot(max(x0 - x, 0.0, x - x1), max(z0 - z, 0.0, z - z1))


def nearest_booths(
    manifest: dict[str, Any], count: int = 1, spawn: int = 0
) -> list[dict[str, Any]]:
    """The ``count`` booths nearest to spawn point ``spawn``, nearest first.

    Ties keep the manifest's order (slot order), so the answer is deterministic.

    Args:
        manifest: a hall manifest (``scenes.manifest.build_manifest``).
        count: how many booths.
        spawn: index into ``spawn_points``.

    Raises:
        IndexError: the manifest has no such spawn point.
    """
    point = manifest["spawn_points"][spawn]["position"]
    return sorted(manifest["booths"], key=lambda booth: floor_distance(point, booth))[:count]


def first_view_bytes(manifest: dict[str, Any], count: int = 1, spawn: int = 0) -> int:
    """Bytes of the hall shell plus the LOD0 GLBs of the ``count`` booths nearest the spawn."""
    booths = nearest_booths(manifest, count, spawn)
    return int(manifest["shell"]["bytes"]) + sum(int(b["lods"][0]["bytes"]) for b in booths)


def manifest_parts(manifest: dict[str, Any]) -> dict[str, int]:
    """Bytes of the compact JSON of each part of a manifest, booths split into their fields.

    Returns:
        ``{"booths.lods": n, "booths.hotspots": n, ..., "teleport_targets": n, ...}``: every
        top-level key but ``booths``, and ``booths.<field>`` summed over the booths (each
        field with its key, so the parts add up to the manifest's size less its punctuation).
    """
    parts: dict[str, int] = Counter()
    for key, value in manifest.items():
        if key != "booths":
            parts[key] = _json_size({key: value}) - 2
            continue
        for booth in value:
            for field, item in booth.items():
                parts[f"booths.{field}"] += _json_size({field: item}) - 2
    return dict(parts)


def _json_size(value: Any) -> int:
    # As scenes.manifest.dumps writes it: compact, UTF-8.
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def script_of(name: str) -> str:
    """The script of a name: "CJK", "Cyrillic" or "Latin" (its first non-Latin letter decides)."""
    for char in name:
        if not char.isalpha():
            continue
        kind = unicodedata.name(char, "").split(" ")[0]
        if kind in ("CJK", "HIRAGANA", "KATAKANA", "HANGUL"):
            return "CJK"
        if kind == "CYRILLIC":
            return "Cyrillic"
    return "Latin"


# --- the child: one build of the hall, then one rebuild ---


@dataclass(slots=True)
class _Step:
    calls: int = 0
    cpu: float = 0.0
    wall: float = 0.0


class StepTimes:
    """Per-step call counts, thread CPU time and wall time, summed over the builder's threads."""

    def __init__(self) -> None:
        self.steps: dict[str, _Step] = {}
        self._lock = threading.Lock()

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
                with self._lock:
                    step = self.steps.setdefault(label, _Step())
                    step.calls += 1
                    step.cpu += cpu
                    step.wall += wall

        return timed

    def take(self) -> dict[str, dict[str, float]]:
        """The steps so far (as JSON-ready dicts), and start again from zero."""
        with self._lock:
            taken = {
                k: {"calls": s.calls, "cpu": s.cpu, "wall": s.wall} for k, s in self.steps.items()
            }
            self.steps = {}
        return taken


# (module, attribute, label): the steps of build_booth and build_hall, by the names they call.
# Indented labels run inside the one above them.
STEPS = (
    ("scenes.build", "booth_digest", "booth digest (rebuild check)"),
    ("scenes.booth", "decode_meshopt_glb", "product decode: meshopt"),
    ("scenes.booth", "load", "product decode: load GLB"),
    ("scenes.booth", "build_kit", "template kit"),
    ("scenes.booth", "place", "placement"),
    ("scenes.booth", "_logo_image", "logo decode"),
    ("scenes.booth", "_structure", "structure (kit + sign + logo)"),
    ("scenes.booth", "sign_texture", "  sign render + WebP"),
    ("scenes.booth", "_webp", "  logo WebP"),
    ("scenes.booth", "write_scene_glb", "write_scene_glb"),
    ("pipeline.write", "reorder", "  reorder (strip order)"),
    ("pipeline.write", "_write_primitive", "  quantize + attributes"),
    ("pipeline.write", "_meshopt_encode", "  meshopt encode"),
    ("pipeline.write", "_finish", "  layout + JSON + pack"),
    ("scenes.booth", "booth_digest", "booth digest (record)"),
    ("scenes.build", "build_shell", "hall shell"),
    ("scenes.build", "build_manifest", "manifest"),
)


@contextmanager
def instrumented(times: StepTimes) -> Iterator[None]:
    """Replace each of :data:`STEPS` by a timed wrapper for the duration of the block."""
    import importlib

    saved = []
    for module_name, attribute, label in STEPS:
        module = importlib.import_module(module_name)
        original = getattr(module, attribute)
        saved.append((module, attribute, original))
        setattr(module, attribute, times.wrap(label, original))
    try:
        yield
    finally:
        for module, attribute, original in reversed(saved):
            setattr(module, attribute, original)


def put_into(folder: Path) -> Callable[[str, bytes], None]:
    """A ``build_hall`` put that writes each GLB to ``folder/<key>`` (once: keys are hashes)."""

    def put(key: str, data: bytes) -> None:
        path = folder / key
        if not path.exists():  # content-addressed: same key, same bytes
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    return put


def child(args: argparse.Namespace) -> int:
    """One run: the full build, then the one-booth rebuild; results into ``OUTDIR/result.json``."""
    from bench._scene_inputs import hall_booths, read_pool, renamed
    from scenes.build import build_hall

    outdir: Path = args.child
    listing = (outdir / "pool.tsv").read_text().splitlines()
    pool = read_pool({name: Path(path) for name, path in (line.split("\t") for line in listing)})
    width, depth, booths = hall_booths(pool, args.booths, args.products)
    put, times = put_into(outdir / "blobs"), StepTimes()
    with instrumented(times) if args.steps else nullcontext():
        cpu, started = time.process_time(), time.perf_counter()
        full = build_hall(HALL_ID, HALL_NAME, width, depth, booths, put, workers=args.workers)
        full_seconds, full_cpu = time.perf_counter() - started, time.process_time() - cpu
        full_steps = times.take()
        lod0 = [full.records[b.spec.id].lods[0].bytes for b in booths]
        heaviest = lod0.index(max(lod0))
        changed = renamed(booths, heaviest)
        started = time.perf_counter()
        again = build_hall(
            HALL_ID, HALL_NAME, width, depth, changed, put, full.records, workers=args.workers
        )
        one_seconds = time.perf_counter() - started
        one_steps = times.take()
    if len(full.rebuilt) != len(booths) or again.rebuilt != [booths[heaviest].spec.id]:
        print(f"rebuilt {len(full.rebuilt)}, then {again.rebuilt}", file=sys.stderr)
        return 1
    (outdir / "manifest.json").write_bytes(full.manifest_bytes)
    result = {
        "full": {"seconds": full_seconds, "cpu": full_cpu, "rebuilt": len(full.rebuilt)},
        "placements": _placements(pool, booths, full.records),
        "one": {"seconds": one_seconds, "booth": booths[heaviest].spec.id},
        "warnings": full.warnings,
        "steps": {"full": full_steps, "one": one_steps},
    }
    (outdir / "result.json").write_text(json.dumps(result))
    return 0


def _placements(
    pool: dict[str, tuple[bytes, bytes, bytes]],
    booths: list[PlacedBooth],
    records: dict[str, BoothRecord],
) -> Counter[str]:
    """How many products of each pool entry were placed on a booth (not left without a slot)."""
    source = {lods: name for name, lods in pool.items()}
    placed: Counter[str] = Counter()
    for booth in booths:
        ids = {p.product_id for p in records[booth.spec.id].placements}
        placed.update(source[p.lods] for p in booth.spec.products if p.id in ids)
    return placed


# --- the parent: runs, then the tables ---


@dataclass(frozen=True, slots=True)
class Run:
    """One child run: its results, the manifest it wrote and where, and its peak RSS."""

    result: dict[str, Any]
    manifest: dict[str, Any]
    manifest_bytes: int
    outdir: Path
    rss_mb: float
    load: str  # the load average when the run started


def run_child(pool: dict[str, Path], outdir: Path, args: argparse.Namespace, steps: bool) -> Run:
    """One child run into ``outdir`` (created)."""
    outdir.mkdir(parents=True)
    (outdir / "pool.tsv").write_text("".join(f"{k}\t{v}\n" for k, v in pool.items()))
    command = [sys.executable, "-m", "bench.scenes", "--child", str(outdir)]
    command += ["--booths", str(args.booths), "--products", str(args.products)]
    command += ["--workers", str(args.workers)] if args.workers else []
    command += ["--steps"] if steps else []
    load = _load()
    _seconds, rss = run_once(command)
    data = (outdir / "manifest.json").read_bytes()
    result = json.loads((outdir / "result.json").read_text())
    return Run(result, json.loads(data), len(data), outdir, rss, load)


def check_stored(manifest: dict[str, Any], blobs: Path) -> int:
    """Every GLB the manifest names is in ``blobs`` with the size it says; their total bytes.

    Raises:
        ToolFailed: a file is missing or has another size.
    """
    stored = [manifest["shell"], *(lod for b in manifest["booths"] for lod in b["lods"])]
    for entry in stored:
        path = blobs / entry["key"]
        if not path.exists() or path.stat().st_size != entry["bytes"]:
            raise ToolFailed(f"{entry['key']} is not stored with {entry['bytes']} bytes")
    return sum(int(entry["bytes"]) for entry in stored)


def _mb(count: float) -> str:
    return f"{count / 1e6:.3f}"


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _row(*cells: object) -> None:
    print("| " + " | ".join(str(cell) for cell in cells) + " |")


def _head(*cells: str) -> None:
    _row(*cells)
    print("|" + "---|" * len(cells))


def print_hall(pool: dict[str, Path], run: Run) -> None:
    """The product pool, how often each is placed, and the hall's template and script mix."""
    print("\n## hall\n")
    _head("pool product", "LOD0 MB", "LOD1 MB", "LOD2 MB", "LOD0 triangles", "placements")
    placed, manifest = run.result["placements"], run.manifest
    for name, folder in pool.items():
        stats = [glb_stats(folder / f"lod{i}.glb") for i in range(3)]
        _row(name, *(_mb(s[0]) for s in stats), f"{stats[0][2]:,}", placed.get(name, 0))
    hall = manifest["hall"]
    templates = Counter(b["template"] for b in manifest["booths"])
    scripts = Counter(script_of(b["name"]) for b in manifest["booths"])
    print(
        f"\n{len(manifest['booths'])} booths in a {hall['width']:g} x {hall['depth']:g} m hall: "
        + ", ".join(f"{n} {t}" for t, n in sorted(templates.items()))
        + "; names: "
        + ", ".join(f"{n} {s}" for s, n in sorted(scripts.items()))
    )


def print_runs(runs: list[Run]) -> None:
    print("\n## runs\n")
    _head(
        "run", "load at start", "full build s", "CPU s", "CPU / wall", "one booth s", "peak RSS MB"
    )
    for index, run in enumerate(runs, 1):
        full, one = run.result["full"], run.result["one"]
        ratio = full["cpu"] / full["seconds"]
        _row(index, run.load, f"{full['seconds']:.2f}", f"{full['cpu']:.2f}", f"{ratio:.2f}",
             f"{one['seconds']:.2f}", f"{run.rss_mb:.0f}")  # fmt: skip
    changed = next(
        b for b in runs[0].manifest["booths"] if b["id"] == runs[0].result["one"]["booth"]
    )
    print(
        f"\none booth: {changed['number']} ({changed['template']}, the largest LOD0: "
        f"{_mb(changed['lods'][0]['bytes'])} MB) renamed and rebuilt"
    )
    warnings = runs[0].result["warnings"]
    print(f"{len(warnings)} warnings", *warnings[:5], sep="\n")


def print_bytes(run: Run) -> None:
    """Manifest, per-LOD booth sizes, and the first view from the first spawn point."""
    manifest = run.manifest
    total = check_stored(manifest, run.outdir / "blobs")
    print("\n## bytes\n")
    packed = len(gzip.compress((run.outdir / "manifest.json").read_bytes(), mtime=0))
    print(
        f"manifest {run.manifest_bytes:,} bytes ({packed:,} gzipped); "
        f"every GLB of the hall {_mb(total)} MB"
    )
    ranked = sorted(manifest_parts(manifest).items(), key=lambda item: -item[1])
    print("manifest parts, bytes: " + ", ".join(f"{k} {v:,}" for k, v in ranked if v >= 1000))
    print()
    _head("booth GLB", "median MB", "max MB")
    for level in range(3):
        sizes = sorted(int(b["lods"][level]["bytes"]) for b in manifest["booths"])
        _row(f"LOD{level}", _mb(sizes[len(sizes) // 2]), _mb(sizes[-1]))
    spawn = manifest["spawn_points"][0]["position"]
    print(f"\nfirst view from spawn point 0 at x {spawn[0]:g}, z {spawn[2]:g}:\n")
    _head("what", "booths", "MB")
    shell = int(manifest["shell"]["bytes"])
    _row("hall shell", "", _mb(shell))
    for count in (1, 4):
        names = ", ".join(f"{b['number']} {b['template']}" for b in nearest_booths(manifest, count))
        _row(f"shell + nearest {count} at LOD0", names, _mb(first_view_bytes(manifest, count)))
    with_manifest = run.manifest_bytes + first_view_bytes(manifest)
    _row("manifest + shell + nearest 1 at LOD0", "", _mb(with_manifest))
    heaviest = max(manifest["booths"], key=lambda b: int(b["lods"][0]["bytes"]))
    worst = shell + int(heaviest["lods"][0]["bytes"])
    worst_name = f"{heaviest['number']} {heaviest['template']}"
    _row("shell + the heaviest booth at LOD0 (worst case)", worst_name, _mb(worst))


def print_steps(run: Run) -> None:
    """Where the time goes, from the instrumented run."""
    for phase, title in (("full", "full build"), ("one", "one-booth rebuild")):
        steps = run.result["steps"][phase]
        seconds = run.result[phase]["seconds"]
        print(f"\n## steps of the {title} (instrumented run: {seconds:.2f} s wall)\n")
        _head("step", "calls", "thread CPU s", "wall s (sum over threads)")
        for _module, _attribute, label in STEPS:
            if step := steps.get(label):
                _row(label, step["calls"], f"{step['cpu']:.2f}", f"{step['wall']:.2f}")


def targets(runs: list[Run], booths: int) -> list[Target]:
    """The issue's targets, from the best runs and the first run's manifest."""
    best_full = min(r.result["full"]["seconds"] for r in runs)
    best_one = min(r.result["one"]["seconds"] for r in runs)
    manifest = runs[0]
    return [
        (f"full build s ({booths} booths)", best_full, MAX_FULL_SECONDS),
        ("one-booth rebuild s", best_one, MAX_ONE_BOOTH_SECONDS),
        ("manifest KB", manifest.manifest_bytes / 1e3, MAX_MANIFEST_KB),
        (
            "first view MB (shell + nearest booth)",
            first_view_bytes(manifest.manifest) / 1e6,
            MAX_FIRST_VIEW_MB,
        ),
    ]


def print_targets(rows: list[Target]) -> None:
    print("\n## targets\n")
    _head("target", "measured", "limit", "result")
    for what, value, limit in rows:
        verdict = "PASS" if value <= limit else f"MISS by {(value / limit - 1) * 100:.0f} %"
        _row(what, f"{value:.3f}", f"{limit:g}", f"{verdict} ({value / limit:.2f}x)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs (best time kept); long")
    parser.add_argument("--booths", type=int, default=100)
    parser.add_argument("--products", type=int, default=5, help="products per booth")
    parser.add_argument("--workers", type=int, help="booth-build threads (default: one per CPU)")
    parser.add_argument("--steps", action="store_true", help="one more run, every step timed")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the pool is converted")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.booths < 1 or args.products < 0:
        parser.error("--repeats and --booths must be positive, --products not negative")
    if args.child:
        return child(args)
    print(
        f"# scenes benchmark: {os.cpu_count()} CPUs, load {_load()}, {args.booths} booths x "
        f"{args.products} products, best of {args.repeats}, one subprocess per run"
    )
    try:
        pool = ensure_inputs(args.cache, "bench._scene_inputs")  # the converted product pool
        with tempfile.TemporaryDirectory(prefix="pavilion-bench-scenes-") as tmp:
            runs = [
                run_child(pool, Path(tmp) / f"run-{i}", args, False) for i in range(args.repeats)
            ]
            print_hall(pool, runs[0])
            print_runs(runs)
            print_bytes(runs[0])
            if args.steps:
                print_steps(run_child(pool, Path(tmp) / "steps", args, True))
    except (ToolFailed, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_targets(targets(runs, args.booths))
    print(f"\nload after the run: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
