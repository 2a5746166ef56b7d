"""Pub/sub: the :class:`PubSub` port and its two adapters.

``build_pubsub(settings)`` is called by the app's lifespan (never at import time), and
``close()`` when the app stops. Topics are ``hall:<uuid>``; messages are JSON objects such as
``{"type": "booth.updated", "booth_id": "...", "manifest_version": 3}``.
"""

from __future__ import annotations

from server.pubsub.base import (
    DEFAULT_BUFFER_SIZE,
    InvalidMessage,
    InvalidTopic,
    Message,
    PubSub,
    PubSubClosed,
    PubSubConfigError,
    PubSubError,
    PubSubStats,
    PubSubUnavailable,
    Subscription,
)
from server.pubsub.memory import MemoryPubSub, MemorySubscription
from server.pubsub.redis import RedisPubSub, RedisSubscription, check_redis_url, redact_url
from server.settings import Settings

__all__ = [
    "DEFAULT_BUFFER_SIZE",
    "InvalidMessage",
    "InvalidTopic",
    "MemoryPubSub",
    "MemorySubscription",
    "Message",
    "PubSub",
    "PubSubClosed",
    "PubSubConfigError",
    "PubSubError",
    "PubSubStats",
    "PubSubUnavailable",
    "RedisPubSub",
    "RedisSubscription",
    "Subscription",
    "build_pubsub",
    "check_redis_url",
    "redact_url",
]


def build_pubsub(settings: Settings) -> MemoryPubSub | RedisPubSub:
    """The Redis adapter when ``settings.redis_url`` is set, else the in-process one.

    Building connects to nothing; call ``ping()`` to check Redis.

    Raises:
        PubSubConfigError: ``settings.redis_url`` is malformed.
    """
    if settings.redis_url:
        return RedisPubSub(settings.redis_url)
    return MemoryPubSub()
