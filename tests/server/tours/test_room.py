"""The sans-I/O hall room: presence, tours, authorisation, resume, limits and visits."""

from __future__ import annotations

import math
from typing import Any

import pytest

from server.tours import protocol
from server.tours.frames import decode_frame, encode_pose
from tests.server.tours.roomkit import BOOTH_A, PRODUCT_A, SCHEDULED, Kit, make_kit


def _tour(kit: Kit, guide: int, *visitors: int) -> str:
    kit.send(guide, {"type": "tour.create", "title": "Tea from Sri Lanka"})
    tour_id = kit.last(guide, "tour.snapshot")["tour"]["id"]
    for visitor in visitors:
        kit.send(visitor, {"type": "tour.join", "tour_id": tour_id})
    return str(tour_id)


def _events(kit: Kit, conn: int, kind: str) -> list[dict[str, Any]]:
    return [m["event"] for m in kit.got(conn, "tour.event") if m["event"]["kind"] == kind]


def test_a_visitor_gets_a_welcome_with_its_avatar_and_the_roster() -> None:
    kit = make_kit()
    first = kit.connect()
    second = kit.connect(name="Ana")
    welcome = kit.last(second, "welcome")
    assert welcome["v"] == protocol.VERSION
    assert welcome["you"] == {"id": kit.avatar[second], "name": "Ana", "role": "visitor"}
    assert {m["id"] for m in welcome["members"]} == {kit.avatar[first], kit.avatar[second]}
    assert welcome["session"] == kit.sessions[second]
    assert welcome["scheduled"][0]["id"] == SCHEDULED


def test_presence_changes_go_out_once_per_tick_in_one_message() -> None:
    kit = make_kit()
    first = kit.connect()
    kit.tick()
    kit.clear()
    kit.connect()
    kit.connect()
    kit.tick()
    presence = kit.got(first, "presence")
    assert len(presence) == 1
    assert [change["event"] for change in presence[0]["changes"]] == ["join", "join"]
    kit.tick()
    assert len(kit.got(first, "presence")) == 1


def test_a_guide_creates_a_tour_and_visitors_join_it() -> None:
    kit = make_kit()
    guide = kit.connect("guide")
    visitor = kit.connect()
    tour_id = _tour(kit, guide, visitor)
    snapshot = kit.last(visitor, "tour.snapshot")["tour"]
    assert snapshot["id"] == tour_id
    assert snapshot["guide"]["id"] == kit.avatar[guide]
    assert [m["id"] for m in snapshot["members"]] == [kit.avatar[visitor]]
    joined = _events(kit, guide, "member_joined")
    assert joined[-1]["member"]["id"] == kit.avatar[visitor]


def test_visitor_cannot_summon_the_tour() -> None:
    kit = make_kit()
    guide = kit.connect("guide")
    visitor = kit.connect()
    other = kit.connect()
    _tour(kit, guide, visitor, other)
    before = kit.room.poses.position(kit.avatar[other])
    kit.clear()
    actions = kit.send(visitor, {"type": "tour.summon", "ref": "s1"})
    assert kit.last(visitor, "error") == {
        "type": "error",
        "code": "forbidden",
        "message": "only the tour's guide may do this",
        "ref": "s1",
    }
    assert all(conn == visitor for action in actions for conn in action.to)  # type: ignore[union-attr]
    assert kit.inbox.keys() == {visitor}
    assert kit.room.poses.position(kit.avatar[other]) == before


@pytest.mark.parametrize(
    "command",
    [
        {"type": "tour.end"},
        {"type": "tour.follow", "on": True},
        {"type": "tour.goto", "booth_id": BOOTH_A},
        {"type": "tour.point", "product_id": PRODUCT_A},
        {"type": "tour.spotlight", "member": None},
        {"type": "tour.mute", "member": 1, "muted": True},
        {"type": "tour.kick", "member": 1},
    ],
)
def test_every_guide_command_from_a_member_is_refused_and_changes_nothing(
    command: dict[str, Any],
) -> None:
    kit = make_kit()
    guide = kit.connect("guide")
    visitor = kit.connect()
    tour_id = _tour(kit, guide, visitor)
    state = kit.room.tours[tour_id].snapshot()
    kit.clear()
    kit.send(visitor, command)
    assert kit.last(visitor, "error")["code"] == "forbidden"
    assert kit.inbox.keys() == {visitor}
    assert kit.room.tours[tour_id].snapshot() == state


