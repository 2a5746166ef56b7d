"""The sans-I/O hall room: members, presence, chat, poses and ticks; tours in :mod:`guiding`.

``HallRoom`` does no I/O and reads no clock: the shell hands it connections, messages and the time
and performs the actions it returns (:mod:`server.tours.actions`).

A hall may span processes ("nodes"). Every change of shared state (a member joins, drops,
resumes or leaves; a tour command; a chat line) is an **op**: the room that receives it from its
own client returns ``Publish(op)``, and every room of the hall, the sender's included, applies
the op when the hall's bus delivers it (``apply``). The bus delivers ops in one order to every
node (Redis PUBLISH on one channel; a loopback in one process), so the replicas go through the
same states and number tour events alike. Poses do not go through ops: each node sends its local
avatars' records once per tick (``export``) and merges the others' (``merge``). Every
``HEARTBEAT`` seconds a node publishes its local members and the tours it leads (``heartbeat``);
a replica that missed ops (a Redis restart, a late start) converges on the next one.

Authorisation happens where the op is applied, against the replicated state, so every node
refuses the same commands; only the sender's node answers it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from server.tours import guiding, protocol
from server.tours.actions import (
    Action,
    Close,
    ConnId,
    HallInfo,
    Identity,
    Publish,
    Record,
    Send,
    error,
)
from server.tours.aoi import AoiOptions, plan_frames
from server.tours.frames import POSE, FrameError, PoseTable
from server.tours.limits import TokenBucket
from server.tours.tour import ScheduledTour, TourState

logger = logging.getLogger(__name__)

Frames = list[tuple[bytes, list[ConnId]]]
Op = dict[str, Any]
# Ops a client's control message becomes; the rest are answered where they arrive.
_LOCAL = (protocol.Ping, protocol.HotspotOpen, protocol.Hello)


@dataclass(frozen=True, slots=True)
class RoomOptions:
    """Limits of one hall room (docs/protocol.md "Limits and close codes")."""

    capacity: int = 2000
    resume_seconds: float = 30.0
    control_rate: float = 10.0
    control_burst: float = 20.0
    chat_rate: float = 1.0
    chat_burst: float = 5.0
    # Refused control messages a member may send (one forgiven per second) before it is closed.
    max_refused: float = 100.0
    pose_rate: int = 20
    visit_seconds: float = 1.0
    visit_margin: float = 0.5
    # A node whose poses have not arrived for this long is gone: its members leave.
    node_timeout: float = 5.0
    node: int = 0
    aoi: AoiOptions = field(default_factory=AoiOptions)

    @property
    def id_base(self) -> int:
        # Avatar ids of node n are n * 2**20 + 1 ...: nodes never hand out the same id.
        return (self.node % 4096) * 2**20 + 1


@dataclass(slots=True)
class Member:
    id: int
    identity: Identity
    session: str
    node: int
    link: ConnId | None  # the connection at its node; None while away
    local: bool
    control: TokenBucket
    chat: TokenBucket
    strikes: TokenBucket
    tour: str | None = None
    away_since: float | None = None
    pose_second: int = -1
    poses: int = 0
    booth: str | None = None
    booth_since: float = 0.0

    @property
    def conn(self) -> ConnId | None:
        """This node's connection to the member, if it is here and connected."""
        return self.link if self.local else None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.identity.name,
            "role": self.identity.role,
            "away": self.away_since is not None,
        }

    def state(self) -> dict[str, Any]:
        """What a heartbeat tells other nodes about this member."""
        identity = self.identity
        return {
            "a": self.id,
            "who": [identity.subject, identity.name, identity.role, identity.guest],
            "s": self.session,
            "link": self.link,
            "away": self.away_since,
        }


@dataclass(slots=True)
class _Pending:
    conn: ConnId
    last_seq: dict[str, int] | None = None


