"""The scale-out JobQueue: jobs in Redis through saq, consumed by separate worker processes.

The API process builds a :class:`SaqQueue` and only enqueues; worker processes call
:func:`run_worker` (``python -m server.jobs.worker``) with the real handler. saq keeps one
record per job key, and we use the job id as the key: that gives dedup of waiting ids for free.

What saq does not give, and this module adds:

- *Re-delivery after a crash.* saq sweeps an active job whose heartbeat is older than
  ``heartbeat_seconds`` and queues it again, but it only heartbeats when told to: the job wrapper
  here touches the job every third of that period while the handler runs in a thread.
- *Enqueue while running.* saq refuses a key that is active; the contract says the job runs again
  after the current run. A marker key records that request and the worker enqueues the id again
  once saq has finished the run (``after_process``).
- *A synchronous, thread-safe enqueue.* saq is asyncio-only, so :class:`SaqQueue` runs its own
  event loop in one thread and hands it coroutines.
- *A sweep that spares a job just popped*, and clients configured as saq expects them under
  redis-py 8 (whose range saq's ``redis`` extra does not yet include): see
  :mod:`server.jobs.saq_redis`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.exceptions import RedisError
from saq import Job, Worker
from saq.types import Context

from server import metrics
from server.jobs.queue import JobHandler, JobQueueUnavailable, RetryLater, check_request
from server.jobs.saq_redis import SweptRedisQueue, redis_client

logger = logging.getLogger(__name__)

T = TypeVar("T")

FUNCTION = "pavilion.job"
# The handler counts attempts itself; saq must never give up on a job by its own count.
UNLIMITED_ATTEMPTS = 2**31 - 1
_ENQUEUE_RACE_ATTEMPTS = 10

# Marks a request to run again after the current run. KEYS: saq's incomplete zset, saq's active
# list, our marker, saq's abort key; ARGV: saq job id, due (epoch seconds).
# Returns 0: unknown to saq (enqueue it), 1: marked (True), 2: already waiting (False).
_MARK_RERUN = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
    if redis.call('EXISTS', KEYS[4]) == 1 then return 2 end
    return 0
end
if redis.call('EXISTS', KEYS[3]) == 1 then return 2 end
if not redis.call('LPOS', KEYS[2], ARGV[1]) then return 2 end
redis.call('SET', KEYS[3], ARGV[2])
return 1
"""


@dataclass(frozen=True, slots=True)
class RedisJobOptions:
    """Tuning for the Redis adapter; the defaults suit production.

    Attributes:
        queue_name: the saq queue; API and workers must agree on it.
        heartbeat_seconds: a running job not heard from for this long (its worker died or hangs)
            is delivered again; the wrapper heartbeats every third of it.
        sweep_seconds: how often some worker looks for such jobs (one sweep per period in all).
        job_timeout_seconds: a wall-clock limit per attempt, after which saq cancels and retries
            it; 0 is none (the pipeline enforces its own limits in its worker process).
        stop_timeout_seconds: how long a stopping worker waits for running jobs before it hands
            them back to the queue.
        schedule_seconds: how often delayed jobs are moved to the queue (delays are this rough).
        dequeue_timeout_seconds: how long one blocking pop waits; bounds how fast a stop is seen.
        enqueue_timeout_seconds: how long a synchronous ``enqueue`` waits for Redis.
    """

    queue_name: str = "pavilion-jobs"
    heartbeat_seconds: int = 60
    sweep_seconds: int = 15
    job_timeout_seconds: int = 0
    stop_timeout_seconds: int = 30
    schedule_seconds: int = 1
    dequeue_timeout_seconds: float = 1.0
    enqueue_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.heartbeat_seconds < 3:
            raise ValueError("heartbeat_seconds must be >= 3 (the wrapper beats every third)")
        if min(self.sweep_seconds, self.schedule_seconds) < 1:
            raise ValueError("sweep_seconds and schedule_seconds must be >= 1")
        if self.dequeue_timeout_seconds <= 0:
            raise ValueError("dequeue_timeout_seconds must be > 0 (0 blocks forever)")