def test_summon_teleports_every_member_next_to_the_guide() -> None:
    kit = make_kit()
    guide = kit.connect("guide")
    visitors = [kit.connect() for _ in range(12)]
    _tour(kit, guide, *visitors)
    kit.send(guide, encode_pose((20.0, 1.7, -5.0), (0.0, 0.0, 0.0, 1.0)))
    kit.send(guide, {"type": "tour.summon"})
    spots = set()
    for visitor in visitors:
        teleport = kit.last(visitor, "teleport")
        x, y, z = teleport["position"]
        assert teleport["reason"] == "summon"
        assert 0.5 < math.dist((x, z), (20.0, -5.0)) < 4.0
        assert y == 0.0
        px, _, pz = kit.room.poses.position(kit.avatar[visitor])
        assert math.dist((px, pz), (x, z)) < 0.01
        spots.add((round(x, 1), round(z, 1)))
    assert len(spots) == len(visitors)  # nobody stands inside anybody else
    assert not kit.got(guide, "teleport")


def test_go_to_booth_moves_the_tour_to_the_booth_waypoint() -> None:
    kit = make_kit()
    guide = kit.connect("guide")
    visitor = kit.connect()
    _tour(kit, guide, visitor)
    kit.send(guide, {"type": "tour.goto", "booth_id": BOOTH_A})
    assert _events(kit, visitor, "stop")[-1]["booth_id"] == BOOTH_A
    assert kit.last(guide, "teleport")["position"] == [-9.0, 0.0, -13.4]
    x, _, z = kit.last(visitor, "teleport")["position"]
    assert math.dist((x, z), (-9.0, -13.4)) < 2.5


def test_go_to_an_unknown_booth_is_refused() -> None:
    kit = make_kit()
    guide = kit.connect("guide")
    _tour(kit, guide)
    kit.send(guide, {"type": "tour.goto", "booth_id": "99999999-9999-4999-8999-999999999999"})
    assert kit.last(guide, "error")["code"] == "not_found"


def test_a_product_pointed_at_reaches_every_member() -> None:
    kit = make_kit()
    guide = kit.connect("guide")
    visitors = [kit.connect(), kit.connect()]
    outsider = kit.connect()
    _tour(kit, guide, *visitors)
    kit.send(guide, {"type": "tour.point", "product_id": PRODUCT_A})
    for visitor in visitors:
        assert _events(kit, visitor, "point")[-1] == {
            "kind": "point",
            "product_id": PRODUCT_A,
            "booth_id": BOOTH_A,
        }
    assert not _events(kit, outsider, "point")


def test_hands_queue_in_order_and_the_spotlight_takes_one_out() -> None:
    kit = make_kit()
    guide = kit.connect("guide")
    a, b, c = kit.connect(), kit.connect(), kit.connect()
    tour_id = _tour(kit, guide, a, b, c)
    for conn in (b, a, c):
        kit.send(conn, {"type": "hand", "raised": True})
    kit.send(a, {"type": "hand", "raised": True})  # twice: no change
    tour = kit.room.tours[tour_id]
    assert tour.hands == [kit.avatar[b], kit.avatar[a], kit.avatar[c]]
    kit.send(guide, {"type": "tour.spotlight", "member": kit.avatar[a]})
    assert tour.spotlight == kit.avatar[a]
    assert tour.hands == [kit.avatar[b], kit.avatar[c]]
    assert _events(kit, c, "spotlight")[-1]["member"] == kit.avatar[a]


def test_a_kicked_member_leaves_and_cannot_rejoin() -> None:
    kit = make_kit()
    guide = kit.connect("guide")
    visitor = kit.connect()
    tour_id = _tour(kit, guide, visitor)
    kit.send(guide, {"type": "tour.mute", "member": kit.avatar[visitor], "muted": True})
    assert kit.room.tours[tour_id].muted == {kit.avatar[visitor]}
    kit.send(guide, {"type": "tour.kick", "member": kit.avatar[visitor]})
    assert _events(kit, visitor, "member_left")[-1]["reason"] == "kicked"
    assert kit.room.members[kit.avatar[visitor]].tour is None
    kit.send(visitor, {"type": "tour.join", "tour_id": tour_id})
    assert kit.last(visitor, "error")["code"] == "forbidden"
    assert kit.room.tours[tour_id].members == {}


