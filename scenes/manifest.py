"""The hall manifest: the one small JSON a visitor's client reads first (docs/manifest.md).

It names every GLB of the hall by its content-addressed key with its byte size, so the client
can fetch the shell, then booths nearest-first at the LOD their distance needs, and it carries
the hall's navigation data (walkable floor, spawn points, teleport targets, tour waypoints) and
every product hotspot in hall coordinates. The schema is versioned (``schema``/``version``);
``scenes/manifest.schema.json`` is its JSON Schema, checked by the tests.

Keys, not URLs: the server turns each ``key`` into a ``url`` when it serves the manifest (a
local blob route or an S3 address), so a stored manifest never holds an expiring address.
Numbers are rounded to the centimetre, keys carry 128 bits of SHA-256, and the JSON is compact:
a 100-booth hall with UUID ids stays under 100 KB (docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenes.layout import HallLayout, Point, SlotSpec, to_hall
from scenes.placement import Placement

SCHEMA = "pavilion.hall-manifest"
VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")


@dataclass(frozen=True, slots=True)
class Stored:
    """A published GLB: its key in the blob store, its size and triangle count."""

    key: str
    bytes: int
    triangles: int


@dataclass(frozen=True, slots=True)
class BoothRecord:
    """A built booth as the manifest (and a later rebuild) needs it; JSON round-trippable."""

    digest: str
    lods: list[Stored]
    placements: list[Placement]
    bounds: tuple[tuple[float, float, float], tuple[float, float, float]]

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "lods": [_stored(s) for s in self.lods],
            "placements": [
                {
                    "product_id": p.product_id,
                    "slot": p.slot,
                    "position": list(p.position),
                    "yaw": p.yaw,
                    "scale": p.scale,
                    "anchor": list(p.anchor),
                    "size": list(p.size),
                }
                for p in self.placements
            ],
            "bounds": [list(self.bounds[0]), list(self.bounds[1])],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BoothRecord:
        def vec(v: list[float]) -> tuple[float, float, float]:
            return (float(v[0]), float(v[1]), float(v[2]))

        return cls(
            digest=str(data["digest"]),
            lods=[
                Stored(str(s["key"]), int(s["bytes"]), int(s["triangles"])) for s in data["lods"]
            ],
            placements=[
                Placement(
                    str(p["product_id"]),
                    int(p["slot"]),
                    vec(p["position"]),
                    float(p["yaw"]),
                    float(p["scale"]),
                    vec(p["anchor"]),
                    vec(p["size"]),
                )
                for p in data["placements"]
            ],
            bounds=(vec(data["bounds"][0]), vec(data["bounds"][1])),
        )


@dataclass(frozen=True, slots=True)
class ManifestBooth:
    id: str
    name: str
    template: str
    slot: SlotSpec
    record: BoothRecord


KEY_HEX = 32  # 128 bits of SHA-256: collision-free at any realistic object count, and short


def glb_key(glb: bytes) -> str:
    """The content-addressed key of a scene GLB: the first 128 bits of its SHA-256, in hex."""
    return f"scenes/{hashlib.sha256(glb).hexdigest()[:KEY_HEX]}.glb"


def build_manifest(
    hall_id: str, name: str, layout: HallLayout, shell: Stored, booths: list[ManifestBooth]
) -> dict[str, Any]:
    """The manifest document (see docs/manifest.md); booths in slot-number order."""
    document = {
        "schema": SCHEMA,
        "version": VERSION,
        "hall": {"id": hall_id, "name": name, "width": layout.width, "depth": layout.depth},
        "shell": _stored(shell),
        "entrance": _point(layout.entrance),
        "walkable": [[x, z] for x, z in layout.walkable],
        "spawn_points": [_point(p) for p in layout.spawn_points],
        "teleport_targets": [list(t) for t in layout.teleport_targets],
        "booths": [_booth(b, w) for b, w in zip(booths, layout.waypoints, strict=True)],
    }
    rounded: dict[str, Any] = _centimetres(document)
    return rounded


def _centimetres(value: Any) -> Any:
    """Every float rounded to 0.01 (centimetres, hundredths of a degree): enough to place
    and aim things, and a 100-booth manifest stays under 100 KB."""
    if isinstance(value, float):
        return round(value, 2) + 0.0
    if isinstance(value, list):
        return [_centimetres(v) for v in value]
    if isinstance(value, dict):
        return {k: _centimetres(v) for k, v in value.items()}
    return value


def dumps(manifest: dict[str, Any]) -> bytes:
    """Compact, key-sorted UTF-8 JSON: the same manifest always gives the same bytes."""
    return json.dumps(manifest, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _stored(stored: Stored) -> dict[str, Any]:
    return {"key": stored.key, "bytes": stored.bytes, "triangles": stored.triangles}


def _point(point: Point) -> dict[str, Any]:
    return {"position": list(point.position), "yaw": point.yaw}


def _booth(booth: ManifestBooth, waypoint: Point) -> dict[str, Any]:
    slot = booth.slot
    (lx, ly, lz), (hx, hy, hz) = booth.record.bounds
    corners = [to_hall(slot, (x, 0.0, z)) for x in (lx, hx) for z in (lz, hz)]
    return {
        "id": booth.id,
        "number": slot.number,
        "name": booth.name,
        "template": booth.template,
        "position": [slot.x, 0.0, slot.z],
        "rotation": slot.rotation,
        "bounds": {
            "min": [min(c[0] for c in corners), ly, min(c[2] for c in corners)],
            "max": [max(c[0] for c in corners), hy, max(c[2] for c in corners)],
        },
        "lods": [_stored(s) for s in booth.record.lods],
        "hotspots": [
            {"product_id": p.product_id, "anchor": list(to_hall(slot, p.anchor))}
            for p in booth.record.placements
        ],
        "waypoint": _point(waypoint),
    }
