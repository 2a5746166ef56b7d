"""Tour commands of the hall room: create, start, join, leave, follow, summon, go to booth, point,
hands, spotlight, mute, kick, sync and the WebRTC signalling relay.

Authorisation happens first in every handler: only the guide of a tour commands it, only members
raise hands or signal each other, and a refused command changes nothing and broadcasts nothing
(research-security.md G3).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from server.tours import protocol
from server.tours.actions import Action, ConnId, Identity, Record, Send, TourStatus, error
from server.tours.tour import DEFAULT_CAPACITY, Event, TourState

if TYPE_CHECKING:
    from server.tours.room import HallRoom, Member

RING_SPACING = 1.2
HEAD_HEIGHT = 1.6


def command(
    room: HallRoom, member: Member, message: Any, op: dict[str, Any], now: float
) -> list[Action]:
    """Apply one tour command of ``member`` (from an op); a refusal is an ``error`` to the sender."""
    conn = member.conn
    match message:
        case protocol.TourCreate() | protocol.TourStart():
            return _open(room, member, message, str(op.get("tid", "")), now)
        case protocol.TourJoin(tour_id=tour_id):
            return _join(room, member, str(tour_id), message.ref, now)
        case protocol.TourLeave():
            if member.tour is None:
                return [error(conn, "not_in_tour", "you are not in a tour", message.ref)]
            return leave_tour(room, member, now, "left")
        case protocol.TourSync(tour_id=tour_id):
            tour = room.tours.get(str(tour_id))
            if tour is None:
                return [error(conn, "not_found", "no such live tour", message.ref)]
            return [_snapshot(conn, tour)]
        case protocol.Hand(raised=raised):
            return _hand(room, member, raised, message.ref)
        case protocol.RtcSignal():
            return _signal(room, member, message)
    if isinstance(message, protocol.GUIDE_COMMANDS):
        tour = room.tours.get(member.tour or "")
        if tour is None or tour.guide != member.id:
            return [error(conn, "forbidden", "only the tour's guide may do this", message.ref)]
        return _guide(room, tour, message, now)
    return [error(conn, "invalid_message", "unexpected message", getattr(message, "ref", None))]


def _open(
    room: HallRoom,
    member: Member,
    message: protocol.TourCreate | protocol.TourStart,
    new_id: str,
    now: float,
) -> list[Action]:
    conn = member.conn
    if not member.identity.may_guide:
        return [error(conn, "forbidden", "only guides lead tours", message.ref)]
    if member.tour is not None:
        return [error(conn, "already_in_tour", "leave your tour first", message.ref)]
    if isinstance(message, protocol.TourStart):
        scheduled = room.schedule.get(str(message.tour_id))
        if scheduled is None:
            return [error(conn, "not_found", "no such scheduled tour in this hall", message.ref)]
        if member.identity.role != "admin" and scheduled.guide_subject != member.identity.subject:
            return [error(conn, "forbidden", "this tour has another guide", message.ref)]
        if scheduled.id in room.tours:
            return [error(conn, "tour_live", "this tour is already live", message.ref)]
        tour = TourState(
            scheduled.id,
            scheduled.title,
            member.id,
            member.identity.name,
            scheduled.capacity,
            scheduled.id,
            now,
        )
    else:
        capacity = message.capacity or DEFAULT_CAPACITY
        if not new_id or new_id in room.tours:
            return [error(conn, "invalid_message", "no tour id", message.ref)]
        tour = TourState(
            new_id, message.title, member.id, member.identity.name, capacity, None, now
        )
    room.tours[tour.id] = tour
    member.tour = tour.id
    started = tour.emit("started", tour=tour.summary())
    actions: list[Action] = [Send(room.connections(), started), _snapshot(conn, tour)]
    if tour.scheduled_id is not None and member.local:  # one node writes it: the guide's
        actions.append(TourStatus(tour.scheduled_id, "live"))
    return actions


def _join(
    room: HallRoom, member: Member, tour_id: str, ref: str | None, now: float
) -> list[Action]:
    conn = member.conn
    tour = room.tours.get(tour_id)
    if tour is None:
        return [error(conn, "not_found", "no such live tour", ref)]
    if member.tour == tour_id:
        return [_snapshot(conn, tour)]
    current = room.tours.get(member.tour or "")
    if current is not None and current.guide == member.id:
        return [error(conn, "already_in_tour", "end your own tour first", ref)]
    if member.identity.subject in tour.kicked:
        return [error(conn, "forbidden", "the guide removed you from this tour", ref)]
    if tour.full:
        return [error(conn, "tour_full", "this tour is full", ref)]
    actions = leave_tour(room, member, now, "left")
    member.tour = tour.id
    joined = tour.add(member.id, member.identity.name, now)
    actions.append(Send(room.connections(tour.audience()), joined))
    actions.append(_snapshot(conn, tour))
    return actions


def leave_tour(room: HallRoom, member: Member, now: float, reason: str) -> list[Action]:
    """Take ``member`` out of its tour; a guide leaving ends the tour for everyone."""
    tour = room.tours.get(member.tour or "")
    member.tour = None
    if tour is None:
        return []
    if tour.guide == member.id:
        return _end(room, tour, now)
    actions: list[Action] = _attended(room, tour, member.id, now)
    audience = room.connections(tour.audience())
    left, also = tour.remove(member.id, reason)
    if member.conn is not None and member.conn not in audience:
        audience = (*audience, member.conn)
    actions.append(Send(audience, left))
    actions.extend(Send(room.connections(tour.audience()), event) for event in also)
    return actions


def _end(room: HallRoom, tour: TourState, now: float) -> list[Action]:
    actions: list[Action] = []
    for avatar in tour.members:
        actions.extend(_attended(room, tour, avatar, now))
    for avatar in tour.audience():
        if (member := room.members.get(avatar)) is not None and member.tour == tour.id:
            member.tour = None
    del room.tours[tour.id]
    actions.append(Send(room.connections(), tour.emit("ended")))
    guide = room.members.get(tour.guide)
    if tour.scheduled_id is not None and guide is not None and guide.local:
        actions.append(TourStatus(tour.scheduled_id, "ended"))
    return actions


def _attended(room: HallRoom, tour: TourState, avatar: int, now: float) -> list[Action]:
    """A ``tour`` visit record, written by the member's own node only."""
    member = room.members.get(avatar)
    if member is None or not member.local:
        return []
    joined = tour.joined_at.get(avatar, now)
    who = member.identity
    dwell = round(now - joined, 3)
    return [Record("tour", who.subject, who.guest, now, member.booth, None, tour.id, dwell)]


