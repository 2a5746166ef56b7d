"""Processing uploads: one job per content hash, the sandbox, the booth, the events, the reaper."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pipeline.sandbox import SandboxLimits
from server.db.models import AssetKind, AssetStatus, Job, JobState, Product, ProductAsset, utcnow
from server.jobs import RetryLater
from server.processing import (
    MAX_ATTEMPTS,
    Processor,
    accept_upload,
    hall_topic,
    job_topic,
    process_job,
    reap,
    waiting,
)
from server.scenes import has_outputs, served_manifest
from server.storage import IMMUTABLE, BlobStore
from tests.server.test_scenes_publish import (  # noqa: F401 - the uploads fixture
    Env,
    RecordingStore,
    Upload,
    local,
    make_hall,
    uploads,
)


class Events:
    """A pubsub stand-in that records what is published, in order."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, topic: str, message: dict[str, Any]) -> None:
        self.messages.append((topic, message))

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [m for t, m in self.messages if t == topic]


def upload_asset(session: Session, blobs: BlobStore, product: Product, data: bytes) -> ProductAsset:
    """What the upload routes do: store the bytes under a generated key and add the asset."""
    key = f"uploads/{uuid.uuid4()}"
    blobs.put(key, data, content_type="image/png", cache_control=IMMUTABLE)
    asset = ProductAsset(
        booth_id=product.booth_id,
        product_id=product.id,
        kind=AssetKind.photo,
        filename="photo.png",
        content_type="image/png",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        blob_key=key,
    )
    session.add(asset)
    session.flush()
    return asset


def new_product(session: Session, booth_id: uuid.UUID, name: str) -> Product:
    product = Product(booth_id=booth_id, name=name, category="tea", country="LK")
    session.add(product)
    session.flush()
    return product


@pytest.fixture
def processor(local: Env) -> tuple[Processor, Events]:  # noqa: F811
    events = Events()
    return Processor(local.sessions, local.blobs, events), events


def submit(
    sessions: sessionmaker[Session], blobs: BlobStore, booth_id: uuid.UUID, data: bytes
) -> tuple[uuid.UUID, uuid.UUID | None]:
    with sessions() as session:
        asset = upload_asset(
            session, blobs, new_product(session, booth_id, uuid.uuid4().hex[:8]), data
        )
        job = accept_upload(session, asset)
        session.commit()
        return asset.id, None if job is None else job.id


def test_an_upload_is_processed_and_its_booth_republished_with_events(
    local: Env,  # noqa: F811
    processor: tuple[Processor, Events],
    uploads: dict[str, Upload],  # noqa: F811
) -> None:
    run, events = processor
    with local.sessions() as session:
        hall = make_hall(session, local.blobs, uploads, (1,))
        session.commit()
    asset_id, job_id = submit(
        local.sessions, local.blobs, hall.booth_ids[0], uploads["portrait"].data
    )
    assert job_id is not None
    process_job(run, job_id)
    with local.sessions() as session:
        job = session.get(Job, job_id)
        asset = session.get(ProductAsset, asset_id)
        assert job is not None
        assert asset is not None
        assert (job.state, job.percent, job.attempts) == (JobState.succeeded, 100, 1)
        assert asset.status == AssetStatus.ready
        manifest = served_manifest(session, local.blobs, hall.hall_id).body
    assert has_outputs(local.blobs, uploads["portrait"].sha256)
    booth = next(b for b in _json(manifest)["booths"] if b["id"] == str(hall.booth_ids[0]))
    assert len(booth["hotspots"]) == 2  # the product of make_hall and the new one
    steps = [m.get("step") for m in events.on(job_topic(job_id))]
    assert steps[0] == "starting"
    assert "publishing" in steps
    assert events.on(job_topic(job_id))[-1] == {
        "type": "job.done",
        "state": "succeeded",
        "percent": 100,
    }
    [updated] = events.on(hall_topic(hall.hall_id))
    assert updated["type"] == "booth.updated"
    assert updated["booth_id"] == str(hall.booth_ids[0])


def test_the_same_bytes_uploaded_twice_share_one_job_and_are_converted_once(
    local: Env,  # noqa: F811
    uploads: dict[str, Upload],  # noqa: F811
) -> None:
    store = RecordingStore(local.blobs)
    run = Processor(local.sessions, store, Events())
    with local.sessions() as session:
        hall = make_hall(session, local.blobs, uploads, (0, 0))
        session.commit()
    data = uploads["portrait"].data
    _, first = submit(local.sessions, local.blobs, hall.booth_ids[0], data)
    assert first is not None
    process_job(run, first)
    converted = [k for k in store.puts if k.startswith("assets/")]
    _, second = submit(local.sessions, local.blobs, hall.booth_ids[1], data)
    assert second == first
    process_job(run, second)
    assert [k for k in store.puts if k.startswith("assets/")] == converted  # not converted again
    with local.sessions() as session:
        statuses = session.scalars(
            select(ProductAsset.status).where(
                ProductAsset.sha256 == hashlib.sha256(data).hexdigest()
            )
        ).all()
        assert statuses == [AssetStatus.ready, AssetStatus.ready]
        assert session.scalar(select(Job).where(Job.id == first)).state == JobState.succeeded  # type: ignore[union-attr]