class _Broker:
    """The async core shared by the API side and the workers: enqueue with dedup and reruns."""

    def __init__(self, redis_url: str, options: RedisJobOptions) -> None:
        self.options = options
        self.queue = SweptRedisQueue(
            redis_client(redis_url), name=options.queue_name, stuck_after=options.heartbeat_seconds
        )
        self._mark_rerun = self.queue.redis.register_script(_MARK_RERUN)

    def marker_key(self, job_id: str) -> str:
        return self.queue.namespace(f"rerun:{job_id}")

    def new_job(self, job_id: str, delay: float) -> Job:
        return Job(
            function=FUNCTION,
            kwargs={"job_id": job_id},
            key=job_id,
            timeout=self.options.job_timeout_seconds,
            heartbeat=self.options.heartbeat_seconds,
            retries=UNLIMITED_ATTEMPTS,
            ttl=-1,  # drop the record when done: the database keeps the job's state
            # saq's schedule is in whole epoch seconds; round up so a delay is never cut short.
            scheduled=math.ceil(time.time() + delay) if delay > 0 else 0,
        )

    async def enqueue(self, job_id: str, delay: float) -> bool:
        for _ in range(_ENQUEUE_RACE_ATTEMPTS):
            job = self.new_job(job_id, delay)
            if await self.queue.enqueue(job) is not None:
                return True
            # saq refused the key: it is waiting, running, or being swept. Which one decides.
            keys = [
                self.queue.namespace("incomplete"),
                self.queue.namespace("active"),
                self.marker_key(job_id),
                job.abort_id,
            ]
            state = await self._mark_rerun(keys=keys, args=[job.id, time.time() + delay])
            if state != 0:
                return bool(state == 1)
            # It finished between saq's refusal and our look: enqueue again.
        raise JobQueueUnavailable(f"job {job_id} kept changing state while being enqueued")

    async def rerun_if_requested(self, ctx: Context) -> None:
        """saq's ``after_process`` hook: enqueue the job again if that was asked during the run."""
        job = ctx.get("job")
        if job is None:
            return
        # GETDEL before the enqueue: a rerun requested after this read finds the job unknown to
        # saq (finished) and enqueues it itself. Only a crash between the two calls loses it.
        due = await self.queue.redis.getdel(self.marker_key(job.key))
        if due is None:
            return
        try:
            await self.enqueue(job.key, max(0.0, float(due) - time.time()))
        except (RedisError, OSError, JobQueueUnavailable):
            logger.exception(
                "job %s: could not enqueue the rerun asked for during its run", job.key
            )


class _LoopThread:
    """One event loop in a daemon thread, for running coroutines from synchronous callers."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        loop = self._ensure()
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop


class SaqQueue:
    """The API side of the Redis adapter: enqueues; worker processes consume (:func:`run_worker`)."""

    def __init__(self, redis_url: str, *, options: RedisJobOptions | None = None) -> None:
        """Args:
            redis_url: ``redis://[:password@]host:port/db``.
            options: tuning; ``queue_name`` must match the workers'.

        Nothing connects until the first ``enqueue`` or ``start()``.
        """
        self._redis_url = redis_url
        self._options = options or RedisJobOptions()
        self._loop = _LoopThread(f"pavilion-jobs-{self._options.queue_name}")
        self._broker: _Broker | None = None

    def enqueue(self, job_id: str, *, delay_seconds: float = 0.0) -> bool:
        """See :meth:`server.jobs.queue.JobQueue.enqueue`."""
        delay = check_request(job_id, delay_seconds)
        return self._call(self._enqueue(job_id, delay))

    async def start(self) -> None:
        """Connect and check that Redis answers.

        Raises:
            JobQueueUnavailable: Redis did not answer.
        """
        await asyncio.to_thread(self._call, self._ping())

    async def stop(self) -> None:
        """Close the connections; running jobs belong to the workers and are not waited for."""
        await asyncio.to_thread(self._close)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return self._loop.run(coro, self._options.enqueue_timeout_seconds)
        except (RedisError, OSError, concurrent.futures.TimeoutError) as exc:
            raise JobQueueUnavailable(f"the job queue's Redis did not answer: {exc}") from exc

    async def _broker_here(self) -> _Broker:
        # Built inside the loop thread: redis.asyncio connections belong to the loop they run on.
        if self._broker is None:
            self._broker = _Broker(self._redis_url, self._options)
            await self._broker.queue.connect()
        return self._broker

    async def _enqueue(self, job_id: str, delay: float) -> bool:
        return await (await self._broker_here()).enqueue(job_id, delay)

    async def _ping(self) -> None:
        await (await self._broker_here()).queue.redis.ping()

    async def _disconnect(self) -> None:
        if self._broker is not None:
            broker, self._broker = self._broker, None
            await broker.queue.disconnect()

    def _close(self) -> None:
        try:
            self._loop.run(self._disconnect(), self._options.enqueue_timeout_seconds)
        except (RedisError, OSError, concurrent.futures.TimeoutError):
            logger.warning("job queue: closing the Redis connection failed", exc_info=True)
        self._loop.close()


class _Worker(Worker[Context]):
    # The process entry point owns SIGINT/SIGTERM (and an in-test worker must not take them).
    SIGNALS: list[signal.Signals] = []


class _DropRetryTracebacks(logging.Filter):
    """saq logs every exception from a job with its traceback; RetryLater is not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], RetryLater))