def test_a_full_tour_refuses_the_next_visitor() -> None:
    kit = make_kit()
    guide = kit.connect("guide")
    kit.send(guide, {"type": "tour.create", "title": "Small", "capacity": 2})
    tour_id = kit.last(guide, "tour.snapshot")["tour"]["id"]
    visitors = [kit.connect() for _ in range(3)]
    for visitor in visitors:
        kit.send(visitor, {"type": "tour.join", "tour_id": tour_id})
    assert kit.last(visitors[2], "error")["code"] == "tour_full"
    assert len(kit.room.tours[tour_id].members) == 2


def test_a_late_joiner_gets_the_whole_state() -> None:
    kit = make_kit()
    guide = kit.connect("guide")
    early = kit.connect()
    tour_id = _tour(kit, guide, early)
    kit.send(guide, {"type": "tour.goto", "booth_id": BOOTH_A})
    kit.send(guide, {"type": "tour.point", "product_id": PRODUCT_A})
    kit.send(guide, {"type": "tour.follow", "on": True})
    kit.send(early, {"type": "hand", "raised": True})
    late = kit.connect()
    kit.send(late, {"type": "tour.join", "tour_id": tour_id})
    tour = kit.last(late, "tour.snapshot")["tour"]
    assert tour["stop"] == {"booth_id": BOOTH_A}
    assert tour["pointing"] == PRODUCT_A
    assert tour["follow"] is True
    assert tour["hands"] == [kit.avatar[early]]
    assert tour["seq"] == kit.room.tours[tour_id].seq


def test_the_guide_leaving_ends_the_tour_for_everyone() -> None:
    kit = make_kit()
    guide = kit.connect("guide")
    visitor = kit.connect()
    outsider = kit.connect()
    tour_id = _tour(kit, guide, visitor)
    kit.send(guide, {"type": "tour.leave"})
    assert tour_id not in kit.room.tours
    assert kit.room.members[kit.avatar[visitor]].tour is None
    assert _events(kit, outsider, "ended")
    assert [r.kind for r in kit.records] == ["tour"]
    assert kit.records[0].tour_id == tour_id


def test_only_its_own_guide_starts_a_scheduled_tour() -> None:
    kit = make_kit()
    other_guide = kit.connect("guide")
    kit.send(other_guide, {"type": "tour.start", "tour_id": SCHEDULED})
    assert kit.last(other_guide, "error")["code"] == "forbidden"
    visitor = kit.connect(subject="user-guide")  # the right subject but not a guide's role
    kit.send(visitor, {"type": "tour.start", "tour_id": SCHEDULED})
    assert kit.last(visitor, "error")["code"] == "forbidden"
    guide = kit.connect("guide", subject="user-guide")
    kit.send(guide, {"type": "tour.start", "tour_id": SCHEDULED})
    tour = kit.last(guide, "tour.snapshot")["tour"]
    assert (tour["id"], tour["scheduled_id"], tour["capacity"]) == (SCHEDULED, SCHEDULED, 50)
    assert kit.statuses == [(SCHEDULED, "live")]
    kit.send(guide, {"type": "tour.start", "tour_id": SCHEDULED})
    assert kit.last(guide, "error")["code"] in {"already_in_tour", "tour_live"}
    kit.send(guide, {"type": "tour.end"})
    assert kit.statuses == [(SCHEDULED, "live"), (SCHEDULED, "ended")]


def test_resume_within_30_seconds_keeps_the_avatar_the_role_and_the_tour() -> None:
    kit = make_kit()
    guide = kit.connect("guide")
    visitor = kit.connect()
    tour_id = _tour(kit, guide, visitor)
    seq = kit.room.tours[tour_id].seq
    kit.apply(kit.room.disconnect(visitor, kit.now))
    kit.tick(10)
    kit.send(guide, {"type": "tour.point", "product_id": PRODUCT_A})  # missed while away
    kit.tick(10)
    new_conn = 99
    kit.apply(kit.room.resume(new_conn, kit.sessions[visitor], "fresh", {tour_id: seq}, kit.now))
    welcome = kit.last(new_conn, "welcome")
    assert welcome["you"]["id"] == kit.avatar[visitor]
    assert welcome["tour_id"] == tour_id
    assert welcome["session"] == "fresh"
    replayed = kit.got(new_conn, "tour.event")
    assert [m["seq"] for m in replayed] == [seq + 1]
    assert replayed[0]["event"]["kind"] == "point"
    # the old token is spent
    kit.apply(kit.room.resume(100, kit.sessions[visitor], "again", {}, kit.now))
    assert kit.closed[100] == (protocol.CLOSE_UNAUTHORISED, "resume_expired")


