"""Processing uploads: one job per content hash, the sandbox, the booth, the events, the reaper."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
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
from server.scenes import has_outputs, publish_hall, served_manifest, store_outputs
from server.storage import IMMUTABLE, BlobStore
from tests.server.test_scenes_publish import (  # noqa: F401 - the uploads fixture
    Env,
    RecordingStore,
    SmallHall,
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


def committed_hall(env: Env, pool: dict[str, Upload], counts: tuple[int, ...]) -> SmallHall:
    """A small hall (see make_hall) committed, for code that uses its own sessions."""
    with env.sessions() as session:
        hall = make_hall(session, env.blobs, pool, counts)
        session.commit()
    return hall


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
    hall = committed_hall(local, uploads, (1,))
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
    hall = committed_hall(local, uploads, (0, 0))
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
    hall = committed_hall(local, uploads, (0,))
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
    hall = committed_hall(local, uploads, (0,))
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
    hall = committed_hall(local, uploads, (0,))
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
    hall = committed_hall(local, uploads, (0,))
    _, job_id = submit(local.sessions, local.blobs, hall.booth_ids[0], uploads["landscape"].data)
    assert job_id is not None
    process_job(run, job_id)
    count = len(events.messages)
    process_job(run, job_id)
    assert len(events.messages) == count
    with local.sessions() as session:
        assert session.get(Job, job_id).attempts == 1  # type: ignore[union-attr]


def _hotspots(env: Env, hall_id: uuid.UUID) -> set[str]:
    with env.sessions() as session:
        manifest = _json(served_manifest(session, env.blobs, hall_id).body)
    return {h["product_id"] for b in manifest["booths"] for h in b["hotspots"]}


def test_a_job_whose_publish_failed_publishes_the_booth_when_it_runs_again(
    local: Env,  # noqa: F811
    uploads: dict[str, Upload],  # noqa: F811
) -> None:
    # Converted before: the run goes straight to marking the asset ready and publishing, whose
    # first write fails (S3 down). The asset is ready by then; the next attempt must publish.
    upload = uploads["portrait"]
    store_outputs(local.blobs, upload.sha256, upload.files)
    failing = RecordingStore(local.blobs, fail_on=1)
    run = Processor(local.sessions, failing, Events())
    hall = committed_hall(local, uploads, (0,))
    asset_id, job_id = submit(local.sessions, local.blobs, hall.booth_ids[0], upload.data)
    assert job_id is not None
    with pytest.raises(RetryLater):
        process_job(run, job_id)
    failing.fail_on = None
    process_job(run, job_id)
    with local.sessions() as session:
        asset = session.get(ProductAsset, asset_id)
        assert asset is not None
        assert asset.status is AssetStatus.ready
    assert str(asset.product_id) in _hotspots(local, hall.hall_id)


def test_bytes_uploaded_while_their_job_publishes_are_made_ready_by_the_run_that_follows(
    local: Env,  # noqa: F811
    uploads: dict[str, Upload],  # noqa: F811
) -> None:
    # The second upload commits after the run marked the first asset ready, while it publishes;
    # the route enqueues the job then, so the queue runs it again once this run ends.
    upload = uploads["portrait"]
    store_outputs(local.blobs, upload.sha256, upload.files)
    store = RecordingStore(local.blobs)
    events = Events()
    run = Processor(local.sessions, store, events)
    hall = committed_hall(local, uploads, (0, 0))
    _, job_id = submit(local.sessions, local.blobs, hall.booth_ids[0], upload.data)
    assert job_id is not None
    late: list[tuple[uuid.UUID, uuid.UUID | None]] = []
    store.on_put = lambda _key: late.append(
        submit(local.sessions, local.blobs, hall.booth_ids[1], upload.data)
    )
    process_job(run, job_id)  # its first write is the publish's
    [(late_asset, late_job)] = late
    assert late_job == job_id
    with local.sessions() as session:
        assert session.get(Job, job_id).state is JobState.queued  # type: ignore[union-attr]
    assert not [m for m in events.on(job_topic(job_id)) if m["type"] == "job.done"]
    process_job(run, job_id)  # the delivery the route's enqueue asked for
    with local.sessions() as session:
        asset = session.get(ProductAsset, late_asset)
        assert asset is not None
        assert asset.status is AssetStatus.ready
        assert session.get(Job, job_id).state is JobState.succeeded  # type: ignore[union-attr]
    assert str(asset.product_id) in _hotspots(local, hall.hall_id)


def test_bytes_uploaded_again_after_their_job_failed_transiently_get_every_attempt_again(
    local: Env,  # noqa: F811
    uploads: dict[str, Upload],  # noqa: F811
) -> None:
    data = uploads["landscape"].data + b"z"
    hall = committed_hall(local, uploads, (0,))
    _, job_id = submit(local.sessions, local.blobs, hall.booth_ids[0], data)
    assert job_id is not None
    with local.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.state, job.attempts, job.error_code = (
            JobState.failed,
            MAX_ATTEMPTS,
            "storage_unavailable",
        )
        session.commit()
    _, again = submit(local.sessions, local.blobs, hall.booth_ids[0], data)
    assert again == job_id
    # S3 fails the first write of the new run: a transient fault, retried, not final.
    run = Processor(local.sessions, RecordingStore(local.blobs, fail_on=1), Events())
    with pytest.raises(RetryLater):
        process_job(run, job_id)
    with local.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.state, job.attempts) == (JobState.queued, 1)


def test_a_job_that_loses_a_publish_race_publishes_again_at_once(
    local: Env,  # noqa: F811
    uploads: dict[str, Upload],  # noqa: F811
) -> None:
    upload = uploads["portrait"]
    store_outputs(local.blobs, upload.sha256, upload.files)
    store = RecordingStore(local.blobs)
    run = Processor(local.sessions, store, Events())
    hall = committed_hall(local, uploads, (0, 0))
    asset_id, job_id = submit(local.sessions, local.blobs, hall.booth_ids[0], upload.data)
    assert job_id is not None

    def rival(_key: str) -> None:  # another job's publish of the hall commits first
        with local.sessions() as session:
            publish_hall(session, local.blobs, hall.hall_id)
            session.commit()

    store.on_put = rival  # the job's first write is its publish's
    process_job(run, job_id)  # no RetryLater: the lost race was run again
    with local.sessions() as session:
        job = session.get(Job, job_id)
        asset = session.get(ProductAsset, asset_id)
        assert job is not None
        assert asset is not None
        assert (job.state, job.attempts) == (JobState.succeeded, 1)
    assert str(asset.product_id) in _hotspots(local, hall.hall_id)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_same_bytes_uploaded_twice_at_once_join_one_job(
    local: Env,  # noqa: F811
    uploads: dict[str, Upload],  # noqa: F811
) -> None:
    # PostgreSQL: the second upload does not see the first one's uncommitted job, inserts its
    # own and waits for the first transaction; once that commits, the unique sha256 refuses it.
    hall = committed_hall(local, uploads, (0, 0))
    data = uploads["portrait"].data + b"at once"
    inserting = threading.Event()
    second: dict[str, Any] = {}

    def upload_second() -> None:
        try:
            with local.sessions() as session:
                product = new_product(session, hall.booth_ids[1], "second")
                asset = upload_asset(session, local.blobs, product, data)
                job = accept_upload(session, asset)
                session.commit()
                second.update(asset=asset.id, job=None if job is None else job.id)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            second["error"] = exc

    thread = threading.Thread(target=upload_second)

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.current_thread() is thread and statement.startswith("INSERT INTO jobs"):
            inserting.set()

    engine = local.client.app.state.engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        with local.sessions() as first:
            product = new_product(first, hall.booth_ids[0], "first")
            first_asset = upload_asset(first, local.blobs, product, data)
            job = accept_upload(first, first_asset)
            assert job is not None
            thread.start()
            assert inserting.wait(10), "the second upload never tried to create a job"
            time.sleep(0.2)  # its INSERT reaches the server and waits for this transaction
            first.commit()
        thread.join(10)
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    assert "error" not in second, second.get("error")
    assert second["job"] == job.id
    with local.sessions() as session:
        sha = hashlib.sha256(data).hexdigest()
        assert len(session.scalars(select(Job).where(Job.sha256 == sha)).all()) == 1
        statuses = session.scalars(
            select(ProductAsset.status).where(ProductAsset.sha256 == sha)
        ).all()
        assert statuses == [AssetStatus.processing, AssetStatus.processing]


def _json(body: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(body)
    return data