async def run_worker(
    handler: JobHandler,
    redis_url: str,
    *,
    concurrency: int = 1,
    stop_event: asyncio.Event | None = None,
    options: RedisJobOptions | None = None,
) -> None:
    """Consume jobs from Redis with ``handler`` until ``stop_event`` is set (or this is cancelled).

    Each job runs in a daemon thread of its own, at most ``concurrency`` at once. On stop, no new job is taken; running jobs
    get ``options.stop_timeout_seconds`` to finish, then are handed back to the queue.

    Args:
        handler: called with each job id; see :data:`server.jobs.queue.JobHandler`.
        redis_url: the Redis the API enqueues into.
        concurrency: how many jobs this process runs at once.
        stop_event: set it to stop gracefully; None runs until cancelled.
        options: tuning; ``queue_name`` must match the API's.

    Raises:
        ValueError: ``concurrency`` is below 1.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, not {concurrency}")
    opts = options or RedisJobOptions()
    broker = _Broker(redis_url, opts)
    worker = _Worker(
        broker.queue,
        [(FUNCTION, _job_function(handler, opts))],
        concurrency=concurrency,
        after_process=broker.rerun_if_requested,
        timers={
            "schedule": opts.schedule_seconds,
            "sweep": opts.sweep_seconds,
            "abort": 1,
            "worker_info": 10,
        },
        dequeue_timeout=opts.dequeue_timeout_seconds,
        shutdown_grace_period_s=opts.stop_timeout_seconds,
    )
    metrics.setup_worker_process()
    quiet = _DropRetryTracebacks()
    logging.getLogger("saq").addFilter(quiet)
    await broker.queue.connect()
    logger.info("job worker started: queue=%s concurrency=%d", opts.queue_name, concurrency)
    try:
        await _serve(worker, stop_event)
    finally:
        try:
            await broker.queue.disconnect()
        except (RedisError, OSError):
            logger.warning("job worker: closing the Redis connection failed", exc_info=True)
        logging.getLogger("saq").removeFilter(quiet)
        logger.info("job worker stopped: queue=%s", opts.queue_name)


async def _serve(worker: _Worker, stop_event: asyncio.Event | None) -> None:
    started = asyncio.create_task(worker.start())
    try:
        if stop_event is None:
            await asyncio.shield(started)
            return
        stopping = asyncio.create_task(stop_event.wait())
        await asyncio.wait({started, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
    finally:
        _begin_stop(worker)
        await started


def _begin_stop(worker: _Worker) -> None:
    """Take no new jobs and end the upkeep loops now, so that stopping waits only for jobs.

    saq's upkeep loops sleep up to a timer period (the sweep's is seconds) before they look at
    the stop event, and saq's stop waits for them with the grace period meant for jobs. Job
    tasks are named "process"; the rest are upkeep. Set the event first: an upkeep loop swallows
    a cancellation that arrives while the event is clear.
    """
    worker.event.set()
    for task in list(worker.tasks):
        if task.get_name() != "process":
            task.cancel()


def _job_function(handler: JobHandler, options: RedisJobOptions) -> Any:
    beat = options.heartbeat_seconds / 3

    async def perform(ctx: Context, *, job_id: str) -> None:
        job = ctx["job"]
        # A sweep retries with the stored retry_delay: clear the one a RetryLater left behind.
        job.retry_delay = 0.0
        await _heartbeat(job)
        call = _call_in_thread(handler, job_id)
        while not (await asyncio.wait({call}, timeout=beat))[0]:
            await _heartbeat(job)
        try:
            call.result()
        except RetryLater as retry:
            logger.info("job %s retries in %.1f s: %s", job_id, retry.delay_seconds, retry.reason)
            job.retry_delay = retry.delay_seconds
            raise  # saq re-queues it with job.retry_delay, in one transaction
        except Exception:
            # A process boundary: the handler records its own failures; log and keep consuming.
            logger.exception("job %s raised; delivery dropped", job_id)

    return perform


def _call_in_thread(handler: JobHandler, job_id: str) -> asyncio.Future[None]:
    """Run ``handler(job_id)`` in a new daemon thread; the future settles when it returns.

    Not a ThreadPoolExecutor: the interpreter joins those threads at exit, so a handler stuck
    past the stop timeout would keep the worker process alive. saq's ``concurrency`` already
    bounds how many run at once.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if future.done():  # cancelled by saq (stop timeout, job timeout)
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    def target() -> None:
        error: BaseException | None = None
        try:
            handler(job_id)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            error = exc
        # RuntimeError: the worker's loop is closed, the process is exiting.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=target, name=f"pavilion-job-{job_id}", daemon=True).start()
    return future


async def _heartbeat(job: Job) -> None:
    try:
        await job.update()
    except (RedisError, OSError):
        # A missed beat is harmless until heartbeat_seconds pass; failing the job is not.
        logger.warning("job %s: heartbeat failed", job.key, exc_info=True)
