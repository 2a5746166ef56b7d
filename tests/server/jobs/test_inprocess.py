"""The in-process adapter beyond the contract: its limits and its bounded stop."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from server.jobs import InProcessQueue
from tests.server.jobs.recorder import Recorder, eventually

pytestmark = pytest.mark.anyio


async def test_stop_gives_up_on_a_job_that_outlives_the_stop_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = Recorder(gates={"stuck": threading.Event()})
    queue = InProcessQueue(handler, workers=1, stop_timeout=0.3)
    await queue.start()
    queue.enqueue("stuck")
    await eventually(lambda: handler.count("stuck") == 1)

    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="server.jobs"):
        await queue.stop()
    took = time.monotonic() - began
    handler.gates["stuck"].set()

    assert 0.3 <= took < 2
    assert any("stuck" in record.getMessage() for record in caplog.records)


async def test_jobs_enqueued_before_start_wait_for_it() -> None:
    handler = Recorder()
    queue = InProcessQueue(handler)
    queue.enqueue("early")
    time.sleep(0.1)
    assert handler.count("early") == 0

    await queue.start()
    await eventually(lambda: handler.ended("early") == 1)
    await queue.stop()


@pytest.mark.parametrize(("workers", "stop_timeout"), [(0, 1.0), (1, -1.0)])
def test_a_queue_needs_a_worker_and_a_non_negative_stop_timeout(
    workers: int, stop_timeout: float
) -> None:
    with pytest.raises(ValueError, match="must be"):
        InProcessQueue(print, workers=workers, stop_timeout=stop_timeout)
