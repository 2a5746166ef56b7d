"""RedisPubSub beyond the contract: URLs, outages, restarts and a Redis that stops answering."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
import redis

from server.pubsub import PubSubConfigError, PubSubUnavailable, RedisPubSub
from server.pubsub.redis import redact_url
from tests.redis_server import RedisProcess
from tests.server.pubsub.helpers import receive, run
from tests.services import free_port


@pytest.mark.parametrize(
    "url",
    [
        "",
        "127.0.0.1:6379",
        "http://127.0.0.1:6379",
        "redis://",
        "redis://:s3cret-pw@127.0.0.1:notaport/0",
        "redis://:s3cret-pw@127.0.0.1:99999",
        "redis://127.0.0.1:6379/zero",
        "redis://127.0.0.1:6379/0?socket_timeout=soon",
        "unix://",
    ],
)
def test_a_malformed_url_is_refused_at_construction_without_showing_the_password(
    url: str,
) -> None:
    with pytest.raises(PubSubConfigError) as refused:
        RedisPubSub(url)

    assert "s3cret-pw" not in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://localhost",
        "rediss://user:pw@cache.example:6380/2",
        "unix:///run/redis/redis.sock?db=1",
    ],
)
def test_a_well_formed_url_is_accepted_without_connecting(url: str) -> None:
    pubsub = RedisPubSub(url)
    pubsub.close()


def test_the_password_is_hidden_in_the_url_shown() -> None:
    assert redact_url("redis://app:pw@redis:6379/0") == "redis://app:***@redis:6379/0"
    assert redact_url("redis://redis:6379/0") == "redis://redis:6379/0"
    assert RedisPubSub("redis://:pw@redis/1").url == "redis://:***@redis/1"


def test_publish_while_redis_is_down_returns_counts_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pubsub = RedisPubSub(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.5)
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="server.pubsub.redis"):
            for n in range(5):
                pubsub.publish("hall:down", {"n": n})
        elapsed = time.monotonic() - started

        with pytest.raises(PubSubUnavailable):
            pubsub.ping()
        with pytest.raises(PubSubUnavailable):
            pubsub.subscriber_count("hall:down")
    finally:
        pubsub.close()

    assert elapsed < 5 * 1.0
    assert pubsub.stats().published == 5
    assert pubsub.stats().failed == 5
    assert len([r for r in caplog.records if "not reaching Redis" in r.message]) == 1


async def _resume(pubsub: RedisPubSub, topic: str, sub: Any, within: float) -> tuple[Any, float]:
    """Publish numbered messages from a thread until one arrives: (that message, seconds)."""
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < within:
        await asyncio.to_thread(pubsub.publish, topic, {"n": n})
        n += 1
        try:
            [(_, message)] = await receive(sub, 1, timeout=0.1)
        except AssertionError:
            continue
        return message, time.monotonic() - started
    raise AssertionError(f"the subscription did not resume within {within} s")


@pytest.mark.parametrize("crash", [False, True], ids=["restart", "crash"])
def test_a_subscription_resumes_after_redis_restarts_and_what_was_published_meanwhile_is_lost(
    own_redis: RedisProcess, topic: str, crash: bool
) -> None:
    pubsub = RedisPubSub(own_redis.url, connect_timeout=0.5, socket_timeout=0.5)

    async def scenario() -> tuple[list[Any], Any, float]:
        async with pubsub.subscribe(topic) as sub:
            await asyncio.to_thread(pubsub.publish, topic, {"n": "before"})
            before = await receive(sub, 1)
            await asyncio.to_thread(own_redis.stop, kill=crash)
            await asyncio.to_thread(pubsub.publish, topic, {"n": "while down"})
            await asyncio.to_thread(own_redis.start)
            first, seconds = await _resume(pubsub, topic, sub, within=5.0)
            return before, first, seconds

    try:
        before, first, seconds = run(scenario(), timeout=30)
    finally:
        pubsub.close()

    assert before == [(topic, {"n": "before"})]
    assert first["n"] != "while down"
    assert seconds < 5.0
    assert pubsub.stats().reconnects >= 1
    assert pubsub.stats().failed >= 1


def test_a_subscription_entered_while_redis_is_down_receives_once_it_is_up(
    own_redis: RedisProcess, topic: str
) -> None:
    pubsub = RedisPubSub(own_redis.url, connect_timeout=0.5, socket_timeout=0.5)
    own_redis.stop()

    async def scenario() -> tuple[float, Any, float]:
        started = time.monotonic()
        async with pubsub.subscribe(topic) as sub:
            entered = time.monotonic() - started
            await asyncio.to_thread(own_redis.start)
            message, seconds = await _resume(pubsub, topic, sub, within=5.0)
            return entered, message, seconds

    try:
        entered, message, seconds = run(scenario(), timeout=30)
    finally:
        pubsub.close()

    assert entered < 2.0  # __aenter__ does not wait out the outage
    assert message["n"] >= 0
    assert seconds < 5.0


def test_a_subscription_whose_redis_stops_answering_reconnects(
    own_redis: RedisProcess, topic: str
) -> None:
    pubsub = RedisPubSub(own_redis.url, heartbeat=0.2, socket_timeout=0.3, connect_timeout=0.5)
    admin = redis.Redis.from_url(own_redis.url)

    async def scenario() -> Any:
        async with pubsub.subscribe(topic) as sub:
            # CLIENT PAUSE holds every client's commands: the heartbeat PING gets no PONG,
            # as on a network that drops packets without closing the connection.
            admin.client_pause(1500, all=True)
            await asyncio.sleep(1.0)
            message, _ = await _resume(pubsub, topic, sub, within=5.0)
            return message

    try:
        message = run(scenario(), timeout=30)
    finally:
        pubsub.close()
        admin.close()

    assert message["n"] >= 0
    assert pubsub.stats().reconnects >= 1


def test_publishing_inside_the_loop_does_not_wait_for_a_stalled_redis(
    own_redis: RedisProcess, topic: str
) -> None:
    pubsub = RedisPubSub(own_redis.url, socket_timeout=3.0)
    admin = redis.Redis.from_url(own_redis.url)

    async def scenario() -> tuple[float, list[Any]]:
        async with pubsub.subscribe(topic) as sub:
            admin.client_pause(1000, all=True)
            started = time.monotonic()
            for n in range(50):
                pubsub.publish(topic, {"n": n})
            spent = time.monotonic() - started
            return spent, await receive(sub, 50, timeout=10)

    try:
        spent, received = run(scenario())
    finally:
        pubsub.close()
        admin.close()

    assert spent < 0.2  # fifty publishes while Redis holds every command for a second
    assert [m["n"] for _, m in received] == list(range(50))


def test_messages_from_other_clients_that_are_not_json_objects_are_skipped(
    redis_pubsub: RedisPubSub, redis_url: str, topic: str
) -> None:
    other = redis.Redis.from_url(redis_url)

    async def scenario() -> list[Any]:
        async with redis_pubsub.subscribe(topic) as sub:
            other.publish(topic, b"\xff not json")
            other.publish(topic, "[1, 2]")
            other.publish(topic, '{"n": NaN}')
            redis_pubsub.publish(topic, {"n": "ok"})
            return await receive(sub, 1)

    try:
        assert run(scenario()) == [(topic, {"n": "ok"})]
    finally:
        other.close()
