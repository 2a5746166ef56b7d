"""A hypothesis state machine throws 10,000 messages at a hall room: valid ones, malformed ones
and commands from the wrong role, with connects, drops, resumes and time passing in between.

Invariants checked after every step: membership and tour state stay consistent, every tour's
events are numbered without gaps, and a command the sender may not give reaches nobody else.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from server.tours.actions import Close, Send
from server.tours.frames import encode_pose
from tests.server.tours.roomkit import BOOTH_A, BOOTH_B, PRODUCT_A, SCHEDULED, make_kit

GUIDE_ONLY = {
    "tour.end",
    "tour.follow",
    "tour.summon",
    "tour.goto",
    "tour.point",
    "tour.spotlight",
    "tour.mute",
    "tour.kick",
}
UNKNOWN = "99999999-9999-4999-8999-999999999999"
ROLES = st.sampled_from(["visitor", "visitor", "visitor", "guide", "exhibitor", "admin"])


def _messages(avatars: list[int], tours: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    avatar = st.sampled_from([*avatars, 0, 2**32 - 1]) if avatars else st.integers(0, 10)
    tour = st.sampled_from([*tours, UNKNOWN, SCHEDULED])
    return st.one_of(
        st.builds(lambda t: {"type": "tour.create", "title": t}, st.text(min_size=1, max_size=20)),
        st.builds(lambda t: {"type": "tour.start", "tour_id": t}, tour),
        st.builds(lambda t: {"type": "tour.join", "tour_id": t}, tour),
        st.builds(lambda t: {"type": "tour.sync", "tour_id": t}, tour),
        st.just({"type": "tour.leave"}),
        st.just({"type": "tour.end"}),
        st.just({"type": "tour.summon"}),
        st.builds(lambda on: {"type": "tour.follow", "on": on}, st.booleans()),
        st.builds(
            lambda b: {"type": "tour.goto", "booth_id": b},
            st.sampled_from([BOOTH_A, BOOTH_B, UNKNOWN]),
        ),
        st.builds(
            lambda p: {"type": "tour.point", "product_id": p},
            st.sampled_from([PRODUCT_A, UNKNOWN, None]),
        ),
        st.builds(lambda m: {"type": "tour.spotlight", "member": m}, st.one_of(st.none(), avatar)),
        st.builds(
            lambda m, on: {"type": "tour.mute", "member": m, "muted": on}, avatar, st.booleans()
        ),
        st.builds(lambda m: {"type": "tour.kick", "member": m}, avatar),
        st.builds(lambda r: {"type": "hand", "raised": r}, st.booleans()),
        st.builds(
            lambda s, t: {"type": "chat", "scope": s, "text": t},
            st.sampled_from(["hall", "tour"]),
            st.text(max_size=30),
        ),
        st.builds(lambda e: {"type": "react", "emoji": e}, st.sampled_from(["👍", "x"])),
        st.builds(
            lambda p: {"type": "hotspot.open", "product_id": p},
            st.sampled_from([PRODUCT_A, UNKNOWN]),
        ),
        st.builds(
            lambda to, k: {"type": "rtc.signal", "to": to, "kind": k, "data": "sdp"},
            avatar,
            st.sampled_from(["offer", "answer", "ice"]),
        ),
        st.builds(
            lambda t: {"type": "ping", "t": t}, st.floats(allow_nan=False, allow_infinity=False)
        ),
    )


class RoomMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.kit = make_kit(capacity=12)
        self.open: list[int] = []
        self.away: list[int] = []  # connections dropped, whose session may resume
        self.seq: dict[str, int] = {}
        self.messages = 0

    def _check_seq(self, actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, Send) and action.message.get("type") == "tour.event":
                message = action.message
                if message["seq"] is None:
                    continue
                tour_id = message["tour_id"]
                assert message["seq"] == self.seq.get(tour_id, 0) + 1, (message, self.seq)
                self.seq[tour_id] = message["seq"]

    def _after(self, conn: int, actions: list[Any]) -> None:
        self._check_seq(actions)
        for action in actions:
            if isinstance(action, Close) and action.conn in self.open:
                self.kit.apply(self.kit.room.disconnect(action.conn, self.kit.now))
                self.open.remove(action.conn)

    @rule(role=ROLES)
    def connect(self, role: str) -> None:
        conn = self.kit.connect(role)
        if conn in self.kit.room.by_conn:
            self.open.append(conn)

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def command(self, data: st.DataObject) -> None:
        conn = data.draw(st.sampled_from(self.open))
        room = self.kit.room
        message = data.draw(_messages(list(room.members), list(room.tours)))
        member = room.members[room.by_conn[conn]]
        tour = room.tours.get(member.tour or "")
        is_guide = tour is not None and tour.guide == member.id
        before = {t: s.snapshot() for t, s in room.tours.items()}
        actions = self.kit.send(conn, message)
        self.messages += 1
        if message["type"] in GUIDE_ONLY and not is_guide:
            # refused: an error to the sender only, and no tour changed
            assert all(isinstance(a, Send) and a.to == (conn,) for a in actions), actions
            assert all(a.message["type"] == "error" for a in actions if isinstance(a, Send))
            assert {t: s.snapshot() for t, s in room.tours.items()} == before
        self._after(conn, actions)

    @precondition(lambda self: self.open)
    @rule(data=st.data(), junk=st.one_of(st.binary(max_size=60), st.text(max_size=60)))
    def junk(self, data: st.DataObject, junk: str | bytes) -> None:
        conn = data.draw(st.sampled_from(self.open))
        self._after(conn, self.kit.send(conn, junk))
        self.messages += 1

    @precondition(lambda self: self.open)
    @rule(data=st.data(), x=st.floats(-40, 40), z=st.floats(-30, 30))
    def move(self, data: st.DataObject, x: float, z: float) -> None:
        conn = data.draw(st.sampled_from(self.open))
        self.kit.send(conn, encode_pose((x, 1.6, z), (0.0, 0.0, 0.0, 1.0)))
        self.messages += 1

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        conn = data.draw(st.sampled_from(self.open))
        self.open.remove(conn)
        self.kit.apply(self.kit.room.disconnect(conn, self.kit.now))
        self.away.append(conn)

    @precondition(lambda self: self.away)
    @rule(data=st.data())
    def resume(self, data: st.DataObject) -> None:
        old = data.draw(st.sampled_from(self.away))
        self.away.remove(old)
        conn = next(self.kit.conns)
        token = self.kit.sessions[old]
        self.kit.sessions[conn] = f"resumed-{conn}"
        self.kit.apply(
            self.kit.room.resume(conn, token, f"resumed-{conn}", dict(self.seq), self.kit.now)
        )
        if conn in self.kit.room.by_conn:
            self.open.append(conn)

    @rule(seconds=st.sampled_from([1 / 15, 1.0, 5.0, 31.0]))
    def tick(self, seconds: float) -> None:
        self.kit.now += seconds
        frames, actions = self.kit.room.tick(self.kit.now)
        self._check_seq(self.kit.apply(actions))
        room = self.kit.room
        for frame, conns in frames:
            assert len(frame) <= 2048 + 44 * 33
            assert all(conn in room.by_conn for conn in conns)

    @invariant()
    def membership_is_consistent(self) -> None:
        room = self.kit.room
        assert set(room.poses.ids().tolist()) == set(room.members)
        for conn, avatar in room.by_conn.items():
            assert room.members[avatar].conn == conn
        for session, avatar in room.by_session.items():
            assert room.members[avatar].session == session
        for member in room.members.values():
            if member.tour is not None:
                tour = room.tours[member.tour]
                assert member.id == tour.guide or member.id in tour.members

    @invariant()
    def tours_are_consistent(self) -> None:
        room = self.kit.room
        for tour_id, tour in room.tours.items():
            guide = room.members[tour.guide]
            assert guide.tour == tour_id
            assert guide.identity.may_guide
            assert tour.guide not in tour.members
            assert len(tour.members) <= tour.capacity
            for avatar in tour.members:
                assert room.members[avatar].tour == tour_id
            assert set(tour.hands) <= set(tour.members)
            assert len(set(tour.hands)) == len(tour.hands)
            assert tour.spotlight is None or tour.spotlight in tour.members
            assert tour.muted <= set(tour.members)
            json.dumps(tour.snapshot(), allow_nan=False)


RoomMachine.TestCase.settings = settings(
    # 300 runs of up to 150 steps: ~11,000 messages (measured; connects, drops and ticks aside).
    max_examples=300,
    stateful_step_count=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRoomStateMachine = RoomMachine.TestCase
