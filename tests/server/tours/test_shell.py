"""The tour server over real sockets: the app's lifespan starts it, clients get tickets over HTTP."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server.db.models import Role
from server.processing import hall_topic
from server.settings import Settings
from server.tours import protocol
from tests.factories import World, make_user
from tests.server.tours.wsclient import ORIGIN, Peer, guest_headers, ticket


def _hall(world: World) -> str:
    return str(world.hall["id"])


def _join(
    client: TestClient, world: World, name: str, headers: dict[str, str] | None = None
) -> Any:
    ticket_, url = ticket(client, headers or guest_headers(client, name), _hall(world))
    return Peer.join(url, {"ticket": ticket_})


def test_two_visitors_see_each_other_move(client: TestClient, world: World) -> None:
    async def scenario() -> None:
        ana = await _join(client, world, "Ana")
        ben = await _join(client, world, "Ben")
        await ana.move(3.0, -4.0)

        def sees_ana(frame: Any) -> bool:
            return any(p.id == ana.me and abs(p.position[0] - 3.0) < 0.01 for p in frame.near)

        frame = await ben.wait_frame(sees_ana)
        pose = next(p for p in frame.near if p.id == ana.me)
        assert pose.position[2] == pytest.approx(-4.0, abs=0.001)
        presence = await ana.wait("presence")
        assert any(c["member"]["name"] == "Ben" for c in presence["changes"])
        await ana.close()
        await ben.close()

    asyncio.run(scenario())


def test_a_guides_summon_moves_every_member_and_a_visitors_is_refused(
    client: TestClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    guide_user = make_user(sessions, settings, Role.guide)

    async def scenario() -> None:
        guide = await _join(client, world, "", guide_user.headers)
        visitors = [await _join(client, world, f"V{i}") for i in range(3)]
        await guide.send({"type": "tour.create", "title": "Honey"})
        tour_id = (await guide.wait("tour.snapshot"))["tour"]["id"]
        for visitor in visitors:
            await visitor.send({"type": "tour.join", "tour_id": tour_id})
            await visitor.wait("tour.snapshot")
        await visitors[0].send({"type": "tour.summon", "ref": "nope"})
        refused = await visitors[0].wait("error", ref="nope")
        assert refused["code"] == "forbidden"
        await guide.move(10.0, 5.0)
        await guide.wait_frame(
            lambda f: any(p.id == guide.me and p.position[0] > 9 for p in f.near)
        )
        await guide.send({"type": "tour.summon"})
        for visitor in visitors:
            teleport = await visitor.wait("teleport", reason="summon")
            x, _, z = teleport["position"]
            assert math.dist((x, z), (10.0, 5.0)) < 3.0
        assert not [m for v in visitors[1:] for m in v.messages if m["type"] == "error"]
        for peer in (guide, *visitors):
            await peer.close()

    asyncio.run(scenario())


def test_resume_keeps_the_tour_membership(
    client: TestClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    guide_user = make_user(sessions, settings, Role.guide)

    async def scenario() -> None:
        guide = await _join(client, world, "", guide_user.headers)
        await guide.send({"type": "tour.create", "title": "Wine"})
        tour_id = (await guide.wait("tour.snapshot"))["tour"]["id"]
        ticket_, url = ticket(client, guest_headers(client, "Cem"), _hall(world))
        cem = await Peer.join(url, {"ticket": ticket_})
        await cem.send({"type": "tour.join", "tour_id": tour_id})
        seq = (await cem.wait("tour.snapshot"))["tour"]["seq"]
        session = cem.first("welcome")["session"]
        me = cem.me
        cem.ws.transport.abort()  # the network drops; no close handshake
        await guide.wait("presence")
        await guide.send({"type": "tour.follow", "on": True})
        again = await Peer.join(url, {"resume": session, "last_seq": {tour_id: seq}})
        welcome = again.first("welcome")
        assert welcome["you"]["id"] == me
        assert welcome["tour_id"] == tour_id
        missed = await again.wait("tour.event", kind="follow")
        assert missed["seq"] == seq + 1
        await again.send({"type": "hand", "raised": True})
        hands = await guide.wait("tour.event", kind="hands")
        assert hands["event"]["hands"] == [me]
        await again.close()
        await guide.close()

    asyncio.run(scenario())


def test_a_client_that_never_reads_is_closed_and_others_are_unaffected(
    client: TestClient, world: World
) -> None:
    tours = client.app.state.tours  # type: ignore[attr-defined]
    pubsub = client.app.state.pubsub  # type: ignore[attr-defined]

    async def scenario() -> None:
        fast = await _join(client, world, "Fast")
        ticket_, url = ticket(client, guest_headers(client, "Slow"), _hall(world))
        slow = await connect(url, origin=ORIGIN, compression=None)  # type: ignore[arg-type]
        slow.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 4096
        )
        await slow.send(json.dumps({"type": "hello", "v": 1, "ticket": ticket_}))
        await fast.wait("presence")
        slow.transport.pause_reading()  # from here on the slow client reads nothing
        padding = "x" * 16_000
        started = time.monotonic()
        for index in range(400):  # ~6.4 MB to every client of the hall
            pubsub.publish(
                hall_topic(_hall(world)), {"type": "booth.updated", "n": index, "pad": padding}
            )
            await asyncio.sleep(0.002)
            if tours.server.slow_closed:
                break
        assert tours.server.slow_closed == 1
        await fast.wait("booth.updated", n=index, timeout=10)
        await fast.send({"type": "ping", "t": 1.5})
        await fast.wait("pong", t=1.5)
        assert fast.ws.close_code is None
        assert time.monotonic() - started < 20
        slow.transport.abort()
        await fast.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://127.0.0.1:8000.evil.example",
        "null",
        "HTTP://127.0.0.1:8000",
        "https://127.0.0.1:8000",
        None,
    ],
)
def test_hostile_origins_are_refused_at_the_handshake(
    client: TestClient, world: World, origin: str | None
) -> None:
    _, url = ticket(client, guest_headers(client, "Eve"), _hall(world))

    async def scenario() -> None:
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, origin=origin, compression=None)  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403

    asyncio.run(scenario())


def test_bad_tickets_are_refused_before_any_hall_data(
    client: TestClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    good, url = ticket(client, guest_headers(client, "Ann"), _hall(world))
    other_hall = client.post(
        f"/api/expos/{world.expo['id']}/halls",
        json={"name": "Hall 2", "width": 20, "depth": 20},
        headers=world.admin.headers,
    ).json()["id"]
    elsewhere, _ = ticket(client, guest_headers(client, "Bo"), other_hall)
    token = guest_headers(client, "Cy")["Authorization"].split()[1]

    async def attempt(hello: dict[str, Any]) -> tuple[int | None, list[Any]]:
        async with connect(url, origin=ORIGIN, compression=None) as ws:  # type: ignore[arg-type]
            await ws.send(json.dumps(hello))
            received = []
            try:
                while True:
                    received.append(await asyncio.wait_for(ws.recv(), 5))
            except ConnectionClosed:
                return ws.close_code, received

    async def scenario() -> None:
        peer = await Peer.join(url, {"ticket": good})
        for hello in (
            {"type": "hello", "v": 1, "ticket": good},  # replayed
            {"type": "hello", "v": 1, "ticket": elsewhere},
            {"type": "hello", "v": 1, "ticket": token},  # an access token is no ticket
            {"type": "hello", "v": 1, "ticket": "x.y.z"},
            {"type": "hello", "v": 1, "resume": "no-such-session"},
            {"type": "ping"},
        ):
            code, received = await attempt(hello)
            assert code == protocol.CLOSE_UNAUTHORISED, hello
            assert received == [], hello
        await peer.close()

    asyncio.run(scenario())


def test_a_message_over_64_kib_closes_with_1009(client: TestClient, world: World) -> None:
    async def scenario() -> None:
        peer = await _join(client, world, "Big")
        await peer.ws.send(json.dumps({"type": "chat", "text": "x" * 70_000}))
        await peer.reader
        assert peer.ws.close_code == 1009

    asyncio.run(scenario())


def test_booth_updates_from_the_job_system_reach_the_halls_visitors(
    client: TestClient, world: World
) -> None:
    pubsub = client.app.state.pubsub  # type: ignore[attr-defined]

    async def scenario() -> None:
        peer = await _join(client, world, "Dee")
        booth = str(world.booths[0]["id"])
        message = {"type": "booth.updated", "hall_id": _hall(world), "booth_id": booth}
        pubsub.publish(hall_topic(_hall(world)), message)
        got = await peer.wait("booth.updated")
        assert got["booth_id"] == booth
        await peer.close()

    asyncio.run(scenario())


def test_tickets_need_a_token_and_a_real_hall(client: TestClient, world: World) -> None:
    assert client.post(f"/api/halls/{_hall(world)}/tickets").status_code == 401
    headers = guest_headers(client, "Fay")
    missing = client.post(
        "/api/halls/99999999-9999-4999-8999-999999999999/tickets", headers=headers
    )
    assert missing.status_code == 404
    response = client.post(f"/api/halls/{_hall(world)}/tickets", headers=headers)
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["url"].endswith(f"/ws/halls/{_hall(world)}")


def test_a_scheduled_tour_goes_live_and_ends_in_the_rest_schedule(
    client: TestClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    guide_user = make_user(sessions, settings, Role.guide)
    admin = world.admin.headers
    guide_id = client.post(
        "/api/guides",
        json={"user_id": str(guide_user.user_id), "display_name": "Lin"},
        headers=admin,
    ).json()["id"]
    tour = client.post(
        "/api/tours",
        json={
            "hall_id": _hall(world),
            "guide_id": guide_id,
            "title": "Tea at noon",
            "language": "en",
            "starts_at": "2026-12-01T12:00:00+00:00",
            "capacity": 30,
        },
        headers=admin,
    )
    assert tour.status_code == 201, tour.text
    tour_id = tour.json()["id"]

    def status() -> str:
        return str(client.get(f"/api/tours/{tour_id}").json()["status"])

    async def until(expected: str) -> None:
        async with asyncio.timeout(5):
            while status() != expected:
                await asyncio.sleep(0.05)

    async def scenario() -> None:
        guide = await _join(client, world, "", guide_user.headers)
        assert [s["id"] for s in guide.first("welcome")["scheduled"]] == [tour_id]
        await guide.send({"type": "tour.start", "tour_id": tour_id})
        snapshot = (await guide.wait("tour.snapshot"))["tour"]
        assert (snapshot["scheduled_id"], snapshot["capacity"]) == (tour_id, 30)
        await until("live")
        await guide.send({"type": "tour.end"})
        await guide.wait("tour.event", kind="ended")
        await until("ended")
        await guide.close()

    asyncio.run(scenario())


def test_compression_is_never_negotiated(client: TestClient, world: World) -> None:
    ticket_, url = ticket(client, guest_headers(client, "Zip"), _hall(world))

    async def scenario() -> None:
        async with connect(url, origin=ORIGIN) as ws:  # type: ignore[arg-type]  # offers deflate
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions")  # type: ignore[union-attr]
            assert extensions is None
            await ws.send(json.dumps({"type": "hello", "v": 1, "ticket": ticket_}))
            assert json.loads(await ws.recv())["type"] == "welcome"

    asyncio.run(scenario())
