"""A scriptable job handler that records every call, for the contract tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from server.jobs import RetryLater


@dataclass
class Call:
    job_id: str
    started: float
    ended: float | None = None


@dataclass
class Recorder:
    """A handler: records each call, then does what the test scripted for that id.

    ``gates[id]`` blocks the first call of ``id`` until the event is set; ``sleep[id]`` sleeps;
    ``retry_first[id]`` raises RetryLater(delay) on the first call; ``fail`` ids raise ValueError.
    """

    gates: dict[str, threading.Event] = field(default_factory=dict)
    sleep: dict[str, float] = field(default_factory=dict)
    retry_first: dict[str, float] = field(default_factory=dict)
    fail: set[str] = field(default_factory=set)
    calls: list[Call] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _running: int = 0
    max_running: int = 0

    def __call__(self, job_id: str) -> None:
        with self._lock:
            call = Call(job_id, time.monotonic())
            first = self.count(job_id) == 0
            self.calls.append(call)
            self._running += 1
            self.max_running = max(self.max_running, self._running)
        try:
            self._act(job_id, first)
        finally:
            with self._lock:
                self._running -= 1
                call.ended = time.monotonic()

    def _act(self, job_id: str, first: bool) -> None:
        if first and job_id in self.gates:
            assert self.gates[job_id].wait(30), f"gate of {job_id} never opened"
        if job_id in self.sleep:
            time.sleep(self.sleep[job_id])
        if first and job_id in self.retry_first:
            raise RetryLater(self.retry_first[job_id], "scripted")
        if job_id in self.fail:
            raise ValueError(f"scripted failure of {job_id}")

    def count(self, job_id: str) -> int:
        return sum(1 for call in self.calls if call.job_id == job_id)

    def of(self, job_id: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.job_id == job_id]

    def ended(self, job_id: str) -> int:
        return sum(1 for call in self.of(job_id) if call.ended is not None)


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait, without blocking the event loop, until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.02)
