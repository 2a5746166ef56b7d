"""Processing uploads: one job per content hash, run in the pipeline sandbox, then the booth.

    accept_upload (a route, in the request's transaction)
      -> Job(sha256) queued (or reused: the same bytes are processed once)
      -> JobQueue.enqueue(job id)                       (after the commit)
    process_job (a worker thread or an arq worker)
      -> running: the raw bytes -> pipeline.sandbox (limits) -> assets/<sha256>/... (report last)
      -> the assets with these bytes: ready (or failed with the sandbox's code)
      -> publish each affected booth's hall (server.scenes) -> "booth.updated" on hall:<id>
      -> succeeded

State lives in the database (``Job``, ``ProductAsset.status``), so any worker can pick up any
job and a job survives the worker that ran it: a running job's heartbeat is refreshed while it
runs, and :func:`reap` queues again the jobs whose heartbeat went stale (their worker died).
A job queued again while it runs (the same bytes uploaded meanwhile) does not end succeeded:
the run the queue delivers next does (queues run an id enqueued during its run once more).
Transient faults (a crashed child, the S3 server or the validator unavailable) are retried with
exponential backoff up to ``MAX_ATTEMPTS``; a refusal or a limit is final: the same bytes would
fail the same way.

Progress goes to the ``Job`` row (step, percent; throttled) and to the pubsub topic
``job:<id>``, which the SSE endpoint relays; ``booth.updated`` goes to ``hall:<hall id>``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pipeline.sandbox import SandboxError, SandboxLimits, convert_in_sandbox
from server import metrics
from server.db.models import AssetStatus, Booth, Job, JobState, ProductAsset, utcnow
from server.errors import BlobNotFound, Conflict, ExpoError, StorageError
from server.jobs import RetryLater
from server.scenes import PublishError, has_outputs, publish_booth, store_outputs
from server.storage.base import BlobStore

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 4
BACKOFF_SECONDS = (2.0, 8.0, 30.0)
HEARTBEAT_SECONDS = 5.0
STALE_AFTER = timedelta(seconds=60)
PROGRESS_EVERY_SECONDS = 0.5
PUBLISH_RACES = 5  # lost in a row to other publishes of the hall before the job retries later

Publish = Callable[[str, dict[str, Any]], None]
# Codes of faults of the machine, not of the file: a later attempt may succeed.
RETRYABLE_CODES = frozenset(
    {"crashed", "validator_unavailable", "storage_unavailable", "storage_error", "publish_conflict"}
)


def job_topic(job_id: uuid.UUID | str) -> str:
    return f"job:{job_id}"


def hall_topic(hall_id: uuid.UUID | str) -> str:
    return f"hall:{hall_id}"


def job_public(job: Job) -> dict[str, Any]:
    """What the REST API and the progress events say about a job."""
    return {
        "id": str(job.id),
        "state": job.state.value,
        "step": job.step,
        "percent": job.percent,
        "attempts": job.attempts,
        "error_code": job.error_code,
        "error_message": job.error_message,
        "updated_at": job.updated_at.isoformat(),
    }


def accept_upload(session: Session, asset: ProductAsset) -> Job | None:
    """Attach a stored, checked upload to the job for its bytes; returns the job to enqueue.

    Called in the request's transaction after ``asset`` (with ``sha256`` and ``blob_key``) was
    added. Returns ``None`` when nothing needs to run (the same bytes failed for good before:
    the asset fails with the same code at once).
    """
    if asset.sha256 is None:
        raise ValueError("an asset needs its sha256 before it is processed")
    job = session.scalar(select(Job).where(Job.sha256 == asset.sha256))
    asset.status = AssetStatus.processing
    if job is None:
        created = _create_job(session, asset.sha256)
        if created is not None:
            return created
        # A concurrent upload of the same bytes committed the job first: join it.
        job = session.scalars(select(Job).where(Job.sha256 == asset.sha256)).one()
    if job.state == JobState.failed and job.error_code not in RETRYABLE_CODES:
        asset.status = AssetStatus.failed  # the same bytes would fail the same way
        asset.error_code = job.error_code
        return None
    if job.state in (JobState.succeeded, JobState.failed):
        # Processed before (or failed transiently): run again, with every attempt; the outputs
        # are reused.
        job.state, job.step, job.percent, job.attempts = JobState.queued, "queued", 0, 0
        job.updated_at = utcnow()
    elif job.state == JobState.running:
        # The run may be past marking these bytes' assets ready: queued, the job runs again
        # after it (the caller enqueues it; that run does not end as succeeded, see _run).
        job.state, job.updated_at = JobState.queued, utcnow()
    return job


def _create_job(session: Session, sha: str) -> Job | None:
    """A new job for ``sha``, or None when another transaction committed one first.

    ``jobs.sha256`` is unique: of two uploads of the same bytes at once, the second INSERT
    fails (on PostgreSQL it waits for the first transaction, then fails). A savepoint keeps the
    request's transaction usable, so that upload joins the job instead of failing.
    """
    session.flush()  # the asset's changes: an error from them is not this race
    try:
        with session.begin_nested():
            job = Job(sha256=sha)
            session.add(job)
    except IntegrityError:
        return None
    return job


@dataclass
class Processor:
    """Runs jobs; built once per worker process with its adapters."""

    sessions: sessionmaker[Session]
    blobs: BlobStore
    publish: Publish
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    worker: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    def __call__(self, job_id: str) -> None:
        """The queue's handler: process one job (see the module docstring)."""
        process_job(self, uuid.UUID(job_id))


