"""The Redis adapter beyond the contract: worker processes that die or stop, an absent Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from saq import Job, Status
from saq.utils import now

from server.jobs import JobQueueUnavailable, SaqQueue, build_job_queue
from server.jobs.inprocess import InProcessQueue
from server.jobs.saq_redis import SweptRedisQueue, redis_client
from server.jobs.worker import main as worker_main
from tests.paths import REPO
from tests.redis_server import throwaway_redis
from tests.server.jobs.handlers import DIR_VARIABLE
from tests.server.jobs.harness import FAST, RedisNames, SaqHarness, fast_options
from tests.server.jobs.recorder import Recorder, eventually
from tests.services import free_port

HANDLER = "tests.server.jobs.handlers:record_and_block"


class Workers:
    """Worker processes (``python -m server.jobs.worker``) on one queue, killed at the end."""

    def __init__(self, names: RedisNames, directory: Path) -> None:
        self.names, self.directory = names, directory
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *, stop_timeout: int = FAST.stop_timeout_seconds) -> subprocess.Popen[bytes]:
        log = (self.directory / f"worker-{len(self.processes)}.log").open("wb")
        command = [
            sys.executable, "-m", "server.jobs.worker", "--handler", HANDLER,
            "--redis-url", self.names.url, "--queue", self.names.queue_name,
            "--heartbeat", str(FAST.heartbeat_seconds), "--sweep", str(FAST.sweep_seconds),
            "--stop-timeout", str(stop_timeout),
        ]  # fmt: skip
        env = {**os.environ, DIR_VARIABLE: str(self.directory)}
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes.append(process)
        return process

    def files(self, pattern: str) -> list[str]:
        return sorted(path.name for path in self.directory.glob(pattern))

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.fixture
def workers(saq_names: RedisNames, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(saq_names, tmp_path)
    yield group
    group.stop_all()


@pytest.fixture
def api_queue(saq_names: RedisNames) -> Iterator[SaqQueue]:
    queue = SaqQueue(saq_names.url, options=fast_options(saq_names.queue_name))
    yield queue
    asyncio.run(queue.stop())


@pytest.fixture
def job() -> str:
    """A job id of its own: saq's abort keys are not per queue, and the server may be shared."""
    return f"upload-{uuid.uuid4().hex[:12]}"


def wait_until(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.05)


def test_a_job_whose_worker_is_killed_mid_run_runs_on_the_next_worker(
    workers: Workers, api_queue: SaqQueue, tmp_path: Path, job: str
) -> None:
    (tmp_path / "block").touch()
    first = workers.start()
    assert api_queue.enqueue(job)
    wait_until(lambda: workers.files(f"{job}.*.started") != [], timeout=30)

    first.send_signal(signal.SIGKILL)
    first.wait(10)
    (tmp_path / "block").unlink()
    second = workers.start()
    wait_until(lambda: workers.files(f"{job}.*.done") != [], timeout=30)

    assert workers.files(f"{job}.*.started") == sorted(
        [f"{job}.{first.pid}.started", f"{job}.{second.pid}.started"]
    )
    assert workers.files(f"{job}.*.done") == [f"{job}.{second.pid}.done"]


def test_a_worker_asked_to_stop_finishes_its_running_job_before_it_exits(
    workers: Workers, api_queue: SaqQueue, tmp_path: Path, job: str
) -> None:
    (tmp_path / "block").touch()
    worker = workers.start()
    api_queue.enqueue(job)
    wait_until(lambda: workers.files(f"{job}.*.started") != [], timeout=30)

    worker.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    still_running = worker.poll() is None
    (tmp_path / "block").unlink()

    assert still_running, "the worker waits for its job"
    assert worker.wait(15) == 0
    assert workers.files(f"{job}.*.done") == [f"{job}.{worker.pid}.done"]


def test_a_job_still_running_at_the_stop_timeout_goes_back_to_the_queue(
    workers: Workers, api_queue: SaqQueue, tmp_path: Path, job: str
) -> None:
    (tmp_path / "block").touch()
    impatient = workers.start(stop_timeout=1)
    api_queue.enqueue(job)
    wait_until(lambda: workers.files(f"{job}.*.started") != [], timeout=30)

    impatient.send_signal(signal.SIGTERM)
    assert impatient.wait(15) == 0
    (tmp_path / "block").unlink()
    successor = workers.start()
    wait_until(lambda: workers.files(f"{job}.*.done") != [], timeout=30)

    assert workers.files(f"{job}.*.done") == [f"{job}.{successor.pid}.done"]


def test_enqueue_without_a_reachable_redis_raises_job_queue_unavailable() -> None:
    url = f"redis://127.0.0.1:{free_port()}"
    queue = SaqQueue(url, options=fast_options("unreachable", enqueue_timeout_seconds=3.0))
    try:
        with pytest.raises(JobQueueUnavailable) as raised:
            queue.enqueue("job-1")
        with pytest.raises(JobQueueUnavailable):
            asyncio.run(queue.start())
    finally:
        asyncio.run(queue.stop())

    assert raised.value.code == "job_queue_unavailable"
    assert raised.value.status == 503


@pytest.mark.parametrize(
    ("status", "quiet_seconds", "stuck"),
    [
        (Status.QUEUED, 0, False),  # just popped by a worker, not yet marked active
        (Status.QUEUED, 10, True),  # popped by a worker that died before marking it
        (Status.ACTIVE, 1, False),  # running, heartbeat recent
        (Status.ACTIVE, 10, True),  # running, heartbeat stale: its worker is gone
    ],
)
def test_a_sweep_spares_recent_jobs_and_takes_silent_ones(
    status: Status, quiet_seconds: int, stuck: bool
) -> None:
    queue = SweptRedisQueue(redis_client("redis://127.0.0.1:1"), name="sweep", stuck_after=3)
    heard = now() - quiet_seconds * 1000
    job = Job("f", queue=queue, status=status, timeout=0, heartbeat=3, retries=9)
    job.queued = job.started = job.touched = heard

    assert queue._is_stuck(job) is stuck


def test_the_worker_command_refuses_a_handler_that_is_not_module_colon_name(
    saq_names: RedisNames,
) -> None:
    assert (
        worker_main(["--handler", "tests.server.jobs.handlers", "--redis-url", saq_names.url]) == 2
    )
    assert (
        worker_main(["--handler", "tests.server.jobs.handlers:nope", "--redis-url", saq_names.url])
        == 2
    )


def test_build_job_queue_keeps_jobs_in_process_without_redis_and_uses_saq_with_it() -> None:
    assert isinstance(build_job_queue(print, None, workers=2), InProcessQueue)
    assert isinstance(build_job_queue(print, "redis://127.0.0.1:6379/0"), SaqQueue)


@pytest.mark.anyio
async def test_a_worker_rides_out_a_redis_outage_and_consumes_once_redis_is_back(
    tmp_path: Path,
) -> None:
    handler = Recorder()
    with throwaway_redis(tmp_path) as server:
        async with SaqHarness(handler, 1, server.url, "outage") as harness:
            harness.queue.enqueue("before")
            await eventually(lambda: handler.ended("before") == 1)
            server.stop(kill=True)
            cpu_before = time.process_time()
            await asyncio.sleep(1.5)
            outage_cpu = time.process_time() - cpu_before
            server.start()
            harness.queue.enqueue("after")
            await eventually(lambda: handler.ended("after") == 1, timeout=15)

    assert [call.job_id for call in handler.calls] == ["before", "after"]
    assert outage_cpu < 0.5, "the consumer pauses while Redis is away instead of spinning"
