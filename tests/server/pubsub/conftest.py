"""Fixtures for the pub/sub tests: each adapter over a shared Redis, unique topics per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.pubsub import MemoryPubSub, RedisPubSub
from tests.redis_server import RedisProcess, throwaway_redis
from tests.server.pubsub.helpers import BUFFER, InspectablePubSub


@pytest.fixture
def memory_pubsub() -> Iterator[MemoryPubSub]:
    pubsub = MemoryPubSub(buffer_size=BUFFER)
    yield pubsub
    pubsub.close()


@pytest.fixture
def redis_pubsub(redis_url: str) -> Iterator[RedisPubSub]:
    pubsub = RedisPubSub(redis_url, buffer_size=BUFFER)
    yield pubsub
    pubsub.close()


@pytest.fixture(params=["memory", "redis"])
def pubsub(request: pytest.FixtureRequest) -> InspectablePubSub:
    """Each adapter in turn: the contract suite runs against both (Redis for real)."""
    adapter: InspectablePubSub = request.getfixturevalue(f"{request.param}_pubsub")
    return adapter


@pytest.fixture
def topic() -> str:
    """A topic no other test (or test run sharing the Redis server) uses."""
    return f"test:{uuid.uuid4()}"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test's own, which it may stop and restart."""
    with throwaway_redis(tmp_path / "redis") as server:
        yield server
