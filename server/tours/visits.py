"""Booth-visit analytics: the tour server records, a flusher thread writes, exhibitors read.

The tour room reports what visitors do at booths (enter, leave, open a hotspot, a tour stop) as
:class:`Visit` events. :meth:`VisitRecorder.record` only appends to a bounded in-memory buffer,
so the room never waits for the database; the shell calls :meth:`VisitRecorder.flush` every
second from a thread, which writes the buffer in one transaction. Analytics are best effort:
events beyond the buffer's bound are dropped and counted, and so are events whose booth or hall
was deleted before they were written. :func:`booth_summary` is what an exhibitor sees.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from server.db.models import Booth, Hall, VisitEvent, VisitKind
from server.tours.actions import Record

logger = logging.getLogger(__name__)

MAX_PENDING = 10_000
# A batch that fails this many flushes in a row for another reason than an unreachable database
# (which is waited out) is dropped, so that one bad event cannot stop every later one.
MAX_ATTEMPTS = 3
MAX_SUBJECT = 64  # VisitEvent.subject
# Errors that say nothing about the events: the database is down, restarting or busy.
_TRANSIENT = (OperationalError, InterfaceError, PoolTimeoutError)


@dataclass(frozen=True, slots=True, kw_only=True)
class Visit:
    """One thing a visitor did at a booth (see :class:`server.db.models.VisitEvent`).

    Raises:
        ValueError: an empty or over-long subject, a naive ``at``, a negative or non-finite
            ``dwell_seconds``, or a hotspot event without its product.
    """

    hall_id: uuid.UUID
    booth_id: uuid.UUID | None = None
    product_id: uuid.UUID | None = None
    tour_id: uuid.UUID | None = None
    subject: str
    guest: bool
    kind: VisitKind
    at: datetime
    dwell_seconds: float | None = None

    def __post_init__(self) -> None:
        # Checked here, where the caller can be blamed, not at the flush: a row the database
        # refuses would hold back the whole batch it is in.
        if not 0 < len(self.subject) <= MAX_SUBJECT:
            raise ValueError(f"a visit's subject has 1 to {MAX_SUBJECT} characters")
        if self.at.tzinfo is None:
            raise ValueError("a visit's time must be timezone-aware")
        if self.dwell_seconds is not None and not (
            math.isfinite(self.dwell_seconds) and self.dwell_seconds >= 0
        ):
            raise ValueError("dwell_seconds must be a finite, non-negative number")
        if self.kind is VisitKind.hotspot and self.product_id is None:
            raise ValueError("a hotspot visit names its product")

    @classmethod
    def from_record(cls, hall_id: uuid.UUID, record: Record) -> Visit:
        """The visit a room's :class:`~server.tours.actions.Record` action reports.

        Args:
            hall_id: the room's hall.
            record: its ids as strings and ``at`` in unix seconds.

        Returns:
            The event.

        Raises:
            ValueError: an unknown kind, an id that is not a UUID, or what ``Visit`` refuses.
        """

        def optional(value: str | None) -> uuid.UUID | None:
            return None if value is None else uuid.UUID(value)

        try:
            at = datetime.fromtimestamp(record.at, UTC)
        except (OverflowError, OSError) as exc:
            raise ValueError(f"not a time: {record.at!r}") from exc
        return cls(
            hall_id=hall_id,
            booth_id=optional(record.booth_id),
            product_id=optional(record.product_id),
            tour_id=optional(record.tour_id),
            subject=record.subject,
            guest=record.guest,
            kind=VisitKind(record.kind),
            at=at,
            dwell_seconds=record.dwell_seconds,
        )

    def row(self) -> dict[str, Any]:
        """The event as column values of ``visit_events`` (without id and created_at)."""
        return {
            "hall_id": self.hall_id,
            "booth_id": self.booth_id,
            "product_id": self.product_id,
            "tour_id": self.tour_id,
            "subject": self.subject,
            "guest": self.guest,
            "kind": self.kind,
            "at": self.at,
            "dwell_seconds": self.dwell_seconds,
        }


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """Counters since the recorder was made, and what waits for the next flush."""

    pending: int
    written: int
    dropped: int  # the buffer was full
    gone: int  # the booth or hall was deleted first
    failed: int  # dropped after MAX_ATTEMPTS failed flushes


class VisitRecorder:
    """A thread-safe, bounded buffer of :class:`Visit` events and its flush to the database.

    Args:
        max_pending: events buffered at most; more are dropped and counted.
        max_attempts: failed flushes (the database reachable) after which a batch is dropped.
    """

    def __init__(self, max_pending: int = MAX_PENDING, max_attempts: int = MAX_ATTEMPTS) -> None:
        if max_pending < 1 or max_attempts < 1:
            raise ValueError("max_pending and max_attempts must be at least 1")
        self._max_pending = max_pending
        self._max_attempts = max_attempts
        self._lock = threading.Lock()  # guards the buffer and counters; held only briefly
        self._flush_lock = threading.Lock()  # one flush at a time
        self._pending: list[Visit] = []
        self._counts = _Counts()

    def record(self, event: Visit) -> None:
        """Buffer ``event`` for the next flush; never waits for I/O, never raises."""
        with self._lock:
            if len(self._pending) >= self._max_pending:
                self._counts.dropped += 1
                if not self._counts.full:
                    self._counts.full = True
                    logger.warning("visit buffer full (%d): dropping events", self._max_pending)
                return
            self._pending.append(event)

    def flush(self, sessions: sessionmaker[Session]) -> int:
        """Write the buffered events in one transaction.

        Events whose booth or hall no longer exists are dropped (counted as ``gone``). When the
        database fails, the events stay buffered for the next flush, ahead of newer ones and
        within ``max_pending``; see ``max_attempts`` for errors that persist.

        Args:
            sessions: the app's session factory.

        Returns:
            The number of events written.
        """
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return 0
            try:
                written = _write(sessions, batch)
            except _TRANSIENT as exc:
                self._keep(batch, exc, transient=True)
                return 0
            except SQLAlchemyError as exc:
                self._keep(batch, exc, transient=False)
                return 0
            with self._lock:
                if self._counts.outage:
                    logger.info("visit flush: the database answers again")
                self._counts.outage = self._counts.full = False
                self._counts.attempts = 0
                self._counts.written += written
                self._counts.gone += len(batch) - written
            return written

    def stats(self) -> RecorderStats:
        """A snapshot of the counters."""
        with self._lock:
            c = self._counts
            return RecorderStats(len(self._pending), c.written, c.dropped, c.gone, c.failed)

    def _keep(self, batch: list[Visit], exc: SQLAlchemyError, *, transient: bool) -> None:
        with self._lock:
            c = self._counts
            if not transient:
                c.attempts += 1
                if c.attempts >= self._max_attempts:
                    c.attempts = 0
                    c.failed += len(batch)
                    logger.error(
                        "visit flush failed %d times; dropping %d events: %s",
                        self._max_attempts,
                        len(batch),
                        exc,
                    )
                    return
            if not c.outage:
                c.outage = True
                logger.warning("visit flush failed, keeping %d events: %s", len(batch), exc)
            kept = batch + self._pending
            c.dropped += max(0, len(kept) - self._max_pending)
            self._pending = kept[: self._max_pending]


@dataclass
class _Counts:
    written: int = 0
    dropped: int = 0
    gone: int = 0
    failed: int = 0
    attempts: int = 0  # failed flushes in a row, the database reachable
    full: bool = False  # the buffer-full warning was logged (again after a good flush)
    outage: bool = False  # the flush-failed warning was logged


def _write(sessions: sessionmaker[Session], batch: list[Visit]) -> int:
    booth_ids = {event.booth_id for event in batch if event.booth_id is not None}
    hall_ids = {event.hall_id for event in batch}
    with sessions.begin() as session:
        # FOR KEY SHARE (PostgreSQL; SQLite ignores it): a booth or hall cannot be deleted
        # between this check and the insert, which would fail the batch on its foreign key.
        halls = set(
            session.scalars(
                select(Hall.id)
                .where(Hall.id.in_(hall_ids))
                .with_for_update(read=True, key_share=True)
            )
        )
        booths: set[uuid.UUID] = set()
        if booth_ids:
            booths = set(
                session.scalars(
                    select(Booth.id)
                    .where(Booth.id.in_(booth_ids))
                    .with_for_update(read=True, key_share=True)
                )
            )
        rows = [
            event.row()
            for event in batch
            if event.hall_id in halls and (event.booth_id is None or event.booth_id in booths)
        ]
        if rows:
            session.execute(insert(VisitEvent), rows)
    return len(rows)


@dataclass(frozen=True, slots=True)
class BoothVisits:
    """What visitors did at one booth in a time range.

    ``visits`` counts enter events and ``unique_visitors`` their distinct subjects;
    ``mean_dwell_seconds`` is the mean of leave events' dwell (None without any);
    ``hotspot_opens`` counts hotspot events by product; ``tour_visits`` counts tour stops.
    """

    booth_id: uuid.UUID
    visits: int
    unique_visitors: int
    mean_dwell_seconds: float | None
    hotspot_opens: dict[uuid.UUID, int] = field(default_factory=dict)
    tour_visits: int = 0


def booth_summary(
    session: Session,
    booth_id: uuid.UUID,
    since: datetime | None = None,
    until: datetime | None = None,
) -> BoothVisits:
    """Summarise the visit events of ``booth_id`` with ``since <= at < until``.

    Args:
        session: a database session.
        booth_id: the booth (not checked to exist).
        since, until: timezone-aware bounds; None leaves that side open.

    Returns:
        The booth's :class:`BoothVisits`.
    """
    where = [VisitEvent.booth_id == booth_id]
    if since is not None:
        where.append(VisitEvent.at >= since)
    if until is not None:
        where.append(VisitEvent.at < until)
    by_kind = {
        kind: (count, unique, mean)
        for kind, count, unique, mean in session.execute(
            select(
                VisitEvent.kind,
                func.count(),
                func.count(VisitEvent.subject.distinct()),
                func.avg(VisitEvent.dwell_seconds),
            )
            .where(*where)
            .group_by(VisitEvent.kind)
        )
    }
    hotspots = session.execute(
        select(VisitEvent.product_id, func.count())
        .where(*where, VisitEvent.kind == VisitKind.hotspot, VisitEvent.product_id.is_not(None))
        .group_by(VisitEvent.product_id)
    )
    enter = by_kind.get(VisitKind.enter, (0, 0, None))
    mean = by_kind.get(VisitKind.leave, (0, 0, None))[2]
    return BoothVisits(
        booth_id=booth_id,
        visits=enter[0],
        unique_visitors=enter[1],
        mean_dwell_seconds=None if mean is None else float(mean),
        hotspot_opens={product: count for product, count in hotspots if product is not None},
        tour_visits=by_kind.get(VisitKind.tour, (0, 0, None))[0],
    )