def process_job(processor: Processor, job_id: uuid.UUID) -> None:
    """Process job ``job_id``; raises :class:`~server.jobs.RetryLater` to be run again later."""
    with processor.sessions() as session:
        job = session.get(Job, job_id)
        if job is None or job.state in (JobState.succeeded, JobState.failed):
            return  # deleted, or a duplicate delivery of a finished job
        job.state, job.step, job.percent = JobState.running, "starting", 0
        job.attempts += 1
        job.worker, job.started_at = processor.worker, utcnow()
        job.heartbeat_at = job.updated_at = utcnow()
        job.error_code = job.error_message = None
        session.commit()
        sha, attempt = job.sha256, job.attempts
    processor.publish(job_topic(job_id), {"type": "job.progress", "step": "starting", "percent": 0})
    started = time.perf_counter()
    try:
        with _heartbeat(processor, job_id):
            _run(processor, job_id, sha)
    except SandboxError as exc:
        _fail_or_retry(processor, job_id, exc.code, exc.message, attempt, retryable=exc.retryable)
    except (StorageError, OSError) as exc:  # the blob store (S3 or disk) failed: transient
        _fail_or_retry(processor, job_id, "storage_unavailable", str(exc), attempt, retryable=True)
    except Conflict as exc:  # another publish of the hall won the race: publish again
        _fail_or_retry(processor, job_id, exc.code, exc.message, attempt, retryable=True)
    finally:
        metrics.JOB_SECONDS.observe(time.perf_counter() - started)


def _run(processor: Processor, job_id: uuid.UUID, sha: str) -> None:
    if not has_outputs(processor.blobs, sha):
        data = _raw_bytes(processor, sha)
        progress = _Progress(processor, job_id)
        result = convert_in_sandbox(
            data, options={"validate": True}, limits=processor.limits, progress=progress
        )
        _set_step(processor, job_id, "storing", 85)
        store_outputs(processor.blobs, sha, result.files)
    _set_step(processor, job_id, "publishing", 90)
    booths = _mark_ready(processor, sha)
    for booth_id in booths:
        _publish_booth(processor, booth_id)
    with processor.sessions() as session:
        done = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.running)
            .values(
                state=JobState.succeeded,
                step="done",
                percent=100,
                finished_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        session.commit()
    if cast(CursorResult[Any], done).rowcount != 1:
        # Queued again while it ran (accept_upload, reap): the run that follows finishes it.
        logger.info("job %s was queued again while it ran; it runs again", job_id)
        return
    processor.publish(job_topic(job_id), {"type": "job.done", "state": "succeeded", "percent": 100})


def _raw_bytes(processor: Processor, sha: str) -> bytes:
    with processor.sessions() as session:
        keys = session.scalars(
            select(ProductAsset.blob_key).where(
                ProductAsset.sha256 == sha, ProductAsset.blob_key.is_not(None)
            )
        ).all()
    for key in keys:
        if key is None:
            continue
        try:
            return processor.blobs.get(key)
        except BlobNotFound:
            continue
    raise SandboxError("upload_missing", "the uploaded file is no longer stored")


def _mark_ready(processor: Processor, sha: str) -> list[uuid.UUID]:
    """Every asset with these bytes becomes ready; returns the booths of all of them.

    All of them, not only those that waited: an earlier attempt may have marked them ready and
    then failed to publish (S3 down, a lost race, its worker killed); this one publishes.
    """
    with processor.sessions() as session:
        assets = session.scalars(select(ProductAsset).where(ProductAsset.sha256 == sha)).all()
        booths = sorted({a.booth_id for a in assets})
        for asset in assets:
            if asset.status != AssetStatus.ready:
                asset.status, asset.error_code = AssetStatus.ready, None
        session.commit()
    return booths


def republish_booth(
    sessions: sessionmaker[Session], blobs: BlobStore, publish: Publish, booth_id: uuid.UUID
) -> None:
    """Rebuild a booth whose branding changed, publish its hall and announce ``booth.updated``.

    Run after the change is committed (a background task of the PATCH); failures are logged,
    never raised: the next publish of the hall picks the change up anyway.
    """
    try:
        _publish_booth(Processor(sessions, blobs, publish), booth_id)
    except (ExpoError, SandboxError) as exc:
        logger.warning("booth %s not republished after its change: %s", booth_id, exc)


def _publish_booth(processor: Processor, booth_id: uuid.UUID) -> None:
    """Publish the booth's hall; a race lost to another publish of the hall is run again at once.

    Every job publishes its booth's whole hall, so uploads to one hall race; the winner made
    progress, and the next try starts from its version. After ``PUBLISH_RACES`` lost races in a
    row the Conflict goes up and the job retries later.
    """
    for race in range(1, PUBLISH_RACES + 1):
        try:
            _publish_once(processor, booth_id)
            return
        except Conflict:
            if race == PUBLISH_RACES:
                raise
            logger.info("booth %s: publish race %d lost; publishing again", booth_id, race)


def _publish_once(processor: Processor, booth_id: uuid.UUID) -> None:
    with processor.sessions() as session:
        booth = session.get(Booth, booth_id)
        if booth is None:
            return
        hall_id = booth.hall_id
        try:
            result = publish_booth(session, processor.blobs, booth_id)
        except PublishError as exc:
            if exc.status >= 500:
                raise SandboxError("storage_unavailable", exc.message, retryable=True) from exc
            # The booth cannot be built (a bad logo...): the upload itself is fine and ready.
            logger.warning("booth %s not republished: %s: %s", booth_id, exc.code, exc.message)
            return
        session.commit()
    processor.publish(
        hall_topic(hall_id),
        {
            "type": "booth.updated",
            "hall_id": str(hall_id),
            "booth_id": str(booth_id),
            "manifest_version": result.version,
        },
    )


def _fail_or_retry(
    processor: Processor,
    job_id: uuid.UUID,
    code: str,
    message: str,
    attempt: int,
    *,
    retryable: bool,
) -> None:
    if retryable and attempt < MAX_ATTEMPTS:
        metrics.JOB_RETRIES.labels(code=code).inc()
        delay = BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)]
        logger.warning(
            "job %s attempt %d: %s (%s); retrying in %.0f s", job_id, attempt, code, message, delay
        )
        with processor.sessions() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    state=JobState.queued,
                    step="waiting to retry",
                    error_code=code,
                    error_message=message[:500],
                    updated_at=utcnow(),
                )
            )
            session.commit()
        processor.publish(
            job_topic(job_id), {"type": "job.progress", "step": "waiting to retry", "percent": 0}
        )
        raise RetryLater(delay, f"{code}: {message}")
    logger.info("job %s failed: %s: %s", job_id, code, message)
    metrics.JOB_FAILURES.labels(code=code).inc()
    with processor.sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            return
        job.state, job.step = JobState.failed, "failed"
        job.error_code, job.error_message = code, message[:500]
        job.finished_at = job.updated_at = utcnow()
        for asset in session.scalars(
            select(ProductAsset).where(
                ProductAsset.sha256 == job.sha256, ProductAsset.status != AssetStatus.ready
            )
        ):
            asset.status, asset.error_code = AssetStatus.failed, code
        session.commit()
    processor.publish(
        job_topic(job_id),
        {"type": "job.done", "state": "failed", "error_code": code, "error_message": message},
    )


