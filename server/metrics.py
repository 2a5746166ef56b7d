"""Observability: Prometheus metrics and structured (JSON) logs, per process.

The metrics live in prometheus_client's default registry (with its process and GC collectors):

| metric | type | moves when |
|---|---|---|
| ``pavilion_tour_connections`` | gauge | a tour websocket opens or closes (server/tours/shell.py) |
| ``pavilion_tour_tick_seconds`` | histogram | a hall ticks: plans its pose frames and hands them out |
| ``pavilion_tour_frame_bytes_total`` | counter | pose frames are handed to sockets (bytes x recipients) |
| ``pavilion_job_duration_seconds`` | histogram | a job attempt ends, however (server/processing.py) |
| ``pavilion_job_failures_total{code}`` | counter | a job fails for good |
| ``pavilion_job_retries_total{code}`` | counter | an attempt fails transiently and the job waits to retry |
| ``pavilion_job_queue_depth`` | gauge | read from the database (jobs ``queued``) at each scrape |
| ``pavilion_jobs_running`` | gauge | read from the database (jobs ``running``) at each scrape |

The API serves them at ``GET /metrics`` on its own port; the reverse proxy never routes that path
(docs/operations.md, "Metrics and logs"). A worker process has no HTTP server: with
``PAVILION_METRICS_PORT`` set it serves its metrics (the job histograms and counters) there.
Each process counts its own: scrape every replica, never one process through a balancer.

Logs: with ``PAVILION_LOG_FORMAT=json`` every handler of the root and uvicorn loggers writes one
JSON object per line: ``time``, ``level``, ``logger``, ``message``, the record's extra fields
(``conn_id`` and ``hall_id`` from the tour server, ...) and ``exc`` for a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from server.db.models import Job, JobState

logger = logging.getLogger(__name__)

TOUR_CONNECTIONS = Gauge("pavilion_tour_connections", "Open tour websockets on this process.")
# A tick has 1/15 s; the buckets resolve the range where a hall is healthy (< 10 ms) and show
# the ticks that eat the whole period.
TOUR_TICK_SECONDS = Histogram(
    "pavilion_tour_tick_seconds",
    "Time one hall tick takes: expire, plan the pose frames, hand them to the sockets.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
TOUR_FRAME_BYTES = Counter(
    "pavilion_tour_frame_bytes", "Bytes of pose frames handed to sockets (frame size x recipients)."
)
JOB_SECONDS = Histogram(
    "pavilion_job_duration_seconds",
    "Wall time of one job attempt (convert, store, publish), whatever its outcome.",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
JOB_FAILURES = Counter("pavilion_job_failures", "Jobs failed for good, by error code.", ["code"])
JOB_RETRIES = Counter(
    "pavilion_job_retries", "Job attempts that failed transiently and will retry.", ["code"]
)
JOB_QUEUE_DEPTH = Gauge("pavilion_job_queue_depth", "Jobs waiting to run (database state).")
JOBS_RUNNING = Gauge("pavilion_jobs_running", "Jobs running on some worker (database state).")

LogFormat = Literal["text", "json"]


class ObservabilitySettings(BaseSettings):
    """``PAVILION_LOG_FORMAT``, ``PAVILION_METRICS_HOST`` and ``PAVILION_METRICS_PORT``.

    Read by the process entry points (the app, a worker) when they start, beside
    :class:`server.settings.Settings`, which ignores these names.
    """

    model_config = SettingsConfigDict(env_prefix="PAVILION_", extra="ignore")

    log_format: LogFormat = "text"
    # A worker's metrics listener; None: none. (The API serves /metrics on its own port.)
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)


# What every LogRecord has; anything else on a record came in through ``extra=``.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# uvicorn passes a coloured copy of its message as an extra.
_SKIPPED_FIELDS = frozenset({"color_message"})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, extras, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as one line of JSON.

        Args:
            record: the log record; its ``extra=`` fields become top-level keys.

        Returns:
            The JSON text, without a newline (the handler adds it).
        """
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in _SKIPPED_FIELDS:
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(log_format: LogFormat) -> None:
    """Switch the process's log handlers to JSON lines when ``log_format`` is ``json``.

    The root logger's handlers and uvicorn's own (which do not propagate) get a
    :class:`JsonFormatter`; a root logger without handlers gets one on stderr. ``text`` leaves
    the handlers as configured. Calling it again changes nothing more.

    Args:
        log_format: ``text`` or ``json``.
    """
    if log_format != "json":
        return
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    for name in ("", "uvicorn", "uvicorn.access"):
        for handler in logging.getLogger(name).handlers:
            if not isinstance(handler.formatter, JsonFormatter):
                handler.setFormatter(JsonFormatter())


_worker_listener: tuple[str, int] | None = None


def setup_worker_process() -> None:
    """A worker's observability: the log format, and its metrics listener when configured.

    Idempotent: a second call in the same process starts no second listener.
    """
    global _worker_listener  # one listener per process
    settings = ObservabilitySettings()
    configure_logging(settings.log_format)
    if settings.metrics_port is None or _worker_listener is not None:
        return
    server, _thread = start_http_server(settings.metrics_port, addr=settings.metrics_host)
    _worker_listener = (settings.metrics_host, int(server.server_port))
    logger.info("metrics on http://%s:%d/metrics", *_worker_listener)


def update_job_gauges(sessions: sessionmaker[Session]) -> None:
    """Set the queue-depth and running gauges from the database's job rows.

    The database, not the broker, is the record of what waits: it counts the same with the
    in-process queue and with Redis, and includes jobs waiting out a retry backoff. When the
    database does not answer the gauges keep their last values (logged).

    Args:
        sessions: the app's session factory.
    """
    counted = (JobState.queued, JobState.running)
    try:
        with sessions() as session:
            rows = session.execute(
                select(Job.state, func.count()).where(Job.state.in_(counted)).group_by(Job.state)
            ).all()
    except SQLAlchemyError as exc:
        logger.warning("metrics: job counts unavailable: %s", exc.__class__.__name__)
        return
    found = {state: int(count) for state, count in rows}
    JOB_QUEUE_DEPTH.set(found.get(JobState.queued, 0))
    JOBS_RUNNING.set(found.get(JobState.running, 0))


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus metrics of this process (internal: the reverse proxy does not route it)."""
    update_job_gauges(request.app.state.sessions)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
