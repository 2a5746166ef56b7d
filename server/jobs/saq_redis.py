"""saq's Redis queue, with the sweep of stuck jobs made safe for our workers.

saq 0.26.4 sweeps (aborts, then queues again) every job in its active list that is not marked
active, and every active job past its heartbeat. A job a worker has just popped is in the active
list but not yet marked active for a few milliseconds, so a sweep at that moment runs it twice
and logs an error. :class:`SweptRedisQueue` leaves such a job alone until it has been quiet for
``stuck_after`` seconds, the same period after which a silent running job counts as stuck. It
also waits 1 s rather than 5 s for a swept job's worker to answer: with the heartbeat running
beside the handler, a silent worker is a dead one. And a consumer pauses when Redis is down
instead of spinning (:meth:`SweptRedisQueue.dequeue`).
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError
from saq import Job, Status
from saq.queue.redis import RedisQueue
from saq.utils import now

logger = logging.getLogger(__name__)

# saq's own scan: take the sweep lock for ARGV[1] seconds, then list the active jobs and records.
# KEYS: the sweep lock, the active list.
_SCAN_ACTIVE = """
local id_jobs = {}
if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('SETEX', KEYS[1], ARGV[1], 1)
    for i, v in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
        id_jobs[i] = {v, redis.call('GET', v)}
    end
end
return id_jobs
"""
_ANSWER_SECONDS = 1.0
# How long a consumer pauses after Redis failed to answer a pop, before it asks again.
_UNAVAILABLE_PAUSE_SECONDS = 1.0


def redis_client(redis_url: str) -> Redis:
    """An asyncio Redis client configured the way saq expects.

    RESP2 replies and no socket read timeout: what saq was written and tested against. redis-py 8
    defaults to RESP3 and a 5 s read timeout, which a blocking pop or pub/sub read may exceed.

    Args:
        redis_url: ``redis://[:password@]host:port/db``.

    Returns:
        A client; it connects on first use.
    """
    return Redis.from_url(
        redis_url,
        protocol=2,
        socket_timeout=None,
        socket_connect_timeout=5,
        socket_keepalive=True,
    )


class SweptRedisQueue(RedisQueue):
    """saq's RedisQueue whose sweep spares jobs a worker has only just popped."""

    def __init__(self, redis: Redis, *, name: str, stuck_after: int) -> None:
        """Args:
        redis: the client (see :func:`redis_client`).
        name: the queue's name.
        stuck_after: seconds of silence after which a popped or running job counts as stuck.
        """
        super().__init__(redis, name=name)
        self.stuck_after = stuck_after
        self._scan = redis.register_script(_SCAN_ACTIVE)

    async def dequeue(self, timeout: float = 0.0, poll_interval: float = 0.0) -> Job | None:
        """saq's blocking pop, with a pause when Redis is unreachable.

        saq's consumer loop catches the error and pops again at once, silently: without the
        pause an outage would spin every consumer task at full CPU.
        """
        try:
            return await super().dequeue(timeout, poll_interval)
        except (RedisError, OSError) as exc:
            logger.warning("job queue %s: Redis did not answer (%s); retrying", self.name, exc)
            await asyncio.sleep(_UNAVAILABLE_PAUSE_SECONDS)
            return None

    async def schedule(self, lock: int = 1) -> list[str]:
        """saq's move of due delayed jobs to the queue; a Redis outage is one line, not a trace."""
        try:
            return await super().schedule(lock)
        except (RedisError, OSError) as exc:
            logger.warning(
                "job queue %s: schedule skipped, Redis did not answer (%s)", self.name, exc
            )
            return []

    async def sweep(self, lock: int = 60, abort: float = _ANSWER_SECONDS) -> list[str]:
        """Queue again the active jobs that have been silent too long; at most once per ``lock``.

        Returns:
            The saq ids of the jobs swept.
        """
        try:
            rows = await self._scan(
                keys=[self.namespace("sweep"), self.namespace("active")], args=[lock]
            )
        except (RedisError, OSError) as exc:
            logger.warning("job queue %s: sweep skipped, Redis did not answer (%s)", self.name, exc)
            return []
        swept: list[str] = []
        for raw_id, payload in rows:
            job_id = raw_id.decode()
            job = self.deserialize(payload)
            if job is None:
                await self._forget(job_id)
                swept.append(job_id)
            elif self._is_stuck(job):
                await self._requeue(job, min(abort, _ANSWER_SECONDS))
                swept.append(job_id)
        return swept

    def _is_stuck(self, job: Job) -> bool:
        if job.status == Status.ACTIVE:
            return job.stuck
        # Popped but not (yet) marked active: stuck only once it has been quiet for a while.
        last_heard = max(job.touched, job.queued, job.started)
        return now() - last_heard > self.stuck_after * 1000

    async def _forget(self, job_id: str) -> None:
        logger.info("sweeping job %s: its record is gone", job_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrem(self.namespace("active"), 0, job_id)
            pipe.zrem(self.namespace("incomplete"), job_id)
            await pipe.execute()

    async def _requeue(self, job: Job, answer_seconds: float) -> None:
        logger.info("sweeping stuck job %s (worker %s)", job.key, job.worker_id)
        await self.abort(job, error=self.swept_error_message)
        try:
            await job.refresh(answer_seconds)
        except TimeoutError:
            pass  # the expected case: its worker is gone
        except RuntimeError:
            return  # its record is gone: the worker finished it after all
        if job.retryable:
            await self.retry(job, error=self.swept_error_message)
        else:
            await self.finish(job, Status.ABORTED, error=self.swept_error_message)
