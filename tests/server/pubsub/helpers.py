"""Helpers for the pub/sub tests: run a scenario in a fresh loop, collect messages, poll."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from server.pubsub import Message, PubSub, PubSubStats, Subscription

T = TypeVar("T")

# Small enough that the slow-subscriber test overflows it quickly, large enough that the other
# tests' bursts fit while nobody reads.
BUFFER = 256


class CountingSubscription(Subscription, Protocol):
    async def __aenter__(self) -> CountingSubscription: ...

    @property
    def dropped(self) -> int: ...


class InspectablePubSub(PubSub, Protocol):
    """What both adapters offer beyond the port, for the tests to look inside."""

    def subscribe(self, *topics: str) -> CountingSubscription: ...

    def subscriber_count(self, topic: str) -> int: ...

    def stats(self) -> PubSubStats: ...


def run(scenario: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    """Run ``scenario`` in a new event loop, failing after ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(scenario, timeout))


def new_topics(count: int) -> list[str]:
    prefix = uuid.uuid4()
    return [f"test:{prefix}:{index}" for index in range(count)]


async def receive(subscription: Subscription, count: int, timeout: float = 5.0) -> list[Any]:
    """The next ``count`` ``(topic, message)`` pairs; fails when they do not come in time."""
    received: list[tuple[str, Message]] = []

    async def collect() -> None:
        async for item in subscription:
            received.append(item)
            if len(received) == count:
                return

    try:
        await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        raise AssertionError(f"got {len(received)} of {count} messages: {received}") from None
    return received


async def drain(subscription: Subscription) -> list[tuple[str, Message]]:
    """Every message until the subscription's iteration ends."""
    return [item async for item in subscription]


async def eventually(
    condition: Callable[[], bool], timeout: float = 5.0, what: str = "the condition"
) -> None:
    """Poll ``condition`` (sync, run in a thread) until it holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await asyncio.sleep(0.02)


def numbers(items: list[tuple[str, Message]]) -> list[Any]:
    return [message["n"] for _, message in items]


def publish_range(pubsub: PubSub, topic: str, start: int, stop: int) -> None:
    """Publish ``{"n": start}`` .. ``{"n": stop - 1}`` in order."""
    for n in range(start, stop):
        pubsub.publish(topic, {"n": n})
