"""Run the pipeline on one upload: detect, guard and load, then the steps, then every output.

    detect -> load (or photo -> card) -> normalize -> weld
      -> per LOD: simplify -> textures (WebP) -> write (quantized + EXT_meshopt_compression)
      -> compat: simplify -> textures (JPEG/PNG) -> write (plain)
      -> thumbnail (on a thread, while the textures encode)
      -> validate every GLB (meshopt ones also after decoding)

Outputs are deterministic: the same bytes and options give the same GLBs and thumbnail. The
report's ``timings`` are the one part that varies from run to run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.detect import detect
from pipeline.limits import DEFAULT_LIMITS, Limits
from pipeline.loaders import load
from pipeline.meshopt_decode import decode_meshopt_glb
from pipeline.model import Asset, Format
from pipeline.photo import photo_card
from pipeline.steps.normalize import Dimensions, NormalizeOptions, normalize
from pipeline.steps.simplify import SimplifyOptions, simplify
from pipeline.steps.textures import TexturesOptions, texture_sizes, textures
from pipeline.steps.weld import WeldOptions, weld
from pipeline.thumbnail import render_thumbnail
from pipeline.validate import ValidatorRunner, validate_many
from pipeline.write import WriteOptions, write_glb

logger = logging.getLogger(__name__)

Unit = Literal["mm", "cm", "m", "in"]
Progress = Callable[[str, float], None]


@dataclass(frozen=True, slots=True)
class Lod:
    path: str
    max_triangles: int
    max_texture: int


# Budgets from DESIGN.md: LOD0 <= 100k triangles / 2048 px, LOD1 <= 25k / 1024, LOD2 <= 5k / 512.
LODS = (
    Lod("web/lod0.glb", 100_000, 2048),
    Lod("web/lod1.glb", 25_000, 1024),
    Lod("web/lod2.glb", 5_000, 512),
)
COMPAT = Lod("compat/model.glb", 100_000, 2048)
COMPAT_MAX_BYTES = 10 * 1024 * 1024
OUTPUT_PATHS = frozenset(
    [*(lod.path for lod in LODS), COMPAT.path, "thumbnail.webp", "report.json"]
)
# Validator warnings an output may carry (research-pipeline.md T1): a normal map without
# tangents makes viewers generate them at runtime, as three.js does. We do not write tangents yet.
ALLOWED_WARNINGS = frozenset({"MESH_PRIMITIVE_GENERATED_TANGENT_SPACE"})


@dataclass(frozen=True, slots=True)
class ConvertOptions:
    """What the caller knows about the upload.

    Attributes:
        unit: the source unit, overriding hints and the size heuristic.
        up: the source's up axis, overriding the format's convention.
        name: the uploaded file's name, used only for unit hints (``part.unitsmm.stl``).
        limits: the caps the guards apply.
        validate: run the Khronos validator on every GLB (needs Node.js and gltf-validator).
    """

    unit: Unit | None = None
    up: Literal["y", "z"] | None = None
    name: str | None = None
    limits: Limits = DEFAULT_LIMITS
    validate: bool = True


@dataclass(slots=True)
class Result:
    """Every output file by relative path, and the report (also in ``files["report.json"]``)."""

    files: dict[str, bytes]
    report: dict[str, Any]


@dataclass(slots=True)
class _Run:
    progress: Progress | None
    limits: Limits = DEFAULT_LIMITS
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @contextmanager
    def step(self, name: str, fraction: float) -> Iterator[None]:
        if self.progress is not None:
            self.progress(name, fraction)
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.timings[name] = round(self.timings.get(name, 0.0) + elapsed, 4)
            logger.debug("step %s took %.3f s", name, elapsed)


def convert(
    data: bytes,
    options: ConvertOptions = ConvertOptions(),
    *,
    progress: Progress | None = None,
    validator: ValidatorRunner | None = None,
) -> Result:
    """Turn one upload into web LODs, a compat GLB, a thumbnail and a report.

    Args:
        data: the uploaded bytes.
        options: hints and caps.
        progress: called with (step name, fraction done) as the run advances.
        validator: the glTF validator to use (the Node.js one by default).

    Returns:
        The files by relative path (``web/lod0.glb`` ...) and the report.

    Raises:
        PipelineError: the input is rejected (a subclass with a stable code).
    """
    run = _Run(progress, options.limits)
    with run.step("detect", 0.0):
        fmt = detect(data, options.limits)
    with run.step("load", 0.05):
        asset = _load(data, fmt, options)
    with run.step("normalize", 0.2):
        asset, dimensions = normalize(asset, NormalizeOptions(up=options.up, unit=options.unit))
    with run.step("weld", 0.25):
        asset = weld(asset, WeldOptions())
    run.warnings.extend(asset.warnings)
    files: dict[str, bytes] = {}
    outputs: dict[str, Any] = {}
    # Each LOD is simplified from the one before: cheaper than from the source every time.
    geometry = asset
    reduced: list[Asset] = []
    for index, lod in enumerate(LODS):
        with run.step(f"simplify:lod{index}", 0.3 + 0.1 * index):
            geometry = simplify(geometry, SimplifyOptions(max_triangles=lod.max_triangles))
        reduced.append(geometry)
    # The thumbnail (numpy, which releases the GIL in its array work) renders on a thread of its
    # own while the textures are encoded. 25k triangles (LOD1) fill a 512 px image as well as
    # 100k do, in a fraction of the time.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="thumbnail") as background:
        thumbnail = background.submit(_timed, render_thumbnail, reduced[1])
        for index, (lod, geometry) in enumerate(zip(LODS, reduced, strict=True)):
            files[lod.path], outputs[lod.path] = _variant(run, geometry, lod, 0.5 + 0.1 * index)
        files[COMPAT.path], outputs[COMPAT.path] = _compat(run, reduced[0])
        with run.step("thumbnail", 0.85):  # the wait: what the thumbnail adds to the wall time
            files["thumbnail.webp"], run.timings["thumbnail (background)"] = thumbnail.result()
    if options.validate:
        _validate_all(run, files, validator)
    report = _report(fmt, dimensions, outputs, files, run)
    files["report.json"] = json.dumps(report, indent=2, sort_keys=True).encode()
    if progress is not None:
        progress("done", 1.0)
    return Result(files=files, report=report)


def _timed(fn: Callable[[Asset], bytes], asset: Asset) -> tuple[bytes, float]:
    started = time.perf_counter()
    data = fn(asset)
    return data, round(time.perf_counter() - started, 4)


def _load(data: bytes, fmt: Format, options: ConvertOptions) -> Asset:
    if fmt.is_photo:
        return photo_card(data, limits=options.limits)
    return load(data, fmt, limits=options.limits, name=options.name)


def _variant(
    run: _Run, geometry: Asset, lod: Lod, fraction: float, *, web: bool = True
) -> tuple[bytes, dict[str, Any]]:
    """Textures and writing for one output; ``geometry`` is already within the budget."""
    name = lod.path.split("/")[-1].removesuffix(".glb")
    target: Literal["webp", "compat"] = "webp" if web else "compat"
    with run.step(f"textures:{name}", fraction):
        textured = textures(
            geometry, TexturesOptions(max_size=lod.max_texture, format=target, limits=run.limits)
        )
    with run.step(f"write:{name}", fraction + 0.05):
        glb = write_glb(textured, WriteOptions(quantize=web, meshopt=web))
    summary = {
        "triangles": textured.triangle_count,
        "bytes": len(glb),
        "textures": texture_sizes(textured),
    }
    return glb, summary


def _compat(run: _Run, geometry: Asset) -> tuple[bytes, dict[str, Any]]:
    """The AR-safe variant of LOD0; textures shrink until it fits COMPAT_MAX_BYTES."""
    lod = COMPAT
    while True:
        glb, summary = _variant(run, geometry, lod, 0.75, web=False)
        if len(glb) <= COMPAT_MAX_BYTES or lod.max_texture <= 256:
            break
        lod = Lod(lod.path, lod.max_triangles, lod.max_texture // 2)
        run.warnings.append(f"compat textures reduced to {lod.max_texture} px to fit 10 MB")
    if len(glb) > COMPAT_MAX_BYTES:
        run.warnings.append(f"compat model is {len(glb)} bytes, over the 10 MB budget")
    return glb, summary


def _validate_all(run: _Run, files: dict[str, bytes], validator: ValidatorRunner | None) -> None:
    """Khronos validator on every GLB; meshopt outputs also after decoding (it cannot see inside)."""
    with run.step("validate", 0.9):
        items: list[tuple[str, bytes]] = []
        for path, glb in sorted(files.items()):
            if not path.endswith(".glb"):
                continue
            items.append((path, glb))
            if path.startswith("web/"):
                items.append((f"{path} (decoded)", decode_meshopt_glb(glb)))
        reports = validate_many(items, runner=validator, allowed_warnings=ALLOWED_WARNINGS)
        for (label, _), report in zip(items, reports, strict=True):
            run.warnings.extend(f"{label}: {w.code}" for w in report.warnings)


def _report(
    fmt: Format,
    dimensions: Dimensions,
    outputs: dict[str, Any],
    files: dict[str, bytes],
    run: _Run,
) -> dict[str, Any]:
    return {
        "format": fmt.value,
        "dimensions_m": {
            "x": round(dimensions.x, 4),
            "y": round(dimensions.y, 4),
            "z": round(dimensions.z, 4),
        },
        "source_unit": {"unit": dimensions.unit, "from": dimensions.unit_source},
        "rotated_to_y_up": dimensions.rotated,
        "outputs": {**outputs, "thumbnail.webp": {"bytes": len(files["thumbnail.webp"])}},
        "warnings": sorted(set(run.warnings)),
        "timings": run.timings,
    }