def _snapshot(conn: ConnId | None, tour: TourState) -> Send:
    to = () if conn is None else (conn,)
    return Send(to, {"type": "tour.snapshot", "tour": tour.snapshot()})


def _hand(room: HallRoom, member: Member, raised: bool, ref: str | None) -> list[Action]:
    conn = member.conn
    tour = room.tours.get(member.tour or "")
    if tour is None or member.id not in tour.members:
        return [error(conn, "not_in_tour", "only tour members raise hands", ref)]
    if raised == (member.id in tour.hands):
        return []
    if raised:
        tour.hands.append(member.id)
    else:
        tour.hands.remove(member.id)
    return [Send(room.connections(tour.audience()), tour.emit("hands", hands=list(tour.hands)))]


def _signal(room: HallRoom, member: Member, message: protocol.RtcSignal) -> list[Action]:
    conn = member.conn
    tour = room.tours.get(member.tour or "")
    target = room.members.get(message.to)
    if tour is None or target is None or target.tour != tour.id or target.id == member.id:
        return [error(conn, "forbidden", "signal only members of your tour", message.ref)]
    if target.link is None:
        return [error(conn, "unavailable", "that member is away", message.ref)]
    relayed = {"type": "rtc.signal", "from": member.id, "kind": message.kind, "data": message.data}
    return [Send(room.connections([target.id]), relayed)]  # only the target's node sends it


