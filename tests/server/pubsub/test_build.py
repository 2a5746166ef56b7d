"""build_pubsub: the adapter the settings ask for, built without connecting."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.pubsub import MemoryPubSub, PubSub, PubSubConfigError, RedisPubSub, build_pubsub
from tests.conftest import make_settings


def test_without_a_redis_url_the_pubsub_is_in_process(tmp_path: Path) -> None:
    pubsub = build_pubsub(make_settings("sqlite://", tmp_path))

    assert isinstance(pubsub, MemoryPubSub)
    assert isinstance(pubsub, PubSub)
    pubsub.close()


def test_with_a_redis_url_the_pubsub_is_redis_and_nothing_is_connected_yet(
    tmp_path: Path,
) -> None:
    # Nothing listens on port 1: building must still succeed, since it does no I/O.
    pubsub = build_pubsub(make_settings("sqlite://", tmp_path, redis_url="redis://127.0.0.1:1/0"))

    assert isinstance(pubsub, RedisPubSub)
    assert isinstance(pubsub, PubSub)
    pubsub.close()


def test_a_malformed_redis_url_fails_the_build(tmp_path: Path) -> None:
    with pytest.raises(PubSubConfigError):
        build_pubsub(make_settings("sqlite://", tmp_path, redis_url="redis://host:port/0"))
