"""The reverse proxy for tests: Debian's nginx running ``deploy/nginx.conf`` on loopback.

The shipped configuration is copied byte for byte; only its two companions differ from the
compose deployment: ``upstreams.conf`` lists loopback API and tour ports instead of the ``api``
service, and ``listen.conf`` a free loopback port instead of 8080. As in the proxy container,
nginx runs unprivileged: as ``www-data`` when the tests run as root (like ``tests.pg_server``
runs PostgreSQL as ``postgres``), else as the current user.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.paths import REPO
from tests.services import LOOPBACK

logger = logging.getLogger(__name__)

DEPLOY = REPO / "deploy"
NGINX_CONF = DEPLOY / "nginx.conf"
COMPOSE_UPSTREAMS = DEPLOY / "compose" / "upstreams.conf"
COMPOSE_LISTEN = DEPLOY / "compose" / "listen.conf"
# Where the proxy image keeps the configuration, the web client and its writable run/ directory.
CONTAINER_PREFIX = "/srv/proxy/"
UNPRIVILEGED_USER = "www-data"


@dataclass(frozen=True, slots=True)
class Replica:
    """One API process as the proxy sees it: its API and tour addresses (``host:port``)."""

    api: str
    tours: str


@dataclass(frozen=True, slots=True)
class Proxy:
    port: int
    prefix: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def origin(self) -> str:
        return self.url


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/bin")
    if found is None:
        raise RuntimeError("nginx is not installed: `make system` installs Debian's nginx")
    return found


def upstreams_conf(replicas: Sequence[Replica]) -> str:
    """``upstreams.conf`` for ``replicas``: the blocks deploy/nginx.conf proxies to."""
    api = "".join(f"    server {replica.api};\n" for replica in replicas)
    tours = "".join(f"    server {replica.tours};\n" for replica in replicas)
    return (
        f"upstream pavilion_api {{\n{api}    keepalive 8;\n}}\n"
        f"upstream pavilion_tours {{\n{tours}}}\n"
    )


def prepare_prefix(
    prefix: Path,
    *,
    upstreams: str,
    listen: str,
    web: Mapping[str, bytes],
) -> None:
    """Lay out a prefix directory as the proxy image has it.

    Args:
        prefix: an empty directory.
        upstreams: the text of ``upstreams.conf``.
        listen: the text of ``listen.conf``.
        web: the web client's files by relative path.
    """
    shutil.copyfile(NGINX_CONF, prefix / "nginx.conf")
    (prefix / "upstreams.conf").write_text(upstreams)
    (prefix / "listen.conf").write_text(listen)
    (prefix / "run").mkdir()
    for name, data in web.items():
        target = prefix / "web" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _as_unprivileged(prefix: Path) -> list[str]:
    """The command prefix that drops root, after giving the user the prefix directory."""
    if os.geteuid() != 0:
        return []
    user = pwd.getpwnam(UNPRIVILEGED_USER)
    for path in [prefix, *prefix.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    return ["runuser", "-u", UNPRIVILEGED_USER, "--"]


def nginx_args(prefix: Path) -> list[str]:
    """The proxy container's command, with this prefix."""
    return [nginx_binary(), "-p", f"{prefix}/", "-c", "nginx.conf", "-e", "stderr"]


def check_config(prefix: Path) -> tuple[int, str]:
    """``nginx -t`` on the prefix's configuration as the unprivileged user: (status, output).

    The output goes through a file the user owns, as in the container: nginx opens
    ``/dev/stdout`` for its access log, which needs write access to what it points to.
    """
    log_path = prefix / "check.log"
    log_path.touch()
    command = [*_as_unprivileged(prefix), *nginx_args(prefix), "-t", "-q"]
    with log_path.open("ab") as log:
        done = subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, timeout=30, check=False
        )
    return done.returncode, log_path.read_text(errors="replace")


@contextmanager
def nginx(replicas: Sequence[Replica], web: Mapping[str, bytes], port: int) -> Iterator[Proxy]:
    """Run the shipped proxy configuration on ``port`` in front of ``replicas`` until the block exits.

    Args:
        replicas: the API processes to balance across.
        web: the web client's files by relative path (served from the prefix's ``web/``).
        port: the loopback port to listen on (the site's origin is known before nginx starts).

    Raises:
        RuntimeError: nginx exits or does not listen within 10 s (with its log's tail).
    """
    # Not pytest's tmp_path: www-data must be able to reach it.
    prefix = Path(tempfile.mkdtemp(prefix="pavilion-nginx-"))
    try:
        prefix.chmod(0o755)
        listen = f"listen {LOOPBACK}:{port};\n"
        prepare_prefix(prefix, upstreams=upstreams_conf(replicas), listen=listen, web=web)
        log_path = prefix / "nginx.log"
        log_path.touch()
        drop = _as_unprivileged(prefix)
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [*drop, *nginx_args(prefix), "-g", "daemon off;"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            _wait_until_listening(process, port, log_path)
            yield Proxy(port, prefix, log_path)
        finally:
            _stop(process)
            logger.info("nginx log:\n%s", log_path.read_text(errors="replace")[-4000:])
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"nginx exited with {process.returncode}\n{tail}")
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nginx did not listen within 10 s\n{log_path.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # SIGTERM: nginx's fast shutdown; open websockets are closed with it.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
