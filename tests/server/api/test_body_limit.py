"""The body cap holds over a real socket: a chunked body without Content-Length is cut off at the
limit with a 413, and the server keeps answering others meanwhile (research-security A1, T-A8)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.app import create_app
from tests.conftest import make_settings
from tests.live import live_server

LIMIT = 64 * 1024  # make_settings' cap


@pytest.fixture
def base_url(sqlite_url: str, tmp_path: Path) -> Iterator[str]:
    with live_server(create_app(make_settings(sqlite_url, tmp_path))) as url:
        yield url


def _send_chunked(base_url: str, total: int) -> tuple[bytes, int]:
    """POST ``total`` bytes in 8 KiB chunks; return the response head and the bytes sent."""
    host, port = base_url.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/expos HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 8192
        try:
            while sent < total:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: what we want
        head = sock.recv(4096)
    return head, sent


def test_a_chunked_body_twice_the_limit_gets_413_over_a_real_socket(base_url: str) -> None:
    head, _ = _send_chunked(base_url, 2 * LIMIT)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert b'"payload_too_large"' in head


def test_the_server_answers_others_while_a_large_body_is_refused(base_url: str) -> None:
    started = time.monotonic()
    for _ in range(3):
        _send_chunked(base_url, 4 * LIMIT)
        probe_start = time.monotonic()
        assert httpx.get(f"{base_url}/health", timeout=5).status_code == 200
        assert time.monotonic() - probe_start < 0.5
    assert time.monotonic() - started < 30
