"""Two rooms of one hall on two nodes, joined by a bus the test controls: one order of ops for
both, deliveries that can be lost, heartbeats that heal what was lost."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from server.tours.actions import Action, Close, Identity, Publish, Send
from server.tours.room import HallRoom, RoomOptions
from tests.server.tours.roomkit import INFO

TOUR = "55555555-5555-4555-8555-555555555555"


@dataclass
class Bus:
    rooms: dict[int, HallRoom]
    now: float = 100.0
    down: set[int] = field(default_factory=set)  # nodes that miss what is published
    inbox: dict[tuple[int, int], list[dict[str, Any]]] = field(default_factory=dict)
    closed: dict[tuple[int, int], int] = field(default_factory=dict)

    def run(self, node: int, actions: list[Action]) -> None:
        queue = [(node, a) for a in actions]
        while queue:
            origin, action = queue.pop(0)
            if isinstance(action, Publish):
                for target, room in self.rooms.items():
                    if target in self.down and target != origin:
                        continue
                    queue.extend((target, a) for a in room.apply(dict(action.op), self.now))
            elif isinstance(action, Send):
                message = json.loads(json.dumps(action.message))
                for conn in action.to:
                    self.inbox.setdefault((origin, conn), []).append(message)
            elif isinstance(action, Close):
                self.closed[(origin, action.conn)] = action.code

    def join(self, node: int, conn: int, role: str = "visitor") -> int:
        identity = Identity(f"{role}-{node}-{conn}", f"{role} {conn}", role)
        self.run(node, self.rooms[node].join(conn, identity, f"s-{node}-{conn}", self.now))
        return self.rooms[node].by_conn[conn]

    def send(self, node: int, conn: int, message: dict[str, Any]) -> None:
        self.run(node, self.rooms[node].receive(conn, json.dumps(message), self.now))

    def beat(self) -> None:
        for node, room in self.rooms.items():
            self.run(node, room.heartbeat(self.now))

    def got(self, node: int, conn: int, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.inbox.get((node, conn), []) if m["type"] == kind]


def _bus() -> Bus:
    rooms = {n: HallRoom("hall", INFO, RoomOptions(node=n), new_id=lambda: TOUR) for n in (1, 2)}
    return Bus(rooms)


def _state(room: HallRoom) -> dict[str, Any]:
    return {
        "members": sorted(room.members),
        "tours": {tid: t.to_state() for tid, t in room.tours.items()},
        "member_tours": {a: m.tour for a, m in sorted(room.members.items())},
    }


def test_nodes_hand_out_distinct_avatar_ids_and_see_the_same_members() -> None:
    bus = _bus()
    a = bus.join(1, 10)
    b = bus.join(2, 10)
    assert a != b
    assert a >> 20 == 1
    assert b >> 20 == 2
    assert _state(bus.rooms[1]) == _state(bus.rooms[2])
    assert bus.rooms[1].members[b].conn is None  # the other node's member: no socket here


def test_a_tour_led_from_one_node_is_joined_from_the_other_and_both_agree() -> None:
    bus = _bus()
    guide = bus.join(1, 1, "guide")
    visitor = bus.join(2, 5)
    bus.send(1, 1, {"type": "tour.create", "title": "T"})
    bus.send(2, 5, {"type": "tour.join", "tour_id": TOUR})
    bus.send(1, 1, {"type": "tour.summon"})
    assert bus.got(2, 5, "teleport")  # sent by the visitor's own node
    assert not bus.got(1, 5, "teleport")
    bus.send(2, 5, {"type": "tour.summon", "ref": "x"})
    assert bus.got(2, 5, "error")[-1]["code"] == "forbidden"
    for room in bus.rooms.values():
        assert room.tours[TOUR].guide == guide
        assert list(room.tours[TOUR].members) == [visitor]
    assert _state(bus.rooms[1]) == _state(bus.rooms[2])
    events = [m["seq"] for m in bus.got(1, 1, "tour.event")]
    assert events == sorted(events) == list(range(1, len(events) + 1))


def test_a_node_that_missed_ops_converges_on_the_owners_next_heartbeat() -> None:
    bus = _bus()
    bus.join(1, 1, "guide")
    bus.join(2, 5)
    bus.send(1, 1, {"type": "tour.create", "title": "T"})
    bus.send(2, 5, {"type": "tour.join", "tour_id": TOUR})
    bus.down = {2}  # node 2 hears nothing for a while (a Redis restart)
    bus.send(1, 1, {"type": "tour.follow", "on": True})
    bus.send(1, 1, {"type": "tour.spotlight", "member": None})
    late = bus.join(1, 2)  # a visitor node 2 has never heard of
    assert _state(bus.rooms[1]) != _state(bus.rooms[2])
    bus.down = set()
    bus.beat()
    assert _state(bus.rooms[1]) == _state(bus.rooms[2])
    assert late in bus.rooms[2].members
    snapshot = bus.got(2, 5, "tour.snapshot")[-1]["tour"]
    assert snapshot["follow"] is True
    assert snapshot["seq"] == bus.rooms[1].tours[TOUR].seq


def test_a_tour_that_ended_while_a_node_was_away_ends_there_too() -> None:
    bus = _bus()
    bus.join(1, 1, "guide")
    bus.join(2, 5)
    bus.send(1, 1, {"type": "tour.create", "title": "T"})
    bus.send(2, 5, {"type": "tour.join", "tour_id": TOUR})
    bus.down = {2}
    bus.send(1, 1, {"type": "tour.end"})
    bus.down = set()
    bus.beat()
    assert bus.rooms[2].tours == {}
    assert bus.got(2, 5, "tour.event")[-1]["event"]["kind"] == "ended"


def test_a_silent_node_is_forgotten_with_its_members_and_its_guides_tours() -> None:
    bus = _bus()
    bus.join(1, 1, "guide")
    visitor = bus.join(2, 5)
    bus.send(1, 1, {"type": "tour.create", "title": "T"})
    bus.send(2, 5, {"type": "tour.join", "tour_id": TOUR})
    room = bus.rooms[2]
    room.merge(1, bus.rooms[1].export(), bus.now)
    _, actions = room.tick(bus.now + 6)  # node 1 quiet for longer than node_timeout
    bus.run(2, actions)
    assert [m.id for m in room.members.values()] == [visitor]
    assert room.tours == {}
    assert room.members[visitor].tour is None


def test_a_member_resumes_on_the_other_node_with_its_tour() -> None:
    bus = _bus()
    bus.join(1, 1, "guide")
    visitor = bus.join(2, 5)
    bus.send(1, 1, {"type": "tour.create", "title": "T"})
    bus.send(2, 5, {"type": "tour.join", "tour_id": TOUR})
    bus.run(2, bus.rooms[2].disconnect(5, bus.now))
    bus.run(1, bus.rooms[1].resume(9, "s-2-5", "fresh", {}, bus.now))
    welcome = bus.got(1, 9, "welcome")[-1]
    assert welcome["you"]["id"] == visitor
    assert welcome["tour_id"] == TOUR
    for room in bus.rooms.values():
        assert room.members[visitor].node == 1
    assert bus.rooms[1].members[visitor].conn == 9
    assert bus.rooms[2].members[visitor].conn is None
