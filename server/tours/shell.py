"""The websocket shell around the sans-I/O hall rooms: handshake, auth, I/O, ticks and timers.

It runs on the ``websockets`` library's own asyncio server (docs/protocol.md explains why not a
FastAPI route): the library checks the Origin allowlist (exact match) and the 64 KiB message cap,
never negotiates compression and pings every ``ping_interval``. This module adds the rest:

- ``hello`` within ``hello_seconds``, with a single-use ticket (server.tours.tickets) or a resume
  token; nothing of the hall is sent before it;
- one :class:`HallRuntime` per live hall: its :class:`HallRoom`, the 15 Hz tick task, the
  ``hall:<id>`` pub/sub subscription (``booth.updated``) and the periodic refresh of the hall's
  manifest and tour schedule;
- sends that never wait: every message goes out through ``websockets.broadcast`` (one encoding,
  written to each socket without awaiting it); a connection whose unsent bytes exceed
  ``send_buffer_bytes`` is closed with 4008 ``slow``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Origin

from server import metrics
from server.tours import protocol
from server.tours.actions import (
    Action,
    Close,
    ConnId,
    HallInfo,
    Identity,
    Publish,
    Record,
    Send,
    TourStatus,
)
from server.tours.bus import LocalBus, RedisBus
from server.tours.room import HallRoom, RoomOptions
from server.tours.tickets import TicketClaims, TicketError, TicketUnavailable
from server.tours.tour import ScheduledTour

logger = logging.getLogger(__name__)

_PATH = re.compile(r"^/ws/halls/([0-9a-fA-F-]{36})/?$")
IDLE_HALL_SECONDS = 60.0
HEARTBEAT_SECONDS = 2.0
SWEEP_SECONDS = 0.25  # how often slow clients are looked for


@dataclass(frozen=True, slots=True)
class ShellOptions:
    host: str = "127.0.0.1"
    port: int = 0
    origins: tuple[str, ...] = ()
    tick_hz: float = 15.0
    send_buffer_bytes: int = 256 * 1024
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    hello_seconds: float = 10.0
    refresh_seconds: float = 30.0
    # Several processes on one port (``serve --workers N`` with Redis): the kernel spreads the
    # connections and the Redis bus joins their halls.
    reuse_port: bool = False
    room: RoomOptions = field(default_factory=RoomOptions)


@dataclass(frozen=True, slots=True)
class HallData:
    """What the shell loads for a hall from the database and blob store."""

    info: HallInfo
    schedule: tuple[ScheduledTour, ...]


class HallBackend:
    """The I/O a hall needs, as plain callables (the app wires the database and blob store).

    Attributes:
        load: ``hall_id -> HallData``, or None when there is no such hall. Called in a thread.
        redeem: ``(ticket, hall_id, now) -> TicketClaims``; raises TicketError. Called in a thread.
        record: ``(hall_id, Record) -> None``: buffers a visit event; must not block.
        subscribe: ``hall_id -> async context manager iterating (topic, message)``, or None.
        tour_status: ``(tour_id, status) -> None``: a scheduled tour went live or ended. Called
            in a thread.
    """

    def __init__(
        self,
        load: Callable[[str], HallData | None],
        redeem: Callable[[str, str, float], TicketClaims],
        record: Callable[[str, Record], None] = lambda hall, event: None,
        subscribe: Callable[[str], Any] | None = None,
        tour_status: Callable[[str, str], None] = lambda tour, status: None,
    ) -> None:
        self.load = load
        self.redeem = redeem
        self.record = record
        self.subscribe = subscribe
        self.tour_status = tour_status


class TourServer:
    """The tour websocket server; ``async with TourServer(...)`` or ``start``/``stop``."""

    def __init__(
        self, options: ShellOptions, backend: HallBackend, bus: LocalBus | RedisBus | None = None
    ) -> None:
        self.options = options
        self.backend = backend
        self.bus = bus or LocalBus()
        self.halls: dict[str, HallRuntime] = {}
        self.connections: dict[ConnId, ServerConnection] = {}
        self._next_conn = 0
        self._server: Server | None = None
        self._opening: dict[str, asyncio.Future[HallRuntime | None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.slow_closed = 0

    @property
    def port(self) -> int:
        assert self._server is not None
        sockname = next(iter(self._server.sockets)).getsockname()
        return int(sockname[1])

    async def start(self) -> None:
        opts = self.options
        await self.bus.start()
        self._server = await serve(
            self._handle,
            opts.host,
            opts.port,
            # exact matches only; a missing Origin is refused
            origins=[Origin(origin) for origin in opts.origins],
            process_request=_check_path,
            max_size=protocol.MAX_MESSAGE_BYTES,
            max_queue=64,
            compression=None,
            ping_interval=opts.ping_interval,
            ping_timeout=opts.ping_timeout,
            close_timeout=2,
            reuse_port=opts.reuse_port,
        )
        self.spawn(self._sweeper())
        logger.info("tour server listening on %s:%s", opts.host, self.port)

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self.sweep_slow()

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        for hall in list(self.halls.values()):
            await hall.stop()
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
            self._server = None
        await self.bus.stop()

    async def __aenter__(self) -> TourServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- one connection ----------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        with metrics.TOUR_CONNECTIONS.track_inprogress():
            await self._serve(connection)

    async def _serve(self, connection: ServerConnection) -> None:
        path = connection.request.path if connection.request else ""
        match = _PATH.match(path.split("?", 1)[0])
        assert match is not None  # _check_path refused every other path
        hall_id = match.group(1).lower()
        joined = await self._hello(connection, hall_id)
        if joined is None:
            return
        hall, conn = joined
        loop = asyncio.get_running_loop()
        try:
            async for message in connection:
                hall.apply(hall.room.receive(conn, message, loop.time()))
        except ConnectionClosed:
            pass
        finally:
            self.connections.pop(conn, None)
            hall.apply(hall.room.disconnect(conn, loop.time()))

    async def _hello(
        self, connection: ServerConnection, hall_id: str
    ) -> tuple[HallRuntime, ConnId] | None:
        try:
            raw = await asyncio.wait_for(connection.recv(), self.options.hello_seconds)
            hello = protocol.parse(raw)
        except (TimeoutError, ConnectionClosed, protocol.InvalidMessage):
            await connection.close(protocol.CLOSE_UNAUTHORISED, "hello expected")
            return None
        if not isinstance(hello, protocol.Hello) or not (hello.ticket or hello.resume):
            await connection.close(protocol.CLOSE_UNAUTHORISED, "hello expected")
            return None
        if hello.v != protocol.VERSION:
            await connection.close(protocol.CLOSE_VERSION, "protocol version not supported")
            return None
        loop = asyncio.get_running_loop()
        identity: Identity | None = None
        if hello.ticket:
            try:
                claims = await asyncio.to_thread(
                    self.backend.redeem, hello.ticket, hall_id, time.time()
                )
            except TicketError as exc:
                await connection.close(protocol.CLOSE_UNAUTHORISED, exc.code)
                return None
            except TicketUnavailable:
                await connection.close(protocol.CLOSE_TRY_AGAIN, "tickets_unavailable")
                return None
            identity = Identity(claims.subject, claims.display_name, claims.role, claims.guest)
        hall = await self._hall(hall_id, create=identity is not None)
        if hall is None:
            code = protocol.CLOSE_NO_HALL if identity else protocol.CLOSE_UNAUTHORISED
            await connection.close(code, "no such hall" if identity else "resume_expired")
            return None
        conn = self._next_conn = self._next_conn + 1
        self.connections[conn] = connection
        session = secrets.token_urlsafe(24)
        now = loop.time()
        if identity is not None:
            actions = hall.room.join(conn, identity, session, now)
        else:
            last = {str(tour): seq for tour, seq in hello.last_seq.items()}
            actions = hall.room.resume(conn, hello.resume or "", session, last, now)
        refusal = next((a for a in actions if isinstance(a, Close) and a.conn == conn), None)
        if refusal is not None:  # hall full, resume expired
            self.connections.pop(conn, None)
            await connection.close(refusal.code, refusal.reason)  # before the handler's 1000
            return None
        hall.apply(actions)  # the join or resume op: the welcome follows when it is applied
        return hall, conn

    async def _hall(self, hall_id: str, create: bool) -> HallRuntime | None:
        hall = self.halls.get(hall_id)
        if hall is not None or not create:
            return hall
        pending = self._opening.get(hall_id)
        if pending is not None:
            return await pending
        future: asyncio.Future[HallRuntime | None] = asyncio.get_running_loop().create_future()
        self._opening[hall_id] = future
        try:
            data = await asyncio.to_thread(self.backend.load, hall_id)
            hall = None if data is None else HallRuntime(self, hall_id, data)
            if hall is not None:
                self.halls[hall_id] = hall
                await hall.start()
            future.set_result(hall)
            return hall
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            del self._opening[hall_id]

    # -- sending -----------------------------------------------------------------------------

    def send(self, conns: Iterable[ConnId], data: str | bytes) -> None:
        """Write ``data`` to ``conns`` without waiting (``sweep_slow`` closes those not reading)."""
        connections = self.connections
        targets = [c for conn in conns if (c := connections.get(conn)) is not None]
        if targets:
            broadcast(targets, data)

    def sweep_slow(self) -> None:
        """Close every connection with more than ``send_buffer_bytes`` unsent (4008 ``slow``).

        Run a few times a second: between two sweeps a client can fall behind by a few frames
        at most, so the bound holds within a few KB.
        """
        limit = self.options.send_buffer_bytes
        for conn, connection in list(self.connections.items()):
            if connection.transport.get_write_buffer_size() > limit:
                self._close_slow(conn, connection)

    def _close_slow(self, conn: ConnId, connection: ServerConnection) -> None:
        self.connections.pop(conn, None)
        self.slow_closed += 1
        logger.info("closing slow connection %s", conn, extra={"conn_id": conn})
        # The close frame sits behind the unread data; close_timeout then aborts the transport.
        self.spawn(connection.close(protocol.CLOSE_SLOW, "slow"))

    def spawn(self, work: Any) -> None:
        """Run ``work`` in the background, keeping a reference and logging its failure."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("tour server background work failed", exc_info=task.exception())

    def retire(self, hall: HallRuntime) -> None:
        """Stop a hall nobody has been in for a minute (from its own tick task)."""
        self.halls.pop(hall.hall_id, None)
        for task in hall.tasks:
            if task is not asyncio.current_task():
                task.cancel()

    def close(self, conn: ConnId, code: int, reason: str) -> None:
        connection = self.connections.pop(conn, None)
        if connection is not None:
            self.spawn(connection.close(code, reason))


