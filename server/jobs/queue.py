"""The JobQueue port: what the rest of the server may ask of a job queue.

A queue delivers job *ids*; the job's state (queued, running, step, attempts, failure code) lives
in the database and belongs to the handler. Delivery is at-least-once: a handler must expect to
see the same id again (after a worker died mid-job, or after an ``enqueue`` while it ran).

Semantics shared by every adapter, checked by ``tests/server/jobs/test_contract.py``:

- ``enqueue(job_id)`` returns False when that id is already *waiting* (queued, delayed, or queued
  behind its own running attempt) and leaves the waiting entry as it is (its due time included);
  it returns True otherwise. An id enqueued while it runs runs again once that run has ended,
  never twice at the same time.
- A handler that raises :class:`RetryLater` is called again with the same id after the delay.
- Any other exception is logged with the job id and the delivery is dropped: the handler records
  failures itself. It never stops the consumer.
- ``stop()`` takes no new jobs and waits (bounded) for the running ones to finish.

Errors::

    ExpoError (server.errors)
    +-- ServiceUnavailable
        +-- JobQueueUnavailable   503 job_queue_unavailable   (the broker cannot be reached)
    Exception
    +-- RetryLater            raised by handlers, never by the queue
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

from server.errors import ServiceUnavailable

JobHandler = Callable[[str], None]
"""Called with a job id. Synchronous: it runs in a worker thread (in-process) or in a thread of
the worker process (Redis); it may raise :class:`RetryLater`."""


class RetryLater(Exception):
    """Raised by a handler to be called again with the same job id after ``delay_seconds``.

    The handler counts attempts itself (in the database) and stops raising this when it gives up.
    """

    def __init__(self, delay_seconds: float, reason: str = "") -> None:
        """Args:
            delay_seconds: how long to wait before the next attempt; negative means now.
            reason: a short text for the log (e.g. ``"s3 timeout"``).

        Raises:
            ValueError: ``delay_seconds`` is not a finite number.
        """
        if not math.isfinite(delay_seconds):
            raise ValueError(f"delay_seconds must be finite, not {delay_seconds!r}")
        super().__init__(delay_seconds, reason)
        self.delay_seconds = max(0.0, float(delay_seconds))
        self.reason = reason


class JobQueueUnavailable(ServiceUnavailable):
    """The queue's broker (Redis) did not answer; nothing was enqueued."""

    code = "job_queue_unavailable"


class JobQueue(Protocol):
    """Delivers job ids to a handler, at least once."""

    def enqueue(self, job_id: str, *, delay_seconds: float = 0.0) -> bool:
        """Ask for ``job_id`` to be handled, no sooner than ``delay_seconds`` from now.

        Thread-safe and synchronous: callable from a route, a thread or a running handler.

        Returns:
            False when ``job_id`` is already waiting (nothing changes), True otherwise.

        Raises:
            ValueError: an empty id or a negative or non-finite delay.
            JobQueueUnavailable: the broker cannot be reached.
        """
        ...

    async def start(self) -> None:
        """Start consuming (in-process) or connect (Redis: workers consume elsewhere)."""
        ...

    async def stop(self) -> None:
        """Take no new jobs; wait, up to the adapter's stop timeout, for running jobs to end."""
        ...


def check_request(job_id: str, delay_seconds: float) -> float:
    """Validate an ``enqueue`` request shared by the adapters.

    Args:
        job_id: the id to deliver.
        delay_seconds: the requested delay.

    Returns:
        The delay in seconds, as a float.

    Raises:
        ValueError: an empty id or a negative or non-finite delay.
    """
    if not job_id:
        raise ValueError("job_id must not be empty")
    if not math.isfinite(delay_seconds) or delay_seconds < 0:
        raise ValueError(f"delay_seconds must be a finite number >= 0, not {delay_seconds!r}")
    return float(delay_seconds)
