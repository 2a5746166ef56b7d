"""What the sans-I/O room asks its shell to do, and the plain data it is given.

The room never sends, closes, sleeps or writes: it returns these values and the shell
(:mod:`server.tours.shell`) performs them in order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ConnId = int


@dataclass(frozen=True, slots=True)
class Send:
    """Send one JSON message to these connections; the shell encodes it once."""

    to: tuple[ConnId, ...]
    message: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Close:
    """Close a connection with a websocket close code and a short reason."""

    conn: ConnId
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Record:
    """A booth visit event for the analytics store (server.tours.visits)."""

    kind: str  # enter, leave, hotspot, tour
    subject: str
    guest: bool
    at: float
    booth_id: str | None = None
    product_id: str | None = None
    tour_id: str | None = None
    dwell_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Publish:
    """Put an op on the hall's bus; every node of the hall (this one too) applies it in order."""

    op: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TourStatus:
    """A scheduled tour went live or ended: the REST schedule shows it (``/api/tours``)."""

    tour_id: str
    status: str  # live, ended


Action = Send | Close | Record | Publish | TourStatus


def error(conn: ConnId | None, code: str, message: str, ref: str | None = None) -> Send:
    """An ``error`` reply to one connection; to nobody when the sender is on another node."""
    to = () if conn is None else (conn,)
    return Send(to, {"type": "error", "code": code, "message": message, "ref": ref})


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a connection acts as, from its redeemed ticket."""

    subject: str
    name: str
    role: str
    guest: bool = False

    @property
    def may_guide(self) -> bool:
        return self.role in {"guide", "admin"}


@dataclass(frozen=True, slots=True)
class Waypoint:
    position: tuple[float, float, float]
    yaw: float = 0.0


@dataclass(frozen=True, slots=True)
class BoothArea:
    """A booth's footprint on the floor (hall space, metres), for visit detection."""

    booth_id: str
    min_x: float
    min_z: float
    max_x: float
    max_z: float


@dataclass(frozen=True, slots=True)
class HallInfo:
    """What the room needs from the hall manifest (docs/manifest.md)."""

    spawn_points: tuple[Waypoint, ...] = (Waypoint((0.0, 0.0, 0.0)),)
    waypoints: Mapping[str, Waypoint] = field(default_factory=dict)
    products: Mapping[str, str] = field(default_factory=dict)  # product id -> booth id
    booths: tuple[BoothArea, ...] = ()

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> HallInfo:
        """Read spawn points, booth waypoints, hotspots and footprints from a hall manifest.

        Raises:
            ValueError: the manifest lacks a field of schema version 1 or holds a non-finite number.
        """
        try:
            spawns = tuple(_waypoint(point) for point in manifest["spawn_points"]) or (
                Waypoint((0.0, 0.0, 0.0)),
            )
            waypoints: dict[str, Waypoint] = {}
            products: dict[str, str] = {}
            areas: list[BoothArea] = []
            for booth in manifest["booths"]:
                booth_id = str(booth["id"])
                waypoints[booth_id] = _waypoint(booth["waypoint"])
                for hotspot in booth.get("hotspots", []):
                    products[str(hotspot["product_id"])] = booth_id
                low, high = booth["bounds"]["min"], booth["bounds"]["max"]
                areas.append(
                    BoothArea(booth_id, _num(low[0]), _num(low[2]), _num(high[0]), _num(high[2]))
                )
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"not a hall manifest: {exc!r}") from exc
        return cls(spawns, waypoints, products, tuple(areas))


def _num(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("a manifest number is not finite")
    return number


def _waypoint(value: Mapping[str, Any]) -> Waypoint:
    x, y, z = (_num(part) for part in value["position"])
    return Waypoint((x, y, z), _num(value.get("yaw", 0.0)))
