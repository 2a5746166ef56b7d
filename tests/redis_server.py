"""A Redis server for tests: the machine's own when one answers, else one we start.

``PAVILION_TEST_REDIS_URL`` names a server explicitly. Otherwise ``redis://127.0.0.1:6379/0`` is
tried; when nothing answers there, ``redis-server`` (the Debian package ``.ci/system-packages``
installs) is started on a free loopback port with persistence off, and stopped afterwards.

The machine's server may be shared with other test runs: use unique names (topics, key prefixes)
and never FLUSHDB. Tests that stop or restart Redis use :func:`throwaway_redis`, a server of
their own that :class:`RedisProcess` can stop and start again on the same port.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import redis
from redis.exceptions import RedisError

from tests.services import LOOPBACK, free_port

logger = logging.getLogger(__name__)

DEFAULT_URL = "redis://127.0.0.1:6379/0"
_START_ATTEMPTS = 3


def answers(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis server at ``url`` answers PING."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (RedisError, OSError):
        return False
    finally:
        client.close()


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/sbin")
    if found is None:
        raise RuntimeError("redis-server is not installed: `make test` installs redis-server")
    return found


class _PortTaken(RuntimeError):
    """Another process bound the chosen port before redis-server did."""


class RedisProcess:
    """A redis-server on a loopback port, with nothing persisted, that a test may restart.

    Args:
        workdir: a directory for the server's log (and the working directory it insists on).
        port: the port to listen on; a free one when None.
    """

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port if port is not None else free_port()
        self.log_path = workdir / f"redis-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait until it answers PING.

        Raises:
            RuntimeError: it exited or did not answer in time (with the log's tail).
        """
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            *("--port", str(self.port), "--bind", LOOPBACK, "--protected-mode", "yes"),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            *("--dir", str(self.workdir), "--logfile", str(self.log_path)),
        ]
        logger.info("starting %s", " ".join(args))
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.workdir,
            start_new_session=True,
        )
        self._wait_until_ready(timeout)

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server: SIGTERM, or SIGKILL (a crash) when ``kill``. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            logger.warning("redis-server ignored SIGTERM; killing process group %d", proc.pid)
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def restart(self, *, kill: bool = False) -> None:
        """Stop, then start again on the same port."""
        self.stop(kill=kill)
        self.start()

    def _wait_until_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self._tail()
                self._proc = None
                if "Address already in use" in tail:
                    raise _PortTaken(tail)
                raise RuntimeError(f"redis-server exited early\n{tail}")
            if answers(self.url, timeout=0.5):
                return
            time.sleep(0.05)
        self.stop(kill=True)
        raise RuntimeError(f"redis-server did not answer within {timeout:.0f} s\n{self._tail()}")

    def _tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"


@contextmanager
def throwaway_redis(workdir: Path) -> Iterator[RedisProcess]:
    """A running :class:`RedisProcess` of the caller's own, stopped when the block exits."""
    for attempt in range(1, _START_ATTEMPTS + 1):
        server = RedisProcess(workdir)
        try:
            server.start()
        except _PortTaken:
            logger.warning(
                "port %d was taken before redis-server bound it (%d)", server.port, attempt
            )
            continue
        try:
            yield server
        finally:
            server.stop()
        return
    raise RuntimeError(f"redis-server lost a port race {_START_ATTEMPTS} times")


@contextmanager
def redis_server() -> Iterator[str]:
    """Yield the URL of a Redis server tests may use (see the module docstring)."""
    explicit = os.environ.get("PAVILION_TEST_REDIS_URL")
    if explicit:
        yield explicit
        return
    if answers(DEFAULT_URL):
        yield DEFAULT_URL
        return
    workdir = Path(tempfile.mkdtemp(prefix="pavilion-redis-"))
    try:
        with throwaway_redis(workdir) as server:
            yield server.url
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
