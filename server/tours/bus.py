"""The hall bus: how the nodes (processes) of one hall share ops and poses.

Two adapters:

- :class:`LocalBus`, one process (the embedded default): an op is applied at once, in this
  process only; poses stay local.
- :class:`RedisBus`, many processes: per hall, ops go to ``pavilion:tours:<hall>:ops`` as JSON and
  each tick's pose batch to ``pavilion:tours:<hall>:poses`` as bytes (a u32 node id, then the
  records). Redis delivers one channel's messages in one order to every subscriber, which is what
  makes the rooms' replicas agree (server.tours.room). The owner of each live tour also keeps its
  state, with its ``seq``, in the hash ``pavilion:tours:<hall>:state`` (research-security.md H4).

Failure model (research-security.md H1-H5): while Redis is unreachable, ops are applied locally
only (the hall degrades to one room per process) and poses are not shared; the subscriber
reconnects with a capped backoff, then every hall publishes a heartbeat and asks for the others'
(``on_reconnect``), and the heartbeats bring the replicas back in line. A subscription that has
seen nothing for ``silence_seconds`` (each node hears its own pose batches at 15 Hz) is treated
as dead even when the socket looks open (a half-open TCP connection, H3).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import struct
from typing import Any, Protocol

import redis.asyncio as aredis
from redis.exceptions import RedisError

from server.pubsub.redis import check_redis_url, redact_url

logger = logging.getLogger(__name__)

_NODE = struct.Struct("<I")
NODE_COUNTER = "pavilion:tours:nodes"
MAX_OP_BYTES = 64 * 1024  # research-security.md H6: nothing big crosses the bus
STATE_TTL_SECONDS = 120


class HallLink(Protocol):
    """What a bus calls back for one hall (the shell's HallRuntime)."""

    def on_op(self, op: dict[str, Any]) -> None: ...

    def on_poses(self, node: int, batch: bytes) -> None: ...

    def on_reconnect(self) -> None: ...


class LocalBus:
    """One process: ops are applied at once; there is nobody to share poses with."""

    distributed = False
    connected = True
    node = 0

    def __init__(self) -> None:
        self.links: dict[str, HallLink] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.links.clear()

    async def attach(self, hall_id: str, link: HallLink) -> None:
        self.links[hall_id] = link

    async def detach(self, hall_id: str) -> None:
        self.links.pop(hall_id, None)

    def publish_op(self, hall_id: str, op: dict[str, Any]) -> None:
        link = self.links.get(hall_id)
        if link is not None:
            link.on_op(op)

    def publish_poses(self, hall_id: str, batch: bytes) -> None:
        return None

    def save_tours(self, hall_id: str, states: list[dict[str, Any]]) -> None:
        return None


class RedisBus:
    """Ops and poses between processes over Redis pub/sub."""

    distributed = True

    def __init__(self, url: str, silence_seconds: float = 3.0, max_backoff: float = 2.0) -> None:
        self.url = check_redis_url(url)
        self.silence_seconds = silence_seconds
        self.max_backoff = max_backoff
        self.node = 0
        self.links: dict[str, HallLink] = {}
        self.connected = False
        self._client = aredis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=2, retry_on_timeout=False
        )
        self._outbox: asyncio.Queue[tuple[str, str, bytes | str]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed: asyncio.Event | None = None
        self._pubsub: Any = None
        self.reconnects = 0

    async def start(self) -> None:
        """Take a node number (distinct avatar ids per process) and start the reader/writer."""
        try:
            self.node = int(await self._client.incr(NODE_COUNTER)) % 4096
        except (RedisError, OSError) as exc:
            # No Redis yet: a random node number keeps ids apart with high probability.
            self.node = secrets.randbelow(4096)
            logger.warning("tour bus: Redis %s unreachable (%s)", redact_url(self.url), exc)
        self._outbox = asyncio.Queue(maxsize=10_000)
        self._subscribed = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read(), name="tour-bus-read"),
            loop.create_task(self._write(), name="tour-bus-write"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 2.0)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._client.aclose()

    async def attach(self, hall_id: str, link: HallLink) -> None:
        self.links[hall_id] = link
        if self._pubsub is not None and self.connected:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.subscribe(*_channels(hall_id))

    async def detach(self, hall_id: str) -> None:
        self.links.pop(hall_id, None)
        if self._pubsub is not None and self.connected:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(*_channels(hall_id))

    def publish_op(self, hall_id: str, op: dict[str, Any]) -> None:
        """Send an op to every node of the hall; applied locally only while Redis is away."""
        text = json.dumps(op, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        if len(text) > MAX_OP_BYTES:
            logger.warning("tour bus: dropped a %d-byte op of hall %s", len(text), hall_id)
            return
        if not self.connected or not self._queue(("op", _ops(hall_id), text)):
            link = self.links.get(hall_id)
            if link is not None:
                link.on_op(op)

    def publish_poses(self, hall_id: str, batch: bytes) -> None:
        if self.connected:
            self._queue(("poses", _poses(hall_id), _NODE.pack(self.node) + batch))

    def save_tours(self, hall_id: str, states: list[dict[str, Any]]) -> None:
        """Keep the tours this node leads in Redis with their seq (for operators and audits)."""
        if self.connected and states:
            text = json.dumps({s["id"]: s for s in states}, separators=(",", ":"))
            self._queue(("state", f"pavilion:tours:{hall_id}:state", text))

    def _queue(self, item: tuple[str, str, bytes | str]) -> bool:
        if self._outbox is None:
            return False
        try:
            self._outbox.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True

    async def _write(self) -> None:
        assert self._outbox is not None
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty() and len(batch) < 256:
                batch.append(self._outbox.get_nowait())
            for attempt in (1, 2):  # a pooled connection may predate a Redis restart: retry once
                try:
                    await self._send(batch)
                    break
                except (RedisError, OSError) as exc:
                    if attempt == 2 or not self.connected:
                        logger.warning("tour bus: publish failed (%s); ops applied locally", exc)
                        for kind, channel, payload in batch:
                            if kind == "op":
                                self._loopback(channel, payload)

    async def _send(self, batch: list[tuple[str, str, bytes | str]]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for kind, channel, payload in batch:
                if kind == "state":
                    for tour_id, state in json.loads(payload).items():
                        pipe.hset(channel, tour_id, json.dumps(state))
                    pipe.expire(channel, STATE_TTL_SECONDS)
                else:
                    pipe.publish(channel, payload)
            await pipe.execute()

    def _loopback(self, channel: str, payload: str | bytes) -> None:
        hall_id = channel.split(":")[2]
        link = self.links.get(hall_id)
        if link is not None:
            link.on_op(json.loads(payload))

    async def _read(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                channels = [c for hall in self.links for c in _channels(hall)]
                await pubsub.subscribe(*channels or ["pavilion:tours:none"])
                self._pubsub = pubsub
                if not self.connected and self.reconnects:
                    logger.info("tour bus: Redis is back")
                self.connected = True
                assert self._subscribed is not None
                self._subscribed.set()
                if self.reconnects:
                    for link in list(self.links.values()):
                        link.on_reconnect()
                self.reconnects += 1
                backoff = 0.1
                await self._listen(pubsub)
            except (RedisError, OSError, TimeoutError) as exc:
                if self.connected:
                    logger.warning("tour bus: lost Redis (%s); reconnecting", exc)
                self.connected = False
            finally:
                self._pubsub = None
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    async def _listen(self, pubsub: Any) -> None:
        loop = asyncio.get_running_loop()
        heard = loop.time()
        while True:
            message = await pubsub.get_message(timeout=self.silence_seconds / 3)
            if message is None:  # nothing, or a subscribe confirmation
                # Each live hall hears its own pose batch every tick: silence means a dead link.
                if self.links and loop.time() - heard > self.silence_seconds:
                    raise TimeoutError("no message from Redis for a while")
                continue
            heard = loop.time()
            channel = message["channel"].decode()
            _, _, hall_id, kind = channel.split(":")
            link = self.links.get(hall_id)
            if link is None:
                continue
            data: bytes = message["data"]
            if kind == "ops":
                link.on_op(json.loads(data))
            elif len(data) >= _NODE.size:
                (node,) = _NODE.unpack_from(data)
                if node != self.node:
                    link.on_poses(node, data[_NODE.size :])


def _ops(hall_id: str) -> str:
    return f"pavilion:tours:{hall_id}:ops"


def _poses(hall_id: str) -> str:
    return f"pavilion:tours:{hall_id}:poses"


def _channels(hall_id: str) -> tuple[str, str]:
    return _ops(hall_id), _poses(hall_id)


def build_bus(redis_url: str | None) -> LocalBus | RedisBus:
    """The Redis bus when the app has Redis, else the in-process one."""
    return RedisBus(redis_url) if redis_url else LocalBus()
