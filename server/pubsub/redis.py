"""The scale-out PubSub: Redis PUBLISH/SUBSCRIBE between processes and machines.

Publishing: ``publish`` puts the JSON text on a bounded queue that one sender thread drains
through the sync redis-py client, pipelining what has piled up. A caller inside an event loop
returns at once; a caller in a plain thread (a job worker, a sync route) waits until its message
was handed to Redis or failed, for at most the connect plus socket timeouts, so that "published,
then subscribed" means what it says there. Redis being down never raises into the caller: the
message is lost, counted in ``stats().failed`` and the outage is logged once.

Subscribing: each subscription owns one ``redis.asyncio`` connection in the loop that entered it,
read by a reader task into the subscription's bounded buffer. ``__aenter__`` returns once Redis
has confirmed every SUBSCRIBE (so any later PUBLISH reaches it), or after the first attempt
failed. The reader PINGs an idle connection every ``heartbeat`` seconds; a lost connection (a
Redis restart, a silent network) is re-established with a backoff capped at ``max_backoff``
seconds. Redis pub/sub keeps nothing for absent subscribers: messages published while a
subscription was reconnecting are lost (at-most-once, as documented in docs/operations.md).

redis-py's own retries are switched off: a retried PUBLISH whose reply was lost would be
delivered twice, and the reconnect policy lives here.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections import deque
from contextlib import suppress
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aredis
from redis.asyncio.client import PubSub as AsyncRedisPubSub
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry

from server.pubsub.base import (
    DEFAULT_BUFFER_SIZE,
    Counters,
    Message,
    PubSubClosed,
    PubSubConfigError,
    PubSubStats,
    PubSubUnavailable,
    check_topic,
    check_topics,
    encode,
)
from server.pubsub.buffer import BufferedSubscription

logger = logging.getLogger(__name__)

# Messages waiting for the sender thread while Redis is slow or unreachable; beyond this the
# oldest are dropped (and counted as failed) so that memory stays bounded.
DEFAULT_SEND_QUEUE_SIZE = 10_000
MAX_BATCH = 256
MIN_BACKOFF = 0.1
_DB_PATH = re.compile(r"^/?\d*$")


def check_redis_url(url: str) -> str:
    """Return ``url`` when redis-py can connect with it; this does no I/O.

    Raises:
        PubSubConfigError: another scheme than ``redis://``, ``rediss://`` or ``unix://``, no
            host, a port or database that is not a number, or an invalid query option. The
            message never repeats a password.
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        _ = parts.port  # ValueError when it is not a number in 0..65535
        redis.connection.parse_url(url)  # type: ignore[no-untyped-call] # query options
    except ValueError as exc:
        raise PubSubConfigError(f"malformed Redis URL {shown}: {exc}") from exc
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise PubSubConfigError(f"a Redis URL starts with redis://, rediss:// or unix://: {shown}")
    if parts.scheme == "unix":
        if not parts.path:
            raise PubSubConfigError(f"a unix:// Redis URL needs a socket path: {shown}")
    elif not parts.hostname:
        raise PubSubConfigError(f"the Redis URL names no host: {shown}")
    elif not _DB_PATH.match(parts.path):
        # redis-py would silently fall back to database 0 here.
        raise PubSubConfigError(f"the Redis URL's path must be a database number: {shown}")
    return url


