"""Fixtures for the blob store tests: one SeaweedFS per session, a fresh bucket per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from server.storage import BlobStore, LocalBlobStore, S3BlobStore
from tests.services import S3Service, drop_bucket, s3_settings


@pytest.fixture
def s3_store(s3_service: S3Service, boto_session: boto3.session.Session) -> Iterator[S3BlobStore]:
    store = S3BlobStore(s3_settings(s3_service), max_attempts=2, session=boto_session)
    assert store.ensure_bucket()
    yield store
    drop_bucket(store)


@pytest.fixture
def local_store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs", "/blobs")


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest) -> BlobStore:
    """Each adapter in turn: the contract suite runs against both."""
    adapter: BlobStore = request.getfixturevalue(f"{request.param}_store")
    return adapter
