"""One hall on two server processes joined by Redis: one tour across both, and a Redis restart.

Process A is this test's app (its lifespan runs the tour server in the TestClient's loop);
process B is a real ``uvicorn`` subprocess on the same database, Redis and secret. The guide
connects to A, the visitors to B.
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.db.models import Role
from tests.conftest import TEST_SECRET, make_settings
from tests.factories import World, build_world, make_user
from tests.live import free_port
from tests.paths import REPO
from tests.redis_server import RedisProcess, throwaway_redis
from tests.server.tours.wsclient import Peer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    with throwaway_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def node_a(sqlite_url: str, tmp_path: Path, own_redis: RedisProcess) -> Iterator[TestClient]:
    settings = make_settings(sqlite_url, tmp_path, redis_url=own_redis.url)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def node_b(
    sqlite_url: str, tmp_path: Path, own_redis: RedisProcess, node_a: TestClient
) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "PAVILION_ENVIRONMENT": "test",
        "PAVILION_DATABASE__URL": sqlite_url,
        "PAVILION_BLOBS__LOCAL_DIR": str(tmp_path / "blobs"),
        "PAVILION_REDIS_URL": own_redis.url,
        "PAVILION_AUTH__SECRET_KEY": TEST_SECRET,
        "PAVILION_SEED_DEMO": "false",
        "PAVILION_PORT": "8000",  # the Origin allowlist: the same site as node A
        "PAVILION_TOURS__PORT": "0",
    }
    log = (tmp_path / "node-b.log").open("wb")
    args = [sys.executable, "-m", "uvicorn", "--factory", "server.asgi:build"]
    process = subprocess.Popen(
        [*args, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (tmp_path / "node-b.log").read_text()
            assert time.monotonic() < deadline, "node B did not start"
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _ticket(base: str | TestClient, headers: dict[str, str], hall: str) -> tuple[str, str]:
    response: Any
    if isinstance(base, TestClient):
        response = base.post(f"/api/halls/{hall}/tickets", headers=headers)
    else:
        response = httpx.post(f"{base}/api/halls/{hall}/tickets", headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["ticket"], response.json()["url"]


def _guest(base: str, name: str) -> dict[str, str]:
    token = httpx.post(f"{base}/api/auth/guest", json={"display_name": name}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_a_guide_on_one_process_leads_visitors_on_another_through_a_redis_restart(
    node_a: TestClient, node_b: str, own_redis: RedisProcess, tmp_path: Path
) -> None:
    settings = node_a.app.state.settings  # type: ignore[attr-defined]
    sessions = node_a.app.state.sessions  # type: ignore[attr-defined]
    world: World = build_world(node_a, sessions, settings)
    hall = str(world.hall["id"])
    guide_user = make_user(sessions, settings, Role.guide)

    async def scenario() -> None:
        ticket, url_a = _ticket(node_a, guide_user.headers, hall)
        guide = await Peer.join(url_a, {"ticket": ticket})
        await guide.send({"type": "tour.create", "title": "Across processes"})
        tour_id = (await guide.wait("tour.snapshot"))["tour"]["id"]
        visitors = []
        for name in ("Vera", "Omar"):
            ticket, url_b = _ticket(node_b, _guest(node_b, name), hall)
            assert url_b != url_a  # another process, another tour port
            visitors.append(await Peer.join(url_b, {"ticket": ticket}))
        for visitor in visitors:
            await _join_until_member(visitor, tour_id)
        joined = await guide.wait("tour.event", kind="member_joined", timeout=5)
        assert joined["tour_id"] == tour_id

        # the guide's pose crosses to B; the summon brings B's visitors next to it
        await guide.move(12.0, -6.0)
        for visitor in visitors:
            await visitor.wait_frame(
                lambda f: any(p.id == guide.me and abs(p.position[0] - 12.0) < 0.01 for p in f.near)
            )
        await guide.send({"type": "tour.summon"})
        for visitor in visitors:
            x, _, z = (await visitor.wait("teleport", reason="summon"))["position"]
            assert math.dist((x, z), (12.0, -6.0)) < 3.0
        # a visitor's summon is refused on its own node and nowhere applied
        await visitors[0].send({"type": "tour.summon", "ref": "no"})
        assert (await visitors[0].wait("error", ref="no"))["code"] == "forbidden"

        # Redis dies; the guide changes the tour meanwhile (applied on A only)
        own_redis.stop(kill=True)
        await asyncio.sleep(1.0)
        await guide.send({"type": "tour.follow", "on": True})
        await guide.wait("tour.event", kind="follow")
        own_redis.start()
        restarted = time.monotonic()
        for visitor in visitors:
            snapshot = await visitor.wait_for(
                lambda m: m["type"] == "tour.snapshot" and m["tour"]["follow"], timeout=5.0
            )
            assert snapshot["tour"]["guide"]["id"] == guide.me
        converged = time.monotonic() - restarted
        assert converged < 5.0
        # and the tour works across processes again
        await visitors[1].send({"type": "hand", "raised": True})
        hands = await guide.wait("tour.event", kind="hands", timeout=5)
        assert hands["event"]["hands"] == [visitors[1].me]
        for peer in (guide, *visitors):
            await peer.close()

    asyncio.run(scenario())


async def _join_until_member(peer: Peer, tour_id: str) -> None:
    async with asyncio.timeout(10):
        while True:
            await peer.send({"type": "tour.join", "tour_id": tour_id})
            try:
                async with asyncio.timeout(1.5):
                    while True:
                        for message in peer.messages:
                            if message["type"] == "tour.snapshot":
                                members = [m["id"] for m in message["tour"]["members"]]
                                if peer.me in members:
                                    return
                        peer.changed.clear()
                        await peer.changed.wait()
            except TimeoutError:
                continue
