"""The visit recorder (buffer, flush, failures) and the booth summary, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, select, text
from sqlalchemy.orm import Session, sessionmaker

from server.db.models import (
    Booth,
    BoothSlot,
    BoothTemplate,
    Expo,
    Hall,
    Organisation,
    VisitEvent,
    VisitKind,
)
from server.db.session import build_engine, session_factory
from server.settings import DatabaseSettings
from server.tours.actions import Record
from server.tours.visits import MAX_PENDING, Visit, VisitRecorder, booth_summary

T0 = datetime(2030, 5, 1, 10, 0, tzinfo=UTC)


@dataclass
class Floor:
    sessions: sessionmaker[Session]
    hall_id: uuid.UUID
    booth_ids: list[uuid.UUID]


@pytest.fixture
def floor(database_url: str) -> Iterator[Floor]:
    """A migrated database (each kind) holding one hall with two booths."""
    engine = build_engine(DatabaseSettings(url=database_url))
    sessions = session_factory(engine)
    with sessions.begin() as session:
        hall = Hall(expo=Expo(slug="expo", name="Expo"), name="A", width=40, depth=30)
        session.add(hall)
        session.flush()
        booths = [
            Booth(
                slot=BoothSlot(
                    hall_id=hall.id,
                    number=f"A{n}",
                    template=BoothTemplate.shell,
                    width=3,
                    depth=3,
                    x=n * 4,
                    z=0,
                ),
                hall_id=hall.id,
                organisation=Organisation(name=f"Org {n}", country="FR"),
                fascia_name=f"Booth {n}",
            )
            for n in range(2)
        ]
        session.add_all(booths)
        session.flush()
        result = Floor(sessions, hall.id, [booth.id for booth in booths])
    yield result
    engine.dispose()


def visit(
    floor: Floor, kind: VisitKind = VisitKind.enter, booth: int | None = 0, **fields: object
) -> Visit:
    values: dict[str, object] = {
        "hall_id": floor.hall_id,
        "booth_id": None if booth is None else floor.booth_ids[booth],
        "subject": "guest:1",
        "guest": True,
        "kind": kind,
        "at": T0,
    }
    values.update(fields)
    return Visit(**values)  # type: ignore[arg-type]


def stored(floor: Floor) -> list[VisitEvent]:
    with floor.sessions() as session:
        return list(session.scalars(select(VisitEvent).order_by(VisitEvent.at)))


def unreachable(tmp_path: Path) -> sessionmaker[Session]:
    """Sessions on a database that cannot be opened: its directory is a regular file."""
    (tmp_path / "not-a-dir").write_text("")
    return sessionmaker(create_engine(f"sqlite:///{tmp_path / 'not-a-dir' / 'x.db'}"))


def test_flushed_visits_are_stored_as_recorded(floor: Floor) -> None:
    product, tour = uuid.uuid4(), uuid.uuid4()
    events = [
        visit(floor, VisitKind.enter, subject=str(uuid.uuid4()), guest=False),
        visit(floor, VisitKind.hotspot, product_id=product, at=T0 + timedelta(seconds=5)),
        visit(floor, VisitKind.leave, at=T0 + timedelta(seconds=9), dwell_seconds=8.5),
        visit(floor, VisitKind.tour, booth=1, tour_id=tour, at=T0 + timedelta(seconds=20)),
        visit(floor, VisitKind.enter, booth=None, at=T0 + timedelta(seconds=30)),
    ]
    recorder = VisitRecorder()
    for event in events:
        recorder.record(event)

    assert recorder.flush(floor.sessions) == len(events)

    rows = stored(floor)
    assert [
        Visit(
            hall_id=r.hall_id,
            booth_id=r.booth_id,
            product_id=r.product_id,
            tour_id=r.tour_id,
            subject=r.subject,
            guest=r.guest,
            kind=r.kind,
            at=r.at,
            dwell_seconds=r.dwell_seconds,
        )
        for r in rows
    ] == events
    assert len({r.id for r in rows}) == len(events)
    assert recorder.stats().written == len(events)
    assert recorder.stats().pending == 0
    assert recorder.flush(floor.sessions) == 0


def test_events_stay_buffered_while_the_database_is_unreachable_and_are_written_later(
    floor: Floor, tmp_path: Path
) -> None:
    recorder = VisitRecorder()
    first = [visit(floor, subject=f"early {n}") for n in range(3)]
    for event in first:
        recorder.record(event)

    assert recorder.flush(unreachable(tmp_path)) == 0
    assert recorder.flush(unreachable(tmp_path)) == 0  # waited out, however long
    later = visit(floor, subject="late", at=T0 + timedelta(seconds=1))
    recorder.record(later)
    assert recorder.stats().pending == 4

    assert recorder.flush(floor.sessions) == 4
    assert sorted(r.subject for r in stored(floor)) == sorted(e.subject for e in [*first, later])
    assert recorder.stats().failed == 0


def test_events_of_a_deleted_booth_or_hall_are_dropped_and_the_rest_written(floor: Floor) -> None:
    recorder = VisitRecorder()
    recorder.record(visit(floor, booth=0, subject="kept"))
    recorder.record(visit(floor, booth=1, subject="booth gone"))
    recorder.record(visit(floor, booth=1, kind=VisitKind.leave, dwell_seconds=3, subject="gone"))
    recorder.record(visit(floor, booth=None, hall_id=uuid.uuid4(), subject="hall gone"))
    with floor.sessions.begin() as session:
        session.execute(delete(Booth).where(Booth.id == floor.booth_ids[1]))

    assert recorder.flush(floor.sessions) == 1

    assert [r.subject for r in stored(floor)] == ["kept"]
    stats = recorder.stats()
    assert (stats.written, stats.gone, stats.pending) == (1, 3, 0)


def test_the_buffer_drops_and_counts_what_arrives_beyond_ten_thousand(floor: Floor) -> None:
    recorder = VisitRecorder()
    event = visit(floor)
    for _ in range(MAX_PENDING + 7):
        recorder.record(event)

    stats = recorder.stats()
    assert MAX_PENDING == 10_000
    assert (stats.pending, stats.dropped) == (MAX_PENDING, 7)


def test_events_kept_after_a_failed_flush_come_first_and_stay_within_the_bound(
    floor: Floor, tmp_path: Path
) -> None:
    recorder = VisitRecorder(max_pending=5)
    for n in range(4):
        recorder.record(visit(floor, subject=f"old {n}", at=T0 + timedelta(seconds=n)))
    failing = unreachable(tmp_path)
    recorder.flush(failing)
    for n in range(3):
        recorder.record(visit(floor, subject=f"new {n}", at=T0 + timedelta(seconds=10 + n)))

    assert (recorder.stats().pending, recorder.stats().dropped) == (5, 2)
    assert recorder.flush(floor.sessions) == 5
    assert [r.subject for r in stored(floor)] == ["old 0", "old 1", "old 2", "old 3", "new 0"]


def test_a_batch_the_database_keeps_refusing_is_dropped_after_three_attempts(
    floor: Floor,
) -> None:
    with floor.sessions.begin() as session:
        session.execute(
            text(
                "CREATE TRIGGER refuse_visits BEFORE INSERT ON visit_events "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
            if session.bind is not None and session.bind.dialect.name == "sqlite"
            else text(
                "ALTER TABLE visit_events ADD CONSTRAINT refuse_visits CHECK (subject <> 'x')"
            )
        )
    recorder = VisitRecorder()
    recorder.record(visit(floor, subject="x"))
    recorder.record(visit(floor, subject="x"))

    assert [recorder.flush(floor.sessions) for _ in range(2)] == [0, 0]
    assert recorder.stats().pending == 2
    assert recorder.flush(floor.sessions) == 0

    stats = recorder.stats()
    assert (stats.pending, stats.failed, stats.written) == (0, 2, 0)


def test_events_recorded_by_many_threads_during_flushes_are_all_written_once(
    floor: Floor,
) -> None:
    recorder = VisitRecorder()
    stop = threading.Event()
    written: list[int] = []

    def flusher() -> None:
        while not stop.is_set():
            written.append(recorder.flush(floor.sessions))
        written.append(recorder.flush(floor.sessions))

    def producer(n: int) -> None:
        for i in range(250):
            recorder.record(visit(floor, subject=f"t{n}-{i}"))

    flushing = threading.Thread(target=flusher)
    flushing.start()
    producers = [threading.Thread(target=producer, args=(n,)) for n in range(4)]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join()
    stop.set()
    flushing.join(timeout=60)

    subjects = [r.subject for r in stored(floor)]
    assert sum(written) == len(subjects) == 1000
    assert len(set(subjects)) == 1000


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": ""},
        {"subject": "s" * 65},
        {"at": datetime(2030, 1, 1)},  # naive on purpose
        {"dwell_seconds": -1.0},
        {"dwell_seconds": float("nan")},
        {"kind": VisitKind.hotspot, "product_id": None},
    ],
    ids=["empty subject", "long subject", "naive time", "negative dwell", "nan dwell", "hotspot"],
)
def test_a_visit_the_database_would_refuse_cannot_be_made(fields: dict[str, object]) -> None:
    values: dict[str, object] = {
        "hall_id": uuid.uuid4(),
        "subject": "guest:1",
        "guest": True,
        "kind": VisitKind.enter,
        "at": T0,
    }
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        Visit(**(values | fields))  # type: ignore[arg-type]


def test_a_rooms_record_becomes_a_visit() -> None:
    hall, booth, product = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    record = Record(
        kind="hotspot",
        subject="guest:abc",
        guest=True,
        at=T0.timestamp() + 0.25,
        booth_id=str(booth),
        product_id=str(product),
    )

    event = Visit.from_record(hall, record)

    assert event == Visit(
        hall_id=hall,
        booth_id=booth,
        product_id=product,
        subject="guest:abc",
        guest=True,
        kind=VisitKind.hotspot,
        at=T0 + timedelta(seconds=0.25),
    )


@pytest.mark.parametrize(
    "change", [{"kind": "wander"}, {"booth_id": "booth-1"}, {"at": float("inf")}]
)
def test_a_malformed_record_is_refused(change: dict[str, object]) -> None:
    values: dict[str, object] = {"kind": "enter", "subject": "u", "guest": False, "at": 1.0}
    with pytest.raises(ValueError):  # noqa: PT011
        Visit.from_record(uuid.uuid4(), Record(**(values | change)))  # type: ignore[arg-type]


def test_the_summary_counts_from_since_up_to_but_not_including_until(floor: Floor) -> None:
    recorder = VisitRecorder()
    for minute, subject in enumerate(["a", "b", "a", "c"]):
        recorder.record(visit(floor, subject=subject, at=T0 + timedelta(minutes=minute)))
    recorder.flush(floor.sessions)

    with floor.sessions() as session:
        everything = booth_summary(session, floor.booth_ids[0])
        window = booth_summary(
            session,
            floor.booth_ids[0],
            since=T0 + timedelta(minutes=1),
            until=T0 + timedelta(minutes=3),
        )
        other = booth_summary(session, floor.booth_ids[1])

    assert (everything.visits, everything.unique_visitors) == (4, 3)
    assert (window.visits, window.unique_visitors) == (2, 2)  # minutes 1 and 2: b and a
    assert (other.visits, other.mean_dwell_seconds, other.hotspot_opens) == (0, None, {})