def redact_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (for logs and errors)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable URL>"
    if password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _no_retries() -> Retry:
    return Retry(NoBackoff(), 0)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class RedisPubSub:
    """Pub/sub over Redis; see :mod:`server.pubsub.base` for the semantics.

    Args:
        url: ``redis://[user:password@]host[:port][/db]``, ``rediss://...`` or ``unix://path``.
        buffer_size: messages each subscription buffers before dropping its oldest.
        send_queue_size: published messages waiting for Redis before the oldest are dropped.
        connect_timeout, socket_timeout: seconds for connecting and for an answer.
        heartbeat: seconds of silence after which a subscription PINGs its connection.
        max_backoff: the longest wait between two reconnection attempts, in seconds.

    Raises:
        PubSubConfigError: the URL is malformed (nothing is connected at construction).
    """

    def __init__(
        self,
        url: str,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        send_queue_size: int = DEFAULT_SEND_QUEUE_SIZE,
        connect_timeout: float = 2.0,
        socket_timeout: float = 2.0,
        heartbeat: float = 5.0,
        max_backoff: float = 1.0,
    ) -> None:
        if buffer_size < 1 or send_queue_size < 1:
            raise ValueError("buffer_size and send_queue_size must be at least 1")
        self._url = check_redis_url(url)
        self._buffer_size = buffer_size
        self._connect_timeout = connect_timeout
        self._socket_timeout = socket_timeout
        self._heartbeat = heartbeat
        self._max_backoff = max_backoff
        self._counters = Counters()
        self._client = redis.Redis.from_url(
            url,
            socket_connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            retry=_no_retries(),
        )
        self._sender = _Sender(self._client, send_queue_size, self._counters)
        self._lock = threading.Lock()
        self._live: set[RedisSubscription] = set()
        self._closed = False

    @property
    def url(self) -> str:
        """The URL with its password hidden."""
        return redact_url(self._url)

    def publish(self, topic: str, message: Message) -> None:
        """Hand ``message`` to Redis for the topic's subscribers (see ``PubSub.publish``)."""
        check_topic(topic)
        payload = encode(message)
        sequence = self._sender.submit(topic, payload)
        if sequence is None:
            return  # closed: counted and logged by the sender
        self._counters.add("published")
        if not _in_event_loop():
            self._sender.wait(sequence, self._connect_timeout + self._socket_timeout)

    def subscribe(self, *topics: str) -> RedisSubscription:
        """A subscription to ``topics`` (see ``PubSub.subscribe``). Raises InvalidTopic."""
        return RedisSubscription(self, check_topics(topics))

    def ping(self) -> None:
        """PING Redis.

        Raises:
            PubSubClosed: after :meth:`close`.
            PubSubUnavailable: Redis did not answer within the timeouts.
        """
        if self._closed:
            raise PubSubClosed("the pub/sub is closed")
        try:
            self._client.ping()
        except (RedisError, OSError) as exc:
            raise PubSubUnavailable(f"Redis at {self.url} did not answer: {exc}") from exc

    def subscriber_count(self, topic: str) -> int:
        """Subscriptions to ``topic`` across every process on this Redis (PUBSUB NUMSUB).

        Raises:
            PubSubUnavailable: Redis did not answer.
        """
        try:
            counts = self._client.pubsub_numsub(check_topic(topic))
        except (RedisError, OSError) as exc:
            raise PubSubUnavailable(f"Redis at {self.url} did not answer: {exc}") from exc
        return int(counts[0][1]) if counts else 0

    def stats(self) -> PubSubStats:
        """Counters since construction."""
        return self._counters.snapshot()

    def close(self) -> None:
        """Send what is queued, then end every live subscription. Idempotent.

        Waits for Redis at most ``connect_timeout + socket_timeout`` seconds (only when it is
        slow or unreachable); what is still queued then is dropped and counted as failed.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            live, self._live = self._live, set()
        self._sender.stop(self._connect_timeout + self._socket_timeout)
        for subscription in live:
            subscription.end()
        self._client.close()

    # -- for RedisSubscription ---------------------------------------------------------------

    def _add(self, subscription: RedisSubscription) -> None:
        with self._lock:
            if self._closed:
                raise PubSubClosed("the pub/sub is closed")
            self._live.add(subscription)

    def _remove(self, subscription: RedisSubscription) -> None:
        with self._lock:
            self._live.discard(subscription)

    def _async_client(self) -> aredis.Redis:
        return aredis.Redis.from_url(
            self._url,
            socket_connect_timeout=self._connect_timeout,
            socket_timeout=self._socket_timeout,
            retry=AsyncRetry(NoBackoff(), 0),
        )


class RedisSubscription(BufferedSubscription):
    """One subscriber of a :class:`RedisPubSub`: a connection and a reader task in its loop."""

    def __init__(self, pubsub: RedisPubSub, topics: tuple[str, ...]) -> None:
        super().__init__(topics, pubsub._buffer_size, lambda n: pubsub._counters.add("dropped", n))
        self._pubsub = pubsub
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()
        self._pause = MIN_BACKOFF
        self._outage_since: float | None = None

    async def __aenter__(self) -> RedisSubscription:
        mailbox = self._open_mailbox()
        try:
            self._pubsub._add(self)
        except PubSubClosed:
            mailbox.close()
            raise
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name=f"pubsub {self.topics[0]}")
        self._task.add_done_callback(self._reader_done)
        limit = self._pubsub._connect_timeout + self._pubsub._socket_timeout + 1.0
        with suppress(TimeoutError):
            await asyncio.wait_for(self._attempted.wait(), timeout=limit)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._pubsub._remove(self)
        self.end()
        if self._task is not None:
            # wait() rather than await: the task's CancelledError is not ours to raise.
            await asyncio.wait([self._task])

    def end(self) -> None:
        """Stop the reader and end the iteration (from any thread)."""
        if self._mailbox is not None:
            self._mailbox.close()
        if self._task is None or self._loop is None:
            return
        with suppress(RuntimeError):  # the loop is closed: the task is gone with it
            self._loop.call_soon_threadsafe(self._task.cancel)

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except (RedisError, OSError) as exc:
                self._connection_lost(exc)
            self._attempted.set()
            await asyncio.sleep(self._pause)
            self._pause = min(self._pause * 2, self._pubsub._max_backoff)

    async def _session(self) -> None:
        client = self._pubsub._async_client()
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(*self.topics)
            await self._read(pubsub)
        finally:
            with suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call] # untyped in redis-py
            with suppress(RedisError, OSError):
                await client.aclose()

    async def _read(self, pubsub: AsyncRedisPubSub) -> None:
        pending = set(self.topics)
        ping_sent = False
        heartbeat, pong_timeout = self._pubsub._heartbeat, self._pubsub._socket_timeout
        while True:
            message = await pubsub.get_message(timeout=pong_timeout if ping_sent else heartbeat)
            if message is None:
                if ping_sent:
                    raise RedisConnectionError("Redis did not answer a PING in time")
                await pubsub.ping()
                ping_sent = True
                continue
            ping_sent = False
            kind, channel = message["type"], message["channel"]
            if kind == "message":
                self._deliver(channel.decode(), message["data"])
            elif kind == "subscribe" and pending:
                pending.discard(channel.decode())
                if not pending:
                    self._subscribed()

    def _deliver(self, topic: str, data: bytes) -> None:
        if self._mailbox is not None:
            self._mailbox.push(topic, data)

    def _subscribed(self) -> None:
        if self._outage_since is not None and self._loop is not None:
            self._pubsub._counters.add("reconnects")
            logger.info(
                "pubsub: subscribed to %s again after %.1f s; messages published meanwhile "
                "are lost",
                ", ".join(self.topics[:3]),
                self._loop.time() - self._outage_since,
            )
        self._outage_since = None
        self._pause = MIN_BACKOFF  # a connection that worked is retried quickly when lost
        self._attempted.set()

    def _connection_lost(self, exc: BaseException) -> None:
        if self._outage_since is not None or self._loop is None:
            logger.debug("pubsub: still no Redis for %s: %s", self.topics[0], exc)
            return
        self._outage_since = self._loop.time()
        logger.warning(
            "pubsub: subscription to %s has no Redis connection (%s); reconnecting",
            ", ".join(self.topics[:3]),
            exc,
        )

    def _reader_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        failure = task.exception()
        if failure is not None:  # a bug, not an outage: surface it to the consumer
            logger.error("pubsub: the reader of %s failed", self.topics[0], exc_info=failure)
            self._fail(failure)


class _Sender:
    """The thread that hands published messages to Redis, in order, pipelining backlogs."""

    def __init__(self, client: redis.Redis, capacity: int, counters: Counters) -> None:
        self._client = client
        self._capacity = capacity
        self._counters = counters
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        self._queue: deque[tuple[int, str, str]] = deque()
        self._submitted = 0
        self._handled = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._failing = False
        self._lost = 0

    def submit(self, topic: str, payload: str) -> int | None:
        """Queue one message; its sequence number, or None when stopped (counted as failed)."""
        with self._lock:
            if self._stopping:
                overflow = stopped = True
            else:
                stopped = False
                self._start()
                overflow = len(self._queue) >= self._capacity
                if overflow:
                    self._queue.popleft()
                self._submitted += 1
                self._queue.append((self._submitted, topic, payload))
                self._work.notify()
        if overflow:
            self._lose(1, "the pub/sub is closed" if stopped else "the send queue is full")
        return None if stopped else self._submitted

    def wait(self, sequence: int, timeout: float) -> bool:
        """Wait until message ``sequence`` was sent or failed; False on timeout."""
        with self._lock:
            return self._done.wait_for(lambda: self._handled >= sequence, timeout)

    def stop(self, timeout: float) -> None:
        """Send what is queued for at most ``timeout`` seconds, then drop the rest."""
        with self._lock:
            self._stopping = True
            self._work.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            left = len(self._queue)
            self._queue.clear()
        if left:
            self._lose(left, "close() did not wait for Redis any longer")

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pubsub-sender", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                self._work.wait_for(lambda: bool(self._queue) or self._stopping)
                if not self._queue:
                    return
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH))]
            try:
                self._send(batch)
            except Exception:  # a thread boundary: log it and keep publishing
                logger.exception("pubsub: unexpected error publishing %d messages", len(batch))
                self._counters.add("failed", len(batch))
            with self._lock:
                self._handled = batch[-1][0]
                self._done.notify_all()

    def _send(self, batch: list[tuple[int, str, str]]) -> None:
        try:
            if len(batch) == 1:
                self._client.publish(batch[0][1], batch[0][2])
            else:
                with self._client.pipeline(transaction=False) as pipe:
                    for _, topic, payload in batch:
                        pipe.publish(topic, payload)
                    pipe.execute()
        except (RedisError, OSError) as exc:
            self._lose(len(batch), str(exc) or type(exc).__name__)
            return
        with self._lock:
            recovered, lost = self._failing, self._lost
            self._failing, self._lost = False, 0
        if recovered:
            logger.info("pubsub: publishing to Redis again; %d messages were lost", lost)

    def _lose(self, count: int, reason: str) -> None:
        self._counters.add("failed", count)
        with self._lock:
            first = not self._failing
            self._failing = True
            self._lost += count
        if first:
            logger.warning("pubsub: messages are not reaching Redis (%s); dropping them", reason)
