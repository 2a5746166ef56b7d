"""Build a whole hall: booths (only those that changed), the shell, and the manifest.

Pure: GLBs go out through a ``put(key, data)`` callable the caller provides (a directory for
``python -m scenes build-demo``, the blob store for the server), and what was built before comes
in as :class:`~scenes.manifest.BoothRecord` by booth id. A booth whose
:func:`~scenes.booth.booth_digest` matches its record is not rebuilt: changing one booth rebuilds
one booth. Booths build in parallel threads (meshoptimizer, Pillow and most numpy work release
the GIL).

Ordering for publishers: every GLB is ``put`` before this returns, and the manifest is returned,
not stored: the caller writes it last and then flips its pointer, so a visitor never sees a
manifest that names a GLB not yet written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.parallel import map_threads
from scenes.booth import BoothSpec, booth_digest, build_booth
from scenes.hall import ShellBooth, build_shell
from scenes.layout import SlotSpec, hall_layout
from scenes.manifest import BoothRecord, ManifestBooth, Stored, build_manifest, dumps, glb_key
from scenes.templates import build_kit

logger = logging.getLogger(__name__)

Put = Callable[[str, bytes], None]


@dataclass(frozen=True, slots=True)
class PlacedBooth:
    spec: BoothSpec
    slot: SlotSpec


@dataclass(slots=True)
class HallBuild:
    manifest: dict[str, object]
    manifest_bytes: bytes
    records: dict[str, BoothRecord]
    rebuilt: list[str]
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def build_hall(
    hall_id: str,
    name: str,
    width: float,
    depth: float,
    booths: list[PlacedBooth],
    put: Put,
    previous: dict[str, BoothRecord] | None = None,
    *,
    workers: int | None = None,
) -> HallBuild:
    """Build what changed in a hall and return its new manifest.

    Args:
        hall_id: the hall's id (in the manifest).
        name: shown over the entrance.
        width: hall size along x in metres.
        depth: hall size along z in metres.
        booths: every booth with its slot.
        put: stores one GLB under its content-addressed key (idempotent: same key, same bytes).
        previous: records of an earlier build, by booth id.
        workers: threads for booth builds (default: one per CPU).

    Returns:
        The manifest (dict and bytes), the records to keep for the next build, and the ids of
        the booths that were rebuilt.

    Raises:
        SceneError: a booth cannot be built (its code says why).
    """
    previous = previous or {}
    started = time.perf_counter()
    ordered = sorted(booths, key=lambda b: (b.slot.number, b.spec.id))
    stale = [b for b in ordered if _stale(b, previous)]
    built = map_threads(lambda b: _build_and_store(b.spec, put), stale, workers)
    records = {b.spec.id: previous[b.spec.id] for b in ordered if b not in stale}
    warnings: list[str] = []
    for booth, (record, booth_warnings) in zip(stale, built, strict=True):
        records[booth.spec.id] = record
        warnings.extend(f"booth {booth.slot.number}: {w}" for w in booth_warnings)
    booths_seconds = time.perf_counter() - started
    layout = hall_layout(width, depth, [b.slot for b in ordered])
    shell_booths = [ShellBooth(b.slot, _height(b.spec), b.spec.primary_color) for b in ordered]
    shell_glb, shell_triangles = build_shell(name, layout, shell_booths)
    shell = Stored(glb_key(shell_glb), len(shell_glb), shell_triangles)
    put(shell.key, shell_glb)
    entries = [
        ManifestBooth(b.spec.id, b.spec.name, b.spec.template, b.slot, records[b.spec.id])
        for b in ordered
    ]
    manifest = build_manifest(hall_id, name, layout, shell, entries)
    timings = {
        "booths": round(booths_seconds, 3),
        "total": round(time.perf_counter() - started, 3),
    }
    logger.info(
        "hall %s: %d booths, %d rebuilt, %.2f s",
        hall_id,
        len(ordered),
        len(stale),
        timings["total"],
    )
    return HallBuild(
        manifest=manifest,
        manifest_bytes=dumps(manifest),
        records=records,
        rebuilt=[b.spec.id for b in stale],
        warnings=warnings,
        timings=timings,
    )


def _stale(booth: PlacedBooth, previous: dict[str, BoothRecord]) -> bool:
    record = previous.get(booth.spec.id)
    return record is None or record.digest != booth_digest(booth.spec)


def _build_and_store(spec: BoothSpec, put: Put) -> tuple[BoothRecord, list[str]]:
    built = build_booth(spec)
    lods = []
    for lod in built.lods:
        key = glb_key(lod.glb)
        put(key, lod.glb)
        lods.append(Stored(key, len(lod.glb), lod.triangles))
    record = BoothRecord(built.digest, lods, built.placements, built.bounds)
    return record, built.warnings


def _height(spec: BoothSpec) -> float:
    return build_kit(spec.template, spec.width, spec.depth, detail=1).height
