"""Websocket tickets: signing, redeeming once, and both ledgers (memory and a real Redis)."""

from __future__ import annotations

import base64
import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import jwt
import pytest
import redis
from pydantic import SecretStr

from server.auth import Principal, decode_token, issue_token
from server.db.models import Role
from server.errors import Unauthorized
from server.settings import AuthSettings
from server.tours.tickets import (
    CLOCK_MARGIN,
    TICKET_TTL,
    ExpiredTicket,
    MemoryTicketLedger,
    RedisTicketLedger,
    ReplayedTicket,
    TicketClaims,
    TicketError,
    TicketLedger,
    TicketUnavailable,
    WrongHall,
    _ticket_key,
    issue_ticket,
    redeem_ticket,
)
from tests.services import LOOPBACK, free_port

SECRET = "test-secret-key-that-is-long-enough-for-hs256"
KEY = SECRET.encode()
NOW = 1_900_000_000.0
HALL = uuid.UUID("6f1c1f5e-8a43-4d0c-9d0c-7d5b8d1f0a11")
USER = Principal(str(uuid.uuid4()), Role.exhibitor, "Ada", organisation_id=uuid.uuid4())
GUEST = Principal(f"guest:{uuid.uuid4()}", Role.visitor, "Guest 7", guest=True)


@pytest.fixture
def redis_ledger(redis_url: str) -> Iterator[RedisTicketLedger]:
    # A prefix of its own: the machine's Redis may be shared with other runs.
    ledger = RedisTicketLedger(redis_url, prefix=f"test:ticket:{uuid.uuid4().hex}:")
    yield ledger
    ledger.close()


@pytest.fixture(params=["memory", "redis"])
def ledger(request: pytest.FixtureRequest) -> TicketLedger:
    """Each ledger in turn: the single-use suite runs against both (Redis for real)."""
    if request.param == "memory":
        return MemoryTicketLedger(clock=lambda: NOW)
    adapter: RedisTicketLedger = request.getfixturevalue("redis_ledger")
    return adapter


def _payload(ticket: str) -> dict[str, object]:
    body = ticket.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return decoded


@pytest.mark.parametrize("principal", [USER, GUEST], ids=["user", "guest"])
def test_a_redeemed_ticket_gives_back_its_principal_and_hall(
    ledger: TicketLedger, principal: Principal
) -> None:
    ticket, expires_at = issue_ticket(KEY, principal, HALL, NOW)

    claims = redeem_ticket(KEY, ledger, ticket, HALL, NOW + 1)

    assert expires_at == NOW + TICKET_TTL
    assert claims == TicketClaims(
        subject=principal.subject,
        display_name=principal.display_name,
        role=principal.role.value,
        guest=principal.guest,
        hall_id=HALL,
        jti=claims.jti,
        expires_at=expires_at,
    )
    assert len(claims.jti) >= 16


def test_every_ticket_has_its_own_id() -> None:
    jtis = {_payload(issue_ticket(KEY, USER, HALL, NOW)[0])["jti"] for _ in range(50)}

    assert len(jtis) == 50


def test_a_ticket_works_until_its_last_instant_and_not_at_its_expiry(ledger: TicketLedger) -> None:
    last, _ = issue_ticket(KEY, USER, HALL, NOW, ttl=30)
    late, _ = issue_ticket(KEY, USER, HALL, NOW, ttl=30)

    assert redeem_ticket(KEY, ledger, last, HALL, NOW + 29.999).subject == USER.subject
    with pytest.raises(ExpiredTicket) as caught:
        redeem_ticket(KEY, ledger, late, HALL, NOW + 30)
    assert (caught.value.status, caught.value.code) == (401, "expired_ticket")


def test_a_ticket_is_checked_against_the_callers_clock_not_the_machines() -> None:
    # Issued and redeemed in 2001: PyJWT's own exp check would call it long expired.
    then = datetime(2001, 1, 1, tzinfo=UTC).timestamp()
    ticket, _ = issue_ticket(KEY, USER, HALL, then)

    assert redeem_ticket(KEY, MemoryTicketLedger(), ticket, HALL, then + 5).hall_id == HALL


