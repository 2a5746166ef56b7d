"""The PubSub port: fan-out of small JSON events between the parts of the server.

Two adapters implement it: :class:`server.pubsub.memory.MemoryPubSub` (one process, the embedded
default) and :class:`server.pubsub.redis.RedisPubSub` (Redis PUBLISH/SUBSCRIBE, many processes).
Both pass one contract suite, ``tests/server/pubsub/test_contract.py``.

Semantics, the same for both adapters (those of Redis PUBLISH):

- at-most-once fan-out to every live subscriber of the topic; nothing is stored for later;
- a subscription gets the messages published after its ``__aenter__`` returned;
- per publisher and topic, messages arrive in the order they were published;
- a slow subscriber never holds back a publisher or another subscriber: each subscription has a
  bounded buffer, and when it is full the oldest message is dropped and counted (logged once);
- messages are JSON objects; each subscriber gets its own decoded copy.

Errors::

    ExpoError (server.errors)
    +-- PubSubError          503 pubsub_error
        +-- InvalidTopic     400 invalid_topic       empty, too long, control characters
        +-- InvalidMessage   400 invalid_message     not a dict, not JSON-serialisable, NaN
        +-- PubSubConfigError 500 pubsub_config      malformed Redis URL (at construction)
        +-- PubSubClosed     503 pubsub_closed       subscribe after close()
        +-- PubSubUnavailable 503 pubsub_unavailable ping() found Redis down

``publish`` never raises because the transport is down: it logs, counts and returns.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from server.errors import ExpoError

Message = dict[str, Any]

MAX_TOPIC_LENGTH = 256
# Large enough that a burst (a hall's booths republished at once) fits; small enough that a stuck
# subscriber costs at most a few MB.
DEFAULT_BUFFER_SIZE = 1024


class PubSubError(ExpoError):
    """Base of the pub/sub errors; vendor errors are translated with ``from exc``."""

    status = 503
    code = "pubsub_error"


class InvalidTopic(PubSubError):
    status = 400
    code = "invalid_topic"


class InvalidMessage(PubSubError):
    status = 400
    code = "invalid_message"


class PubSubConfigError(PubSubError):
    status = 500
    code = "pubsub_config"


class PubSubClosed(PubSubError):
    status = 503
    code = "pubsub_closed"


class PubSubUnavailable(PubSubError):
    status = 503
    code = "pubsub_unavailable"


@runtime_checkable
class Subscription(Protocol):
    """An async context manager and async iterator of ``(topic, message)``.

    Messages published after ``__aenter__`` returned are delivered until ``__aexit__``; the
    iteration ends when the pub/sub is closed.
    """

    async def __aenter__(self) -> Subscription: ...

    async def __aexit__(self, *exc: object) -> None: ...

    def __aiter__(self) -> AsyncIterator[tuple[str, Message]]: ...


@runtime_checkable
class PubSub(Protocol):
    def publish(self, topic: str, message: Message) -> None:
        """Send ``message`` to every live subscriber of ``topic``.

        Thread-safe; callable from sync code and from inside a running event loop, which it
        does not block (beyond a loopback round trip). Never raises because the transport is
        down: the message is then lost, logged and counted.

        Raises:
            InvalidTopic: ``topic`` is empty, too long or holds control characters.
            InvalidMessage: ``message`` is not a JSON object.
        """
        ...

    def subscribe(self, *topics: str) -> Subscription:
        """A subscription to ``topics``; it starts receiving when entered with ``async with``.

        Raises:
            InvalidTopic: no topics, or one is invalid.
        """
        ...

    def ping(self) -> None:
        """Check the transport for readiness probes. Raises PubSubUnavailable or PubSubClosed."""
        ...

    def close(self) -> None:
        """Release connections and end the iteration of every live subscription. Idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class PubSubStats:
    """Counters since the adapter was built.

    Attributes:
        published: messages accepted by ``publish``.
        failed: messages the transport did not take (Redis down or too slow, or after close).
        dropped: messages dropped from full subscriber buffers (the oldest first).
        reconnects: times a subscription lost its connection and subscribed again.
    """

    published: int = 0
    failed: int = 0
    dropped: int = 0
    reconnects: int = 0


class Counters:
    """Thread-safe counters behind :class:`PubSubStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = {"published": 0, "failed": 0, "dropped": 0, "reconnects": 0}

    def add(self, name: str, count: int = 1) -> None:
        with self._lock:
            self._values[name] += count

    def snapshot(self) -> PubSubStats:
        with self._lock:
            return PubSubStats(**self._values)


def check_topic(topic: object) -> str:
    """Return ``topic`` when it is a usable topic name.

    Raises:
        InvalidTopic: not a string, empty, longer than MAX_TOPIC_LENGTH or with control
            characters or whitespace (topics are identifiers such as ``hall:<uuid>``).
    """
    if not isinstance(topic, str) or not 0 < len(topic) <= MAX_TOPIC_LENGTH:
        raise InvalidTopic(f"a topic is a string of 1..{MAX_TOPIC_LENGTH} characters")
    if not topic.isprintable() or any(char.isspace() for char in topic):
        raise InvalidTopic(f"invalid topic: {topic!r}")
    return topic


def check_topics(topics: tuple[str, ...]) -> tuple[str, ...]:
    """Validated, de-duplicated ``topics`` in their given order. Raises InvalidTopic."""
    if not topics:
        raise InvalidTopic("subscribe to at least one topic")
    return tuple(dict.fromkeys(check_topic(topic) for topic in topics))


def encode(message: object) -> str:
    """The JSON text of ``message``; every adapter sends this, so both behave alike.

    Raises:
        InvalidMessage: not a dict, or not representable in JSON (RFC 8259 §6 has no NaN or
            Infinity, so those are refused rather than sent as invalid JSON).
    """
    if not isinstance(message, dict):
        raise InvalidMessage(f"a message is a dict, not {type(message).__name__}")
    try:
        return json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidMessage(f"the message is not JSON-serialisable: {exc}") from exc


def decode(raw: str | bytes) -> Message | None:
    """The message in ``raw``, or None when it is not a JSON object (another client's data)."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _refuse_constant(name: str) -> float:
    # NaN and Infinity are not JSON (RFC 8259 §6); Python's json would accept them.
    raise ValueError(f"{name} is not JSON")