def test_a_member_away_longer_than_30_seconds_leaves_for_good() -> None:
    kit = make_kit()
    guide = kit.connect("guide")
    visitor = kit.connect()
    tour_id = _tour(kit, guide, visitor)
    avatar = kit.avatar[visitor]
    kit.apply(kit.room.disconnect(visitor, kit.now))
    kit.tick(29)
    assert avatar in kit.room.members
    kit.tick(2)
    assert avatar not in kit.room.members
    assert avatar not in kit.room.poses
    assert kit.room.tours[tour_id].members == {}
    kit.apply(kit.room.resume(50, kit.sessions[visitor], "x", {}, kit.now))
    assert kit.closed[50][0] == protocol.CLOSE_UNAUTHORISED


def test_a_resume_after_a_long_gap_gets_a_snapshot() -> None:
    kit = make_kit()
    guide = kit.connect("guide")
    visitor = kit.connect()
    tour_id = _tour(kit, guide, visitor)
    kit.apply(kit.room.disconnect(visitor, kit.now))
    for index in range(300):  # more than the tour's event log holds
        kit.now += 0.2
        kit.send(guide, {"type": "tour.follow", "on": index % 2 == 0})
    kit.apply(kit.room.resume(7, kit.sessions[visitor], "s", {tour_id: 1}, kit.now))
    assert kit.last(7, "tour.snapshot")["tour"]["seq"] == kit.room.tours[tour_id].seq
    assert not kit.got(7, "tour.event")


def test_a_flooding_client_is_throttled_then_closed() -> None:
    kit = make_kit()
    flood = kit.connect()
    calm = kit.connect()
    for _ in range(20):  # the burst passes
        kit.send(flood, {"type": "ping"})
    kit.send(flood, {"type": "ping"})
    assert kit.last(flood, "error")["code"] == "rate_limited"
    for step in range(10 * 50):  # noqa: B007 - used after the loop  # 50 messages a second for 10 seconds
        kit.now += 0.02
        kit.send(flood, {"type": "ping"})
        if flood in kit.closed:
            break
    assert kit.closed[flood] == (protocol.CLOSE_RATE_LIMITED, "rate_limited")
    assert step < 10 * 50 - 1
    kit.send(calm, {"type": "ping", "t": 5})
    assert kit.last(calm, "pong")["t"] == 5


def test_chat_reaches_the_hall_or_only_the_tour() -> None:
    kit = make_kit()
    guide = kit.connect("guide")
    member = kit.connect()
    outsider = kit.connect()
    _tour(kit, guide, member)
    kit.send(member, {"type": "chat", "scope": "tour", "text": "<img src=x onerror=alert(1)>"})
    assert kit.last(guide, "chat")["text"] == "<img src=x onerror=alert(1)>"
    assert not kit.got(outsider, "chat")
    kit.send(outsider, {"type": "chat", "scope": "tour", "text": "hi"})
    assert kit.last(outsider, "error")["code"] == "not_in_tour"
    kit.now += 1
    kit.send(outsider, {"type": "chat", "text": "hello hall"})
    assert kit.last(member, "chat")["text"] == "hello hall"


