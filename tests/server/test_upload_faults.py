"""The upload flow under faults: a flaky S3, a worker killed mid-job, and nothing lost.

The topology of ``test_upload_flow``: the API in a real uvicorn, PostgreSQL, Redis, SeaweedFS and
separate ``python -m server worker`` processes; but every S3 request goes through a
:class:`~tests.flaky_proxy.FlakyProxy` (one for the API, one for the workers) that answers
``SlowDown``/``InternalError``, resets connections, or loses the answer of a request that took
effect. Fifty uploads arrive at once (multipart, and presigned POST + finalize, with a few
uploads of the same bytes); one worker is SIGKILLed while it runs a job, and a few more
uploads of bytes already in flight arrive afterwards. Then:

* every upload answered 202 has one asset, ready, with its raw bytes stored; an upload answered
  with an error (the proxy may fail the API's put) left no asset;
* one job per distinct content, each succeeded, none queued or running;
* the janitor (grace 0, after the presigned sessions expired) removes the orphans and only them:
  afterwards every object under ``uploads/`` belongs to an asset, and no session stays open;
* the hall's manifest lists every product whose upload was acknowledged.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from PIL import Image, ImageDraw
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from scenes.layout import grid_slots, hall_size_for
from server.app import create_app
from server.db.models import (
    AssetStatus,
    Booth,
    BoothSlot,
    BoothTemplate,
    Expo,
    Hall,
    Job,
    JobState,
    Organisation,
    Product,
    ProductAsset,
    Role,
    UploadSession,
    utcnow,
)
from server.janitor import sweep_uploads
from server.settings import Settings
from server.storage import S3BlobStore
from server.uploads import UPLOAD_PREFIX, Staging, staging_directory
from tests.conftest import make_settings
from tests.factories import Actor, make_user
from tests.flaky_proxy import NO_FAULTS, FaultPlan, FlakyProxy
from tests.live import live_server
from tests.paths import REPO
from tests.server.test_upload_flow import environment
from tests.services import S3Service, drop_bucket, s3_settings

pytestmark = [
    pytest.mark.s3,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

SEED = 5
# The API's puts fail often enough that a few uploads exhaust botocore's three attempts (~9 %
# each) and are answered 503; the workers' requests fail less often, but they make hundreds.
API_FAULTS = FaultPlan(error=0.2, error_after=0.15, reset=0.1, delay=0.1)
WORKER_FAULTS = FaultPlan(
    error=0.05, error_after=0.03, reset=0.03, delay=0.05, delay_seconds=(0.02, 0.2)
)
MULTIPART, PRESIGNED = 40, 5  # distinct photos sent each way
WAVE_DUPLICATES = (0, 1, 2, 40, 41)  # photos sent a second time in the same wave (multipart)
LATE_WHILE_PUBLISHING = 2  # uploads of bytes whose job is publishing, after the wave
PRODUCTS_PER_BOOTH = 5  # a 3x3 shell booth has 7 product slots
WORKER_PROCESSES = 2
WORKER_THREADS = 2  # jobs.workers: jobs at once per worker process
SETTLE_SECONDS = 180.0
POST_ATTEMPTS = FINALIZE_ATTEMPTS = 4  # a client retries a failed presigned POST or a 503
HOSTNAME = socket.gethostname()


# -- the hall and the uploads ---------------------------------------------------------------


@dataclass(frozen=True)
class Exhibitor:
    booth_id: uuid.UUID
    products: list[uuid.UUID]
    actor: Actor


def make_hall(
    sessions: sessionmaker[Session], settings: Settings, booths: int
) -> tuple[uuid.UUID, list[Exhibitor]]:
    """A hall of 3x3 shell booths, each of its own organisation with empty products."""
    tag = uuid.uuid4().hex[:8]
    sizes = [(3.0, 3.0)] * booths
    width, depth = hall_size_for(sizes)
    placed: list[tuple[uuid.UUID, uuid.UUID, list[uuid.UUID]]] = []
    with sessions() as session, session.begin():
        expo = Expo(slug=f"faults-{tag}", name="Faults", starts_on=date(2030, 1, 1))
        hall = Hall(name="Hall", width=width, depth=depth)
        expo.halls.append(hall)
        session.add(expo)
        session.flush()
        hall_id = hall.id
        for index, spec in enumerate(grid_slots(sizes, width, depth)):
            organisation = Organisation(name=f"Org {tag} {index}", country="FI")
            slot = BoothSlot(
                hall_id=hall.id,
                number=spec.number,
                template=BoothTemplate.shell,
                width=spec.width,
                depth=spec.depth,
                x=spec.x,
                z=spec.z,
            )
            session.add_all([organisation, slot])
            session.flush()
            booth = Booth(
                hall_id=hall.id,
                slot_id=slot.id,
                organisation_id=organisation.id,
                fascia_name=f"Exhibitor {index}",
            )
            session.add(booth)
            session.flush()
            products = [
                Product(booth_id=booth.id, name=f"P{index}.{n}", category="toys", country="FI")
                for n in range(PRODUCTS_PER_BOOTH)
            ]
            session.add_all(products)
            session.flush()
            placed.append((organisation.id, booth.id, [p.id for p in products]))
    exhibitors = [
        Exhibitor(booth_id, products, make_user(sessions, settings, Role.exhibitor, org_id))
        for org_id, booth_id, products in placed
    ]
    return hall_id, exhibitors


def photo(index: int) -> bytes:
    """A small PNG product card, different for every ``index``."""
    size = (96 + 8 * (index % 5), 120 - 6 * (index % 4))
    color = (40 + (index * 53) % 200, 30 + (index * 97) % 200, 20 + (index * 31) % 200)
    image = Image.new("RGB", size, (240, 236, 228))
    ImageDraw.Draw(image).ellipse([6, 6, size[0] - 6, size[1] - 6], fill=color)
    ImageDraw.Draw(image).text((8, 8), str(index), fill=(0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


Method = Literal["multipart", "presigned"]


@dataclass(frozen=True)
class Planned:
    name: str
    product_id: uuid.UUID
    actor: Actor
    data: bytes
    method: Method

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Outcome:
    planned: Planned
    status: int
    code: str | None = None
    asset_id: uuid.UUID | None = None
    job_id: uuid.UUID | None = None
    upload_id: uuid.UUID | None = None  # a presigned session

    @property
    def acknowledged(self) -> bool:
        return self.status == 202


class Slots:
    """Hands out the products, one upload each, booth by booth."""

    def __init__(self, exhibitors: list[Exhibitor]) -> None:
        self._free = [(e.actor, p) for e in exhibitors for p in e.products]

    def plan(self, name: str, data: bytes, method: Method) -> Planned:
        actor, product_id = self._free.pop(0)
        return Planned(name, product_id, actor, data, method)


def wave(slots: Slots) -> list[Planned]:
    """The fifty uploads sent at once: distinct photos both ways, and some bytes twice."""
    photos = [photo(i) for i in range(MULTIPART + PRESIGNED)]
    planned = [
        slots.plan(f"photo {i}", photos[i], "multipart" if i < MULTIPART else "presigned")
        for i in range(MULTIPART + PRESIGNED)
    ]
    planned += [slots.plan(f"photo {i} again", photos[i], "multipart") for i in WAVE_DUPLICATES]
    return planned


# -- the client ---------------------------------------------------------------------------------


def send(client: httpx.Client, planned: Planned) -> Outcome:
    """One exhibitor's upload, retried the way a careful client does (see each method)."""
    if planned.method == "multipart":
        # No retry: an upload answered with an error must have left nothing behind.
        response = client.post(
            f"/api/products/{planned.product_id}/uploads",
            data={"kind": "photo"},
            files={"file": (f"{planned.name}.png", planned.data, "image/png")},
            headers=planned.actor.headers,
        )
        return _outcome(planned, response)
    return _send_presigned(client, planned)


