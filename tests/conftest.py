"""Shared fixtures: settings, migrated databases (SQLite and PostgreSQL), the app and a client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from server.app import create_app
from server.settings import AuthSettings, BlobSettings, DatabaseSettings, LimitSettings, Settings
from tests.databases import (
    create_postgres_template,
    drop_postgres_database,
    migrated_sqlite_template,
    postgres_copy,
    sqlite_copy,
)
from tests.factories import World, build_world
from tests.pg_server import postgres_server
from tests.redis_server import redis_server
from tests.services import S3Service, seaweedfs

TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256"
# Every app a test starts (in process or as a subprocess) gets its tour server on a free port.
os.environ.setdefault("PAVILION_TOURS__PORT", "0")
# Hundreds of apps start in one test process: freezing each one's objects would pile them up.
os.environ.setdefault("PAVILION_TOURS__GC_FREEZE", "false")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server (the machine's, or one started for this run)."""
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server (the machine's, or one started for this run); share it by unique names."""
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_template(postgres_url: str) -> Iterator[str]:
    name = create_postgres_template(postgres_url)
    yield name
    drop_postgres_database(postgres_url, name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated database of each kind, one per test."""
    if request.param == "sqlite":
        yield sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path)
        return
    server = request.getfixturevalue("postgres_url")
    with postgres_copy(server, request.getfixturevalue("postgres_template")) as url:
        yield url


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    return sqlite_copy(sqlite_template, tmp_path)


def make_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    return Settings(
        environment="test",
        database=DatabaseSettings(url=database_url),
        blobs=BlobSettings(backend="local", local_dir=tmp_path / "blobs"),
        auth=AuthSettings(secret_key=SecretStr(TEST_SECRET)),
        limits=LimitSettings(max_body_bytes=64 * 1024),
        web_dist=tmp_path / "no-web",
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def sessions(client: TestClient) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = client.app.state.sessions  # type: ignore[attr-defined]
    return factory


@pytest.fixture
def world(client: TestClient, sessions: sessionmaker[Session], settings: Settings) -> World:
    return build_world(client, sessions, settings)


@pytest.fixture(scope="session")
def s3_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Service]:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as service:
        yield service


@pytest.fixture(scope="session")
def boto_session() -> boto3.session.Session:
    """One boto3 session for all stores: building a client from it is 10x faster."""
    return boto3.session.Session()
