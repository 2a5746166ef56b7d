"""Liveness and readiness, with the dependencies up, refusing connections, or hung."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import BlobSettings, DatabaseSettings, Settings
from tests.conftest import make_settings

READY_LIMIT = 15.0  # seconds an orchestrator may wait for /ready
UNREACHABLE_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/x"  # port 1: refused


def _with_s3(settings: Settings, endpoint: str) -> Settings:
    blobs = BlobSettings(backend="s3", s3_endpoint_url=endpoint, s3_bucket="pavilion-health")
    return settings.model_copy(update={"blobs": blobs})


def _with_database(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={"database": DatabaseSettings(url=url)})


class SilentServer:
    """A loopback TCP port that accepts connections and never answers: a hung dependency."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._accepted.append(connection)

    def close(self) -> None:
        """Stop accepting and drop every connection: blocked clients get an error at once."""
        self._stop.set()
        self._thread.join(timeout=5)
        for connection in self._accepted:
            connection.close()
        self._listener.close()


@contextmanager
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


def timed_ready(
    client: TestClient, *, release: SilentServer | None = None
) -> tuple[httpx2.Response | None, float]:
    """GET /ready; the response when it came within READY_LIMIT (else None), and the time taken.

    ``release`` is closed after the limit so that a request still blocked on it ends.
    """
    result: list[httpx2.Response] = []
    thread = threading.Thread(target=lambda: result.append(client.get("/ready")), daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(READY_LIMIT)
    elapsed = time.monotonic() - started
    answered = not thread.is_alive()
    if release is not None:
        release.close()
    thread.join(30)
    assert not thread.is_alive(), "/ready still blocked after its dependency went away"
    return (result[0] if answered else None), elapsed


def test_health_answers_ok(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_reports_the_database_blobs_and_pubsub_ok(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    checks = {"database": "ok", "blobs": "ok", "pubsub": "ok"}
    assert response.json() == {"status": "ok", "checks": checks}


def test_an_unreachable_redis_fails_readiness(sqlite_url: str, tmp_path: Path) -> None:
    settings = make_settings(sqlite_url, tmp_path).model_copy(
        update={"redis_url": "redis://127.0.0.1:1/0"}
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
        assert_unready_in_time(client, {"database": "ok", "blobs": "ok", "pubsub": "unavailable"})


def assert_unready_in_time(client: TestClient, checks: dict[str, str]) -> None:
    """/ready answers 503 with exactly ``checks`` within READY_LIMIT seconds."""
    response, elapsed = timed_ready(client)
    assert response is not None, f"/ready did not answer within {READY_LIMIT} s"
    assert elapsed < READY_LIMIT
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"pubsub": "ok", **checks}}


def test_an_unreachable_database_fails_readiness_but_not_startup_or_liveness(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = _with_database(make_settings(sqlite_url, tmp_path), UNREACHABLE_DATABASE)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/health").status_code == 200
        assert_unready_in_time(client, {"database": "unavailable", "blobs": "ok"})
        api = client.get("/api/expos")
        assert api.status_code == 503
        assert api.json()["error"]["code"] == "database_unavailable"


def test_a_removed_blob_directory_fails_readiness(client: TestClient, settings: Settings) -> None:
    shutil.rmtree(settings.blobs.local_dir)
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "blobs": "unavailable", "pubsub": "ok"},
    }


def test_a_blob_directory_replaced_by_a_file_fails_readiness(
    client: TestClient, settings: Settings
) -> None:
    shutil.rmtree(settings.blobs.local_dir)
    settings.blobs.local_dir.write_bytes(b"not a directory")
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "blobs": "unavailable", "pubsub": "ok"}


def test_readiness_recovers_when_the_blob_directory_comes_back(
    client: TestClient, settings: Settings
) -> None:
    shutil.rmtree(settings.blobs.local_dir)
    assert client.get("/ready").status_code == 503
    settings.blobs.local_dir.mkdir()
    assert client.get("/ready").status_code == 200


def test_an_unreachable_s3_store_fails_readiness_within_the_limit(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = _with_s3(make_settings(sqlite_url, tmp_path), "http://127.0.0.1:1")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/health").status_code == 200
        assert_unready_in_time(client, {"database": "ok", "blobs": "unavailable"})


def test_both_dependencies_down_are_both_reported(sqlite_url: str, tmp_path: Path) -> None:
    settings = _with_s3(make_settings(sqlite_url, tmp_path), "http://127.0.0.1:1")
    settings = _with_database(settings, UNREACHABLE_DATABASE)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response, elapsed = timed_ready(client)
        assert response is not None
        assert elapsed < READY_LIMIT
        assert response.status_code == 503
        checks = response.json()["checks"]
        assert checks == {"database": "unavailable", "blobs": "unavailable", "pubsub": "ok"}


@pytest.mark.slow
def test_a_hung_database_fails_readiness_within_the_limit(sqlite_url: str, tmp_path: Path) -> None:
    with silent_server() as hung:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{hung.port}/x"
        settings = _with_database(make_settings(sqlite_url, tmp_path), url)
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            response, _ = timed_ready(client, release=hung)
    assert response is not None, f"/ready did not answer within {READY_LIMIT} s"
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unavailable"


@pytest.mark.slow
def test_a_hung_s3_store_fails_readiness_within_the_limit(sqlite_url: str, tmp_path: Path) -> None:
    with silent_server() as hung:
        settings = _with_s3(make_settings(sqlite_url, tmp_path), f"http://127.0.0.1:{hung.port}")
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            response, _ = timed_ready(client, release=hung)
    assert response is not None, f"/ready did not answer within {READY_LIMIT} s"
    assert response.status_code == 503
    assert response.json()["checks"]["blobs"] == "unavailable"
