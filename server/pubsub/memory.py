"""The embedded PubSub: fan-out inside one process, across threads and event loops.

A publish encodes the message once, takes a snapshot of the topic's subscribers under a lock and
pushes the JSON text into each one's :class:`~server.pubsub.buffer.Mailbox`, which wakes the
subscriber's own loop with ``call_soon_threadsafe``. Publishing therefore costs one encode and a
few appends however slow the subscribers are, and works from worker threads, sync routes and
coroutines alike.
"""

from __future__ import annotations

import logging
import threading

from server.pubsub.base import (
    DEFAULT_BUFFER_SIZE,
    Counters,
    Message,
    PubSubClosed,
    PubSubStats,
    check_topic,
    check_topics,
    encode,
)
from server.pubsub.buffer import BufferedSubscription

logger = logging.getLogger(__name__)


class MemoryPubSub:
    """In-process pub/sub; see :mod:`server.pubsub.base` for the semantics.

    Args:
        buffer_size: messages each subscription buffers before dropping its oldest.
    """

    def __init__(self, *, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        if buffer_size < 1:
            raise ValueError("buffer_size must be at least 1")
        self._buffer_size = buffer_size
        self._lock = threading.Lock()
        self._topics: dict[str, set[MemorySubscription]] = {}
        self._counters = Counters()
        self._closed = False
        self._warned_closed = False

    def publish(self, topic: str, message: Message) -> None:
        """Deliver ``message`` to the topic's live subscribers (see ``PubSub.publish``)."""
        check_topic(topic)
        payload = encode(message)
        with self._lock:
            closed = self._closed
            subscribers = tuple(self._topics.get(topic, ()))
        if closed:
            self._lost_after_close(topic)
            return
        self._counters.add("published")
        for subscription in subscribers:
            if not subscription.deliver(topic, payload):
                self._remove(subscription)  # its loop is gone without an __aexit__

    def subscribe(self, *topics: str) -> MemorySubscription:
        """A subscription to ``topics`` (see ``PubSub.subscribe``). Raises InvalidTopic."""
        return MemorySubscription(self, check_topics(topics))

    def ping(self) -> None:
        """Nothing to reach; raises PubSubClosed after :meth:`close`."""
        if self._closed:
            raise PubSubClosed("the pub/sub is closed")

    def close(self) -> None:
        """End every live subscription's iteration; later publishes are counted as failed."""
        with self._lock:
            self._closed = True
            subscriptions = {sub for subs in self._topics.values() for sub in subs}
            self._topics.clear()
        for subscription in subscriptions:
            subscription.end()

    def subscriber_count(self, topic: str) -> int:
        """Live subscriptions to ``topic`` in this process."""
        with self._lock:
            return len(self._topics.get(topic, ()))

    def stats(self) -> PubSubStats:
        """Counters since construction."""
        return self._counters.snapshot()

    # -- for MemorySubscription --------------------------------------------------------------

    def _add(self, subscription: MemorySubscription) -> None:
        with self._lock:
            if self._closed:
                raise PubSubClosed("the pub/sub is closed")
            for topic in subscription.topics:
                self._topics.setdefault(topic, set()).add(subscription)

    def _remove(self, subscription: MemorySubscription) -> None:
        with self._lock:
            for topic in subscription.topics:
                subscribers = self._topics.get(topic)
                if subscribers is None:
                    continue
                subscribers.discard(subscription)
                if not subscribers:
                    del self._topics[topic]

    def _lost_after_close(self, topic: str) -> None:
        self._counters.add("failed")
        if not self._warned_closed:
            self._warned_closed = True
            logger.warning("pubsub: publish to %s after close(); message dropped", topic)


class MemorySubscription(BufferedSubscription):
    """One subscriber of a :class:`MemoryPubSub`, bound to the loop that entered it."""

    def __init__(self, pubsub: MemoryPubSub, topics: tuple[str, ...]) -> None:
        super().__init__(topics, pubsub._buffer_size, lambda n: pubsub._counters.add("dropped", n))
        self._pubsub = pubsub

    async def __aenter__(self) -> MemorySubscription:
        self._open_mailbox()
        try:
            self._pubsub._add(self)
        except PubSubClosed:
            self.end()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._pubsub._remove(self)
        self.end()

    def deliver(self, topic: str, payload: str) -> bool:
        """Queue ``payload``; False when this subscription can no longer receive."""
        return self._mailbox is not None and self._mailbox.push(topic, payload)

    def end(self) -> None:
        """Stop receiving and end the iteration (from any thread)."""
        if self._mailbox is not None:
            self._mailbox.close()
