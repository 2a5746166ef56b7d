"""The bounded buffer between publishers (any thread) and one subscriber (one event loop).

Both adapters deliver into a :class:`Mailbox`: the memory adapter from the publishing thread,
the Redis adapter from the subscription's reader task. A push never waits: when the buffer is
full the oldest message is dropped and counted, so a subscriber that stops reading costs at most
``capacity`` messages of memory and slows nobody else down.

At most one wake-up callback per mailbox is pending in the subscriber's loop at any time, so a
publisher does not flood a busy loop with callbacks either.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Self

from server.pubsub.base import Message, PubSubError, decode

logger = logging.getLogger(__name__)

Raw = str | bytes


class Mailbox:
    """A bounded, drop-oldest queue filled from any thread and drained in one event loop.

    Create it inside the loop that will drain it.
    """

    def __init__(
        self, capacity: int, label: str, on_drop: Callable[[int], None] | None = None
    ) -> None:
        if capacity < 1:
            raise ValueError("a mailbox holds at least one message")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._capacity = capacity
        self._label = label
        self._on_drop = on_drop
        self._items: deque[tuple[str, Raw]] = deque()
        self._lock = threading.Lock()
        self._ready = asyncio.Event()
        self._wake_pending = False
        self._closed = False
        self.dropped = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def push(self, topic: str, raw: Raw) -> bool:
        """Queue one message; from any thread, never waits.

        Returns:
            False when the mailbox is closed or its loop is gone: the caller may forget it.
        """
        with self._lock:
            if self._closed:
                return False
            dropped = len(self._items) >= self._capacity
            if dropped:
                self._items.popleft()
                self.dropped += 1
            self._items.append((topic, raw))
            wake = not self._wake_pending
            self._wake_pending = True
        if dropped:
            self._count_drop()
        return self._wake() if wake else True

    def close(self) -> None:
        """End the iteration: a waiting ``get`` returns None. From any thread; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._items.clear()
            self._wake_pending = True
        self._wake()

    async def get(self) -> tuple[str, Raw] | None:
        """The oldest queued message, waiting for one; None once the mailbox is closed."""
        while True:
            with self._lock:
                if self._closed:
                    return None
                if self._items:
                    return self._items.popleft()
                # Cleared under the lock and before waiting: a push after this point schedules
                # (or already has pending) a wake-up that sets the event again.
                self._ready.clear()
            await self._ready.wait()

    def _count_drop(self) -> None:
        if self._on_drop is not None:
            self._on_drop(1)
        if self.dropped == 1:
            logger.warning(
                "pubsub: the subscriber to %s is not keeping up; dropping its oldest messages "
                "(buffer of %d, counted in stats().dropped)",
                self._label,
                self._capacity,
            )

    def _wake(self) -> bool:
        if self._loop.is_closed():  # the subscriber's loop is gone: nobody will read this
            return self._discard()
        if threading.get_ident() == self._loop_thread:
            self._set_ready()
            return True
        try:
            self._loop.call_soon_threadsafe(self._set_ready)
        except RuntimeError:  # closed between the check and the call
            return self._discard()
        return True

    def _discard(self) -> bool:
        with self._lock:
            self._closed = True
            self._items.clear()
        return False

    def _set_ready(self) -> None:
        with self._lock:
            self._wake_pending = False
        self._ready.set()


class BufferedSubscription:
    """The iteration half of a subscription; adapters add ``__aenter__`` and ``__aexit__``."""

    def __init__(
        self, topics: tuple[str, ...], capacity: int, on_drop: Callable[[int], None]
    ) -> None:
        self._topics = topics
        self._capacity = capacity
        self._on_drop = on_drop
        self._mailbox: Mailbox | None = None
        self._entered = False
        self._failure: BaseException | None = None

    @property
    def topics(self) -> tuple[str, ...]:
        return self._topics

    @property
    def dropped(self) -> int:
        """Messages this subscription lost because its buffer was full."""
        return self._mailbox.dropped if self._mailbox is not None else 0

    def _open_mailbox(self) -> Mailbox:
        if self._entered:
            raise RuntimeError("a subscription can be entered only once")
        self._entered = True
        label = ", ".join(self._topics[:3]) + (" ..." if len(self._topics) > 3 else "")
        self._mailbox = Mailbox(self._capacity, label, self._on_drop)
        return self._mailbox

    def _fail(self, failure: BaseException) -> None:
        """End the iteration with ``failure`` (raised as PubSubError from it)."""
        self._failure = failure
        if self._mailbox is not None:
            self._mailbox.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> tuple[str, Message]:
        if self._mailbox is None:
            raise RuntimeError("enter the subscription with `async with` before iterating")
        while True:
            item = await self._mailbox.get()
            if item is None:
                if self._failure is not None:
                    raise PubSubError(f"the subscription to {self._topics[0]} failed") from (
                        self._failure
                    )
                raise StopAsyncIteration
            topic, raw = item
            message = decode(raw)
            if message is not None:
                return topic, message
            logger.warning("pubsub: skipped a message on %s that is not a JSON object", topic)
