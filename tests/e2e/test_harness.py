"""The static server serves only what is mounted, and nothing outside a mount."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.harness import StaticServer


@pytest.fixture
def site(tmp_path: Path, server: StaticServer) -> StaticServer:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "a.glb").write_bytes(b"glTF")
    (tmp_path / "secret.txt").write_text("no")
    server.mount("/site/", tmp_path / "site")
    return server


def fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback http
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, "", b""


def test_a_mounted_file_is_served_with_its_media_type(site: StaticServer) -> None:
    assert fetch(site.url("/site/a.glb")) == (200, "model/gltf-binary", b"glTF")


@pytest.mark.parametrize(
    "path", ["/site/../secret.txt", "/site/%2e%2e/secret.txt", "/site/", "/elsewhere/a.glb"]
)
def test_nothing_outside_a_mounted_file_is_served(site: StaticServer, path: str) -> None:
    assert site.resolve(path) is None
    assert fetch(site.url(path))[0] == 404
