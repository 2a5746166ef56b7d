"""The PubSub contract: every test here runs against MemoryPubSub and RedisPubSub (real Redis)."""

from __future__ import annotations

import asyncio
import datetime
import threading
import uuid
from contextlib import AsyncExitStack
from typing import Any

import pytest

from server.pubsub import InvalidMessage, InvalidTopic, PubSubClosed
from tests.server.pubsub.helpers import (
    BUFFER,
    InspectablePubSub,
    drain,
    eventually,
    new_topics,
    numbers,
    publish_range,
    receive,
    run,
)


def test_every_subscriber_of_a_topic_gets_every_message(
    pubsub: InspectablePubSub, topic: str
) -> None:
    async def scenario() -> list[list[Any]]:
        async with AsyncExitStack() as stack:
            subs = [await stack.enter_async_context(pubsub.subscribe(topic)) for _ in range(3)]
            for n in range(3):
                pubsub.publish(topic, {"n": n})
            return [await receive(sub, 3) for sub in subs]

    received = run(scenario())

    assert received == [[(topic, {"n": 0}), (topic, {"n": 1}), (topic, {"n": 2})]] * 3
    assert pubsub.stats().published == 3


def test_a_subscriber_gets_only_the_topics_it_subscribed_to(pubsub: InspectablePubSub) -> None:
    hall_a, hall_b, elsewhere = new_topics(3)

    async def scenario() -> tuple[list[Any], list[Any], list[Any]]:
        async with (
            pubsub.subscribe(hall_a) as only_a,
            pubsub.subscribe(hall_b) as only_b,
            pubsub.subscribe(hall_a, hall_b) as both,
        ):
            pubsub.publish(hall_a, {"n": "a1"})
            pubsub.publish(elsewhere, {"n": "x"})
            pubsub.publish(hall_b, {"n": "b1"})
            pubsub.publish(hall_a, {"n": "a2"})
            # Markers last: anything that leaked to the wrong subscriber arrives before them.
            pubsub.publish(hall_a, {"n": "end"})
            pubsub.publish(hall_b, {"n": "end"})
            return await receive(only_a, 3), await receive(only_b, 2), await receive(both, 5)

    got_a, got_b, got_both = run(scenario())

    assert got_a == [(hall_a, {"n": "a1"}), (hall_a, {"n": "a2"}), (hall_a, {"n": "end"})]
    assert got_b == [(hall_b, {"n": "b1"}), (hall_b, {"n": "end"})]
    assert [(t, m["n"]) for t, m in got_both] == [
        (hall_a, "a1"),
        (hall_b, "b1"),
        (hall_a, "a2"),
        (hall_a, "end"),
        (hall_b, "end"),
    ]


