"""One live tour: its state, its numbered events and the snapshot late joiners get.

A tour is led by one guide (an avatar id) and followed by members. Every change is an event with
the tour's next ``seq``; the last :data:`LOG_SIZE` events are kept so a client that resumes after a
short drop gets what it missed instead of a full snapshot (docs/protocol.md "Resume").
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

LOG_SIZE = 256
DEFAULT_CAPACITY = 100

Event = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ScheduledTour:
    """A tour from the REST schedule (``/api/tours``) that its guide may start in this hall."""

    id: str
    title: str
    guide_subject: str
    capacity: int


@dataclass(slots=True)
class TourState:
    """The state of a live tour, as every member sees it."""

    id: str
    title: str
    guide: int
    guide_name: str
    capacity: int = DEFAULT_CAPACITY
    scheduled_id: str | None = None
    started_at: float = 0.0
    members: dict[int, str] = field(default_factory=dict)
    joined_at: dict[int, float] = field(default_factory=dict)
    seq: int = 0
    follow: bool = False
    stop: str | None = None
    pointing: str | None = None
    hands: list[int] = field(default_factory=list)
    spotlight: int | None = None
    muted: set[int] = field(default_factory=set)
    kicked: set[str] = field(default_factory=set)
    log: deque[tuple[int, Event]] = field(default_factory=lambda: deque(maxlen=LOG_SIZE))

    @property
    def full(self) -> bool:
        return len(self.members) >= self.capacity

    def audience(self) -> list[int]:
        """The guide and every member: who receives the tour's events."""
        return [self.guide, *self.members]

    def emit(self, kind: str, **fields: Any) -> Event:
        """Number the next event, keep it in the log and return the ``tour.event`` message."""
        self.seq += 1
        message = {
            "type": "tour.event",
            "tour_id": self.id,
            "seq": self.seq,
            "event": {"kind": kind, **fields},
        }
        self.log.append((self.seq, message))
        return message

    def events_after(self, seq: int) -> list[Event] | None:
        """The events after ``seq`` in order, or None when the log no longer holds them all."""
        if seq > self.seq:
            return None
        if seq == self.seq:
            return []
        if not self.log or self.log[0][0] > seq + 1:
            return None
        return [message for number, message in self.log if number > seq]

    def add(self, member: int, name: str, now: float) -> Event:
        self.members[member] = name
        self.joined_at[member] = now
        return self.emit("member_joined", member={"id": member, "name": name})

    def remove(self, member: int, reason: str) -> tuple[Event, list[Event]]:
        """Drop ``member``; returns its ``member_left`` event and the events its leaving caused."""
        self.members.pop(member, None)
        self.joined_at.pop(member, None)
        self.muted.discard(member)
        left = self.emit("member_left", member=member, reason=reason)
        also: list[Event] = []
        if member in self.hands:
            self.hands.remove(member)
            also.append(self.emit("hands", hands=list(self.hands)))
        if self.spotlight == member:
            self.spotlight = None
            also.append(self.emit("spotlight", member=None))
        return left, also

    def snapshot(self) -> dict[str, Any]:
        """The whole state (``tour.snapshot.tour`` in docs/protocol.md), with the seq it reflects."""
        return {
            "id": self.id,
            "title": self.title,
            "scheduled_id": self.scheduled_id,
            "guide": {"id": self.guide, "name": self.guide_name},
            "members": [{"id": key, "name": name} for key, name in self.members.items()],
            "capacity": self.capacity,
            "seq": self.seq,
            "follow": self.follow,
            "stop": None if self.stop is None else {"booth_id": self.stop},
            "pointing": self.pointing,
            "hands": list(self.hands),
            "spotlight": self.spotlight,
            "muted": sorted(self.muted),
            "live": True,
        }

    def to_state(self) -> dict[str, Any]:
        """Everything but the event log, for another node (``from_state`` reads it back)."""
        return {
            "id": self.id,
            "title": self.title,
            "guide": self.guide,
            "guide_name": self.guide_name,
            "capacity": self.capacity,
            "scheduled_id": self.scheduled_id,
            "started_at": self.started_at,
            "members": [[key, name] for key, name in self.members.items()],
            "seq": self.seq,
            "follow": self.follow,
            "stop": self.stop,
            "pointing": self.pointing,
            "hands": list(self.hands),
            "spotlight": self.spotlight,
            "muted": sorted(self.muted),
            "kicked": sorted(self.kicked),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], now: float) -> TourState:
        """A replica of a tour from another node's ``to_state``."""
        members = {int(key): str(name) for key, name in state["members"]}
        return cls(
            id=str(state["id"]),
            title=str(state["title"]),
            guide=int(state["guide"]),
            guide_name=str(state["guide_name"]),
            capacity=int(state["capacity"]),
            scheduled_id=state["scheduled_id"],
            started_at=float(state["started_at"]),
            members=members,
            joined_at=dict.fromkeys(members, now),
            seq=int(state["seq"]),
            follow=bool(state["follow"]),
            stop=state["stop"],
            pointing=state["pointing"],
            hands=[int(h) for h in state["hands"]],
            spotlight=state["spotlight"],
            muted={int(m) for m in state["muted"]},
            kicked={str(k) for k in state["kicked"]},
        )

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "guide": {"id": self.guide, "name": self.guide_name},
            "members": len(self.members),
            "capacity": self.capacity,
        }
