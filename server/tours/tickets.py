"""Single-use websocket tickets (docs/protocol.md "Connecting").

A client trades its access token for a ticket over HTTPS (``POST /api/halls/{id}/tickets``) and
sends the ticket in its first websocket message, so that tokens never travel in a websocket URL.
A ticket is a compact JWS (HS256) with ``typ`` ``ticket``, ``aud`` ``tours``, the hall id, a
random ``jti`` and an ``exp`` 30 seconds ahead. It is signed with a key derived from the auth
secret, not with the secret itself: an access token is never a valid ticket and a ticket is
never a valid access token, whatever either decoder checks (``aud`` and ``typ`` refuse them a
second time). Redeeming checks the signature, the expiry (against the caller's ``now``), the
hall, and then claims the ``jti`` in a :class:`TicketLedger` so that a ticket works once.

Two ledgers implement the port: :class:`MemoryTicketLedger` (one process, the embedded
default) and :class:`RedisTicketLedger` (``SET NX EXAT``, shared by every replica).

Errors::

    ExpoError (server.errors)
    +-- TicketError          401 bad_ticket        not a ticket, bad signature, malformed claims
    |   +-- ExpiredTicket    401 expired_ticket
    |   +-- ReplayedTicket   401 replayed_ticket   its jti was claimed before
    |   +-- WrongHall        401 wrong_hall        issued for another hall
    +-- TicketUnavailable    503 tickets_unavailable  the ledger cannot answer (Redis down, full)
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import logging
import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from server.auth import Principal
from server.db.models import Role
from server.errors import ExpoError
from server.pubsub.redis import check_redis_url, redact_url

logger = logging.getLogger(__name__)

TICKET_TTL = 30.0
TICKET_TYPE = "ticket"
TICKET_AUDIENCE = "tours"
_ALGORITHM = "HS256"
_KEY_LABEL = b"pavilion/tours/ticket/v1"
# A claimed jti is remembered this long past its ticket's expiry, so that a ledger whose clock
# runs ahead of the redeeming process (Redis on another machine) cannot forget it too early.
CLOCK_MARGIN = 60.0
REDIS_PREFIX = "pavilion:ticket:"
DEFAULT_MAX_ENTRIES = 100_000
_REQUIRED = ["typ", "aud", "sub", "name", "role", "guest", "hall", "jti", "exp"]


class TicketError(ExpoError):
    """A ticket that may not open a websocket (the socket is closed with 4401)."""

    status = 401
    code = "bad_ticket"


class ExpiredTicket(TicketError):
    code = "expired_ticket"


class ReplayedTicket(TicketError):
    code = "replayed_ticket"


class WrongHall(TicketError):
    code = "wrong_hall"


class TicketUnavailable(ExpoError):
    """The ledger cannot tell whether a ticket was used: fail closed."""

    status = 503
    code = "tickets_unavailable"


@dataclass(frozen=True, slots=True)
class TicketClaims:
    """Who a redeemed ticket admits, to which hall, until when (unix seconds)."""

    subject: str
    display_name: str
    role: str
    guest: bool
    hall_id: uuid.UUID
    jti: str
    expires_at: float


class TicketLedger(Protocol):
    """Single-use bookkeeping of ticket ids."""

    def claim(self, jti: str, expires_at: float) -> bool:
        """True the first time ``jti`` is claimed, False ever after (until it is forgotten)."""
        ...


def _ticket_key(secret: bytes) -> bytes:
    # A key of its own (HMAC as a KDF): signatures of tickets and access tokens never verify
    # under each other's key, and the 32-byte key is long enough for HS256 however short the
    # secret is.
    return hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()


def issue_ticket(
    secret: bytes, principal: Principal, hall_id: uuid.UUID, now: float, ttl: float = TICKET_TTL
) -> tuple[str, float]:
    """Sign a single-use ticket admitting ``principal`` to the hall ``hall_id``.

    Args:
        secret: the auth secret (``settings.auth.secret_key``), as bytes.
        principal: who the ticket admits; guests keep their ``guest:<uuid>`` subject.
        hall_id: the one hall the ticket opens.
        now: unix seconds (the caller's clock).
        ttl: seconds the ticket lives.

    Returns:
        The ticket and its expiry in unix seconds.

    Raises:
        ValueError: ``ttl`` is not positive.
    """
    if not ttl > 0:
        raise ValueError("a ticket's ttl must be positive")
    expires_at = now + ttl
    claims = {
        "typ": TICKET_TYPE,
        "aud": TICKET_AUDIENCE,
        "sub": principal.subject,
        "name": principal.display_name,
        "role": principal.role.value,
        "guest": principal.guest,
        "hall": str(hall_id),
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": expires_at,
    }
    return jwt.encode(claims, _ticket_key(secret), algorithm=_ALGORITHM), expires_at


def redeem_ticket(
    secret: bytes, ledger: TicketLedger, ticket: str, hall_id: uuid.UUID, now: float
) -> TicketClaims:
    """Check ``ticket`` for the hall ``hall_id`` and use it up.

    Args:
        secret: the auth secret the ticket was issued with.
        ledger: where the ticket's ``jti`` is claimed.
        ticket: the ticket from the client's ``hello``.
        hall_id: the hall the websocket is for.
        now: unix seconds (the caller's clock; nothing here reads one).

    Returns:
        The ticket's claims.

    Raises:
        TicketError: not a ticket, or signed with another key (``bad_ticket``); ``ExpiredTicket``,
            ``WrongHall``, ``ReplayedTicket``.
        TicketUnavailable: the ledger could not answer.
    """
    claims = _parse(_verify(secret, ticket))
    if now >= claims.expires_at:
        raise ExpiredTicket("the ticket has expired")
    if claims.hall_id != hall_id:
        raise WrongHall("the ticket is for another hall")
    if not ledger.claim(claims.jti, claims.expires_at):
        raise ReplayedTicket("the ticket was used before")
    return claims


def _verify(secret: bytes, ticket: str) -> dict[str, Any]:
    try:
        payload: dict[str, Any] = jwt.decode(
            ticket,
            _ticket_key(secret),
            algorithms=[_ALGORITHM],
            audience=TICKET_AUDIENCE,
            # The expiry is checked against the caller's ``now``, not PyJWT's clock.
            options={
                "require": _REQUIRED,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise TicketError(f"not a valid ticket: {exc}") from exc
    return payload


def _parse(payload: dict[str, Any]) -> TicketClaims:
    try:
        if payload["typ"] != TICKET_TYPE:
            raise ValueError("not a ticket")
        subject, name, jti = payload["sub"], payload["name"], payload["jti"]
        guest, expires_at = payload["guest"], payload["exp"]
        if not (isinstance(subject, str) and isinstance(name, str) and isinstance(jti, str)):
            raise TypeError("sub, name and jti are strings")
        if not isinstance(guest, bool) or isinstance(expires_at, bool):
            raise TypeError("guest is a boolean, exp a number")
        return TicketClaims(
            subject=subject,
            display_name=name,
            role=Role(payload["role"]).value,
            guest=guest,
            hall_id=uuid.UUID(payload["hall"]),
            jti=jti,
            expires_at=float(expires_at),
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise TicketError(f"malformed ticket: {exc}") from exc


class MemoryTicketLedger:
    """Claimed ticket ids in a dict, for one process; thread-safe.

    Entries are forgotten ``CLOCK_MARGIN`` seconds after their ticket expired. When
    ``max_entries`` unexpired entries are held, a new claim raises :class:`TicketUnavailable`
    rather than forgetting a live one (which would let that ticket be replayed).

    Args:
        max_entries: the most ticket ids remembered at once.
        clock: unix seconds, for forgetting expired entries.
    """

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Callable[[], float] = time.time
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._claimed: dict[str, float] = {}
        self._expiries: list[tuple[float, str]] = []  # a heap: the next to forget first

    def __len__(self) -> int:
        with self._lock:
            return len(self._claimed)

    def claim(self, jti: str, expires_at: float) -> bool:
        """True the first time ``jti`` is claimed (see :class:`TicketLedger`).

        Raises:
            TicketUnavailable: the ledger is full of unexpired entries.
        """
        forget_at = expires_at + CLOCK_MARGIN
        with self._lock:
            self._prune(self._clock())
            if jti in self._claimed:
                return False
            if len(self._claimed) >= self._max_entries:
                logger.warning("ticket ledger full (%d live tickets)", len(self._claimed))
                raise TicketUnavailable("too many tickets in flight; try again shortly")
            self._claimed[jti] = forget_at
            heapq.heappush(self._expiries, (forget_at, jti))
            return True

    def _prune(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            _, jti = heapq.heappop(self._expiries)
            self._claimed.pop(jti, None)


class RedisTicketLedger:
    """Claimed ticket ids in Redis (``SET <prefix><jti> 1 NX EXAT``), shared by every replica.

    ``claim`` blocks for at most the connect plus socket timeouts: call it from a thread (e.g.
    ``asyncio.to_thread``) inside an event loop. redis-py's retries are off: a retried SET whose
    first reply was lost would answer "claimed before" for a fresh ticket.

    Args:
        url: ``redis://[user:password@]host[:port][/db]``, ``rediss://...`` or ``unix://path``.
        prefix: of the keys; the default is ``pavilion:ticket:``.
        connect_timeout, socket_timeout: seconds.

    Raises:
        PubSubConfigError: the URL is malformed (nothing is connected at construction).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = REDIS_PREFIX,
        connect_timeout: float = 2.0,
        socket_timeout: float = 2.0,
    ) -> None:
        self._url = check_redis_url(url)
        self._prefix = prefix
        self._client = redis.Redis.from_url(
            url,
            socket_connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._down = False  # log an outage once, and its end

    def claim(self, jti: str, expires_at: float) -> bool:
        """True the first time ``jti`` is claimed (see :class:`TicketLedger`).

        Raises:
            TicketUnavailable: Redis did not answer.
        """
        # EXAT takes whole seconds; rounding up keeps the key at least as long as the ticket.
        forget_at = math.ceil(expires_at + CLOCK_MARGIN)
        try:
            created = self._client.set(f"{self._prefix}{jti}", 1, nx=True, exat=forget_at)
        except (RedisError, OSError) as exc:
            if not self._down:
                self._down = True
                logger.warning("ticket ledger: Redis at %s did not answer: %s", self.url, exc)
            raise TicketUnavailable("the ticket ledger is not reachable") from exc
        if self._down:
            self._down = False
            logger.info("ticket ledger: Redis at %s answers again", self.url)
        return bool(created)

    @property
    def url(self) -> str:
        """The URL with its password hidden."""
        return redact_url(self._url)

    def close(self) -> None:
        """Close the connection pool. Idempotent."""
        self._client.close()