def test_messages_from_one_publisher_arrive_in_the_order_they_were_published(
    pubsub: InspectablePubSub, topic: str
) -> None:
    count = 200

    async def scenario() -> list[Any]:
        async with pubsub.subscribe(topic) as sub:
            publish_range(pubsub, topic, 0, count // 2)  # inside the loop
            await asyncio.to_thread(publish_range, pubsub, topic, count // 2, count)
            return await receive(sub, count)

    assert numbers(run(scenario())) == list(range(count))


def test_concurrent_publishers_each_keep_their_own_order(
    pubsub: InspectablePubSub, topic: str
) -> None:
    per_thread, threads = 60, 3

    def publish_all(name: int) -> None:
        for n in range(per_thread):
            pubsub.publish(topic, {"p": name, "n": n})

    async def scenario() -> list[Any]:
        async with pubsub.subscribe(topic) as sub:
            await asyncio.gather(*(asyncio.to_thread(publish_all, p) for p in range(threads)))
            return await receive(sub, per_thread * threads)

    received = run(scenario())

    for name in range(threads):
        assert [m["n"] for _, m in received if m["p"] == name] == list(range(per_thread))


def test_a_message_published_from_a_plain_thread_arrives(
    pubsub: InspectablePubSub, topic: str
) -> None:
    async def scenario() -> list[Any]:
        async with pubsub.subscribe(topic) as sub:
            worker = threading.Thread(target=pubsub.publish, args=(topic, {"n": "worker"}))
            worker.start()
            await asyncio.to_thread(worker.join, 5)
            return await receive(sub, 1)

    assert run(scenario()) == [(topic, {"n": "worker"})]


def test_subscribers_in_two_event_loops_both_get_a_message(
    pubsub: InspectablePubSub, topic: str
) -> None:
    entered = threading.Barrier(3, timeout=10)
    results: dict[str, list[Any]] = {}

    def subscriber(name: str) -> None:
        async def listen() -> None:
            async with pubsub.subscribe(topic) as sub:
                await asyncio.to_thread(entered.wait)
                results[name] = await receive(sub, 1)

        run(listen())

    threads = [threading.Thread(target=subscriber, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    entered.wait()
    pubsub.publish(topic, {"n": 1})
    for thread in threads:
        thread.join(10)

    assert results == {"a": [(topic, {"n": 1})], "b": [(topic, {"n": 1})]}


def test_a_subscription_gets_nothing_published_before_it_was_entered(
    pubsub: InspectablePubSub, topic: str
) -> None:
    async def scenario() -> list[Any]:
        await asyncio.to_thread(pubsub.publish, topic, {"n": "before"})
        async with pubsub.subscribe(topic) as sub:
            await asyncio.to_thread(pubsub.publish, topic, {"n": "after"})
            return await receive(sub, 1)

    assert run(scenario()) == [(topic, {"n": "after"})]


def test_leaving_a_subscription_unsubscribes_it(pubsub: InspectablePubSub, topic: str) -> None:
    async def scenario() -> list[Any]:
        async with pubsub.subscribe(topic) as sub:
            assert await asyncio.to_thread(pubsub.subscriber_count, topic) == 1
        pubsub.publish(topic, {"n": "after leaving"})
        await eventually(lambda: pubsub.subscriber_count(topic) == 0, what="unsubscribe")
        return await asyncio.wait_for(drain(sub), 1)

    assert run(scenario()) == []


def test_a_slow_subscriber_holds_back_neither_publishers_nor_other_subscribers(
    pubsub: InspectablePubSub, topic: str
) -> None:
    total, chunk = BUFFER * 3, BUFFER // 4

    async def scenario() -> tuple[list[Any], list[Any], int]:
        async with pubsub.subscribe(topic) as slow, pubsub.subscribe(topic) as fast:
            fast_got: list[Any] = []
            for start in range(0, total, chunk):  # the fast one reads as it goes; slow never
                await asyncio.to_thread(publish_range, pubsub, topic, start, start + chunk)
                fast_got += await receive(fast, chunk)
            await eventually(lambda: slow.dropped == total - BUFFER, what="slow drops")
            return fast_got, await receive(slow, BUFFER), slow.dropped

    fast_got, slow_got, dropped = run(scenario())

    assert numbers(fast_got) == list(range(total))
    # Drop-oldest: the slow subscriber keeps the newest BUFFER messages, in order.
    assert numbers(slow_got) == list(range(total - BUFFER, total))
    assert dropped == total - BUFFER
    assert pubsub.stats().dropped == total - BUFFER


def test_a_message_survives_the_json_round_trip_as_a_copy(
    pubsub: InspectablePubSub, topic: str
) -> None:
    sent = {
        "type": "booth.updated",
        "booth_id": str(uuid.uuid4()),
        "manifest_version": 3,
        "name": 'Stand 3 — 展位 ✓ "quoted" \\ \u0001',
        "numbers": [0, -1, 2**53, 0.1, 1e-300, -2.5],
        "flags": [True, False, None],
        "nested": {"empty": {}, "list": [[], [{}]]},
    }

    async def scenario() -> list[Any]:
        async with pubsub.subscribe(topic) as first, pubsub.subscribe(topic) as second:
            pubsub.publish(topic, sent)
            sent["manifest_version"] = 4  # the publisher's later change is not seen
            [(_, got)] = await receive(first, 1)
            got["nested"]["empty"]["mutated"] = True  # a subscriber's change is its own
            return [got, (await receive(second, 1))[0][1]]

    first, second = run(scenario())

    assert first is not sent
    assert second == {**sent, "manifest_version": 3}
    assert first["nested"]["empty"] == {"mutated": True}


@pytest.mark.parametrize(
    "message",
    [
        {"when": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)},
        {"raw": b"bytes"},
        {"x": float("nan")},
        {"x": float("inf")},
        ["a", "list"],
        "text",
    ],
    ids=["datetime", "bytes", "nan", "infinity", "list", "str"],
)
def test_a_message_that_is_not_a_json_object_is_refused(
    pubsub: InspectablePubSub, topic: str, message: Any
) -> None:
    with pytest.raises(InvalidMessage):
        pubsub.publish(topic, message)

    assert pubsub.stats().published == 0


@pytest.mark.parametrize("bad", ["", "hall: x", "hall:\n", "x" * 257, "tab\there"])
def test_an_invalid_topic_is_refused(pubsub: InspectablePubSub, bad: str) -> None:
    with pytest.raises(InvalidTopic):
        pubsub.publish(bad, {})
    with pytest.raises(InvalidTopic):
        pubsub.subscribe("hall:ok", bad)


def test_subscribing_to_no_topic_is_refused(pubsub: InspectablePubSub) -> None:
    with pytest.raises(InvalidTopic):
        pubsub.subscribe()


def test_one_subscription_follows_many_topics_and_many_subscriptions_run_at_once(
    pubsub: InspectablePubSub,
) -> None:
    halls = new_topics(100)
    own = new_topics(20)

    async def scenario() -> tuple[list[Any], list[list[Any]]]:
        async with AsyncExitStack() as stack:
            everything = await stack.enter_async_context(pubsub.subscribe(*halls))
            singles = [await stack.enter_async_context(pubsub.subscribe(t)) for t in own]
            for index, hall in reversed(list(enumerate(halls))):
                pubsub.publish(hall, {"n": index})
            for index, single in enumerate(own):
                pubsub.publish(single, {"n": index})
            return await receive(everything, 100), [await receive(s, 1) for s in singles]

    everything, singles = run(scenario())

    assert everything == [(hall, {"n": index}) for index, hall in reversed(list(enumerate(halls)))]
    assert singles == [[(single, {"n": index})] for index, single in enumerate(own)]


def test_closing_the_pubsub_ends_every_live_subscription(
    pubsub: InspectablePubSub, topic: str
) -> None:
    async def scenario() -> list[Any]:
        async with pubsub.subscribe(topic) as sub:
            reader = asyncio.create_task(drain(sub))
            await asyncio.sleep(0.05)
            pubsub.close()
            return await asyncio.wait_for(reader, 5)

    assert run(scenario()) == []


def test_after_close_publish_is_counted_as_failed_and_subscribe_is_refused(
    pubsub: InspectablePubSub, topic: str
) -> None:
    pubsub.close()
    pubsub.close()  # idempotent

    pubsub.publish(topic, {"n": 1})

    assert pubsub.stats().failed == 1
    with pytest.raises(PubSubClosed):
        pubsub.ping()

    async def enter() -> None:
        async with pubsub.subscribe(topic):
            pass

    with pytest.raises(PubSubClosed):
        run(enter())


def test_ping_answers_while_the_transport_is_up(pubsub: InspectablePubSub) -> None:
    pubsub.ping()
