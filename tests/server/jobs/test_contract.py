"""The JobQueue contract: every test runs against InProcessQueue and SaqQueue (real Redis)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from tests.server.jobs.harness import MakeHarness
from tests.server.jobs.recorder import Recorder, eventually

pytestmark = pytest.mark.anyio

# How long to keep watching for a duplicate run after the expected ones were seen.
SETTLE = 0.5


async def test_every_enqueued_job_runs_once(make_harness: MakeHarness) -> None:
    handler = Recorder()
    ids = [f"job-{n}" for n in range(10)]

    async with make_harness(handler, workers=2) as harness:
        assert all(harness.queue.enqueue(job_id) for job_id in ids)
        await eventually(lambda: all(handler.ended(job_id) for job_id in ids))
        await asyncio.sleep(SETTLE)

    assert sorted(call.job_id for call in handler.calls) == sorted(ids)


async def test_an_id_that_is_already_waiting_is_not_queued_again(
    make_harness: MakeHarness,
) -> None:
    handler = Recorder(gates={"gate": threading.Event()})

    async with make_harness(handler, workers=1) as harness:
        harness.queue.enqueue("gate")
        await eventually(lambda: handler.count("gate") == 1)
        first = harness.queue.enqueue("waiting")
        again = harness.queue.enqueue("waiting")
        delayed_again = harness.queue.enqueue("waiting", delay_seconds=5)
        handler.gates["gate"].set()
        await eventually(lambda: handler.ended("waiting") == 1)
        await asyncio.sleep(SETTLE)

    assert (first, again, delayed_again) == (True, False, False)
    assert handler.count("waiting") == 1


async def test_concurrent_enqueues_of_one_id_from_many_threads_queue_it_once(
    make_harness: MakeHarness,
) -> None:
    handler = Recorder()
    start = threading.Barrier(8)
    results: list[bool] = []

    def enqueue_at_once() -> None:
        start.wait()
        results.append(harness.queue.enqueue("contended", delay_seconds=1))

    async with make_harness(handler, workers=2) as harness:
        threads = [threading.Thread(target=enqueue_at_once) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            await asyncio.to_thread(thread.join, 10)
        await eventually(lambda: handler.ended("contended") == 1)
        await asyncio.sleep(SETTLE)

    assert sorted(results) == [False] * 7 + [True]
    assert handler.count("contended") == 1


async def test_a_delayed_job_runs_after_its_delay_and_not_much_later(
    make_harness: MakeHarness,
) -> None:
    handler = Recorder()

    async with make_harness(handler, workers=2) as harness:
        enqueued = time.monotonic()
        harness.queue.enqueue("later", delay_seconds=1.5)
        harness.queue.enqueue("now")
        await eventually(lambda: handler.ended("now") == 1)
        assert handler.count("later") == 0
        await eventually(lambda: handler.ended("later") == 1, timeout=8)

    waited = handler.of("later")[0].started - enqueued
    # The Redis adapter schedules in whole seconds and polls once a second: "roughly".
    assert 1.5 <= waited <= 1.5 + 3


async def test_retry_later_calls_the_handler_again_after_the_delay(
    make_harness: MakeHarness,
) -> None:
    handler = Recorder(retry_first={"flaky": 0.5})

    async with make_harness(handler, workers=1) as harness:
        harness.queue.enqueue("flaky")
        await eventually(lambda: handler.ended("flaky") == 2, timeout=8)
        await asyncio.sleep(SETTLE)

    first, second = handler.of("flaky")
    assert first.ended is not None
    assert 0.5 <= second.started - first.ended <= 0.5 + 3


async def test_a_handler_exception_is_logged_and_the_consumer_goes_on(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    handler = Recorder(fail={"broken"})

    with caplog.at_level(logging.ERROR, logger="server.jobs"):
        async with make_harness(handler, workers=1) as harness:
            harness.queue.enqueue("broken")
            await eventually(lambda: handler.ended("broken") == 1)
            harness.queue.enqueue("healthy")
            await eventually(lambda: handler.ended("healthy") == 1)
            await asyncio.sleep(SETTLE)

    assert handler.count("broken") == 1, "a failed job is dropped, not retried"
    logged = [r for r in caplog.records if r.name.startswith("server.jobs")]
    assert any("broken" in r.getMessage() and r.exc_info for r in logged)


async def test_no_more_jobs_run_at_once_than_the_concurrency_allows(
    make_harness: MakeHarness,
) -> None:
    ids = [f"slow-{n}" for n in range(5)]
    handler = Recorder(sleep=dict.fromkeys(ids, 0.4))

    async with make_harness(handler, workers=2) as harness:
        for job_id in ids:
            harness.queue.enqueue(job_id)
        await eventually(lambda: all(handler.ended(job_id) for job_id in ids))

    assert handler.max_running == 2


async def test_stop_waits_for_the_running_job_to_finish(make_harness: MakeHarness) -> None:
    handler = Recorder(sleep={"long": 1.0})
    harness = make_harness(handler, workers=1)
    await harness.start()
    harness.queue.enqueue("long")
    await eventually(lambda: handler.count("long") == 1)

    await harness.stop()

    assert handler.ended("long") == 1


async def test_an_id_enqueued_while_it_runs_runs_again_afterwards_never_alongside(
    make_harness: MakeHarness,
) -> None:
    handler = Recorder(gates={"busy": threading.Event()})

    async with make_harness(handler, workers=2) as harness:
        harness.queue.enqueue("busy")
        await eventually(lambda: handler.count("busy") == 1)
        during = harness.queue.enqueue("busy")
        again = harness.queue.enqueue("busy")
        await asyncio.sleep(SETTLE)
        assert handler.count("busy") == 1, "never two runs of one id at once"
        handler.gates["busy"].set()
        await eventually(lambda: handler.ended("busy") == 2)
        await asyncio.sleep(SETTLE)

    first, second = handler.of("busy")
    assert (during, again) == (True, False)
    assert first.ended is not None
    assert second.started >= first.ended
    assert handler.count("busy") == 2


@pytest.mark.parametrize(("job_id", "delay"), [("", 0.0), ("x", -1.0), ("x", float("nan"))])
async def test_enqueue_refuses_an_empty_id_and_a_negative_or_undefined_delay(
    make_harness: MakeHarness, job_id: str, delay: float
) -> None:
    async with make_harness(Recorder()) as harness:
        with pytest.raises(ValueError, match="must"):
            harness.queue.enqueue(job_id, delay_seconds=delay)
