"""Jobs: the :class:`JobQueue` port and its two adapters.

- :class:`InProcessQueue`: the embedded default, threads in the API process.
- :class:`SaqQueue` + :func:`run_worker`: jobs in Redis (saq), consumed by separate worker
  processes (``python -m server.jobs.worker``).

:func:`build_job_queue` picks one from the Redis URL; the app builds it in its lifespan.
"""

from __future__ import annotations

from server.jobs.inprocess import InProcessQueue
from server.jobs.queue import JobHandler, JobQueue, JobQueueUnavailable, RetryLater
from server.jobs.saq_queue import RedisJobOptions, SaqQueue, run_worker

__all__ = [
    "InProcessQueue",
    "JobHandler",
    "JobQueue",
    "JobQueueUnavailable",
    "RedisJobOptions",
    "RetryLater",
    "SaqQueue",
    "build_job_queue",
    "run_worker",
]


def build_job_queue(
    handler: JobHandler,
    redis_url: str | None,
    *,
    workers: int = 1,
    options: RedisJobOptions | None = None,
) -> JobQueue:
    """The adapter for this deployment: in-process without Redis, else Redis via saq.

    Args:
        handler: the job handler; the in-process queue runs it, the Redis one leaves it to
            the worker processes (which call :func:`run_worker` with the same handler).
        redis_url: ``settings.redis_url``; None keeps jobs in this process.
        workers: threads of the in-process queue.
        options: the Redis adapter's tuning.

    Returns:
        A queue that is not started yet: call ``await queue.start()`` in the lifespan.
    """
    if redis_url is None:
        return InProcessQueue(handler, workers=workers)
    return SaqQueue(redis_url, options=options)