def test_a_ticket_is_refused_a_second_time(ledger: TicketLedger) -> None:
    ticket, _ = issue_ticket(KEY, GUEST, HALL, NOW)
    redeem_ticket(KEY, ledger, ticket, HALL, NOW)

    with pytest.raises(ReplayedTicket) as caught:
        redeem_ticket(KEY, ledger, ticket, HALL, NOW + 1)
    assert caught.value.code == "replayed_ticket"


def test_a_ticket_for_another_hall_is_refused_and_not_used_up(ledger: TicketLedger) -> None:
    ticket, _ = issue_ticket(KEY, USER, HALL, NOW)

    with pytest.raises(WrongHall) as caught:
        redeem_ticket(KEY, ledger, ticket, uuid.uuid4(), NOW)

    assert caught.value.code == "wrong_hall"
    assert redeem_ticket(KEY, ledger, ticket, HALL, NOW).hall_id == HALL


@pytest.mark.parametrize("part", [0, 1, 2], ids=["header", "payload", "signature"])
def test_a_ticket_with_any_part_changed_is_refused(ledger: TicketLedger, part: int) -> None:
    ticket, _ = issue_ticket(KEY, USER, HALL, NOW)
    parts = ticket.split(".")
    chunk = parts[part]
    # Change a character in the middle: a base64url tail may carry ignored padding bits.
    middle = len(chunk) // 2
    parts[part] = chunk[:middle] + ("A" if chunk[middle] != "A" else "B") + chunk[middle + 1 :]

    with pytest.raises(TicketError) as caught:
        redeem_ticket(KEY, ledger, ".".join(parts), HALL, NOW)
    assert caught.value.code == "bad_ticket"


def test_a_ticket_with_forged_claims_is_refused() -> None:
    ticket, _ = issue_ticket(KEY, GUEST, HALL, NOW)
    header, _, signature = ticket.split(".")
    claims = _payload(ticket) | {"role": "admin", "guest": False}
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    with pytest.raises(TicketError, match="not a valid ticket"):
        redeem_ticket(KEY, MemoryTicketLedger(), f"{header}.{forged_body}.{signature}", HALL, NOW)


def test_a_ticket_from_another_secret_is_refused() -> None:
    ticket, _ = issue_ticket(b"another-secret-of-another-installation", USER, HALL, NOW)

    with pytest.raises(TicketError) as caught:
        redeem_ticket(KEY, MemoryTicketLedger(), ticket, HALL, NOW)
    assert caught.value.code == "bad_ticket"


def test_a_ticket_is_not_an_access_token() -> None:
    settings = AuthSettings(secret_key=SecretStr(SECRET))
    ticket, _ = issue_ticket(KEY, USER, HALL, time.time())

    with pytest.raises(Unauthorized) as caught:
        decode_token(settings, ticket)
    assert caught.value.code == "invalid_token"


def test_ticket_claims_signed_with_the_access_key_are_still_no_access_token() -> None:
    # The second line of defence: were the keys ever the same, aud "tours" is still refused.
    settings = AuthSettings(secret_key=SecretStr(SECRET))
    now = time.time()
    claims = _payload(issue_ticket(KEY, USER, HALL, now)[0]) | {"iat": int(now)}
    token = jwt.encode(claims, SECRET, algorithm="HS256")

    with pytest.raises(Unauthorized) as caught:
        decode_token(settings, token)
    assert caught.value.code == "invalid_token"


@pytest.mark.parametrize("principal", [USER, GUEST], ids=["user", "guest"])
def test_an_access_token_is_not_a_ticket(principal: Principal) -> None:
    settings = AuthSettings(secret_key=SecretStr(SECRET))
    token = issue_token(settings, principal, now=datetime.fromtimestamp(NOW, UTC)).token
    # The same claims re-signed with the ticket key still lack aud and typ "ticket".
    resigned = jwt.encode(
        _payload(token) | {"hall": str(HALL), "jti": "x" * 22},
        _ticket_key(KEY),
        algorithm="HS256",
    )

    for candidate in (token, resigned):
        with pytest.raises(TicketError) as caught:
            redeem_ticket(KEY, MemoryTicketLedger(), candidate, HALL, NOW)
        assert caught.value.code == "bad_ticket"