def _send_presigned(client: httpx.Client, planned: Planned) -> Outcome:
    declared = client.post(
        f"/api/products/{planned.product_id}/uploads/presigned",
        json={
            "kind": "photo",
            "filename": f"{planned.name}.png",
            "content_type": "image/png",
            "size": len(planned.data),
            "sha256": planned.sha256,
        },
        headers=planned.actor.headers,
    )
    if declared.status_code != 201:
        return _outcome(planned, declared)
    body = declared.json()
    upload_id = uuid.UUID(body["upload_id"])
    posted = _post_form(body, planned.data)
    if posted is None or posted >= 300:
        return Outcome(planned, posted or 0, "post_failed", upload_id=upload_id)
    for _ in range(FINALIZE_ATTEMPTS):  # finalize is idempotent: a 503 is worth another try
        finalized = client.post(f"/api/uploads/{upload_id}/finalize", headers=planned.actor.headers)
        if finalized.status_code != 503:
            break
    outcome = _outcome(planned, finalized)
    outcome.upload_id = upload_id
    return outcome


def _post_form(declared: dict[str, Any], data: bytes) -> int | None:
    """The browser's POST to S3 (through the API's proxy), retried on a 5xx or a reset."""
    status: int | None = None
    for _ in range(POST_ATTEMPTS):
        try:
            response = httpx.post(
                declared["url"],
                data=declared["fields"],
                files={"file": ("photo.png", data, "image/png")},
                timeout=30,
            )
        except httpx.TransportError:
            continue
        status = response.status_code
        if status < 500:
            break
    return status


