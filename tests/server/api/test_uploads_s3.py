"""Uploads with the S3 blob store (SeaweedFS, which enforces presigned POST policies), on SQLite
and PostgreSQL: presigned POST + finalize, and multipart."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.db.models import ProductAsset, UploadSession
from server.errors import BlobNotFound
from server.storage import S3BlobStore
from tests.factories import ok
from tests.server.api.test_uploads import (
    GLB,
    KEY,
    PNG,
    Env,
    error_code,
    make_env,
    upload_settings,
)
from tests.services import S3Service, drop_bucket, s3_settings

pytestmark = pytest.mark.s3


@pytest.fixture
def s3_env(
    database_url: str,
    tmp_path: Path,
    s3_service: S3Service,
    boto_session: boto3.session.Session,
) -> Iterator[Env]:
    blob_settings = s3_settings(s3_service, s3_create_bucket=True)
    settings = upload_settings(database_url, tmp_path).model_copy(update={"blobs": blob_settings})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield make_env(client, settings)
    drop_bucket(S3BlobStore(blob_settings, session=boto_session))


def _post_form(declared: dict[str, Any], data: bytes, **fields: str) -> httpx.Response:
    """What the browser does with the presigned POST."""
    form = {**declared["fields"], **fields}
    return httpx.post(
        declared["url"], data=form, files={"file": ("x.bin", data, "x/y")}, timeout=30
    )


def _session_key(env: Env, upload_id: str) -> str:
    with env.sessions() as session:
        upload = session.get(UploadSession, uuid.UUID(upload_id))
        assert upload is not None
        return upload.key


def _policy(fields: dict[str, str]) -> dict[str, Any]:
    encoded = fields.get("policy") or fields["Policy"]
    policy: dict[str, Any] = json.loads(base64.b64decode(encoded))
    return policy


def test_a_presigned_upload_goes_to_s3_under_an_exact_policy_and_finalizes_into_an_asset(
    s3_env: Env,
) -> None:
    env = s3_env
    data = GLB + b"\x00" * 5000
    declared = ok(env.declare(data, method="presigned", content_type="application/x-php"), 201)
    assert declared["method"] == "presigned"
    expires = datetime.fromisoformat(declared["expires_at"])
    assert expires <= datetime.now(UTC) + timedelta(seconds=300)
    key = _session_key(env, declared["upload_id"])
    assert KEY.match(key)
    assert declared["fields"]["key"] == key
    assert declared["fields"]["Content-Type"] == "application/x-php"
    policy = _policy(declared["fields"])
    assert ["content-length-range", len(data), len(data)] in policy["conditions"]
    assert {"Content-Type": "application/x-php"} in policy["conditions"]
    assert {"key": key} in policy["conditions"]
    expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert expiration <= datetime.now(UTC) + timedelta(seconds=301)

    posted = _post_form(declared, data)
    assert posted.status_code in {200, 201, 204}, posted.text
    accepted = ok(env.finalize(declared["upload_id"]), 202)
    asset = accepted["asset"]
    assert asset["content_type"] == "model/gltf-binary", "detected, not the declared type"
    assert asset["sha256"] == hashlib.sha256(data).hexdigest()
    assert env.jobs.calls == [(accepted["job_id"], True)]
    with env.sessions() as session:
        row = session.get(ProductAsset, uuid.UUID(asset["id"]))
        assert row is not None
        assert row.blob_key is not None
        asset_key = row.blob_key
    assert asset_key != key
    assert KEY.match(asset_key)
    assert env.blobs.get(asset_key) == data
    assert env.blobs.head(asset_key).content_type == "model/gltf-binary"
    with pytest.raises(BlobNotFound):
        env.blobs.head(key)  # the client's copy is gone: nobody's POST can change the asset
    assert ok(env.finalize(declared["upload_id"]), 202) == accepted
    assert len(env.jobs.calls) == 1

    # The presigned POST still works until it expires (F2): the asset's bytes do not change.
    again = _post_form(declared, b"glTF" + b"\x01" * (len(data) - 4))
    assert again.status_code in {200, 201, 204}
    assert env.blobs.get(asset_key) == data
    assert ok(env.finalize(declared["upload_id"]), 202)["asset"]["sha256"] == asset["sha256"]


def test_seaweedfs_refuses_a_post_that_breaks_the_policy(s3_env: Env) -> None:
    env = s3_env
    declared = ok(env.declare(GLB, method="presigned"), 201)
    key = _session_key(env, declared["upload_id"])
    oversize = _post_form(declared, GLB + b"\x00")
    assert 400 <= oversize.status_code < 500, oversize.text
    retyped = _post_form(declared, GLB, **{"Content-Type": "text/html"})
    assert 400 <= retyped.status_code < 500, retyped.text
    with pytest.raises(BlobNotFound):
        env.blobs.head(key)


@pytest.mark.parametrize(
    ("stored", "declared", "status", "code"),
    [
        (GLB + b"\x00", GLB, 422, "size_mismatch"),
        (b"glTF" + b"\x00" * (len(GLB) - 4), GLB, 422, "sha256_mismatch"),
        (PNG, PNG, 415, "kind_mismatch"),
    ],
)
def test_finalize_deletes_an_object_that_differs_from_the_declaration(
    s3_env: Env, stored: bytes, declared: bytes, status: int, code: str
) -> None:
    env = s3_env
    session = ok(env.declare(declared, method="presigned"), 201)
    key = _session_key(env, session["upload_id"])
    # Written past the policy, as a faulty S3 server or a test double would let it (F6).
    env.blobs.put(key, stored, content_type="model/gltf-binary")
    refused = env.finalize(session["upload_id"])
    assert refused.status_code == status, refused.text
    assert error_code(refused) == code
    with pytest.raises(BlobNotFound):
        env.blobs.head(key)
    assert env.keys() == []
    assert env.jobs.calls == []
    assert ok(env.client.get(f"/api/uploads/{session['upload_id']}", headers=env.owner))[
        "state"
    ] == ("open")


def test_finalize_before_anything_arrived_is_409(s3_env: Env) -> None:
    upload_id = ok(s3_env.declare(GLB, method="presigned"), 201)["upload_id"]
    response = s3_env.finalize(upload_id)
    assert response.status_code == 409
    assert error_code(response) == "upload_incomplete"


def test_a_small_upload_lands_in_the_bucket_with_the_detected_type(s3_env: Env) -> None:
    accepted = ok(s3_env.upload(PNG, kind="photo", content_type="text/html"), 202)
    (key,) = s3_env.keys()
    assert KEY.match(key)
    assert s3_env.blobs.head(key).content_type == "image/png"
    assert s3_env.blobs.get(key) == PNG
    assert s3_env.jobs.calls == [(accepted["job_id"], True)]


def test_resumable_uploads_are_refused_with_s3(s3_env: Env) -> None:
    response = s3_env.declare(GLB, method="resumable")
    assert response.status_code == 409
    assert error_code(response) == "resumable_unavailable"
    assert "presigned" in response.json()["error"]["message"]