def _guide(room: HallRoom, tour: TourState, message: Any, now: float) -> list[Action]:
    guide = room.members[tour.guide]
    conn = guide.conn
    audience = room.connections(tour.audience())
    match message:
        case protocol.TourEnd():
            return _end(room, tour, now)
        case protocol.TourFollow(on=on):
            tour.follow = on
            return [Send(audience, tour.emit("follow", on=on, guide=tour.guide))]
        case protocol.TourSummon():
            x, _, z = room.poses.position(tour.guide)
            return _gather(room, tour, (x, 0.0, z), None, "summon", now)
        case protocol.TourGoto(booth_id=booth_id):
            waypoint = room.info.waypoints.get(str(booth_id))
            if waypoint is None:
                return [error(conn, "not_found", "no such booth in this hall", message.ref)]
            tour.stop = str(booth_id)
            actions: list[Action] = [Send(audience, tour.emit("stop", booth_id=tour.stop))]
            actions.extend(_gather(room, tour, waypoint.position, waypoint.yaw, "goto", now))
            return actions
        case protocol.TourPoint(product_id=product_id):
            product = None if product_id is None else str(product_id)
            if product is not None and product not in room.info.products:
                return [error(conn, "not_found", "no such product in this hall", message.ref)]
            tour.pointing = product
            booth = None if product is None else room.info.products[product]
            return [Send(audience, tour.emit("point", product_id=product, booth_id=booth))]
    return _moderate(room, tour, message)


def _moderate(room: HallRoom, tour: TourState, message: Any) -> list[Action]:
    conn = room.members[tour.guide].conn
    target = getattr(message, "member", None)
    if target is not None and target not in tour.members:
        return [error(conn, "not_found", "not a member of this tour", message.ref)]
    audience = room.connections(tour.audience())
    match message:
        case protocol.TourSpotlight():
            tour.spotlight = target
            if target in tour.hands:
                tour.hands.remove(target)
            return [Send(audience, tour.emit("spotlight", member=target, hands=list(tour.hands)))]
        case protocol.TourMute(muted=muted):
            assert target is not None
            (tour.muted.add if muted else tour.muted.discard)(target)
            return [Send(audience, tour.emit("mute", member=target, muted=muted))]
        case protocol.TourKick():
            assert target is not None
            member = room.members[target]
            tour.kicked.add(member.identity.subject)
            member.tour = None
            actions: list[Action] = []
            left, also = tour.remove(target, "kicked")
            actions.append(Send(audience, left))
            actions.extend(Send(room.connections(tour.audience()), event) for event in also)
            return actions
    return [error(conn, "invalid_message", "unexpected message", getattr(message, "ref", None))]


def _gather(
    room: HallRoom,
    tour: TourState,
    centre: tuple[float, float, float],
    yaw: float | None,
    reason: str,
    now: float,
) -> list[Action]:
    """Teleport the members (and, for ``goto``, the guide) into rings around ``centre``."""
    cx, cy, cz = centre
    people = list(tour.members)
    if reason == "goto":
        people.insert(0, tour.guide)
    actions: list[Action] = []
    for index, avatar in enumerate(people):
        if reason == "goto" and index == 0:
            x, z = cx, cz
        else:
            ring, slot, count = _ring_of(index + (0 if reason == "goto" else 1))
            dx, dz = ring_offset(slot, count, RING_SPACING * ring)
            x, z = cx + dx, cz + dz
        facing = yaw if yaw is not None else math.atan2(-(cx - x), -(cz - z))
        room.poses.teleport(avatar, (x, cy + HEAD_HEIGHT, z), facing, now)
        member = room.members[avatar]
        if member.conn is not None:
            teleport = {
                "type": "teleport",
                "position": [round(x, 3), cy, round(z, 3)],
                "yaw": round(facing, 4),
                "reason": reason,
                "tour_id": tour.id,
            }
            actions.append(Send((member.conn,), teleport))
    return actions


