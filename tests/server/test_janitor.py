"""The janitor removes what uploads leave behind and never what is referenced, on both blob
stores and both databases; a second run removes nothing more."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from server.app import create_app
from server.db.models import UploadSession, utcnow
from server.errors import BlobNotFound
from server.janitor import UploadSweep, sweep_uploads
from server.settings import Settings
from server.storage import LocalBlobStore, S3BlobStore
from server.uploads import Staging, staging_directory
from tests.conftest import make_settings
from tests.factories import ok
from tests.pipeline.hostile import OBJ_TRIANGLE, encoded_image
from tests.server.api.test_uploads import GLB, Env, make_env, upload_settings
from tests.server.test_cli import cli, make_workdir
from tests.services import S3Service, drop_bucket, s3_settings

GRACE = timedelta(hours=1)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def env(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[Env]:
    settings = upload_settings(database_url, tmp_path)
    boto_session: boto3.session.Session | None = None
    if request.param == "s3":
        boto_session = request.getfixturevalue("boto_session")
        service: S3Service = request.getfixturevalue("s3_service")
        blob_settings = s3_settings(service, s3_create_bucket=True)
        settings = settings.model_copy(update={"blobs": blob_settings})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield make_env(client, settings)
    if boto_session is not None:
        drop_bucket(S3BlobStore(settings.blobs, session=boto_session))


@dataclass
class Scene:
    """What the uploads left: the keys and files that must stay and those that must go."""

    asset_key: str
    open_key: str | None  # the open presigned session's object (S3)
    open_staged: Path | None  # the open resumable session's chunks (local)
    expired_id: uuid.UUID
    expired_bytes: str | Path  # its object (S3) or staged chunks (local)
    orphan_key: str
    deleted_asset_key: str
    orphan_staged: Path | None
    foreign_staged: Path | None
    outside_key: str
    multipart_id: str | None


def _set_expiry(env: Env, upload_id: str, expires_at: datetime) -> None:
    with env.sessions() as session, session.begin():
        session.execute(
            update(UploadSession)
            .where(UploadSession.id == uuid.UUID(upload_id))
            .values(expires_at=expires_at)
        )


def _key(env: Env, upload_id: str) -> str:
    with env.sessions() as session:
        upload = session.get(UploadSession, uuid.UUID(upload_id))
        assert upload is not None
        return upload.key


def _open_upload(env: Env, data: bytes) -> tuple[str, str | None, Path | None]:
    """A session with some bytes in, not finalized; returns its id, object key, staged file."""
    if isinstance(env.blobs, S3BlobStore):
        declared = ok(env.declare(data, method="presigned"), 201)
        form = httpx.post(
            declared["url"], data=declared["fields"], files={"file": ("f", data)}, timeout=30
        )
        assert form.status_code in {200, 201, 204}, form.text
        return declared["upload_id"], _key(env, declared["upload_id"]), None
    upload_id = ok(env.declare(data), 201)["upload_id"]
    ok(env.put(upload_id, 0, data[:100]))
    return upload_id, None, Staging(staging_directory(env.settings)).path(uuid.UUID(upload_id))


def _finalized_then_deleted(env: Env) -> str:
    """An upload finalized into an asset that the exhibitor deleted since; returns its key."""
    data = OBJ_TRIANGLE * 10
    upload_id, _, _ = _open_upload(env, data)
    if not isinstance(env.blobs, S3BlobStore):
        ok(env.put(upload_id, 100, data[100:]))
    asset = ok(env.finalize(upload_id), 202)["asset"]
    assert env.client.delete(f"/api/assets/{asset['id']}", headers=env.owner).status_code == 204
    keys = set(env.keys())
    return next(k for k in keys if env.blobs.get(k) == data)


def build_scene(env: Env) -> Scene:
    asset = ok(env.upload(GLB), 202)["asset"]
    (asset_key,) = env.keys()
    open_id, open_key, open_staged = _open_upload(env, encoded_image("PNG") + b"\x00" * 200)
    # Open for three more hours: what it holds is referenced even when old.
    _set_expiry(env, open_id, utcnow() + timedelta(hours=3))
    expired_id, expired_key, expired_staged = _open_upload(env, GLB + b"\x01" * 300)
    _set_expiry(env, expired_id, utcnow() - 2 * GRACE)
    expired_bytes = expired_key or expired_staged
    assert expired_bytes is not None
    deleted_asset_key = _finalized_then_deleted(env)
    orphan_key = f"uploads/{uuid.uuid4()}"
    env.blobs.put(orphan_key, b"a multipart upload whose row never committed", content_type="x/y")
    outside_key = "scenes/not-an-upload.glb"
    env.blobs.put(outside_key, GLB, content_type="model/gltf-binary")
    orphan_staged = foreign_staged = None
    multipart_id = None
    if isinstance(env.blobs, S3BlobStore):
        multipart_id = env.blobs.client.create_multipart_upload(
            Bucket=env.blobs.bucket, Key=f"uploads/{uuid.uuid4()}"
        )["UploadId"]
    else:
        staging = staging_directory(env.settings)
        orphan_staged = staging / uuid.uuid4().hex
        orphan_staged.write_bytes(b"chunks of a session that is gone")
        foreign_staged = staging / "README.txt"
        foreign_staged.write_text("not a session's file")
    assert asset["status"] == "processing"
    return Scene(
        asset_key,
        open_key,
        open_staged,
        uuid.UUID(expired_id),
        expired_bytes,
        orphan_key,
        deleted_asset_key,
        orphan_staged,
        foreign_staged,
        outside_key,
        multipart_id,
    )


def _exists(env: Env, where: str | Path) -> bool:
    if isinstance(where, Path):
        return where.exists()
    try:
        env.blobs.head(where)
    except BlobNotFound:
        return False
    return True


def _sweep(env: Env, now: datetime | None = None) -> UploadSweep:
    return sweep_uploads(
        env.sessions,
        env.blobs,
        Staging(staging_directory(env.settings)),
        grace=GRACE,
        now=now,
    )


def _multipart_ids(env: Env) -> list[str]:
    assert isinstance(env.blobs, S3BlobStore)
    listed = env.blobs.client.list_multipart_uploads(Bucket=env.blobs.bucket)
    return [item["UploadId"] for item in listed.get("Uploads", ())]


def test_the_janitor_removes_leftovers_after_the_grace_period_and_keeps_what_is_referenced(
    env: Env,
) -> None:
    scene = build_scene(env)
    s3 = isinstance(env.blobs, S3BlobStore)

    # Now: only the session whose expiry is older than the grace period goes, with its bytes.
    first = _sweep(env)
    assert first == UploadSweep(sessions=1)
    assert not _exists(env, scene.expired_bytes)
    with env.sessions() as session:
        assert session.get(UploadSession, scene.expired_id) is None
    young = [scene.orphan_key, scene.deleted_asset_key, scene.orphan_staged]
    assert all(_exists(env, where) for where in young if where is not None), "too young"
    if s3:
        assert scene.multipart_id in _multipart_ids(env)

    # Two hours on: every leftover is older than the grace period.
    later = utcnow() + 2 * GRACE
    second = _sweep(env, later)
    assert second == UploadSweep(
        sessions=1,  # the finalized session whose asset was deleted
        staged_files=0 if s3 else 1,
        objects=2,  # the orphan and the deleted asset's file
        multipart_uploads=1 if s3 else 0,
    )
    gone = [scene.orphan_key, scene.deleted_asset_key, scene.orphan_staged]
    assert not any(_exists(env, where) for where in gone if where is not None)
    kept = [
        scene.asset_key,
        scene.open_key,
        scene.open_staged,
        scene.foreign_staged,
        scene.outside_key,
    ]
    assert all(_exists(env, where) for where in kept if where is not None)
    if s3:
        assert _multipart_ids(env) == []
    with env.sessions() as session:
        assert session.scalar(select(func.count()).select_from(UploadSession)) == 1  # the open one
    # Idempotent: nothing more to do, and the referenced things are still there.
    assert _sweep(env, later) == UploadSweep()
    assert all(_exists(env, where) for where in kept if where is not None)
    assert (
        ok(env.client.get(f"/api/products/{env.product}/assets", headers=env.owner))["total"] == 1
    )


def test_the_janitor_command_prints_what_it_removed(tmp_path: Path, sqlite_template: Path) -> None:
    shutil.copyfile(sqlite_template, tmp_path / "pavilion.db")
    workdir = make_workdir(tmp_path)
    store = LocalBlobStore(tmp_path / "blobs")
    store.put("uploads/" + str(uuid.uuid4()), b"orphan", content_type="x/y")
    store.put("scenes/kept.glb", GLB, content_type="model/gltf-binary")
    kept = cli(workdir, "janitor")
    assert kept.returncode == 0, kept.stderr
    assert json.loads(kept.stdout) == {
        "sessions": 0,
        "staged_files": 0,
        "objects": 0,
        "multipart_uploads": 0,
    }, "younger than the default 24 hours"
    swept = cli(workdir, "janitor", "--grace-hours", "0")
    assert swept.returncode == 0, swept.stderr
    assert json.loads(swept.stdout)["objects"] == 1
    assert [info.key for info in store.list()] == ["scenes/kept.glb"]
    negative = cli(workdir, "janitor", "--grace-hours", "-1")
    assert negative.returncode == 2
    assert "error:" in negative.stderr


def test_settings_name_the_staging_directory(tmp_path: Path) -> None:
    default = Settings(blobs={"local_dir": tmp_path / "b"})
    assert staging_directory(default) == tmp_path / "b" / "~staging"
    chosen = Settings(limits={"upload_staging_dir": tmp_path / "s"})
    assert staging_directory(chosen) == tmp_path / "s"


def test_the_api_runs_the_janitor_on_its_period(sqlite_url: str, tmp_path: Path) -> None:
    settings = make_settings(sqlite_url, tmp_path)
    settings = settings.model_copy(
        update={
            "jobs": settings.jobs.model_copy(update={"janitor_seconds": 0.2}),
            "limits": settings.limits.model_copy(update={"upload_grace_hours": 0.0}),
        }
    )
    with TestClient(create_app(settings)) as client:
        blobs: Any = client.app.state.blobs  # type: ignore[attr-defined]
        orphan = f"uploads/{uuid.uuid4()}"
        blobs.put(orphan, b"nobody refers to me", content_type="application/octet-stream")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                blobs.head(orphan)
            except BlobNotFound:
                return
            time.sleep(0.1)
    raise AssertionError("the janitor did not remove an orphaned upload")
