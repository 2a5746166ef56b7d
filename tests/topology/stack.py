"""docker-compose.yml's topology as local processes on loopback, for tests/topology/.

Every service of the compose file has its counterpart here (``SERVICES``; tests/test_compose.py
checks that none is missing). The app's services run their compose ``command`` with their compose
``environment``; only what names a container changes (``ADDRESS_VARIABLES``: the stores' URLs,
the listening hosts, the worker's metrics port), and each API process gets a port pair of its own
(compose leaves them at 8000 and 8001, as deploy/compose/upstreams.conf says).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

from tests.paths import REPO
from tests.redis_server import throwaway_redis
from tests.services import LOOPBACK, S3Service, free_port
from tests.topology.compose import environment_of, load_compose
from tests.topology.proxy import Proxy, Replica, nginx

logger = logging.getLogger(__name__)

SERVICES = {
    "postgres": "tests.pg_server's server, an empty database of the test's own",
    "redis": "tests.redis_server.throwaway_redis",
    "seaweedfs": "tests.services.seaweedfs: weed mini, the image's version",
    "seaweedfs-init": "its compose command, once",
    "api": "its compose command, one process per replica",
    "worker": "its compose command",
    "proxy": "tests.topology.proxy.nginx: deploy/nginx.conf as shipped",
}
# The compose values that name containers (postgres, seaweedfs, redis) or all interfaces, and
# the worker's fixed metrics port: the processes get loopback ones. Nothing else is replaced.
ADDRESS_VARIABLES = frozenset(
    {
        "PAVILION_DATABASE__URL",
        "PAVILION_BLOBS__S3_ENDPOINT_URL",
        "PAVILION_REDIS_URL",
        "PAVILION_TOURS__HOST",
        "PAVILION_METRICS_HOST",
        "PAVILION_METRICS_PORT",
    }
)
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what compose binds, replaced here
STOP_SECONDS = 40.0  # the worker gives running jobs 30 s on SIGTERM


@dataclass
class Running:
    """A service process; its output goes to ``log_path``."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}\n{self.log()}")


@dataclass
class Topology:
    """The running topology: the proxy is the only way in; the rest is for inspection."""

    proxy: Proxy
    apis: list[str]
    worker_metrics: str
    database_url: str
    env: dict[str, str]
    processes: dict[str, Running] = field(default_factory=dict)