def _set_step(processor: Processor, job_id: uuid.UUID, step: str, percent: int) -> None:
    with processor.sessions() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(step=step, percent=percent, heartbeat_at=utcnow(), updated_at=utcnow())
        )
        session.commit()
    processor.publish(job_topic(job_id), {"type": "job.progress", "step": step, "percent": percent})


class _Progress:
    """The sandbox's progress (0..1 of the conversion) as 5..85 % of the job, throttled."""

    def __init__(self, processor: Processor, job_id: uuid.UUID) -> None:
        self.processor, self.job_id = processor, job_id
        self.last = 0.0

    def __call__(self, step: str, fraction: float) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_SECONDS and fraction < 1.0:
            return
        self.last = now
        # The pipeline's last step is "done"; the job still stores and publishes after it.
        name = "converted" if step == "done" else step
        _set_step(self.processor, self.job_id, name, 5 + round(80 * max(0.0, min(1.0, fraction))))


@contextmanager
def _heartbeat(processor: Processor, job_id: uuid.UUID) -> Iterator[None]:
    """Refresh the job's heartbeat every few seconds while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                with processor.sessions() as session:
                    session.execute(
                        update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow())
                    )
                    session.commit()
            except Exception:  # the database is away: the next beat tries again
                logger.warning("job %s: heartbeat failed", job_id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=HEARTBEAT_SECONDS)


def reap(session: Session, *, now: datetime | None = None) -> list[uuid.UUID]:
    """Queue again the running jobs whose worker stopped beating; returns their ids.

    The caller commits and enqueues the ids (a job's worker died: SIGKILL, OOM, a lost machine).
    """
    now = now or utcnow()
    stale = session.scalars(
        select(Job).where(Job.state == JobState.running, Job.heartbeat_at < now - STALE_AFTER)
    ).all()
    for job in stale:
        logger.warning("job %s: worker %s stopped beating; queued again", job.id, job.worker)
        job.state, job.step, job.updated_at = JobState.queued, "queued", now
    return [job.id for job in stale]


def waiting(session: Session) -> list[uuid.UUID]:
    """Every queued job: what an in-process queue must enqueue again after a restart."""
    return list(session.scalars(select(Job.id).where(Job.state == JobState.queued)).all())
