"""A hall room driven by hand: connections, a clock, and the messages each connection got."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from server.tours.actions import (
    Action,
    BoothArea,
    Close,
    HallInfo,
    Identity,
    Publish,
    Record,
    Send,
    TourStatus,
    Waypoint,
)
from server.tours.room import HallRoom, RoomOptions
from server.tours.tour import ScheduledTour

BOOTH_A = "11111111-1111-4111-8111-111111111111"
BOOTH_B = "22222222-2222-4222-8222-222222222222"
PRODUCT_A = "33333333-3333-4333-8333-333333333333"
SCHEDULED = "44444444-4444-4444-8444-444444444444"

INFO = HallInfo(
    spawn_points=(Waypoint((0.0, 0.0, 20.0)),),
    waypoints={
        BOOTH_A: Waypoint((-9.0, 0.0, -13.4), 0.0),
        BOOTH_B: Waypoint((9.0, 0.0, -13.4), 0.0),
    },
    products={PRODUCT_A: BOOTH_A},
    booths=(
        BoothArea(BOOTH_A, -12.0, -18.0, -6.0, -15.0),
        BoothArea(BOOTH_B, 6.0, -18.0, 12.0, -15.0),
    ),
)


@dataclass
class Kit:
    """A room with a settable clock; ``inbox[conn]`` holds the decoded messages sent to it."""

    room: HallRoom
    now: float = 1000.0
    inbox: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    closed: dict[int, tuple[int, str]] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    statuses: list[tuple[str, str]] = field(default_factory=list)
    avatar: dict[int, int] = field(default_factory=dict)
    conns: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    sessions: dict[int, str] = field(default_factory=dict)

    def apply(self, actions: list[Action]) -> list[Action]:
        """Perform ``actions``; returns them with the ones their ops caused, ops left out."""
        done: list[Action] = []
        for action in actions:
            if not isinstance(action, Publish):
                done.append(action)
            if isinstance(action, Send):
                # JSON round trip: what a client would decode (and proof it is encodable)
                message = json.loads(json.dumps(action.message, allow_nan=False))
                for conn in action.to:
                    self.inbox.setdefault(conn, []).append(message)
            elif isinstance(action, Publish):  # one node: the bus is a loopback
                done.extend(self.apply(self.room.apply(dict(action.op), self.now)))
            elif isinstance(action, Close):
                self.closed[action.conn] = (action.code, action.reason)
            elif isinstance(action, TourStatus):
                self.statuses.append((action.tour_id, action.status))
            else:
                self.records.append(action)
        return done

    def connect(
        self, role: str = "visitor", name: str | None = None, subject: str | None = None
    ) -> int:
        conn = next(self.conns)
        identity = Identity(subject or f"user-{conn}", name or f"{role} {conn}", role)
        session = f"session-{conn}"
        self.apply(self.room.join(conn, identity, session, self.now))
        if conn in self.room.by_conn:
            self.avatar[conn] = self.room.by_conn[conn]
            self.sessions[conn] = session
        return conn

    def send(self, conn: int, message: dict[str, Any] | str | bytes) -> list[Action]:
        data = json.dumps(message) if isinstance(message, dict) else message
        return self.apply(self.room.receive(conn, data, self.now))

    def tick(self, seconds: float = 1 / 15) -> list[tuple[bytes, list[int]]]:
        self.now += seconds
        frames, actions = self.room.tick(self.now)
        self.apply(actions)
        return frames

    def last(self, conn: int, kind: str) -> dict[str, Any]:
        found = [m for m in self.inbox.get(conn, []) if m["type"] == kind]
        assert found, f"connection {conn} got no {kind}: {self.inbox.get(conn)}"
        return found[-1]

    def got(self, conn: int, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.inbox.get(conn, []) if m["type"] == kind]

    def clear(self) -> None:
        self.inbox.clear()


def make_kit(**options: Any) -> Kit:
    counter = itertools.count(1)
    room = HallRoom(
        "hall-1",
        INFO,
        RoomOptions(**options),
        new_id=lambda: f"00000000-0000-4000-8000-{next(counter):012d}",
    )
    room.set_schedule([ScheduledTour(SCHEDULED, "Honey walk", "user-guide", 50)])
    return Kit(room)
