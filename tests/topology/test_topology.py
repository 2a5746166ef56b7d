"""The production topology without Docker: docker-compose.yml's services as loopback processes.

PostgreSQL, Redis, SeaweedFS (with the compose file's bucket step), two API/tour processes and a
worker run with their compose commands and environments, behind Debian's nginx running
deploy/nginx.conf (tests/topology/stack.py). Everything the clients do goes through the proxy:
an exhibitor uploads a corpus model, a guide and a visitor whose websockets the proxy balanced
onto different API processes share one tour, and the booth update reaches both. The processes'
own ports are used only to read their metrics, as Prometheus would.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from server.db.models import Role
from server.db.session import build_engine, session_factory
from server.settings import AuthSettings, DatabaseSettings, Settings
from tests.factories import World, build_world, make_user
from tests.paths import CORPUS
from tests.server.tours.wsclient import Peer
from tests.services import S3Service
from tests.topology.stack import Topology, topology

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.s3,
    pytest.mark.slow,
    pytest.mark.timeout(180),
]

INDEX = b"<!doctype html><title>Pavilion</title><p>the topology test's web client</p>\n"
WEB = {"index.html": INDEX, "assets/app-0123abcd.js": b"console.log('pavilion');\n"}
NODE_BITS = 20  # docs/protocol.md: avatar ids are node x 2^20 + n


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, s3_service: S3Service
) -> Iterator[Topology]:
    """One topology for the module: starting it is most of the tests' time."""
    if not (CORPUS / "Duck.glb").is_file():
        pytest.fail(f"the shared corpus is missing: {CORPUS / 'Duck.glb'}")
    with topology(tmp_path_factory.mktemp("topology"), postgres_url, s3_service, WEB) as running:
        yield running


