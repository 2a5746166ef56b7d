"""The whole upload flow over HTTP at scale: SeaweedFS, PostgreSQL, Redis and a worker process.

An exhibitor uploads a real model from the shared corpus to the API (a real uvicorn); the job
goes through Redis to a separate ``python -m server worker`` process, which converts it in the
sandbox, stores the outputs in S3, republishes the hall and announces ``booth.updated``. The
exhibitor follows the job's progress events to the end; the hall's manifest then lists the
product on its booth with its three LODs, each one fetchable and carrying the product.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.meshopt_decode import decode_meshopt_glb
from server.app import create_app
from server.db.models import Booth, Role
from server.pubsub import build_pubsub
from server.settings import Settings
from tests.conftest import make_settings
from tests.factories import make_user
from tests.live import live_server
from tests.paths import CORPUS, REPO
from tests.pipeline.test_write import read_glb
from tests.server.test_scenes_publish import Upload, make_hall, uploads  # noqa: F401
from tests.services import S3Service, s3_settings

pytestmark = [
    pytest.mark.s3,
    pytest.mark.postgres,
    pytest.mark.slow,
    # The scale-out topology runs on PostgreSQL only (the database_url fixture's other value).
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]


def settings_for(database_url: str, tmp_path: Path, s3: S3Service, redis_url: str) -> Settings:
    settings = make_settings(database_url, tmp_path)
    jobs = settings.jobs.model_copy(update={"redis_queue": f"test-{uuid.uuid4().hex[:8]}"})
    return settings.model_copy(
        update={
            "blobs": s3_settings(s3, s3_create_bucket=True),
            "redis_url": redis_url,
            "jobs": jobs,
        }
    )


def environment(settings: Settings) -> dict[str, str]:
    """The same settings as PAVILION_* variables, for the worker process."""
    blobs = settings.blobs
    values = {
        "PAVILION_DATABASE__URL": settings.database.url,
        "PAVILION_BLOBS__BACKEND": "s3",
        "PAVILION_BLOBS__S3_ENDPOINT_URL": str(blobs.s3_endpoint_url),
        "PAVILION_BLOBS__S3_REGION": blobs.s3_region,
        "PAVILION_BLOBS__S3_BUCKET": blobs.s3_bucket,
        "PAVILION_BLOBS__S3_ACCESS_KEY": blobs.s3_access_key,
        "PAVILION_BLOBS__S3_SECRET_KEY": blobs.s3_secret_key.get_secret_value(),
        "PAVILION_REDIS_URL": str(settings.redis_url),
        "PAVILION_JOBS__REDIS_QUEUE": settings.jobs.redis_queue,
        "PAVILION_AUTH__SECRET_KEY": settings.auth.secret_key.get_secret_value(),
        "PAVILION_ENVIRONMENT": "test",
    }
    return {**os.environ, **values}


@pytest.fixture
def worker_env(
    database_url: str, tmp_path: Path, s3_service: S3Service, redis_url: str
) -> Settings:
    assert database_url.startswith("postgresql")
    return settings_for(database_url, tmp_path, s3_service, redis_url)


@pytest.fixture
def worker(worker_env: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "worker"],
        cwd=REPO,
        env=environment(worker_env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


class HallEvents:
    """Listens on a hall's topic in a thread of its own, as the tour server will."""

    def __init__(self, settings: Settings, hall_id: uuid.UUID) -> None:
        self.messages: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._listen(settings, hall_id)))
        self.thread.start()
        assert self.ready.wait(10)

    async def _listen(self, settings: Settings, hall_id: uuid.UUID) -> None:
        pubsub = build_pubsub(settings)
        try:
            async with pubsub.subscribe(f"hall:{hall_id}") as subscription:
                self.ready.set()
                iterator = subscription.__aiter__()
                while not self.stop.is_set():
                    try:
                        _, message = await asyncio.wait_for(iterator.__anext__(), timeout=0.5)
                    except TimeoutError:
                        continue
                    self.messages.append(message)
        finally:
            pubsub.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def progress(client: httpx.Client, job_id: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    states = []
    with client.stream("GET", f"/api/jobs/{job_id}/events", headers=headers, timeout=180) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                states.append(json.loads(line.removeprefix("data: ")))
    return states


def test_a_corpus_model_uploaded_over_http_reaches_the_booth_through_a_worker(
    worker_env: Settings,
    worker: subprocess.Popen[bytes],
    uploads: dict[str, Upload],  # noqa: F811
) -> None:
    model = (CORPUS / "Duck.glb").read_bytes()
    app = create_app(worker_env)
    with live_server(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        state: Any = app.state
        with state.sessions() as session:
            hall = make_hall(session, state.blobs, uploads, (1,))
            session.commit()
            organisation = session.get(Booth, hall.booth_ids[0]).organisation_id
        exhibitor = make_user(state.sessions, worker_env, Role.exhibitor, organisation)
        product = client.post(
            f"/api/booths/{hall.booth_ids[0]}/products",
            json={"name": "Rubber Duck", "category": "toys", "country": "FI"},
            headers=exhibitor.headers,
        ).json()
        events = HallEvents(worker_env, hall.hall_id)
        try:
            accepted = client.post(
                f"/api/products/{product['id']}/uploads",
                data={"kind": "model"},
                files={"file": ("Duck.glb", model, "application/octet-stream")},
                headers=exhibitor.headers,
            )
            assert accepted.status_code == 202, accepted.text
            job_id = accepted.json()["job_id"]
            states = progress(client, job_id, exhibitor.headers)
        finally:
            events.close()
        assert worker.poll() is None, "the worker process died"
        assert states[-1]["state"] == "succeeded", states[-1]
        assert {"running", "succeeded"} <= {s["state"] for s in states}
        percents = [s["percent"] for s in states]
        assert percents == sorted(percents)
        assert any(m["type"] == "booth.updated" for m in events.messages), events.messages
        manifest = client.get(f"/api/halls/{hall.hall_id}/manifest").json()
        [booth] = manifest["booths"]
        assert product["id"] in {h["product_id"] for h in booth["hotspots"]}
        assert len(booth["lods"]) == 3
        for lod in booth["lods"]:
            glb = httpx.get(lod["url"], timeout=30)
            assert glb.status_code == 200
            assert glb.headers["content-type"] == "model/gltf-binary"
            document, _ = read_glb(decode_meshopt_glb(glb.content))
            ids = {n.get("extras", {}).get("product_id") for n in document["nodes"]}
            assert product["id"] in ids