def process_environment(
    service: Mapping[str, Any], addresses: Mapping[str, str], **extra: str
) -> dict[str, str]:
    """The environment of ``service``'s process: its compose environment, loopback addresses.

    Args:
        service: the service as the interpolated compose file has it.
        addresses: a loopback value for each of ``ADDRESS_VARIABLES`` the service sets.
        extra: variables compose leaves to their defaults (the ports of a second replica).

    Raises:
        ValueError: the service sets an address variable ``addresses`` has no value for.
    """
    compose_env = {name: value for name, value in environment_of(service).items() if value}
    unknown = {name for name in compose_env if name in ADDRESS_VARIABLES} - set(addresses)
    if unknown:
        raise ValueError(f"no loopback value for {sorted(unknown)}")
    inherited = {name: value for name, value in os.environ.items() if _inherited(name)}
    # `python` in the compose commands is the container's, which has the app installed: here,
    # the interpreter running the tests.
    inherited["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    replaced = {name: addresses[name] for name in compose_env if name in ADDRESS_VARIABLES}
    return {**inherited, **compose_env, **replaced, **extra}


def _inherited(name: str) -> bool:
    return not name.startswith("PAVILION_") and name != "FORWARDED_ALLOW_IPS"


def loopback_command(command: Sequence[str]) -> list[str]:
    """The compose command with its listening address on loopback instead of all interfaces."""
    return [part.replace(f"--host {ALL_INTERFACES}", f"--host {LOOPBACK}") for part in command]


@contextmanager
def running(
    name: str, args: Sequence[str], env: Mapping[str, str], workdir: Path
) -> Iterator[Running]:
    """Run ``args`` until the block exits, then SIGTERM its process group (SIGKILL if stuck)."""
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(args),
            cwd=REPO,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield Running(name, process, log_path)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            logger.warning("%s ignored SIGTERM; killing it", name)
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def wait_healthy(base: str, service: Running, timeout: float = 60.0) -> None:
    """Wait until ``base``/health answers 200, as compose's ``service_healthy`` does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        service.check_alive()
        with suppress(httpx.HTTPError):
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{service.name} was not healthy within {timeout:.0f} s\n{service.log()}")


@contextmanager
def empty_database(server_url: str) -> Iterator[str]:
    """A new, empty database on ``server_url`` (the API processes migrate it), dropped after."""
    name = f"pavilion_topology_{uuid.uuid4().hex[:12]}"
    admin = make_url(server_url).set(drivername="postgresql", database="postgres")
    conninfo = admin.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def operator_env(s3: S3Service, proxy_port: int) -> dict[str, str]:
    """What an operator's ``.env`` holds (docs/operations.md), for this machine."""
    return {
        "POSTGRES_PASSWORD": secrets.token_hex(16),  # the database URL is replaced anyway
        "PAVILION_AUTH__SECRET_KEY": secrets.token_urlsafe(36),
        "PAVILION_BLOBS__S3_ACCESS_KEY": s3.access_key,
        "PAVILION_BLOBS__S3_SECRET_KEY": s3.secret_key,
        # SeaweedFS is shared by the test session: a bucket of our own.
        "PAVILION_BLOBS__S3_BUCKET": f"pavilion-topology-{uuid.uuid4().hex[:12]}",
        "PUBLIC_ORIGIN": f"http://{LOOPBACK}:{proxy_port}",
    }


@contextmanager
def topology(
    workdir: Path, postgres_url: str, s3: S3Service, web: Mapping[str, bytes], replicas: int = 2
) -> Iterator[Topology]:
    """Start the compose topology as processes, in compose's dependency order; stop it after.

    Args:
        workdir: a directory for logs and Redis.
        postgres_url: a PostgreSQL server whose superuser may create databases.
        s3: a running SeaweedFS.
        web: the web client's files for the proxy.
        replicas: API processes.

    Raises:
        RuntimeError: a service exits or does not become healthy (with its log).
    """
    with ExitStack() as stack:
        redis = stack.enter_context(throwaway_redis(workdir / "redis"))
        database = stack.enter_context(empty_database(postgres_url))
        proxy_port, metrics_port = free_port(), free_port()
        env = operator_env(s3, proxy_port)
        services = load_compose(env)["services"]
        addresses = {
            "PAVILION_DATABASE__URL": database,
            "PAVILION_BLOBS__S3_ENDPOINT_URL": s3.endpoint_url,
            "PAVILION_REDIS_URL": redis.url,
            "PAVILION_TOURS__HOST": LOOPBACK,
            "PAVILION_METRICS_HOST": LOOPBACK,
            "PAVILION_METRICS_PORT": str(metrics_port),
        }
        _initialise_bucket(services["seaweedfs-init"], addresses)
        processes: dict[str, Running] = {}
        pairs = [(free_port(), free_port()) for _ in range(replicas)]
        apis = _start_apis(stack, services["api"], addresses, pairs, workdir, processes)
        worker = services["worker"]
        worker_env = process_environment(worker, addresses)
        processes["worker"] = stack.enter_context(
            running("worker", worker["command"], worker_env, workdir)
        )
        upstreams = [Replica(f"{LOOPBACK}:{p}", f"{LOOPBACK}:{t}") for p, t in pairs]
        proxy = stack.enter_context(nginx(upstreams, web, proxy_port))
        metrics = f"http://{LOOPBACK}:{metrics_port}/metrics"
        yield Topology(proxy, apis, metrics, database, env, processes)


def _start_apis(
    stack: ExitStack,
    service: Mapping[str, Any],
    addresses: Mapping[str, str],
    pairs: Sequence[tuple[int, int]],
    workdir: Path,
    processes: dict[str, Running],
) -> list[str]:
    """Start one API process per (API port, tour port) pair and wait until all are healthy."""
    bases = []
    for index, (port, tour_port) in enumerate(pairs, start=1):
        env = process_environment(
            service, addresses, PAVILION_PORT=str(port), PAVILION_TOURS__PORT=str(tour_port)
        )
        name = f"api-{index}"
        args = loopback_command(service["command"])
        processes[name] = stack.enter_context(running(name, args, env, workdir))
        bases.append(f"http://{LOOPBACK}:{port}")
    for index, base in enumerate(bases, start=1):
        wait_healthy(base, processes[f"api-{index}"])
    return bases


def _initialise_bucket(service: Mapping[str, Any], addresses: Mapping[str, str]) -> None:
    """The one-shot ``seaweedfs-init``: bucket, CORS rule, the anonymous-access check."""
    done = subprocess.run(
        list(service["command"]),
        cwd=REPO,
        env=process_environment(service, addresses),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0 or "ready" not in done.stdout:
        raise RuntimeError(f"seaweedfs-init failed ({done.returncode})\n{done.stdout}{done.stderr}")