class HallRuntime:
    """One live hall: its room, tick loop, pub/sub relay and refresh timer."""

    def __init__(self, server: TourServer, hall_id: str, data: HallData) -> None:
        self.server = server
        self.hall_id = hall_id
        options = dataclasses.replace(server.options.room, node=server.bus.node)
        self.room = HallRoom(hall_id, data.info, options)
        self.bus = server.bus
        self.room.set_schedule(data.schedule)
        self.tasks: list[asyncio.Task[None]] = []
        self.tick_seconds: list[float] = []
        self.subscribed = asyncio.Event()

    async def start(self) -> None:
        """Start ticking; returns once the hall's pub/sub subscription listens (at most 2 s)."""
        loop = asyncio.get_running_loop()
        await self.bus.attach(self.hall_id, self)
        self.apply(self.room.hello(loop.time()) if self.bus.distributed else [])
        self.tasks.append(loop.create_task(self._ticks(), name=f"tick-{self.hall_id}"))
        self.tasks.append(loop.create_task(self._refresh(), name=f"refresh-{self.hall_id}"))
        if self.server.backend.subscribe is not None:
            self.tasks.append(loop.create_task(self._relay(), name=f"relay-{self.hall_id}"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.subscribed.wait(), 2.0)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        self.server.halls.pop(self.hall_id, None)
        await self.bus.detach(self.hall_id)

    # -- the bus's callbacks (bus.HallLink) ---------------------------------------------------

    def on_op(self, op: dict[str, Any]) -> None:
        self.apply(self.room.apply(op, asyncio.get_running_loop().time()))

    def on_poses(self, node: int, batch: bytes) -> None:
        self.room.merge(node, batch, asyncio.get_running_loop().time())

    def on_reconnect(self) -> None:
        now = asyncio.get_running_loop().time()
        self.apply([*self.room.heartbeat(now), *self.room.hello(now)])

    def apply(self, actions: Iterable[Action]) -> None:
        """Perform the room's actions in order."""
        server = self.server
        for action in actions:
            if isinstance(action, Send):
                if action.to:
                    server.send(action.to, _encode(action.message))
            elif isinstance(action, Publish):
                self.bus.publish_op(self.hall_id, dict(action.op))
            elif isinstance(action, Close):
                server.close(action.conn, action.code, action.reason)
            elif isinstance(action, TourStatus):
                server.spawn(
                    asyncio.to_thread(server.backend.tour_status, action.tour_id, action.status)
                )
            else:
                server.backend.record(self.hall_id, action)

    async def _ticks(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.server.options.tick_hz
        deadline = loop.time()
        next_beat = deadline + HEARTBEAT_SECONDS
        idle_since: float | None = None
        while True:
            deadline += period
            now = loop.time()
            if deadline < now:  # overran: skip the missed ticks rather than bunch them
                deadline = now + period
            await asyncio.sleep(deadline - now)
            started = time.perf_counter()
            now = loop.time()
            frames, actions = self.room.tick(now)
            for frame, conns in frames:
                self.server.send(conns, frame)
            metrics.TOUR_FRAME_BYTES.inc(sum(len(frame) * len(conns) for frame, conns in frames))
            self.apply(actions)
            if self.bus.distributed:
                if not self.bus.connected:
                    self.room.hold_nodes(now)
                self.bus.publish_poses(self.hall_id, self.room.export())
                if now >= next_beat:
                    next_beat = now + HEARTBEAT_SECONDS
                    beat = self.room.heartbeat(now)
                    self.apply(beat)
                    self.bus.save_tours(self.hall_id, _owned(beat))
            elapsed = time.perf_counter() - started
            self.tick_seconds.append(elapsed)
            metrics.TOUR_TICK_SECONDS.observe(elapsed)
            if len(self.tick_seconds) > 1000:
                del self.tick_seconds[:500]
            if self.room.members:
                idle_since = None
            elif idle_since is None:
                idle_since = loop.time()
            elif loop.time() - idle_since > IDLE_HALL_SECONDS:
                self.server.retire(self)
                return

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.server.options.refresh_seconds)
            await self.reload()

    async def reload(self) -> None:
        """Re-read the hall's manifest and tour schedule (after a publish, or periodically)."""
        try:
            data = await asyncio.to_thread(self.server.backend.load, self.hall_id)
        except Exception:  # a process boundary: log, keep the old data, retry next time
            logger.exception(
                "could not refresh hall %s", self.hall_id, extra={"hall_id": self.hall_id}
            )
            return
        if data is not None:
            self.room.set_info(data.info)
            self.room.set_schedule(data.schedule)

    async def _relay(self) -> None:
        subscribe = self.server.backend.subscribe
        assert subscribe is not None
        async with subscribe(self.hall_id) as subscription:
            self.subscribed.set()
            async for _topic, message in subscription:
                if message.get("type") == "booth.updated":
                    await self.reload()
                self.apply(self.room.broadcast(message))


def _owned(beat: list[Action]) -> list[dict[str, Any]]:
    return [state for a in beat if isinstance(a, Publish) for state in a.op.get("tours", [])]


def _encode(message: Any) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _check_path(connection: ServerConnection, request: Request) -> Response | None:
    path = request.path.split("?", 1)[0]
    match = _PATH.match(path)
    if match is None:
        return connection.respond(HTTPStatus.NOT_FOUND, "no such endpoint\n")
    try:
        uuid.UUID(match.group(1))
    except ValueError:
        return connection.respond(HTTPStatus.NOT_FOUND, "no such hall\n")
    return None