@pytest.fixture
def sessions(stack: Topology) -> Iterator[sessionmaker[Session]]:
    """The topology's database, for the factories that create users (as an admin's CLI would)."""
    engine = build_engine(DatabaseSettings(url=stack.database_url))
    yield session_factory(engine)
    engine.dispose()


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` with ``labels`` in a Prometheus text page."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def scrape(url: str) -> str:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def test_the_proxy_serves_the_web_client_and_the_api_but_not_the_metrics(stack: Topology) -> None:
    with httpx.Client(base_url=stack.proxy.url, timeout=10) as http:
        assert http.get("/health").json() == {"status": "ok"}
        page = http.get("/")
        assert page.content == INDEX
        assert page.headers["cache-control"] == "no-cache"
        asset = http.get("/assets/app-0123abcd.js")
        assert "immutable" in asset.headers["cache-control"]
        assert http.get("/api/expos").status_code == 200
        for internal in ("/metrics", "/ready", "/docs"):
            assert http.get(internal).status_code == 404, internal
    for base in stack.apis:
        assert "pavilion_tour_connections" in scrape(f"{base}/metrics")


def test_an_upload_through_the_proxy_reaches_a_tour_shared_by_two_api_processes(
    stack: Topology, sessions: sessionmaker[Session]
) -> None:
    secret = SecretStr(stack.env["PAVILION_AUTH__SECRET_KEY"])
    settings = Settings(environment="test", auth=AuthSettings(secret_key=secret))
    with httpx.Client(base_url=stack.proxy.url, timeout=30) as http:
        # build_world needs only an HTTP client's post(); the proxy is one.
        world = build_world(cast(Any, http), sessions, settings)
        guide_user = make_user(sessions, settings, Role.guide)
        asyncio.run(_story(stack, http, world, guide_user.headers))

    for base in stack.apis:  # both processes ticked the hall and sent frames
        page = scrape(f"{base}/metrics")
        assert metric(page, "pavilion_tour_tick_seconds_count") > 0
        assert metric(page, "pavilion_tour_frame_bytes_total") > 0
    assert metric(scrape(f"{stack.apis[0]}/metrics"), "pavilion_job_queue_depth") == 0
    worker = scrape(stack.worker_metrics)
    assert metric(worker, "pavilion_job_duration_seconds_count") >= 1
    for name in ("api-1", "api-2", "worker"):
        assert_json_lines_once_serving(stack.processes[name].log())


async def _story(
    stack: Topology, http: httpx.Client, world: World, guide_headers: dict[str, str]
) -> None:
    hall = str(world.hall["id"])
    guide = await _connect(stack, http, guide_headers, hall)
    visitor = await _connect_elsewhere(stack, http, hall, avoid=guide.me >> NODE_BITS)
    # One websocket on each process: the proxy balanced them, each process counts its own.
    await _until_each_process_holds_one_connection(stack)

    await guide.send({"type": "tour.create", "title": "Through the proxy"})
    tour_id = (await guide.wait("tour.snapshot"))["tour"]["id"]
    await _join_tour(visitor, tour_id)
    await guide.move(9.0, -4.0)
    # the guide's pose crosses to the visitor's process (Redis) before the summon uses it
    await visitor.wait_frame(
        lambda f: any(p.id == guide.me and abs(p.position[0] - 9.0) < 0.01 for p in f.near)
    )
    await guide.send({"type": "tour.summon"})
    x, _, z = (await visitor.wait("teleport", reason="summon", timeout=10))["position"]
    assert math.dist((x, z), (9.0, -4.0)) < 3.0

    exhibitor, product, booth = world.exhibitors[0], world.products[0], world.booths[0]
    states = await asyncio.to_thread(_upload_and_follow, http, exhibitor.headers, product["id"])
    assert states[-1]["state"] == "succeeded", states[-1]
    for peer in (guide, visitor):
        update = await peer.wait("booth.updated", booth_id=booth["id"], timeout=30)
        assert update["hall_id"] == hall
    for peer in (guide, visitor):
        await peer.close()


async def _connect(stack: Topology, http: httpx.Client, headers: dict[str, str], hall: str) -> Peer:
    # A client's own X-Forwarded-Proto does not get through: the proxy sets it from its scheme.
    spoofed = {**headers, "X-Forwarded-Proto": "https"}
    response = http.post(f"/api/halls/{hall}/tickets", headers=spoofed)
    assert response.status_code == 201, response.text
    body = response.json()
    # tours.public_url "same-origin": the proxy's own origin, /ws/ routed to a tour port.
    assert body["url"] == f"ws://127.0.0.1:{stack.proxy.port}/ws/halls/{hall}"
    return await Peer.join(body["url"], {"ticket": body["ticket"]}, origin=stack.proxy.origin)


async def _connect_elsewhere(stack: Topology, http: httpx.Client, hall: str, avoid: int) -> Peer:
    """A guest whose websocket the proxy sent to another process than node ``avoid``."""
    for attempt in range(8):
        token = http.post("/api/auth/guest", json={"display_name": f"Visitor {attempt}"})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        peer = await _connect(stack, http, headers, hall)
        if peer.me >> NODE_BITS != avoid:
            return peer
        await peer.close()
    raise AssertionError("the proxy sent 8 websockets in a row to the same process")


async def _until_each_process_holds_one_connection(stack: Topology) -> None:
    async with asyncio.timeout(10):
        while True:
            pages = await asyncio.gather(
                *(asyncio.to_thread(scrape, f"{base}/metrics") for base in stack.apis)
            )
            if [metric(page, "pavilion_tour_connections") for page in pages] == [1, 1]:
                return
            await asyncio.sleep(0.2)


async def _join_tour(peer: Peer, tour_id: str) -> None:
    """Join, asking again until the member's own process has the tour (it learns it via Redis)."""
    async with asyncio.timeout(10):
        while True:
            await peer.send({"type": "tour.join", "tour_id": tour_id})
            try:
                await peer.wait_for(
                    lambda m: (
                        m["type"] == "tour.snapshot"
                        and peer.me in [member["id"] for member in m["tour"]["members"]]
                    ),
                    timeout=1.5,
                )
                return
            except TimeoutError:
                continue


def _upload_and_follow(
    http: httpx.Client, headers: dict[str, str], product_id: str
) -> list[dict[str, Any]]:
    """Upload Duck.glb through the proxy, then follow the job's progress events to its end."""
    model = (CORPUS / "Duck.glb").read_bytes()
    accepted = http.post(
        f"/api/products/{product_id}/uploads",
        data={"kind": "model"},
        files={"file": ("Duck.glb", model, "application/octet-stream")},
        headers=headers,
    )
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    states = []
    with http.stream("GET", f"/api/jobs/{job_id}/events", headers=headers, timeout=120) as events:
        assert events.status_code == 200
        for line in events.iter_lines():
            if line.startswith("data: "):
                states.append(json.loads(line.removeprefix("data: ")))
    return states


def assert_json_lines_once_serving(log: str) -> None:
    """From a process's first JSON line on, every line is one JSON object with the basic keys.

    The compose command's ``migrate`` step logs as text before it (the CLI configures its own
    logging), so only what the serving process writes is checked.
    """
    lines = log.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("{"))
    for line in lines[first:]:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(entry), line
