"""The queue under test behind one interface: a queue and whatever consumes it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from server.jobs import InProcessQueue, JobHandler, JobQueue, RedisJobOptions, SaqQueue, run_worker

# Short periods so that the suite stays fast: delays, retries and sweeps are seen within seconds.
FAST = RedisJobOptions(
    heartbeat_seconds=3,
    sweep_seconds=1,
    stop_timeout_seconds=5,
    schedule_seconds=1,
    dequeue_timeout_seconds=0.2,
)


def fast_options(queue_name: str, **overrides: Any) -> RedisJobOptions:
    return dataclasses.replace(FAST, queue_name=queue_name, **overrides)


class Harness:
    """A queue and whatever consumes it; ``async with`` starts and stops both."""

    queue: JobQueue

    async def __aenter__(self) -> Harness:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError


class InProcessHarness(Harness):
    def __init__(self, handler: JobHandler, workers: int) -> None:
        self.queue = self._queue = InProcessQueue(handler, workers=workers, stop_timeout=5)

    async def start(self) -> None:
        await self._queue.start()

    async def stop(self) -> None:
        await self._queue.stop()


class SaqHarness(Harness):
    """The API side (SaqQueue) and an in-test worker task, as a worker process would run it."""

    def __init__(self, handler: JobHandler, workers: int, redis_url: str, name: str) -> None:
        self._options = fast_options(name)
        self.queue = self._queue = SaqQueue(redis_url, options=self._options)
        self._handler, self._workers, self._url = handler, workers, redis_url
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._queue.start()
        self._task = asyncio.create_task(
            run_worker(
                self._handler,
                self._url,
                concurrency=self._workers,
                stop_event=self._stop,
                options=self._options,
            )
        )

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        await self._queue.stop()


MakeHarness = Callable[..., Harness]
"""``make_harness(handler, workers=1)``: a harness of the adapter under test."""


@dataclass
class RedisNames:
    """A unique queue name per test, and the cleanup of its keys (the server may be shared)."""

    url: str
    queue_name: str

    def drop_keys(self) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            keys = list(client.scan_iter(match=f"saq:*{self.queue_name}*", count=500))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