def _outcome(planned: Planned, response: httpx.Response) -> Outcome:
    body = response.json() if response.headers.get("content-type") == "application/json" else {}
    if response.status_code != 202:
        return Outcome(planned, response.status_code, body.get("error", {}).get("code"))
    job_id = body.get("job_id")
    return Outcome(
        planned,
        202,
        asset_id=uuid.UUID(body["asset"]["id"]),
        job_id=uuid.UUID(job_id) if job_id else None,
    )


# -- worker processes ---------------------------------------------------------------------------


@dataclass
class Workers:
    """``python -m server worker`` processes with the workers' settings; each logs to a file."""

    env: dict[str, str]
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "worker"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()  # the child has its own descriptor
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def text(self) -> str:
        """Every worker's log, one after the other."""
        paths = sorted(self.logs.glob("worker-*.log"))
        return "\n".join(path.read_text(errors="replace") for path in paths)

    def tails(self, lines: int = 15) -> str:
        parts = []
        for path in sorted(self.logs.glob("worker-*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)


def worker_name(process: subprocess.Popen[bytes]) -> str:
    """What ``Job.worker`` says while this process runs a job (server.processing.Processor)."""
    return f"{HOSTNAME}:{process.pid}"


# -- the fixture: services, proxies, the app and its workers ------------------------------------


@dataclass
class Rig:
    settings: Settings
    sessions: sessionmaker[Session]
    client: httpx.Client
    direct: S3BlobStore  # the bucket without a proxy: for checks only
    api_proxy: FlakyProxy
    worker_proxy: FlakyProxy
    workers: Workers

    def faults(self, on: bool) -> None:
        self.api_proxy.plan = API_FAULTS if on else NO_FAULTS
        self.worker_proxy.plan = WORKER_FAULTS if on else NO_FAULTS


def _settings(
    database_url: str, tmp_path: Path, s3: S3Service, bucket: str, endpoint: str, redis_url: str
) -> Settings:
    settings = make_settings(database_url, tmp_path)
    jobs = settings.jobs.model_copy(
        update={
            "redis_queue": f"faults-{uuid.uuid4().hex[:8]}",
            "workers": WORKER_THREADS,
            "reaper_seconds": 2.0,
            "redis_heartbeat_seconds": 5,  # the least JobSettings allows
            "janitor_seconds": 0,  # the test runs the janitor itself, at the end
        }
    )
    return settings.model_copy(
        update={
            "blobs": s3_settings(s3, bucket, s3_endpoint_url=endpoint),
            "redis_url": redis_url,
            "jobs": jobs,
        }
    )


@pytest.fixture
def rig(database_url: str, tmp_path: Path, s3_service: S3Service, redis_url: str) -> Iterator[Rig]:
    direct = S3BlobStore(s3_settings(s3_service))
    direct.ensure_bucket()
    upstream = s3_service.endpoint_url
    with (
        FlakyProxy(upstream, seed=SEED) as api_proxy,
        FlakyProxy(upstream, seed=SEED + 1) as worker_proxy,
    ):
        settings = _settings(
            database_url, tmp_path, s3_service, direct.bucket, api_proxy.url, redis_url
        )
        worker_settings = settings.model_copy(
            update={
                "blobs": settings.blobs.model_copy(update={"s3_endpoint_url": worker_proxy.url})
            }
        )
        env = {
            **environment(worker_settings),
            "PAVILION_JOBS__WORKERS": str(WORKER_THREADS),
            "PAVILION_JOBS__REDIS_HEARTBEAT_SECONDS": str(settings.jobs.redis_heartbeat_seconds),
        }
        workers = Workers(env, tmp_path)
        app = create_app(settings)
        try:
            with (
                live_server(app) as base,
                httpx.Client(
                    base_url=base, timeout=60, limits=httpx.Limits(max_connections=100)
                ) as client,
            ):
                for _ in range(WORKER_PROCESSES):
                    workers.start()
                yield Rig(
                    settings,
                    app.state.sessions,
                    client,
                    direct,
                    api_proxy,
                    worker_proxy,
                    workers,
                )
        finally:
            workers.stop()
            drop_bucket(direct)


# -- waiting and looking ------------------------------------------------------------------------


def running_job_of(sessions: sessionmaker[Session], worker: str) -> Job | None:
    with sessions() as session:
        return session.scalar(
            select(Job).where(Job.state == JobState.running, Job.worker == worker).limit(1)
        )


def kill_mid_job(rig: Rig, timeout: float = 60.0) -> tuple[uuid.UUID, str]:
    """SIGKILL the first worker while it runs a job; start a replacement. Returns the job."""
    victim = rig.workers.processes[0]
    name = worker_name(victim)
    deadline = time.monotonic() + timeout
    while (job := running_job_of(rig.sessions, name)) is None:
        assert time.monotonic() < deadline, "the worker never ran a job\n" + rig.workers.tails()
        assert victim.poll() is None, "the worker died by itself\n" + rig.workers.tails()
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    rig.workers.start()
    return job.id, job.sha256


def unsettled(sessions: sessionmaker[Session], products: set[uuid.UUID]) -> int:
    """Jobs queued or running, and the test's assets still processing."""
    with sessions() as session:
        jobs = session.scalars(
            select(Job.id).where(Job.state.in_([JobState.queued, JobState.running]))
        ).all()
        assets = session.scalars(
            select(ProductAsset.id).where(
                ProductAsset.product_id.in_(products),
                ProductAsset.status.in_([AssetStatus.pending, AssetStatus.processing]),
            )
        ).all()
    return len(jobs) + len(assets)


def settle(sessions: sessionmaker[Session], products: set[uuid.UUID], deadline: float) -> bool:
    """Wait until nothing is left to do; False when the deadline passed first."""
    while unsettled(sessions, products):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


RETRY_LINE = re.compile(r"job \S+ attempt \d+: (\w+) ")
RACE_LINE = re.compile(r"publish race \d+ lost")
REQUEUED_LINE = re.compile(r"was queued again while it ran")


def diagnostics(
    rig: Rig, outcomes: list[Outcome], killed: uuid.UUID | None, timeline: dict[str, float]
) -> str:
    """What a failure message needs: the faults injected, the uploads' answers, the jobs."""
    with rig.sessions() as session:
        jobs = session.scalars(select(Job).order_by(Job.created_at)).all()
        stuck = session.execute(
            select(ProductAsset.id, ProductAsset.status, ProductAsset.error_code, Job.state)
            .join(Job, Job.sha256 == ProductAsset.sha256, isouter=True)
            .where(ProductAsset.status != AssetStatus.ready)
        ).all()
    attempts = Counter((j.state.value, j.attempts) for j in jobs)
    unusual = [
        f"  {j.id} {j.state.value} attempts={j.attempts} code={j.error_code} "
        f"worker={j.worker}{' (killed)' if j.id == killed else ''}"
        for j in jobs
        if j.attempts > 2 or j.state is not JobState.succeeded or j.id == killed
    ]
    logs = rig.workers.text()
    answers = Counter((o.planned.method, o.status, o.code) for o in outcomes)
    return "\n".join(
        [
            f"timeline (s): {timeline}",
            f"API proxy: {rig.api_proxy.summary()}",
            f"worker proxy: {rig.worker_proxy.summary()}",
            f"answers (method, status, code): {dict(answers)}",
            f"jobs (state, attempts): {dict(sorted(attempts.items()))}",
            f"attempts retried, by code: {dict(Counter(RETRY_LINE.findall(logs)))}",
            f"publish races lost and run again: {len(RACE_LINE.findall(logs))}",
            f"runs that saw their job queued again: {len(REQUEUED_LINE.findall(logs))}",
            "jobs killed, unfinished or with more than two attempts:",
            *unusual,
            "assets not ready (id, status, code, their job's state):",
            *(f"  {row}" for row in stuck),
            rig.workers.tails(),
        ]
    )


def manifest_products(client: httpx.Client, hall_id: uuid.UUID) -> list[str]:
    response = client.get(f"/api/halls/{hall_id}/manifest")
    assert response.status_code == 200, response.text
    return [h["product_id"] for b in response.json()["booths"] for h in b["hotspots"]]


# -- the test -----------------------------------------------------------------------------------


def test_fifty_uploads_through_a_flaky_s3_and_a_killed_worker_lose_nothing(
    rig: Rig, request: pytest.FixtureRequest
) -> None:
    started = time.monotonic()
    timeline: dict[str, float] = {}

    def mark(event: str) -> None:
        timeline[event] = round(time.monotonic() - started, 1)

    uploads = MULTIPART + PRESIGNED + len(WAVE_DUPLICATES) + 2 + LATE_WHILE_PUBLISHING
    booths = -(-uploads // PRODUCTS_PER_BOOTH)
    hall_id, exhibitors = make_hall(rig.sessions, rig.settings, booths)
    slots = Slots(exhibitors)
    planned = wave(slots)
    assert len(planned) == 50
    data = {p.sha256: p.data for p in planned}
    outcomes: list[Outcome] = []
    killed: uuid.UUID | None = None
    rig.faults(on=True)
    try:
        with ThreadPoolExecutor(max_workers=len(planned) + 1) as pool:
            futures = [pool.submit(send, rig.client, p) for p in planned]
            killed, killed_sha = kill_mid_job(rig)
            mark("killed")
            # Late uploads of bytes already in flight, each to a product of its own. First
            # those of the killed job (running, its worker dead).
            late = slots.plan("late: killed", data[killed_sha], "multipart")
            futures.append(pool.submit(send, rig.client, late))
            outcomes += [f.result() for f in futures]
            mark("answered")
        # Then, with the API idle so that they arrive at once, those of jobs past marking their
        # assets ready (publishing: their run must not end as if it had seen the new asset),
        # and those of a job that has finished (processed again, its outputs reused).
        seen: set[str] = set()
        for n in range(LATE_WHILE_PUBLISHING):
            sha = publishing(rig, killed, seen)
            seen.add(sha)
            outcomes.append(
                send(rig.client, slots.plan(f"late: publishing {n}", data[sha], "multipart"))
            )
        outcomes.append(send(rig.client, slots.plan("late: done", data[done(rig)], "multipart")))
        products = {o.planned.product_id for o in outcomes}
        settled = settle(rig.sessions, products, started + SETTLE_SECONDS)
        mark("settled")
    finally:
        rig.faults(on=False)
    report = diagnostics(rig, outcomes, killed, timeline)
    # A section of pytest's report: shown with the failure, as captured output is.
    request.node.add_report_section("call", "faults and jobs", report)
    assert settled, f"jobs or assets still unfinished after {SETTLE_SECONDS:.0f} s\n{report}"
    assert rig.api_proxy.counts["unsupported"] == rig.worker_proxy.counts["unsupported"] == 0
    for kind in ("error", "error_after", "reset", "delay"):
        assert rig.worker_proxy.counts[kind] > 0, f"no {kind} injected: {report}"

    acknowledged = [o for o in outcomes if o.acknowledged]
    refused = [o for o in outcomes if not o.acknowledged]
    # An error answer is the S3 fault's 503, never a 500 from a bug.
    assert {(o.status, o.code) for o in refused} <= {
        (503, "storage_unavailable"),
        (500, "post_failed"),
        (503, "post_failed"),
        (0, "post_failed"),
    }, report
    assert len(acknowledged) >= 40, report

    check_assets(rig, acknowledged, refused)
    check_jobs(rig, acknowledged, killed, report)
    check_janitor(rig)
    listed = manifest_products(rig.client, hall_id)
    assert len(listed) == len(set(listed)), "a product is listed twice"
    assert set(listed) == {str(o.planned.product_id) for o in acknowledged}, report
    assert time.monotonic() - started < SETTLE_SECONDS + 30


def publishing(rig: Rig, killed: uuid.UUID | None, seen: set[str], timeout: float = 60.0) -> str:
    """The bytes of a job that has marked its assets ready and is publishing their booths."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with rig.sessions() as session:
            for job in session.scalars(
                select(Job).where(Job.state == JobState.running, Job.step == "publishing")
            ):
                waiting = session.scalar(
                    select(ProductAsset.id).where(
                        ProductAsset.sha256 == job.sha256,
                        ProductAsset.status != AssetStatus.ready,
                    )
                )
                if job.id != killed and job.sha256 not in seen and waiting is None:
                    return job.sha256
        time.sleep(0.02)
    raise AssertionError("no job was seen publishing\n" + rig.workers.tails())


def done(rig: Rig, timeout: float = 60.0) -> str:
    """The bytes of a job that has succeeded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with rig.sessions() as session:
            sha = session.scalar(select(Job.sha256).where(Job.state == JobState.succeeded).limit(1))
        if sha is not None:
            return sha
        time.sleep(0.1)
    raise AssertionError("no job succeeded\n" + rig.workers.tails())


def check_assets(rig: Rig, acknowledged: list[Outcome], refused: list[Outcome]) -> None:
    """One ready asset with its bytes per acknowledged upload; none for a refused one."""
    with rig.sessions() as session:
        rows = session.scalars(
            select(ProductAsset).where(
                ProductAsset.product_id.in_([o.planned.product_id for o in acknowledged + refused])
            )
        ).all()
    by_product: dict[uuid.UUID | None, list[ProductAsset]] = {}
    for row in rows:
        by_product.setdefault(row.product_id, []).append(row)
    for outcome in acknowledged:
        assets = by_product.get(outcome.planned.product_id, [])
        assert [a.id for a in assets] == [outcome.asset_id], f"{outcome}: {assets}"
        asset = assets[0]
        assert asset.status is AssetStatus.ready, (outcome, asset.status, asset.error_code)
        assert asset.sha256 == outcome.planned.sha256
        assert asset.blob_key is not None
        assert rig.direct.get(asset.blob_key) == outcome.planned.data
    for outcome in refused:
        assert by_product.get(outcome.planned.product_id, []) == [], outcome


def check_jobs(
    rig: Rig, acknowledged: list[Outcome], killed: uuid.UUID | None, report: str
) -> None:
    """One succeeded job per distinct content acknowledged; the killed one ran again."""
    with rig.sessions() as session:
        jobs = session.scalars(select(Job)).all()
    by_sha = {j.sha256: j for j in jobs}
    assert len(by_sha) == len(jobs)
    assert set(by_sha) == {o.planned.sha256 for o in acknowledged}, report
    assert {j.state for j in jobs} == {JobState.succeeded}, report
    for outcome in acknowledged:
        assert outcome.job_id == by_sha[outcome.planned.sha256].id
    killed_job = next(j for j in jobs if j.id == killed)
    assert killed_job.attempts >= 2, report
    assert killed_job.worker != worker_name(rig.workers.processes[0])


def check_janitor(rig: Rig) -> None:
    """The janitor removes the orphans and only them: every upload object left is an asset's."""
    with rig.sessions() as session:
        referenced = set(
            session.scalars(select(ProductAsset.blob_key).where(ProductAsset.blob_key.is_not(None)))
        )
        open_keys = set(
            session.scalars(select(UploadSession.key).where(UploadSession.finalized_at.is_(None)))
        )
    before = {info.key for info in rig.direct.list(UPLOAD_PREFIX)}
    assert referenced <= before, "an asset's raw upload is missing"
    # Presigned sessions of refused uploads stay open until they expire: run the janitor then.
    later = utcnow() + timedelta(seconds=rig.settings.blobs.presign_post_seconds + 60)
    swept = sweep_uploads(
        rig.sessions,
        rig.direct,
        Staging(staging_directory(rig.settings)),
        grace=timedelta(0),
        now=later,
    )
    after = {info.key for info in rig.direct.list(UPLOAD_PREFIX)}
    assert after == referenced, f"orphans left: {sorted(after - referenced)}"
    assert swept.sessions == len(open_keys)
    assert swept.objects == len(before - referenced - open_keys)
    with rig.sessions() as session:
        left = session.scalars(select(UploadSession)).all()
    assert all(s.finalized_at is not None and s.asset_id is not None for s in left)