def test_webrtc_signals_pass_only_between_members_of_one_tour() -> None:
    kit = make_kit()
    guide = kit.connect("guide")
    member = kit.connect()
    outsider = kit.connect()
    _tour(kit, guide, member)
    offer = {"type": "rtc.signal", "to": kit.avatar[guide], "kind": "offer", "data": "v=0"}
    kit.send(member, offer)
    assert kit.last(guide, "rtc.signal") == {
        "type": "rtc.signal",
        "from": kit.avatar[member],
        "kind": "offer",
        "data": "v=0",
    }
    kit.send(outsider, offer)
    assert kit.last(outsider, "error")["code"] == "forbidden"
    assert len(kit.got(guide, "rtc.signal")) == 1


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "[]",
        '{"type": "tour.goto"}',
        '{"type": "chat", "text": ""}',
        '{"type": "chat", "text": "' + "x" * 501 + '"}',
        '{"type": "teleport", "position": [0, 0, 0]}',
        '{"type": "tour.join", "tour_id": "not-a-uuid"}',
        '{"type": "react", "emoji": "<b>"}',
        '{"type": "ping", "t": 1, "extra": true}',
    ],
)
def test_malformed_control_messages_get_an_error_and_the_socket_stays(message: str) -> None:
    kit = make_kit()
    conn = kit.connect()
    kit.send(conn, message)
    assert kit.last(conn, "error")["code"] == "invalid_message"
    assert conn not in kit.closed


def test_garbage_poses_are_dropped_and_counted() -> None:
    kit = make_kit()
    conn = kit.connect()
    before = kit.room.poses.record(kit.avatar[conn])
    for garbage in (b"", b"\x02" * 25, b"\x01" * 3, b"\x01" + b"\xff" * 24):
        kit.send(conn, garbage)
    assert kit.room.dropped_poses == 4
    assert kit.room.poses.record(kit.avatar[conn]) == before


def test_more_than_20_poses_a_second_are_dropped() -> None:
    kit = make_kit()
    conn = kit.connect()
    kit.now = 2000.0
    for index in range(30):
        kit.send(conn, encode_pose((float(index), 1.6, 0.0), (0.0, 0.0, 0.0, 1.0)))
    assert kit.room.dropped_poses == 10
    assert kit.room.poses.position(kit.avatar[conn])[0] == pytest.approx(19.0)


def test_a_full_hall_closes_the_next_connection() -> None:
    kit = make_kit(capacity=2)
    kit.connect()
    kit.connect()
    third = kit.connect()
    assert kit.closed[third] == (protocol.CLOSE_HALL_FULL, "hall_full")
    assert len(kit.room.members) == 2


def test_standing_in_a_booth_records_enter_and_leave_with_the_dwell() -> None:
    kit = make_kit()
    conn = kit.connect()
    kit.tick(1)
    kit.send(conn, encode_pose((-9.0, 1.6, -16.0), (0.0, 0.0, 0.0, 1.0)))
    kit.tick(1.0)
    kit.now += 1
    kit.send(conn, encode_pose((-9.0, 1.6, -16.5), (0.0, 0.0, 0.0, 1.0)))
    kit.tick(5.0)
    kit.now += 1
    kit.send(conn, encode_pose((0.0, 1.6, 0.0), (0.0, 0.0, 0.0, 1.0)))
    kit.tick(1.0)
    kinds = [(r.kind, r.booth_id) for r in kit.records]
    assert kinds == [("enter", BOOTH_A), ("leave", BOOTH_A)]
    assert kit.records[1].dwell_seconds == pytest.approx(8.0)  # seen inside at 1002, out at 1010
    kit.send(conn, {"type": "hotspot.open", "product_id": PRODUCT_A})
    assert (kit.records[-1].kind, kit.records[-1].product_id) == ("hotspot", PRODUCT_A)


def test_tour_members_get_their_guide_in_every_frame_wherever_they_stand() -> None:
    kit = make_kit()
    guide = kit.connect("guide")
    visitor = kit.connect()
    _tour(kit, guide, visitor)
    crowd = [kit.connect() for _ in range(40)]
    for index, conn in enumerate(crowd):  # 40 avatars packed around the visitor
        kit.send(conn, encode_pose((30.0 + index * 0.05, 1.6, 0.0), (0.0, 0.0, 0.0, 1.0)))
    kit.send(visitor, encode_pose((30.0, 1.6, 0.1), (0.0, 0.0, 0.0, 1.0)))
    kit.send(guide, encode_pose((-30.0, 1.6, 0.0), (0.0, 0.0, 0.0, 1.0)))
    frames = kit.tick()
    mine = [frame for frame, conns in frames if visitor in conns]
    assert len(mine) == 1
    near = {pose.id for pose in decode_frame(mine[0]).near}
    assert kit.avatar[guide] in near
    assert len(near) == 33
    outsider_frames = [frame for frame, conns in frames if crowd[0] in conns]
    assert kit.avatar[guide] not in {pose.id for pose in decode_frame(outsider_frames[0]).near}
