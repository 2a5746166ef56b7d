"""Uploads with the local blob store, on SQLite and PostgreSQL: multipart, resumable, finalize.

``app.state.jobs`` is replaced by a :class:`RecordingQueue` once the app has started (after the
lifespan has put the real queue there): it records every enqueue and whether the job's row was
already committed then, seen from another connection.
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from server.app import create_app
from server.db.models import Job, JobState, ProductAsset, UploadSession, utcnow
from server.settings import LimitSettings, Settings
from server.storage import BlobStore
from tests.conftest import make_settings
from tests.factories import World, build_world, ok
from tests.live import live_server
from tests.pipeline.hostile import OBJ_TRIANGLE, encoded_image, triangle_glb

# TestClient answers with its own response type (httpx2's); the helpers accept either.
Response = Any
KEY = re.compile(r"^uploads/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
GLB = triangle_glb()
PNG = encoded_image("PNG")
PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


class RecordingQueue:
    """Stands in for ``app.state.jobs``: records each enqueue and whether its row was committed."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.calls: list[tuple[str, bool]] = []
        self._lock = threading.Lock()

    def enqueue(self, job_id: str, *, delay_seconds: float = 0.0) -> bool:
        with self.sessions() as session:  # a separate connection sees only committed rows
            committed = session.get(Job, uuid.UUID(job_id)) is not None
        with self._lock:
            self.calls.append((job_id, committed))
        return True

    @property
    def ids(self) -> list[str]:
        return [job_id for job_id, _ in self.calls]


@dataclass
class Env:
    """An app with a small world, the queue fake and the blob store, for upload tests."""

    client: TestClient
    world: World
    sessions: sessionmaker[Session]
    jobs: RecordingQueue
    settings: Settings
    owner: dict[str, str] = field(default_factory=dict)

    @property
    def blobs(self) -> BlobStore:
        store: BlobStore = self.client.app.state.blobs  # type: ignore[attr-defined]
        return store

    @property
    def product(self) -> str:
        return str(self.world.products[0]["id"])

    @property
    def booth(self) -> str:
        return str(self.world.booths[0]["id"])

    def upload(
        self,
        data: bytes,
        *,
        kind: str = "model",
        filename: str = "model.glb",
        content_type: str = "application/octet-stream",
        headers: dict[str, str] | None = None,
    ) -> Response:
        return self.client.post(
            f"/api/products/{self.product}/uploads",
            data={"kind": kind},
            files={"file": (filename, data, content_type)},
            headers=self.owner if headers is None else headers,
        )

    def declare(self, data: bytes, method: str = "resumable", **changes: Any) -> Response:
        body = {
            "kind": "model",
            "filename": "big model.glb",
            "content_type": "model/gltf-binary",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            **changes,
        }
        return self.client.post(
            f"/api/products/{self.product}/uploads/{method}", json=body, headers=self.owner
        )

    def put(self, upload_id: str, offset: int, chunk: bytes) -> Response:
        return self.client.put(
            f"/api/uploads/{upload_id}",
            params={"offset": offset},
            content=chunk,
            headers={**self.owner, "Content-Type": "application/octet-stream"},
        )

    def finalize(self, upload_id: str) -> Response:
        return self.client.post(f"/api/uploads/{upload_id}/finalize", headers=self.owner)

    def keys(self) -> list[str]:
        return [info.key for info in self.blobs.list("uploads/")]

    def asset_count(self) -> int:
        with self.sessions() as session:
            return int(session.scalar(select(func.count(ProductAsset.id))) or 0)


def make_env(client: TestClient, settings: Settings) -> Env:
    """Build the world, put the queue fake on the app."""
    sessions: sessionmaker[Session] = client.app.state.sessions  # type: ignore[attr-defined]
    world = build_world(client, sessions, settings)
    jobs = RecordingQueue(sessions)
    client.app.state.jobs = jobs  # type: ignore[attr-defined]
    return Env(client, world, sessions, jobs, settings, world.exhibitors[0].headers)


def upload_settings(database_url: str, tmp_path: Path, **limits: Any) -> Settings:
    base = make_settings(database_url, tmp_path)
    return base.model_copy(
        update={"limits": LimitSettings(**{**base.limits.model_dump(), **limits})}
    )


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[Env]:
    settings = upload_settings(database_url, tmp_path, upload_chunk_bytes=64 * 1024)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield make_env(client, settings)


