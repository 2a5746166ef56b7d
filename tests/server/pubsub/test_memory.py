"""MemoryPubSub beyond the contract: subscribers whose event loop went away."""

from __future__ import annotations

import asyncio

import pytest

from server.pubsub import MemoryPubSub, MemorySubscription
from tests.server.pubsub.helpers import receive, run


def test_a_subscriber_whose_loop_closed_without_leaving_is_forgotten_on_the_next_publish(
    topic: str,
) -> None:
    pubsub = MemoryPubSub()

    async def enter_and_abandon() -> MemorySubscription:
        subscription = pubsub.subscribe(topic)
        await subscription.__aenter__()
        return subscription

    asyncio.run(enter_and_abandon())
    assert pubsub.subscriber_count(topic) == 1

    pubsub.publish(topic, {"n": 1})

    assert pubsub.subscriber_count(topic) == 0


def test_a_subscriber_left_behind_does_not_stop_the_others(topic: str) -> None:
    pubsub = MemoryPubSub()

    async def abandon() -> None:
        await pubsub.subscribe(topic).__aenter__()

    asyncio.run(abandon())

    async def listen() -> list[object]:
        async with pubsub.subscribe(topic) as sub:
            pubsub.publish(topic, {"n": 1})
            return await receive(sub, 1)

    assert run(listen()) == [(topic, {"n": 1})]


def test_a_subscription_cannot_be_entered_twice(topic: str) -> None:
    pubsub = MemoryPubSub()

    async def twice() -> None:
        async with pubsub.subscribe(topic) as sub:
            await sub.__aenter__()

    with pytest.raises(RuntimeError, match="only once"):
        run(twice())
