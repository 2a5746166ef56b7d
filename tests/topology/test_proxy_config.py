"""The shipped nginx configuration passes ``nginx -t`` (Debian's nginx, unprivileged, no sockets).

A fast check for what the topology test proves at length: deploy/nginx.conf with loopback
upstreams, and with the compose companions (the ``api`` name pointed at loopback, since
``nginx -t`` resolves upstream names and only containers know that one).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.topology.proxy import (
    COMPOSE_LISTEN,
    COMPOSE_UPSTREAMS,
    Replica,
    check_config,
    prepare_prefix,
    upstreams_conf,
)

WEB = {"index.html": b"<!doctype html><title>Pavilion</title>\n"}


@pytest.fixture
def prefix() -> Iterator[Path]:
    # Not pytest's tmp_path: the unprivileged user must be able to reach it.
    path = Path(tempfile.mkdtemp(prefix="pavilion-nginx-t-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_shipped_proxy_configuration_passes_nginx_t_with_loopback_upstreams(
    prefix: Path,
) -> None:
    replicas = [Replica("127.0.0.1:18000", "127.0.0.1:18001")]
    prepare_prefix(
        prefix, upstreams=upstreams_conf(replicas), listen="listen 127.0.0.1:18080;\n", web=WEB
    )
    status, output = check_config(prefix)
    assert status == 0, output


def test_the_compose_proxy_configuration_passes_nginx_t(prefix: Path) -> None:
    upstreams = COMPOSE_UPSTREAMS.read_text().replace("server api:", "server 127.0.0.1:")
    prepare_prefix(prefix, upstreams=upstreams, listen=COMPOSE_LISTEN.read_text(), web=WEB)
    status, output = check_config(prefix)
    assert status == 0, output


def test_nginx_t_refuses_a_broken_configuration(prefix: Path) -> None:
    prepare_prefix(prefix, upstreams="upstream pavilion_api {\n", listen="listen 1;\n", web=WEB)
    status, output = check_config(prefix)
    assert status != 0
    assert "upstreams.conf" in output