def error_code(response: Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


# --- multipart --------------------------------------------------------------------------------


def test_a_model_is_stored_under_a_generated_key_with_the_detected_type_and_enqueued_after_commit(
    env: Env,
) -> None:
    response = env.upload(GLB, filename="../../etc/chair.glb", content_type="text/html")
    accepted = ok(response, 202)
    asset = accepted["asset"]
    assert asset["filename"] == "chair.glb"
    assert asset["content_type"] == "model/gltf-binary", "detected, not the client's text/html"
    assert asset["sha256"] == hashlib.sha256(GLB).hexdigest()
    assert asset["size"] == len(GLB)
    assert asset["status"] == "processing"
    assert asset["kind"] == "model"
    assert env.jobs.calls == [(accepted["job_id"], True)], "enqueued once, after the commit"
    with env.sessions() as session:
        row = session.get(ProductAsset, uuid.UUID(asset["id"]))
        assert row is not None
        assert row.blob_key is not None
        job = session.get(Job, uuid.UUID(accepted["job_id"]))
        assert job is not None
        assert job.state is JobState.queued
        assert job.sha256 == asset["sha256"]
        key = row.blob_key
    assert KEY.match(key), key
    assert env.blobs.get(key) == GLB
    assert env.blobs.head(key).content_type == "model/gltf-binary"


def test_the_same_bytes_uploaded_twice_make_two_assets_and_one_job(env: Env) -> None:
    first = ok(env.upload(GLB), 202)
    second = ok(env.upload(GLB, filename="again.glb"), 202)
    assert first["asset"]["id"] != second["asset"]["id"]
    assert first["job_id"] == second["job_id"]
    assert len(set(env.keys())) == 2


@pytest.mark.parametrize(
    ("kind", "data", "code"),
    [
        ("model", PNG, "kind_mismatch"),
        ("photo", GLB, "kind_mismatch"),
        ("photo", OBJ_TRIANGLE, "kind_mismatch"),
        ("model", PDF, "unsupported_format"),
        ("model", b"\x00\x01garbage" * 50, "unsupported_format"),
    ],
)
def test_a_format_that_does_not_fit_is_415_and_nothing_is_stored(
    env: Env, kind: str, data: bytes, code: str
) -> None:
    response = env.upload(data, kind=kind, content_type="model/gltf-binary")
    assert response.status_code == 415, response.text
    assert error_code(response) == code
    assert env.keys() == []
    assert env.asset_count() == 0
    assert env.jobs.calls == []


def test_an_empty_file_is_422_with_the_pipeline_code(env: Env) -> None:
    response = env.upload(b"")
    assert response.status_code == 422
    assert error_code(response) == "empty_input"


def test_a_photo_is_accepted_as_a_photo(env: Env) -> None:
    accepted = ok(env.upload(PNG, kind="photo", filename="photo.png"), 202)
    assert accepted["asset"]["kind"] == "photo"
    assert accepted["asset"]["content_type"] == "image/png"


def test_the_logo_route_takes_photos_only(env: Env) -> None:
    accepted = ok(
        env.client.post(
            f"/api/booths/{env.booth}/logo",
            files={"file": ("logo.png", PNG, "application/pdf")},
            headers=env.owner,
        ),
        202,
    )
    assert accepted["asset"]["kind"] == "logo"
    assert accepted["asset"]["product_id"] is None
    assert accepted["asset"]["content_type"] == "image/png"
    model = env.client.post(
        f"/api/booths/{env.booth}/logo",
        files={"file": ("logo.png", GLB, "image/png")},
        headers=env.owner,
    )
    assert model.status_code == 415
    assert error_code(model) == "kind_mismatch"


def test_malformed_forms_are_4xx_with_a_code(env: Env) -> None:
    url = f"/api/products/{env.product}/uploads"
    two_files = env.client.post(
        url,
        data={"kind": "model"},
        files=[("file", ("a.glb", GLB, "x/y")), ("file", ("b.glb", GLB, "x/y"))],
        headers=env.owner,
    )
    assert two_files.status_code == 400
    unknown = env.client.post(
        url,
        data={"kind": "model", "is_admin": "1"},
        files={"file": ("a.glb", GLB)},
        headers=env.owner,
    )
    assert unknown.status_code in {400, 422}
    bad_kind = env.upload(GLB, kind="logo")
    assert bad_kind.status_code == 422
    assert error_code(bad_kind) == "validation_error"
    no_file = env.client.post(url, data={"kind": "model"}, headers=env.owner)
    assert no_file.status_code == 422
    json_body = env.client.post(url, json={"kind": "model"}, headers=env.owner)
    assert json_body.status_code == 422
    text_file = env.client.post(url, data={"kind": "model", "file": "v 0 0 0"}, headers=env.owner)
    assert text_file.status_code == 422
    assert env.keys() == []


def test_a_file_over_the_multipart_cap_is_413(database_url: str, tmp_path: Path) -> None:
    settings = upload_settings(database_url, tmp_path, max_upload_bytes=100_000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        env = make_env(client, settings)
        just_over = OBJ_TRIANGLE * (100_000 // len(OBJ_TRIANGLE) + 1)
        over_file = env.upload(just_over, filename="big.obj")
        assert over_file.status_code == 413
        assert error_code(over_file) == "upload_too_large"
        way_over = env.upload(OBJ_TRIANGLE * 10_000, filename="huge.obj")
        assert way_over.status_code == 413
        assert error_code(way_over) == "payload_too_large", "cut off by the body cap"
        assert ok(env.upload(OBJ_TRIANGLE * 100, filename="ok.obj"), 202)
        assert len(env.keys()) == 1


# --- resumable ---------------------------------------------------------------------------------


def _big_glb(size: int) -> bytes:
    """A GLB of about ``size`` bytes (detection reads the magic; processing is not run here)."""
    return GLB + b"\x00" * (size - len(GLB))


def test_a_resumable_upload_resumes_after_an_offset_mismatch_and_finalizes_once(env: Env) -> None:
    data = _big_glb(150_000)
    chunk = env.settings.limits.upload_chunk_bytes
    session = ok(env.declare(data), 201)
    assert session["offset"] == 0
    assert session["chunk_size"] == chunk
    assert session["state"] == "open"
    upload_id = session["upload_id"]
    ok(env.put(upload_id, 0, data[:chunk]))
    # The client thinks its second chunk was lost and sends the first one again.
    stale = env.put(upload_id, 0, data[:chunk])
    assert stale.status_code == 409
    assert error_code(stale) == "offset_mismatch"
    assert stale.json()["error"]["offset"] == chunk
    assert stale.headers["upload-offset"] == str(chunk)
    ahead = env.put(upload_id, 2 * chunk, data[2 * chunk : 3 * chunk])
    assert ahead.json()["error"]["offset"] == chunk
    offset = ok(env.client.get(f"/api/uploads/{upload_id}", headers=env.owner))["offset"]
    while offset < len(data):
        offset = ok(env.put(upload_id, offset, data[offset : offset + chunk]))["offset"]
    status = ok(env.client.get(f"/api/uploads/{upload_id}", headers=env.owner))
    assert status["state"] == "complete"
    assert status["offset"] == len(data)
    accepted = ok(env.finalize(upload_id), 202)
    assert accepted["asset"]["filename"] == "big model.glb"
    assert accepted["asset"]["size"] == len(data)
    assert env.jobs.calls == [(accepted["job_id"], True)]
    again = ok(env.finalize(upload_id), 202)
    assert again == accepted, "finalizing twice answers the same asset"
    assert len(env.jobs.calls) == 1, "and does not enqueue again"
    assert ok(env.client.get(f"/api/uploads/{upload_id}", headers=env.owner))["state"] == (
        "finalized"
    )
    (key,) = env.keys()
    assert env.blobs.get(key) == data
    assert list((tmp_staging(env)).iterdir()) == [], "the staged chunks are removed"
    late = env.put(upload_id, len(data), b"x")
    assert late.status_code == 409


def tmp_staging(env: Env) -> Path:
    return env.settings.blobs.local_dir / "~staging"


def test_chunks_are_bounded_by_the_chunk_size_and_the_declared_size(env: Env) -> None:
    data = _big_glb(100_000)
    upload_id = ok(env.declare(data), 201)["upload_id"]
    chunk = env.settings.limits.upload_chunk_bytes
    too_big = env.put(upload_id, 0, data[: chunk + 1])
    assert too_big.status_code == 413
    assert error_code(too_big) == "payload_too_large"
    ok(env.put(upload_id, 0, data[:chunk]))
    past_end = env.put(upload_id, chunk, data[chunk:] + b"extra")
    assert past_end.status_code == 413
    assert error_code(past_end) == "size_exceeded"
    empty = env.put(upload_id, chunk, b"")
    assert empty.status_code == 422
    incomplete = env.finalize(upload_id)
    assert incomplete.status_code == 409
    assert error_code(incomplete) == "upload_incomplete"
    assert env.asset_count() == 0


@pytest.mark.parametrize(
    ("data", "declared", "status", "code"),
    [
        (_big_glb(70_000), {"sha256": "ab" * 32}, 422, "sha256_mismatch"),
        (PNG, {}, 415, "kind_mismatch"),
        (PDF, {}, 415, "unsupported_format"),
    ],
)
def test_a_finalize_that_fails_its_checks_deletes_the_chunks_and_the_upload_can_start_again(
    env: Env, data: bytes, declared: dict[str, Any], status: int, code: str
) -> None:
    upload_id = ok(env.declare(data, **declared), 201)["upload_id"]
    chunk = env.settings.limits.upload_chunk_bytes
    for offset in range(0, len(data), chunk):
        ok(env.put(upload_id, offset, data[offset : offset + chunk]))
    refused = env.finalize(upload_id)
    assert refused.status_code == status, refused.text
    assert error_code(refused) == code
    assert list(tmp_staging(env).iterdir()) == []
    state = ok(env.client.get(f"/api/uploads/{upload_id}", headers=env.owner))
    assert (state["offset"], state["state"]) == (0, "open")
    assert env.keys() == []
    assert env.jobs.calls == []


def test_presigned_uploads_are_refused_with_the_local_store(env: Env) -> None:
    response = env.declare(GLB, method="presigned")
    assert response.status_code == 409
    assert error_code(response) == "presigned_unavailable"
    assert "resumable" in response.json()["error"]["message"]


def test_an_expired_resumable_upload_takes_no_more_chunks(env: Env) -> None:
    upload_id = ok(env.declare(GLB), 201)["upload_id"]
    with env.sessions() as session, session.begin():
        session.execute(
            update(UploadSession)
            .where(UploadSession.id == uuid.UUID(upload_id))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    response = env.put(upload_id, 0, GLB)
    assert response.status_code == 409
    assert error_code(response) == "upload_expired"
    assert ok(env.client.get(f"/api/uploads/{upload_id}", headers=env.owner))["state"] == "expired"


def test_another_exhibitor_cannot_see_or_feed_an_upload(env: Env) -> None:
    upload_id = ok(env.declare(GLB), 201)["upload_id"]
    other = env.world.exhibitors[1].headers
    assert env.client.get(f"/api/uploads/{upload_id}", headers=other).status_code == 403
    refused = env.client.put(
        f"/api/uploads/{upload_id}", params={"offset": 0}, content=GLB, headers=other
    )
    assert refused.status_code == 403
    assert env.client.post(f"/api/uploads/{upload_id}/finalize", headers=other).status_code == 403
    admin = ok(env.client.get(f"/api/uploads/{upload_id}", headers=env.world.admin.headers))
    assert admin["offset"] == 0


# --- quotas ------------------------------------------------------------------------------------


def test_the_byte_quota_counts_assets_and_open_uploads_and_refuses_before_storing(
    database_url: str, tmp_path: Path
) -> None:
    quota = 2 * len(GLB) + len(GLB) // 2
    settings = upload_settings(database_url, tmp_path, organisation_quota_bytes=quota)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        env = make_env(client, settings)
        ok(env.upload(GLB), 202)
        ok(env.declare(GLB), 201)
        full = env.upload(triangle_glb(asset={"version": "2.0", "generator": "x"}))
        assert full.status_code == 413
        assert error_code(full) == "quota_bytes"
        declared = env.declare(_big_glb(quota))
        assert declared.status_code == 413
        assert error_code(declared) == "quota_bytes"
        assert len(env.keys()) == 1, "nothing stored for the refused uploads"
        other = env.client.post(
            f"/api/products/{env.world.products[1]['id']}/uploads",
            data={"kind": "model"},
            files={"file": ("m.glb", GLB)},
            headers=env.world.exhibitors[1].headers,
        )
        assert other.status_code == 202, "another organisation has its own quota"


def test_open_uploads_and_products_have_per_organisation_caps(
    database_url: str, tmp_path: Path
) -> None:
    settings = upload_settings(
        database_url, tmp_path, organisation_open_uploads=2, organisation_quota_products=2
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        env = make_env(client, settings)
        ok(env.declare(GLB), 201)
        ok(env.declare(PNG, kind="photo"), 201)
        third = env.declare(OBJ_TRIANGLE)
        assert third.status_code == 429
        assert error_code(third) == "quota_uploads"
        product = {"name": "Second", "category": "honey", "country": "RU"}
        ok(client.post(f"/api/booths/{env.booth}/products", json=product, headers=env.owner), 201)
        over = client.post(
            f"/api/booths/{env.booth}/products",
            json={**product, "name": "Third"},
            headers=env.owner,
        )
        assert over.status_code == 429
        assert error_code(over) == "quota_products"
        with env.sessions() as session:
            assert session.scalar(select(func.count()).select_from(UploadSession)) == 2


# --- concurrency over a real server ----------------------------------------------------------


def test_concurrent_finalize_calls_make_one_asset(database_url: str, tmp_path: Path) -> None:
    settings = upload_settings(database_url, tmp_path)
    app: FastAPI = create_app(settings)
    with TestClient(app) as client:
        env = make_env(client, settings)
        upload_id = ok(env.declare(GLB), 201)["upload_id"]
        ok(env.put(upload_id, 0, GLB))
    with live_server(app) as base_url:
        app.state.jobs = env.jobs
        barrier = threading.Barrier(6)
        answers: list[httpx.Response] = []

        def call() -> None:
            with httpx.Client(base_url=base_url, headers=env.owner, timeout=30) as http:
                barrier.wait()
                answers.append(http.post(f"/api/uploads/{upload_id}/finalize"))

        threads = [threading.Thread(target=call) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(a.status_code for a in answers) == [202] * 6, [a.text for a in answers]
    assert len({a.json()["asset"]["id"] for a in answers}) == 1
    with env.sessions() as session:
        count = session.scalar(
            select(func.count(ProductAsset.id)).where(
                ProductAsset.sha256 == hashlib.sha256(GLB).hexdigest()
            )
        )
    assert count == 1
    assert len(env.jobs.calls) == 1
    assert env.jobs.calls[0][1], "enqueued after the commit"


def test_a_finalize_that_loses_the_race_answers_the_winners_asset_and_drops_its_copy(
    env: Env,
) -> None:
    from server.storage import LocalBlobStore
    from server.uploads import Staging, finalize

    upload_id = uuid.UUID(ok(env.declare(GLB), 201)["upload_id"])
    ok(env.put(str(upload_id), 0, GLB))
    staging = Staging(tmp_staging(env))
    limits = env.settings.limits
    store = env.blobs
    assert isinstance(store, LocalBlobStore)
    winner: list[Any] = []

    class RacingStore(LocalBlobStore):
        """Runs a whole other finalize while this one is storing its copy."""

        def put(self, key: str, data: bytes, **kwargs: Any) -> Any:
            info = store.put(key, data, **kwargs)
            if not winner:
                with env.sessions() as other:
                    upload = other.get(UploadSession, upload_id)
                    assert upload is not None
                    winner.append(finalize(other, store, staging, upload, limits))
            return info

    racing = RacingStore(store.root)
    with env.sessions() as session:
        upload = session.get(UploadSession, upload_id)
        assert upload is not None
        loser = finalize(session, racing, staging, upload, limits)
    assert winner[0].created
    assert not loser.created
    assert loser.asset.id == winner[0].asset.id
    assert env.keys() == [winner[0].asset.blob_key], "the loser's copy is deleted"
    assert env.asset_count() == 1


def test_a_finalize_that_finds_the_bytes_taken_by_a_winner_answers_the_winners_asset(
    env: Env,
) -> None:
    from server.uploads import Staging, finalize

    upload_id = uuid.UUID(ok(env.declare(GLB), 201)["upload_id"])
    ok(env.put(str(upload_id), 0, GLB))
    limits = env.settings.limits
    plain = Staging(tmp_staging(env))
    winner: list[Any] = []

    class LateStaging(Staging):
        """Lets a whole other finalize run (and remove the chunks) before this one reads."""

        def read(self, upload_id: uuid.UUID, size: int) -> bytes | None:
            with env.sessions() as other:
                upload = other.get(UploadSession, upload_id)
                assert upload is not None
                winner.append(finalize(other, env.blobs, plain, upload, limits))
            return super().read(upload_id, size)

    with env.sessions() as session:
        upload = session.get(UploadSession, upload_id)
        assert upload is not None
        late = finalize(session, env.blobs, LateStaging(plain.directory), upload, limits)
    assert not late.created
    assert late.asset.id == winner[0].asset.id
    assert env.asset_count() == 1
