"""The API's blob URLs work with both blob stores: local files served by the app, and S3."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from server.app import create_app
from server.demo import seed_demo
from server.settings import Settings
from tests.conftest import make_settings
from tests.services import S3Service, drop_bucket, s3_settings

PNG = b"\x89PNG\r\n\x1a\n"


def _seeded(client: TestClient) -> dict[str, object]:
    sessions: sessionmaker[Session] = client.app.state.sessions  # type: ignore[attr-defined]
    with sessions() as session, session.begin():
        seed_demo(session, client.app.state.blobs, "demo-password")  # type: ignore[attr-defined]
    expo = client.get("/api/expos").json()["items"][0]
    product: dict[str, object] = client.get(
        f"/api/expos/{expo['id']}/products", params={"category": "honey"}
    ).json()["items"][0]
    return product


def test_local_photos_are_served_by_the_app(sqlite_url: str, tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(sqlite_url, tmp_path))) as client:
        product = _seeded(client)
        url = str(product["photo_url"])
        assert url.startswith("/blobs/demo/")
        photo = client.get(url)
        assert photo.status_code == 200
        assert photo.headers["content-type"] == "image/png"
        assert photo.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert photo.content.startswith(PNG)
        again = client.get(url, headers={"If-None-Match": photo.headers["etag"]})
        assert again.status_code == 304


@pytest.fixture
def s3_app_settings(sqlite_url: str, tmp_path: Path, s3_service: S3Service) -> Iterator[Settings]:
    blob_settings = s3_settings(s3_service, s3_create_bucket=True)
    yield make_settings(sqlite_url, tmp_path).model_copy(
        update={"blobs": blob_settings, "cors_origins": ["https://expo.example"]}
    )
    from server.storage import S3BlobStore

    drop_bucket(S3BlobStore(blob_settings, session=boto3.session.Session()))


@pytest.mark.s3
def test_s3_photos_are_presigned_urls_a_browser_can_fetch(s3_app_settings: Settings) -> None:
    with TestClient(create_app(s3_app_settings)) as client:
        assert client.get("/ready").json()["checks"]["blobs"] == "ok"
        product = _seeded(client)
        url = str(product["photo_url"])
        assert url.startswith(s3_app_settings.blobs.s3_endpoint_url or "")
        assert "X-Amz-Signature=" in url
        assert client.get("/blobs/anything").status_code == 404, "no local blob route with S3"
    photo = httpx.get(url, timeout=10)
    assert photo.status_code == 200
    assert photo.headers["content-type"] == "image/png"
    assert photo.content.startswith(PNG)
    unsigned = httpx.get(url.split("?")[0], timeout=10)
    assert unsigned.status_code == 403, "the bucket is private"