@pytest.mark.parametrize("junk", ["", "not.a.ticket", "a" * 300, "...", "e30.e30.e30"])
def test_junk_is_a_bad_ticket(junk: str) -> None:
    with pytest.raises(TicketError) as caught:
        redeem_ticket(KEY, MemoryTicketLedger(), junk, HALL, NOW)
    assert type(caught.value) is TicketError


def test_a_ticket_fits_in_a_hello_message() -> None:
    long_name = Principal(f"guest:{uuid.uuid4()}", Role.visitor, "名" * 100, guest=True)
    ticket, _ = issue_ticket(KEY, long_name, HALL, NOW)

    assert len(ticket) <= 4096  # server.tours.protocol.Hello.ticket


def test_of_eight_threads_claiming_one_ticket_exactly_one_wins(ledger: TicketLedger) -> None:
    ticket, _ = issue_ticket(KEY, USER, HALL, NOW)
    start = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def redeem() -> None:
        start.wait()
        try:
            redeem_ticket(KEY, ledger, ticket, HALL, NOW)
            outcome = "admitted"
        except ReplayedTicket:
            outcome = "replayed"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=redeem) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert sorted(outcomes) == ["admitted"] + ["replayed"] * 7


def test_the_memory_ledger_forgets_a_ticket_only_after_its_expiry_and_the_margin() -> None:
    clock = [NOW]
    ledger = MemoryTicketLedger(clock=lambda: clock[0])
    assert ledger.claim("a", NOW + 30)
    assert ledger.claim("b", NOW + 300)

    clock[0] = NOW + 30 + CLOCK_MARGIN - 0.001
    assert not ledger.claim("a", NOW + 30)
    clock[0] = NOW + 30 + CLOCK_MARGIN
    assert ledger.claim("c", NOW + 400)

    assert len(ledger) == 2  # "a" forgotten, "b" and "c" remembered
    assert not ledger.claim("b", NOW + 300)


def test_a_full_memory_ledger_refuses_rather_than_forgetting_a_live_ticket() -> None:
    clock = [NOW]
    ledger = MemoryTicketLedger(max_entries=3, clock=lambda: clock[0])
    for jti in "abc":
        assert ledger.claim(jti, NOW + 30)

    with pytest.raises(TicketUnavailable) as caught:
        ledger.claim("d", NOW + 30)
    assert (caught.value.status, caught.value.code) == (503, "tickets_unavailable")
    assert not ledger.claim("a", NOW + 30)

    clock[0] = NOW + 30 + CLOCK_MARGIN
    assert ledger.claim("d", NOW + 60)
    assert len(ledger) == 1


def test_the_redis_ledger_keeps_a_claim_until_after_the_ticket_expires(redis_url: str) -> None:
    prefix = f"test:ticket:{uuid.uuid4().hex}:"
    ledger = RedisTicketLedger(redis_url, prefix=prefix)
    client = redis.Redis.from_url(redis_url)
    expires_at = time.time() + 30.25
    try:
        assert ledger.claim("one", expires_at)
        expire_time = client.expiretime(f"{prefix}one")
    finally:
        client.close()
        ledger.close()

    assert expire_time == math.ceil(expires_at + CLOCK_MARGIN)


def test_an_unreachable_redis_makes_the_ledger_unavailable_not_permissive() -> None:
    ledger = RedisTicketLedger(f"redis://{LOOPBACK}:{free_port()}/0", connect_timeout=0.5)
    ticket, _ = issue_ticket(KEY, USER, HALL, NOW)
    try:
        with pytest.raises(TicketUnavailable) as caught:
            redeem_ticket(KEY, ledger, ticket, HALL, NOW)
    finally:
        ledger.close()
    assert caught.value.status == 503


def test_a_redis_url_with_a_password_is_never_shown() -> None:
    ledger = RedisTicketLedger("redis://user:hunter2@127.0.0.1:1/0")
    try:
        assert "hunter2" not in ledger.url
    finally:
        ledger.close()
