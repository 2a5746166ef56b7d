"""The API process's background work: the job queue, and the reaper that keeps jobs moving.

Embedded (no Redis): jobs run on threads of this process, each conversion in its sandboxed
child. With Redis: this process only enqueues; ``python -m server worker`` processes run the
jobs (:func:`run_worker`). Either way the reaper runs here, every ``jobs.reaper_seconds``:

* a running job whose heartbeat went stale (its worker died) is queued again (``reap``);
* a queued job not touched for a while is enqueued again: its enqueue may have been lost (the
  process stopped between the commit and the enqueue, or Redis was away). Enqueueing is
  deduplicated by job id, so this never runs a job twice at once.

At startup every queued job is enqueued again (the in-process queue forgets on restart).
Every ``jobs.janitor_seconds`` the uploads janitor runs too (expired sessions, orphaned raw
uploads, incomplete S3 multipart uploads older than ``limits.upload_grace_hours``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from pipeline.sandbox import SandboxLimits
from server.db.models import Job, JobState, utcnow
from server.janitor import sweep_uploads
from server.jobs import JobQueue, JobQueueUnavailable, RedisJobOptions, build_job_queue
from server.jobs import run_worker as run_saq_worker
from server.processing import Processor, reap
from server.pubsub.base import PubSub
from server.settings import Settings
from server.storage.base import BlobStore
from server.uploads import Staging, staging_directory

logger = logging.getLogger(__name__)

LOST_ENQUEUE_AFTER = timedelta(minutes=2)  # longer than the longest retry backoff


def processor_for(
    settings: Settings, sessions: sessionmaker[Session], blobs: BlobStore, pubsub: PubSub
) -> Processor:
    """The job handler with this deployment's adapters and sandbox limits."""
    limits = SandboxLimits(
        memory_bytes=settings.jobs.sandbox_memory_bytes,
        cpu_seconds=settings.jobs.sandbox_cpu_seconds,
        wall_seconds=settings.jobs.sandbox_wall_seconds,
    )
    return Processor(sessions, blobs, pubsub.publish, limits)


def redis_options(settings: Settings) -> RedisJobOptions:
    return RedisJobOptions(
        queue_name=settings.jobs.redis_queue,
        heartbeat_seconds=settings.jobs.redis_heartbeat_seconds,
    )


@dataclass
class Background:
    queue: JobQueue
    tasks: list[asyncio.Task[None]]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.queue.stop()


async def start_background(
    settings: Settings, sessions: sessionmaker[Session], blobs: BlobStore, pubsub: PubSub
) -> Background:
    """Build and start the queue, re-enqueue what waits, start the reaper."""
    processor = processor_for(settings, sessions, blobs, pubsub)
    queue = build_job_queue(
        processor,
        settings.redis_url,
        workers=settings.jobs.workers,
        options=redis_options(settings),
    )
    try:
        await queue.start()
    except JobQueueUnavailable as exc:
        # Redis is down: serve anyway (readiness says so); enqueues fail with 503 until it is
        # back, and the reaper enqueues what waits once it is.
        logger.warning("job queue unavailable at startup: %s", exc)
    # The first sweep (every queued job) runs on the reaper's task: a database that is down at
    # startup must not stop the API from starting (readiness reports it), the sweep just waits.
    tasks = [asyncio.create_task(_reap_forever(sessions, queue, settings.jobs.reaper_seconds))]
    if settings.jobs.janitor_seconds > 0:
        tasks.append(asyncio.create_task(_janitor_forever(settings, sessions, blobs)))
    return Background(queue, tasks)


def sweep(sessions: sessionmaker[Session], queue: JobQueue, *, startup: bool = False) -> int:
    """One reaper pass; returns how many jobs were enqueued again."""
    with sessions() as session:
        revived = reap(session)
        cutoff = utcnow() - LOST_ENQUEUE_AFTER
        stmt = select(Job.id).where(Job.state == JobState.queued)
        if not startup:
            stmt = stmt.where(Job.updated_at < cutoff)
        ids = sorted(set(revived) | set(session.scalars(stmt).all()))
        session.commit()
    for job_id in ids:
        queue.enqueue(str(job_id))
    if ids:
        logger.info("reaper: enqueued %d job(s) again", len(ids))
    return len(ids)


async def _reap_forever(sessions: sessionmaker[Session], queue: JobQueue, period: float) -> None:
    started = False  # the startup sweep enqueues every queued job, whatever its age
    while True:
        try:
            await run_in_threadpool(sweep, sessions, queue, startup=not started)
            started = True
        except Exception:  # a process boundary: log and try again next period
            logger.exception("reaper pass failed")
        await asyncio.sleep(period)


async def _janitor_forever(
    settings: Settings, sessions: sessionmaker[Session], blobs: BlobStore
) -> None:
    staging = Staging(staging_directory(settings))
    grace = timedelta(hours=settings.limits.upload_grace_hours)
    while True:
        await asyncio.sleep(settings.jobs.janitor_seconds)
        try:
            result = await run_in_threadpool(sweep_uploads, sessions, blobs, staging, grace=grace)
            logger.info("janitor: %s", result.as_dict())
        except Exception:  # a process boundary: log and try again next period
            logger.exception("janitor pass failed")


WORKER_ALIVE_FILE = Path(tempfile.gettempdir()) / "pavilion-worker.alive"
ALIVE_SECONDS = 10.0


async def run_worker(
    settings: Settings,
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    pubsub: PubSub,
    stop: asyncio.Event,
    *,
    alive_file: Path | None = WORKER_ALIVE_FILE,
) -> None:
    """A worker process's main loop (``python -m server worker``): needs Redis.

    While its event loop runs it touches ``alive_file`` every ``ALIVE_SECONDS`` (the container
    healthcheck reads the file's age: a wedged loop turns the worker unhealthy).
    """
    if not settings.redis_url:
        raise ValueError(
            "a separate worker needs PAVILION_REDIS_URL (embedded jobs run in the API)"
        )
    processor = processor_for(settings, sessions, blobs, pubsub)
    beating = asyncio.create_task(_touch_forever(alive_file)) if alive_file else None
    try:
        await run_saq_worker(
            processor,
            settings.redis_url,
            concurrency=settings.jobs.workers,
            stop_event=stop,
            options=redis_options(settings),
        )
    finally:
        if beating is not None:
            beating.cancel()


async def _touch_forever(path: Path) -> None:
    while True:
        with contextlib.suppress(OSError):
            path.touch()
        await asyncio.sleep(ALIVE_SECONDS)
