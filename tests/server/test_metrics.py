"""server/metrics.py: the Prometheus endpoint's values move when things happen; JSON log lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from pipeline.sandbox import SandboxLimits
from server import metrics
from server.db.models import Job, JobState
from server.errors import StorageError
from server.jobs import RetryLater
from server.processing import Processor, process_job
from server.tours.actions import HallInfo, Waypoint
from server.tours.shell import HallBackend, HallData, HallRuntime, ShellOptions, TourServer
from tests.factories import World
from tests.server.tours.wsclient import Peer, guest_headers, ticket

# The in-process app is enough here; PostgreSQL adds nothing to what is counted.
sqlite_app = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def scrape(client: TestClient) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return response.text


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` with ``labels``; 0 when there are none."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def add_job(sessions: sessionmaker[Session], state: JobState) -> uuid.UUID:
    with sessions() as session, session.begin():
        job = Job(sha256=uuid.uuid4().hex * 2, state=state)
        session.add(job)
        session.flush()
        return job.id


@sqlite_app
def test_the_queue_depth_and_running_jobs_are_read_from_the_database_at_each_scrape(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    before = scrape(client)
    add_job(sessions, JobState.queued)
    add_job(sessions, JobState.queued)
    add_job(sessions, JobState.running)
    add_job(sessions, JobState.failed)
    after = scrape(client)
    assert value(after, "pavilion_job_queue_depth") == value(before, "pavilion_job_queue_depth") + 2
    assert value(after, "pavilion_jobs_running") == value(before, "pavilion_jobs_running") + 1


@sqlite_app
def test_the_metrics_endpoint_is_not_in_the_api_schema(client: TestClient) -> None:
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


@sqlite_app
def test_tour_connections_ticks_and_frame_bytes_move_while_a_visitor_is_in_a_hall(
    client: TestClient, world: World
) -> None:
    hall = str(world.hall["id"])
    before = scrape(client)

    async def visit() -> tuple[str, str]:
        ticket_, url = ticket(client, guest_headers(client, "Ana"), hall)
        ana = await Peer.join(url, {"ticket": ticket_})
        await ana.move(1.0, 2.0)
        await ana.wait_frame(lambda frame: any(p.id == ana.me for p in frame.near))
        during = scrape(client)
        await ana.close()
        await asyncio.sleep(0.2)  # the server's side of the socket closes
        return during, scrape(client)

    during, after = asyncio.run(visit())
    connections = "pavilion_tour_connections"
    assert value(during, connections) == value(before, connections) + 1
    assert value(after, connections) == value(before, connections)
    ticks = "pavilion_tour_tick_seconds_count"
    assert value(during, ticks) > value(before, ticks)
    sent = "pavilion_tour_frame_bytes_total"
    assert value(during, sent) >= value(before, sent) + 8 + 24  # a header and one avatar


class _BlobsAway:
    """A blob store whose server does not answer."""

    def head(self, key: str) -> Any:
        raise StorageError("the store is away")


@sqlite_app
def test_a_job_that_fails_for_good_counts_its_code_and_its_duration(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    state: Any = client.app.state  # type: ignore[attr-defined]
    processor = Processor(sessions, state.blobs, lambda topic, message: None, SandboxLimits())
    # Scraped before the job exists: the app's own reaper may pick a queued job up as well.
    before = scrape(client)
    job_id = add_job(sessions, JobState.queued)  # no asset holds its bytes: upload_missing
    process_job(processor, job_id)
    after = scrape(client)
    failures = "pavilion_job_failures_total"
    assert value(after, failures, code="upload_missing") >= (
        value(before, failures, code="upload_missing") + 1
    )
    durations = "pavilion_job_duration_seconds_count"
    assert value(after, durations) >= value(before, durations) + 1


@sqlite_app
def test_a_job_that_will_retry_counts_a_retry_not_a_failure(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    processor = Processor(sessions, _BlobsAway(), lambda topic, message: None)  # type: ignore[arg-type]
    job_id = add_job(sessions, JobState.queued)
    before = scrape(client)
    with pytest.raises(RetryLater):
        process_job(processor, job_id)
    after = scrape(client)
    code = "storage_unavailable"
    retries, failures = "pavilion_job_retries_total", "pavilion_job_failures_total"
    assert value(after, retries, code=code) == value(before, retries, code=code) + 1
    assert value(after, failures, code=code) == value(before, failures, code=code)
    durations = "pavilion_job_duration_seconds_count"
    assert value(after, durations) == value(before, durations) + 1


# -- logs ------------------------------------------------------------------------------------


def _record(**extra: Any) -> logging.LogRecord:
    record = logging.getLogger("server.tours.shell").makeRecord(
        "server.tours.shell", logging.INFO, __file__, 1, "closing slow connection %s", (7,), None
    )
    record.__dict__.update(extra)
    return record


def test_a_json_log_line_carries_the_message_and_the_tour_ids() -> None:
    hall = uuid.uuid4()
    line = metrics.JsonFormatter().format(_record(conn_id=7, hall_id=hall))
    entry = json.loads(line)
    assert entry["message"] == "closing slow connection 7"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "server.tours.shell"
    assert entry["conn_id"] == 7
    assert entry["hall_id"] == str(hall)
    assert entry["time"].endswith("+00:00")
    assert "\n" not in line


def test_a_json_log_line_keeps_a_traceback_in_one_line_and_drops_uvicorns_colours() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), exc_info=__import__("sys").exc_info()
        )
    record.color_message = "\x1b[31mfailed\x1b[0m"
    line = metrics.JsonFormatter().format(record)
    entry = json.loads(line)
    assert "ValueError: boom" in entry["exc"]
    assert "color_message" not in entry
    assert "\n" not in line


@pytest.fixture
def restored_logging() -> Iterator[None]:
    names = ("", "uvicorn", "uvicorn.access")
    saved = {name: list(logging.getLogger(name).handlers) for name in names}
    formatters = {id(h): h.formatter for hs in saved.values() for h in hs}
    yield
    for name, handlers in saved.items():
        logging.getLogger(name).handlers[:] = handlers
        for handler in handlers:
            handler.setFormatter(formatters[id(handler)])


@pytest.mark.usefixtures("restored_logging")
def test_json_format_switches_the_root_and_uvicorn_handlers_and_text_leaves_them() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    access = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(handler)
    logging.getLogger("uvicorn.access").addHandler(access)
    metrics.configure_logging("text")
    assert not isinstance(handler.formatter, metrics.JsonFormatter)
    metrics.configure_logging("json")
    assert isinstance(handler.formatter, metrics.JsonFormatter)
    assert isinstance(access.formatter, metrics.JsonFormatter)
    logging.getLogger("server.test").warning("hall %s", "h1", extra={"hall_id": "h1"})
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry == {**entry, "message": "hall h1", "hall_id": "h1", "level": "WARNING"}


def test_the_log_format_comes_from_pavilion_log_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAVILION_LOG_FORMAT", raising=False)
    assert metrics.ObservabilitySettings().log_format == "text"
    monkeypatch.setenv("PAVILION_LOG_FORMAT", "json")
    assert metrics.ObservabilitySettings().log_format == "json"
    monkeypatch.setenv("PAVILION_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError):
        metrics.ObservabilitySettings()


def test_a_hall_that_cannot_refresh_logs_its_hall_id(caplog: pytest.LogCaptureFixture) -> None:
    hall_id = str(uuid.uuid4())

    def load(hall: str) -> HallData:
        raise RuntimeError("the database is away")

    server = TourServer(ShellOptions(), HallBackend(load, lambda *args: None))  # type: ignore[arg-type]
    hall = HallRuntime(server, hall_id, HallData(HallInfo((Waypoint((0.0, 0.0, 0.0)),)), ()))
    with caplog.at_level(logging.ERROR, logger="server.tours.shell"):
        asyncio.run(hall.reload())
    [record] = caplog.records
    entry = json.loads(metrics.JsonFormatter().format(record))
    assert entry["hall_id"] == hall_id
    assert "the database is away" in entry["exc"]