def ring_offset(index: int, count: int, radius: float) -> tuple[float, float]:
    """Where the ``index``-th of ``count`` people stands on a circle of ``radius`` metres."""
    angle = 2 * math.pi * index / max(count, 1)
    return radius * math.cos(angle), radius * math.sin(angle)


def _ring_of(index: int) -> tuple[int, int, int]:
    """(ring, slot, people on that ring) for the index-th person around a centre (index >= 1)."""
    ring, first = 1, 1
    while index >= first + 8 * ring:
        first += 8 * ring
        ring += 1
    return ring, index - first, 8 * ring


def catch_up(room: HallRoom, conn: ConnId, tour_id: str, seq: int) -> list[Action]:
    """After a resume: the tour events after ``seq``, or a snapshot when they are gone."""
    tour = room.tours.get(tour_id)
    if tour is None:
        return [
            Send(
                (conn,),
                {"type": "tour.event", "tour_id": tour_id, "seq": None, "event": {"kind": "ended"}},
            )
        ]
    missed: list[Event] | None = tour.events_after(seq)
    if missed is None:
        return [Send((conn,), {"type": "tour.snapshot", "tour": tour.snapshot()})]
    return [Send((conn,), event) for event in missed]


def reconcile(
    room: HallRoom,
    node: int,
    members: list[dict[str, Any]],
    tours: list[dict[str, Any]],
    now: float,
) -> list[Action]:
    """Bring this replica in line with ``node``'s heartbeat: its members and the tours it leads.

    The node that holds a member or a tour's guide is its authority: a listed member missing
    here is added, one of that node no longer listed leaves, and a tour that differs from the
    owner's state is replaced by it (its local members get a ``tour.snapshot``).
    """
    actions: list[Action] = []
    listed = {int(state["a"]) for state in members}
    for state in members:
        actions.extend(_sync_member(room, node, state, now))
    for member in [m for m in room.members.values() if m.node == node and m.id not in listed]:
        actions.extend(room.drop(member.id, now, "gone"))
    owned: set[str] = set()
    for state in tours:
        incoming = TourState.from_state(state, now)
        owned.add(incoming.id)
        current = room.tours.get(incoming.id)
        if current is None or current.to_state() != incoming.to_state():
            actions.extend(_replace(room, incoming))
    for tour in list(room.tours.values()):
        guide = room.members.get(tour.guide)
        if tour.id not in owned and guide is not None and guide.node == node:
            actions.extend(_end(room, tour, now))
    return actions


def _sync_member(room: HallRoom, node: int, state: dict[str, Any], now: float) -> list[Action]:
    avatar = int(state["a"])
    member = room.members.get(avatar)
    if member is None:
        member = room.add(
            avatar, Identity(*state["who"]), str(state["s"]), node, state["link"], now
        )
        member.away_since = state["away"]
        room.presence.append({"event": "join", "member": member.public()})
        return []
    if member.local:  # this node is its authority
        return []
    if member.session != state["s"]:
        room.by_session.pop(member.session, None)
        member.session = str(state["s"])
        room.by_session[member.session] = avatar
    member.node, member.link, member.away_since = node, state["link"], state["away"]
    return []


def _replace(room: HallRoom, tour: TourState) -> list[Action]:
    known = tour.id in room.tours
    room.tours[tour.id] = tour
    audience = set(tour.audience())
    for member in room.members.values():
        if member.tour == tour.id and member.id not in audience:
            member.tour = None
    for avatar in audience:
        if (listed := room.members.get(avatar)) is not None:
            listed.tour = tour.id
    # A tour new to this node is news for everyone here (tours are open to the whole hall).
    to = room.connections(audience) if known else room.connections()
    return [Send(to, {"type": "tour.snapshot", "tour": tour.snapshot()})]
