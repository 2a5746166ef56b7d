"""Wiring of the tour server into the app: the database, blob store, pub/sub and tickets it uses.

``start_tours(settings, sessions, blobs, pubsub)`` is called from the FastAPI lifespan; it builds
the :class:`HallBackend` callables the shell needs and starts the websockets server on
``tours.port``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.db.models import Guide, Hall, Tour, TourStatus
from server.errors import NotFound
from server.processing import hall_topic
from server.pubsub.base import PubSub
from server.scenes import served_manifest
from server.settings import Settings
from server.storage.base import BlobStore
from server.tours.actions import HallInfo, Record, Waypoint
from server.tours.bus import build_bus
from server.tours.room import RoomOptions
from server.tours.shell import HallBackend, HallData, ShellOptions, TourServer
from server.tours.tickets import (
    MemoryTicketLedger,
    RedisTicketLedger,
    TicketClaims,
    TicketLedger,
    redeem_ticket,
)
from server.tours.tour import ScheduledTour
from server.tours.visits import Visit, VisitRecorder

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0


def tours_address(settings: Settings) -> tuple[str, int]:
    """The host and port the tour server listens on."""
    tours = settings.tours
    port = tours.port if tours.port is not None else settings.port + 1
    return tours.host or settings.host, port


def tours_origins(settings: Settings) -> list[str]:
    """The exact Origin values the handshake accepts."""
    if settings.tours.origins:
        return list(settings.tours.origins)
    own = [f"http://127.0.0.1:{settings.port}", f"http://localhost:{settings.port}"]
    return list(dict.fromkeys([*own, *settings.cors_origins]))


def load_hall(sessions: sessionmaker[Session], blobs: BlobStore, hall_id: str) -> HallData | None:
    """The room's data for ``hall_id`` (its manifest and tour schedule), or None: no such hall."""
    key = uuid.UUID(hall_id)
    with sessions() as session:
        hall = session.get(Hall, key)
        if hall is None:
            return None
        try:
            manifest = json.loads(served_manifest(session, blobs, key).body)
            info = HallInfo.from_manifest(manifest)
        except NotFound:  # not published yet: visitors spawn inside the entrance
            info = HallInfo((Waypoint((0.0, 0.0, hall.depth / 2 - 2.0)),))
        rows = session.execute(
            select(Tour, Guide.user_id)
            .join(Guide, Tour.guide_id == Guide.id)
            .where(Tour.hall_id == key, Tour.status.in_([TourStatus.scheduled, TourStatus.live]))
        ).all()
        schedule = tuple(
            ScheduledTour(str(tour.id), tour.title, str(user_id), tour.capacity)
            for tour, user_id in rows
        )
    return HallData(info, schedule)


def set_tour_status(sessions: sessionmaker[Session], tour_id: str, status: TourStatus) -> None:
    """Mark a scheduled tour live or ended in the database (the REST schedule shows it)."""
    with sessions() as session, session.begin():
        tour = session.get(Tour, uuid.UUID(tour_id))
        if tour is not None:
            tour.status = status


@dataclass
class Tours:
    """The running tour server and what it owns."""

    server: TourServer
    recorder: VisitRecorder
    ledger: TicketLedger
    flusher: asyncio.Task[None]
    public_url: str

    async def stop(self) -> None:
        await self.server.stop()
        self.flusher.cancel()
        await asyncio.gather(self.flusher, return_exceptions=True)
        if isinstance(self.ledger, RedisTicketLedger):
            self.ledger.close()


async def start_tours(
    settings: Settings, sessions: sessionmaker[Session], blobs: BlobStore, pubsub: PubSub
) -> Tours:
    """Start the tour websocket server for the app (docs/protocol.md)."""
    tours = settings.tours
    ledger: TicketLedger = (
        RedisTicketLedger(settings.redis_url) if settings.redis_url else MemoryTicketLedger()
    )
    secret = settings.auth.secret_key.get_secret_value().encode()
    recorder = VisitRecorder()

    def redeem(ticket: str, hall_id: str, now: float) -> TicketClaims:
        return redeem_ticket(secret, ledger, ticket, uuid.UUID(hall_id), now)

    def record(hall_id: str, event: Record) -> None:
        try:
            recorder.record(_visit(hall_id, event))
        except ValueError:  # a record the analytics store would refuse: log it, keep serving
            logger.warning("visit event dropped: %r", event)

    def subscribe(hall_id: str) -> Any:
        return pubsub.subscribe(hall_topic(hall_id))

    host, port = tours_address(settings)
    options = ShellOptions(
        host=host,
        port=port,
        origins=tuple(tours_origins(settings)),
        tick_hz=tours.tick_hz,
        send_buffer_bytes=tours.send_buffer_bytes,
        ping_interval=tours.ping_interval,
        ping_timeout=tours.ping_timeout,
        hello_seconds=tours.hello_seconds,
        refresh_seconds=tours.refresh_seconds,
        reuse_port=bool(settings.redis_url) and port != 0,
        room=RoomOptions(capacity=tours.hall_capacity, resume_seconds=tours.resume_seconds),
    )

    def tour_status(tour_id: str, status: str) -> None:
        set_tour_status(sessions, tour_id, TourStatus(status))

    backend = HallBackend(
        lambda hall: load_hall(sessions, blobs, hall), redeem, record, subscribe, tour_status
    )
    server = TourServer(options, backend, build_bus(settings.redis_url))
    await server.start()
    if tours.gc_freeze:
        # docs/benchmarks.md "Tour server": a full collection walks every tracked object; the
        # app's start-up leaves ~100k that live as long as the process, so they are moved out
        # of the collector's sight once, here (they are still freed by reference counting).
        gc.collect()
        gc.freeze()
    public_url = tours.public_url or f"ws://{host}:{server.port}"
    flusher = asyncio.get_running_loop().create_task(_flush(recorder, sessions), name="visits")
    return Tours(server, recorder, ledger, flusher, public_url.rstrip("/"))


async def _flush(recorder: VisitRecorder, sessions: sessionmaker[Session]) -> None:
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        try:
            await asyncio.to_thread(recorder.flush, sessions)
        except Exception:  # a process boundary: the recorder keeps the events for the next try
            logger.exception("could not write visit events")


def _visit(hall_id: str, event: Record) -> Visit:
    return Visit.from_record(uuid.UUID(hall_id), event)