class HallRoom:
    """One hall's live state on one node. Not thread-safe: one event loop owns it."""

    def __init__(
        self,
        hall_id: str,
        info: HallInfo | None = None,
        options: RoomOptions | None = None,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.hall_id = hall_id
        self.info = info or HallInfo()
        self.options = options or RoomOptions()
        self.node = self.options.node
        self.new_id = new_id
        self.members: dict[int, Member] = {}
        self.by_conn: dict[ConnId, int] = {}
        self.by_session: dict[str, int] = {}
        self.tours: dict[str, TourState] = {}
        self.schedule: dict[str, ScheduledTour] = {}
        self.poses = PoseTable()
        self.presence: list[dict[str, Any]] = []
        self.pending: dict[int, _Pending] = {}
        self.node_seen: dict[int, float] = {}
        self.ticks = 0
        self.next_visit_check = 0.0
        self._next_avatar = self.options.id_base
        self.dropped_poses = 0

    # -- a local connection ------------------------------------------------------------------

    def join(self, conn: ConnId, identity: Identity, session: str, now: float) -> list[Action]:
        """A connection with a redeemed ticket enters: a new avatar, announced as an op."""
        if len(self.members) + len(self.pending) >= self.options.capacity:
            return [Close(conn, protocol.CLOSE_HALL_FULL, "hall_full")]
        avatar = self._allocate_id()
        self.pending[avatar] = _Pending(conn)
        who = [identity.subject, identity.name, identity.role, identity.guest]
        return [self._op("join", avatar, now, who=who, s=session, link=conn)]

    def resume(
        self, conn: ConnId, token: str, session: str, last_seq: dict[str, int], now: float
    ) -> list[Action]:
        """A new connection takes over the member holding resume ``token`` (within 30 s)."""
        avatar = self.by_session.get(token)
        if avatar is None or avatar in self.pending:
            return [Close(conn, protocol.CLOSE_UNAUTHORISED, "resume_expired")]
        self.pending[avatar] = _Pending(conn, last_seq)
        return [self._op("resume", avatar, now, old=token, s=session, link=conn)]

    def disconnect(self, conn: ConnId, now: float) -> list[Action]:
        """The socket is gone; the member stays ``away`` for ``resume_seconds``."""
        avatar = self.by_conn.pop(conn, None)
        if avatar is None:
            return []
        return [self._op("away", avatar, now, link=conn)]

    def receive(self, conn: ConnId, message: str | bytes, now: float) -> list[Action]:
        """One websocket message from ``conn``: a binary pose or a JSON control message."""
        avatar = self.by_conn.get(conn)
        if avatar is None:
            return []
        member = self.members[avatar]
        if isinstance(message, bytes | bytearray | memoryview):
            self._pose(member, bytes(message), now)
            return []
        if not member.control.take(now):
            if not member.strikes.take(now):
                return [Close(conn, protocol.CLOSE_RATE_LIMITED, "rate_limited")]
            return [error(conn, "rate_limited", "too many messages; slow down")]
        try:
            parsed = protocol.parse(message)
        except protocol.InvalidMessage as exc:
            return [error(conn, "invalid_message", str(exc), exc.ref)]
        if isinstance(parsed, _LOCAL):
            return self._local(member, parsed, now)
        if isinstance(parsed, protocol.Chat) and not member.chat.take(now):
            return [error(conn, "rate_limited", "one chat message a second", parsed.ref)]
        extra = {"tid": self.new_id()} if isinstance(parsed, protocol.TourCreate) else {}
        return [self._op("msg", avatar, now, m=parsed.model_dump(mode="json"), **extra)]

    def _local(self, member: Member, message: Any, now: float) -> list[Action]:
        conn = member.conn
        match message:
            case protocol.Ping(t=t):
                return [Send((conn,) if conn else (), {"type": "pong", "t": t, "now": now})]
            case protocol.HotspotOpen(product_id=product_id):
                product = str(product_id)
                booth = self.info.products.get(product)
                if booth is None:
                    return [error(conn, "not_found", "no such product in this hall", message.ref)]
                who = member.identity
                return [Record("hotspot", who.subject, who.guest, now, booth, product, member.tour)]
        return [error(conn, "already_joined", "hello is the first message only", message.ref)]

    def _pose(self, member: Member, message: bytes, now: float) -> None:
        second = int(now)
        if second != member.pose_second:
            member.pose_second, member.poses = second, 0
        member.poses += 1
        if (
            member.poses > self.options.pose_rate
            or not message
            or message[0] != POSE
            or not self.poses.update(member.id, message, now)
        ):
            self.dropped_poses += 1

    def _op(self, kind: str, avatar: int, now: float, **fields: Any) -> Publish:
        return Publish({"k": kind, "n": self.node, "a": avatar, "t": now, **fields})

    # -- ops, in bus order, on every node -----------------------------------------------------

    def apply(self, op: Op, now: float) -> list[Action]:
        """Apply one op from the hall's bus (this node's or another's)."""
        kind = op.get("k")
        if op.get("n") != self.node:
            self.node_seen[int(op["n"])] = now
        handler = _APPLY.get(str(kind))
        if handler is None:
            logger.warning("unknown op %r in hall %s", kind, self.hall_id)
            return []
        return handler(self, op, now)

    def _apply_join(self, op: Op, now: float) -> list[Action]:
        avatar, node = int(op["a"]), int(op["n"])
        pending = self.pending.pop(avatar, None) if node == self.node else None
        if avatar in self.members or len(self.members) >= self.options.capacity:
            if pending is not None:
                return [Close(pending.conn, protocol.CLOSE_HALL_FULL, "hall_full")]
            return []
        member = self.add(avatar, Identity(*op["who"]), op["s"], node, op["link"], op["t"])
        self.presence.append({"event": "join", "member": member.public()})
        if pending is None:
            return []
        self.by_conn[pending.conn] = avatar
        return [Send((pending.conn,), self._welcome(member))]

    def add(
        self, avatar: int, identity: Identity, session: str, node: int, link: Any, t: float
    ) -> Member:
        options = self.options
        member = Member(
            avatar,
            identity,
            session,
            node,
            link,
            node == self.node,
            TokenBucket(options.control_rate, options.control_burst, t),
            TokenBucket(options.chat_rate, options.chat_burst, t),
            TokenBucket(1.0, options.max_refused, t),
        )
        self.members[avatar] = member
        self.by_session[session] = avatar
        spawn = self.info.spawn_points[avatar % len(self.info.spawn_points)]
        x, y, z = spawn.position
        dx, dz = guiding.ring_offset(avatar % 16, 16, 1.0)
        if avatar not in self.poses:
            self.poses.add(avatar, (x + dx, y + guiding.HEAD_HEIGHT, z + dz), spawn.yaw, t)
        return member

    def _apply_resume(self, op: Op, now: float) -> list[Action]:
        avatar, node = int(op["a"]), int(op["n"])
        pending = self.pending.pop(avatar, None) if node == self.node else None
        member = self.members.get(avatar)
        if member is None or member.session != op["old"]:
            if pending is not None:
                return [Close(pending.conn, protocol.CLOSE_UNAUTHORISED, "resume_expired")]
            return []
        actions: list[Action] = []
        old_conn = member.conn
        if old_conn is not None and self.by_conn.get(old_conn) == avatar:
            del self.by_conn[old_conn]
            actions.append(Close(old_conn, protocol.CLOSE_GOING_AWAY, "replaced"))
        self.by_session.pop(member.session, None)
        member.session, member.node, member.link = op["s"], node, op["link"]
        member.local, member.away_since = node == self.node, None
        self.by_session[member.session] = avatar
        self.presence.append({"event": "back", "member": member.public()})
        if pending is None:
            return actions
        self.by_conn[pending.conn] = avatar
        actions.append(Send((pending.conn,), self._welcome(member)))
        for tour_id, seq in (pending.last_seq or {}).items():
            actions.extend(guiding.catch_up(self, pending.conn, tour_id, seq))
        return actions

    def _apply_away(self, op: Op, now: float) -> list[Action]:
        member = self.members.get(int(op["a"]))
        if member is None or member.node != op["n"] or member.link != op["link"]:
            return []  # resumed elsewhere meanwhile
        member.link, member.away_since = None, float(op["t"])
        self.presence.append({"event": "away", "member": member.public()})
        return []

    def _apply_leave(self, op: Op, now: float) -> list[Action]:
        return self.drop(int(op["a"]), now, str(op.get("why", "left")))

    def drop(self, avatar: int, now: float, reason: str) -> list[Action]:
        member = self.members.get(avatar)
        if member is None:
            return []
        actions: list[Action] = guiding.leave_tour(self, member, now, reason)
        actions.extend(self._booth_change(member, None, now))
        if member.conn is not None and self.by_conn.get(member.conn) == avatar:
            del self.by_conn[member.conn]
        self.by_session.pop(member.session, None)
        del self.members[avatar]
        if avatar in self.poses:
            self.poses.remove(avatar)
        self.presence.append({"event": "leave", "member": member.public()})
        return actions

    def _apply_msg(self, op: Op, now: float) -> list[Action]:
        member = self.members.get(int(op["a"]))
        if member is None:
            return []
        message = protocol.parse_op(op["m"])
        if isinstance(message, protocol.Chat):
            return self._chat(member, message, float(op["t"]))
        if isinstance(message, protocol.React):
            if message.emoji not in protocol.REACTIONS:
                return [error(member.conn, "invalid_message", "unknown reaction", message.ref)]
            sender = {"id": member.id, "name": member.identity.name}
            return [
                Send(self.connections(), {"type": "react", "from": sender, "emoji": message.emoji})
            ]
        return guiding.command(self, member, message, op, now)

    def _chat(self, member: Member, message: protocol.Chat, at: float) -> list[Action]:
        sender = {"id": member.id, "name": member.identity.name}
        out: dict[str, Any] = {"type": "chat", "scope": message.scope, "from": sender}
        if message.scope == "tour":
            tour = self.tours.get(member.tour or "")
            if tour is None:
                return [error(member.conn, "not_in_tour", "join a tour to chat in it", message.ref)]
            out["tour_id"] = tour.id
            to = self.connections(tour.audience())
        else:
            to = self.connections()
        out.update(text=message.text, at=at)
        return [Send(to, out)]

    def _apply_beat(self, op: Op, now: float) -> list[Action]:
        node = int(op["n"])
        if node == self.node:
            return []
        return guiding.reconcile(self, node, op["members"], op["tours"], now)

    def _apply_sync(self, op: Op, now: float) -> list[Action]:
        return self.heartbeat(now) if op["n"] != self.node else []

    # -- heartbeats and poses between nodes ---------------------------------------------------

    def heartbeat(self, now: float) -> list[Action]:
        """This node's members and the tours its guides lead, for the other nodes."""
        members = [m.state() for m in self.members.values() if m.local]
        tours = [t.to_state() for t in self.tours.values() if self._is_local(t.guide)]
        return [
            Publish({"k": "beat", "n": self.node, "t": now, "members": members, "tours": tours})
        ]

    def hello(self, now: float) -> list[Action]:
        """Ask the other nodes of the hall for their heartbeats (a hall starting on this node)."""
        return [Publish({"k": "sync", "n": self.node, "t": now})]

    def export(self) -> bytes:
        """The records of this node's avatars, sent to the other nodes once per tick."""
        return self.poses.export(m.id for m in self.members.values() if m.local)

    def merge(self, node: int, batch: bytes, now: float) -> None:
        """Another node's avatar records; ids that are not its members are dropped."""
        self.node_seen[node] = now
        try:
            merged = self.poses.merge(batch, now)
        except FrameError:
            logger.warning("malformed pose batch from node %s", node)
            return
        for avatar in merged:  # not (yet, or any more) a member here: no avatar either
            if avatar not in self.members and avatar in self.poses:
                self.poses.remove(avatar)

    def hold_nodes(self, now: float) -> None:
        """The bus is down: silence says nothing about the other nodes, so keep their members."""
        for node in self.node_seen:
            self.node_seen[node] = now

    def _is_local(self, avatar: int) -> bool:
        member = self.members.get(avatar)
        return member is not None and member.local

    # -- time --------------------------------------------------------------------------------

    def tick(self, now: float) -> tuple[Frames, list[Action]]:
        """One server tick: expire away members, detect booth visits, plan the pose frames."""
        self.ticks += 1
        actions: list[Action] = []
        limit = now - self.options.resume_seconds
        for member in list(self.members.values()):
            away = member.away_since
            if member.local and away is not None and away <= limit:
                actions.append(self._op("leave", member.id, now, why="timeout"))
        actions.extend(self._forget_nodes(now))
        if now >= self.next_visit_check:
            self.next_visit_check = now + self.options.visit_seconds
            actions.extend(self._visits(now))
        if self.presence:
            actions.append(Send(self.connections(), {"type": "presence", "changes": self.presence}))
            self.presence = []
        return self._frames(), actions

    def _forget_nodes(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for node, seen in list(self.node_seen.items()):
            if now - seen > self.options.node_timeout:
                del self.node_seen[node]
                logger.warning(
                    "node %s of hall %s went quiet; its members leave", node, self.hall_id
                )
                for member in [m for m in self.members.values() if m.node == node]:
                    actions.extend(self.drop(member.id, now, "gone"))
        return actions

    def _frames(self) -> Frames:
        if not self.by_conn:
            return []
        members, tours = self.members, self.tours
        conn_of = {avatar: conn for conn, avatar in self.by_conn.items()}
        guide_of = {tour.id: tour.guide for tour in tours.values()}
        clients = [(a, guide_of.get(members[a].tour or "")) for a in conn_of]
        planned = plan_frames(self.poses, self.ticks, clients, self.options.aoi)
        return [(frame, [conn_of[a] for a in recipients]) for frame, recipients in planned]

    def _visits(self, now: float) -> list[Action]:
        booths = self.info.booths
        local = [m for m in self.members.values() if m.local]
        if not booths or not local:
            return []
        xyz = np.array([self.poses.position(m.id) for m in local], dtype=np.float64)
        margin = self.options.visit_margin
        boxes = np.array([(b.min_x, b.min_z, b.max_x, b.max_z) for b in booths], dtype=np.float64)
        x, z = xyz[:, 0:1], xyz[:, 2:3]
        inside = (
            (x >= boxes[:, 0] - margin)
            & (x <= boxes[:, 2] + margin)
            & (z >= boxes[:, 1] - margin)
            & (z <= boxes[:, 3] + margin)
        )
        where = np.where(inside.any(axis=1), inside.argmax(axis=1), -1)
        actions: list[Action] = []
        for member, index in zip(local, where.tolist(), strict=True):
            booth = booths[index].booth_id if index >= 0 else None
            actions.extend(self._booth_change(member, booth, now))
        return actions

    def _booth_change(self, member: Member, booth: str | None, now: float) -> list[Action]:
        if booth == member.booth or not member.local:
            return []
        who = member.identity
        actions: list[Action] = []
        if member.booth is not None:
            dwell = round(now - member.booth_since, 3)
            actions.append(
                Record("leave", who.subject, who.guest, now, member.booth, None, member.tour, dwell)
            )
        member.booth, member.booth_since = booth, now
        if booth is not None:
            actions.append(Record("enter", who.subject, who.guest, now, booth, None, member.tour))
        return actions

    # -- hall-wide ---------------------------------------------------------------------------

    def broadcast(self, message: dict[str, Any]) -> list[Action]:
        """A hall event from the job system (``booth.updated``) for every connected member."""
        return [Send(self.connections(), message)]

    def set_info(self, info: HallInfo) -> None:
        self.info = info

    def set_schedule(self, tours: Iterable[ScheduledTour]) -> None:
        self.schedule = {tour.id: tour for tour in tours}

    def connections(self, avatars: Iterable[int] | None = None) -> tuple[ConnId, ...]:
        """This node's open connections of ``avatars`` (default: every member)."""
        if avatars is None:
            return tuple(self.by_conn)
        members = self.members
        return tuple(
            conn
            for avatar in avatars
            if (m := members.get(avatar)) is not None and (conn := m.conn) is not None
        )

    def _welcome(self, member: Member) -> dict[str, Any]:
        return {
            "type": "welcome",
            "v": protocol.VERSION,
            "you": {"id": member.id, "name": member.identity.name, "role": member.identity.role},
            "session": member.session,
            "hall_id": self.hall_id,
            "tick_hz": 15,
            "members": [m.public() for m in self.members.values()],
            "tours": [t.snapshot() for t in self.tours.values()],
            "scheduled": [
                {"id": s.id, "title": s.title, "capacity": s.capacity}
                for s in self.schedule.values()
                if s.id not in self.tours
            ],
            "tour_id": member.tour,
            "limits": {
                "message_bytes": protocol.MAX_MESSAGE_BYTES,
                "control_per_second": self.options.control_rate,
                "poses_per_second": self.options.pose_rate,
                "resume_seconds": self.options.resume_seconds,
            },
        }

    def _allocate_id(self) -> int:
        base = self.options.id_base
        while True:
            avatar = self._next_avatar
            self._next_avatar = avatar + 1 if avatar < base + 2**20 - 2 else base
            if avatar not in self.members and avatar not in self.pending:
                return avatar


_APPLY: dict[str, Callable[[HallRoom, Op, float], list[Action]]] = {
    "join": HallRoom._apply_join,
    "resume": HallRoom._apply_resume,
    "away": HallRoom._apply_away,
    "leave": HallRoom._apply_leave,
    "msg": HallRoom._apply_msg,
    "beat": HallRoom._apply_beat,
    "sync": HallRoom._apply_sync,
}
