"""The embedded JobQueue: a due-time heap in memory, consumed by a few threads.

Nothing here survives the process: the database's job rows are the durable record, and whoever
starts the app re-enqueues the jobs it finds unfinished. Each handler call runs in one of
``workers`` threads (the handler hands heavy work to its own process pool).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time

from server.jobs.queue import JobHandler, RetryLater, check_request

logger = logging.getLogger(__name__)


class InProcessQueue:
    """A :class:`~server.jobs.queue.JobQueue` that runs ``handler`` in ``workers`` threads."""

    def __init__(
        self, handler: JobHandler, *, workers: int = 1, stop_timeout: float = 30.0
    ) -> None:
        """Args:
            handler: called with each job id.
            workers: how many jobs may run at once.
            stop_timeout: how long ``stop()`` waits for running jobs, in seconds.

        Raises:
            ValueError: ``workers`` is below 1 or ``stop_timeout`` is negative.
        """
        if workers < 1:
            raise ValueError(f"workers must be >= 1, not {workers}")
        if stop_timeout < 0:
            raise ValueError(f"stop_timeout must be >= 0, not {stop_timeout}")
        self._handler = handler
        self._workers = workers
        self._stop_timeout = stop_timeout
        self._cond = threading.Condition()
        # Waiting ids: (due, seq, id) in the heap, id -> due in _due; an id is in both or neither.
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}
        self._seq = itertools.count()
        # Ids enqueued while they run: id -> due, moved to the heap when that run ends.
        self._rerun: dict[str, float] = {}
        self._running: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def enqueue(self, job_id: str, *, delay_seconds: float = 0.0) -> bool:
        """See :meth:`server.jobs.queue.JobQueue.enqueue`."""
        delay = check_request(job_id, delay_seconds)
        with self._cond:
            if job_id in self._due or job_id in self._rerun:
                return False
            due = time.monotonic() + delay
            if job_id in self._running:
                self._rerun[job_id] = due
            else:
                self._push(job_id, due)
            return True

    async def start(self) -> None:
        """Start the worker threads (once)."""
        with self._cond:
            if self._threads:
                return
            self._stopping = False
            self._threads = [
                threading.Thread(target=self._consume, name=f"pavilion-job-{n}", daemon=True)
                for n in range(self._workers)
            ]
        for thread in self._threads:
            thread.start()
        logger.info("in-process job queue started: %d worker(s)", self._workers)

    async def stop(self) -> None:
        """Start no new job; wait up to ``stop_timeout`` for the running ones.

        Waiting jobs stay in memory and are lost with the process (see the module docstring).
        """
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        threads, self._threads = self._threads, []
        await asyncio.to_thread(_join_all, threads, self._stop_timeout)
        with self._cond:
            still_running = sorted(self._running)
        if still_running:
            logger.warning(
                "in-process job queue stopped with jobs still running after %.0f s: %s",
                self._stop_timeout,
                ", ".join(still_running),
            )
        else:
            logger.info("in-process job queue stopped")

    def _push(self, job_id: str, due: float) -> None:
        # Callers hold self._cond.
        self._due[job_id] = due
        heapq.heappush(self._heap, (due, next(self._seq), job_id))
        # Every idle thread recomputes how long to sleep: one woken thread is not enough when
        # several jobs fall due together.
        self._cond.notify_all()

    def _consume(self) -> None:
        while (job_id := self._take()) is not None:
            retry_delay = self._run(job_id)
            self._finish(job_id, retry_delay)

    def _take(self) -> str | None:
        """Block until a job is due (and return its id) or the queue stops (None)."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    _, _, job_id = heapq.heappop(self._heap)
                    del self._due[job_id]
                    self._running.add(job_id)
                    return job_id
                timeout = self._heap[0][0] - now if self._heap else None
                self._cond.wait(timeout)
            return None

    def _run(self, job_id: str) -> float | None:
        """Call the handler; return the delay it asked for with RetryLater, else None."""
        try:
            self._handler(job_id)
        except RetryLater as retry:
            logger.info("job %s retries in %.1f s: %s", job_id, retry.delay_seconds, retry.reason)
            return retry.delay_seconds
        except Exception:
            # A process boundary: the handler records its own failures; log and keep consuming.
            logger.exception("job %s raised; delivery dropped", job_id)
        return None

    def _finish(self, job_id: str, retry_delay: float | None) -> None:
        with self._cond:
            self._running.discard(job_id)
            now = time.monotonic()
            # The retry goes in first: an enqueue during the run then merges into it (dedup).
            if retry_delay is not None:
                self._push(job_id, now + retry_delay)
            rerun_due = self._rerun.pop(job_id, None)
            if rerun_due is not None and job_id not in self._due:
                self._push(job_id, rerun_due)
            self._cond.notify_all()


def _join_all(threads: list[threading.Thread], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
