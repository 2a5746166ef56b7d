"""The queue under test, each adapter in turn: in-process, and saq over a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.server.jobs.harness import InProcessHarness, MakeHarness, RedisNames, SaqHarness


@pytest.fixture
def saq_names(redis_url: str) -> Iterator[RedisNames]:
    names = RedisNames(redis_url, f"test-jobs-{uuid.uuid4().hex[:12]}")
    yield names
    names.drop_keys()


@pytest.fixture(params=["in-process", "saq"])
def make_harness(request: pytest.FixtureRequest) -> MakeHarness:
    """``make_harness(handler, workers=1)`` for each adapter in turn."""
    if request.param == "in-process":
        return lambda handler, workers=1: InProcessHarness(handler, workers)
    names: RedisNames = request.getfixturevalue("saq_names")
    return lambda handler, workers=1: SaqHarness(handler, workers, names.url, names.queue_name)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