def test_a_hostile_file_fails_its_job_with_the_pipelines_code_and_is_not_retried(
    local: Env,  # noqa: F811
    processor: tuple[Processor, Events],
    uploads: dict[str, Upload],  # noqa: F811
) -> None:
    run, events = processor
    with local.sessions() as session:
        hall = make_hall(session, local.blobs, uploads, (0,))
        session.commit()
    bomb = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # a PNG signature and nothing a decoder can use
    asset_id, job_id = submit(local.sessions, local.blobs, hall.booth_ids[0], bomb)
    assert job_id is not None
    process_job(run, job_id)  # no RetryLater: final
    with local.sessions() as session:
        job, asset = session.get(Job, job_id), session.get(ProductAsset, asset_id)
        assert job is not None
        assert asset is not None
        assert job.state == JobState.failed
        assert job.error_code is not None
        assert job.error_code.startswith("image_")
        assert (asset.status, asset.error_code) == (AssetStatus.failed, job.error_code)
    assert events.on(job_topic(job_id))[-1]["state"] == "failed"
    # The same bytes again fail at once, without a job.
    again_asset, again_job = submit(local.sessions, local.blobs, hall.booth_ids[0], bomb)
    assert again_job is None
    with local.sessions() as session:
        assert session.get(ProductAsset, again_asset).status == AssetStatus.failed  # type: ignore[union-attr]


def test_a_crashed_conversion_is_retried_with_backoff_then_fails_for_good(
    local: Env,  # noqa: F811
    uploads: dict[str, Upload],  # noqa: F811
) -> None:
    # 8 MiB of memory: the child cannot even start, a crash (retryable).
    run = Processor(local.sessions, local.blobs, Events(), SandboxLimits(memory_bytes=8 * 1024**2))
    with local.sessions() as session:
        hall = make_hall(session, local.blobs, uploads, (0,))
        session.commit()
    _, job_id = submit(
        local.sessions, local.blobs, hall.booth_ids[0], uploads["portrait"].data + b"x"
    )
    assert job_id is not None
    delays = []
    for _ in range(MAX_ATTEMPTS - 1):
        with pytest.raises(RetryLater) as retry:
            process_job(run, job_id)
        delays.append(retry.value.delay_seconds)
        with local.sessions() as session:
            assert session.get(Job, job_id).state == JobState.queued  # type: ignore[union-attr]
    assert delays == sorted(delays)
    assert delays[0] < delays[-1]
    process_job(run, job_id)  # the last attempt: failed, no more retries
    with local.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.state, job.error_code, job.attempts) == (
            JobState.failed,
            "crashed",
            MAX_ATTEMPTS,
        )


def test_a_job_whose_worker_stopped_beating_is_queued_again(
    local: Env,  # noqa: F811
    uploads: dict[str, Upload],  # noqa: F811
) -> None:
    with local.sessions() as session:
        hall = make_hall(session, local.blobs, uploads, (0,))
        session.commit()
    _, job_id = submit(
        local.sessions, local.blobs, hall.booth_ids[0], uploads["landscape"].data + b"y"
    )
    with local.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.state, job.worker = JobState.running, "dead-host:1"
        job.heartbeat_at = utcnow() - timedelta(minutes=5)
        session.commit()
        assert reap(session, now=utcnow() - timedelta(minutes=10)) == []  # not stale back then
        assert reap(session) == [job_id]
        session.commit()
        assert session.get(Job, job_id).state == JobState.queued  # type: ignore[union-attr]
        assert job_id in waiting(session)


def test_a_finished_job_delivered_twice_does_nothing_the_second_time(
    local: Env,  # noqa: F811
    processor: tuple[Processor, Events],
    uploads: dict[str, Upload],  # noqa: F811
) -> None:
    run, events = processor
    with local.sessions() as session:
        hall = make_hall(session, local.blobs, uploads, (0,))
        session.commit()
    _, job_id = submit(local.sessions, local.blobs, hall.booth_ids[0], uploads["landscape"].data)
    assert job_id is not None
    process_job(run, job_id)
    count = len(events.messages)
    process_job(run, job_id)
    assert len(events.messages) == count
    with local.sessions() as session:
        assert session.get(Job, job_id).attempts == 1  # type: ignore[union-attr]


def _json(body: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(body)
    return data
