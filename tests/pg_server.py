"""A PostgreSQL server for tests: the machine's own when one answers, else one we start.

``PAVILION_TEST_POSTGRES_URL`` names a server explicitly. Otherwise 127.0.0.1:5432 (trust auth,
user postgres) is tried; when nothing answers there, a throwaway cluster is initialised in a
temporary directory and started on a free loopback port (as the ``postgres`` user when we are root,
because PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import psycopg

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _answers(url: str) -> bool:
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(conninfo, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        raise RuntimeError(
            "PostgreSQL is not installed: `make test` installs the postgresql package"
        )
    return Path(candidates[-1]).parent


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL of a PostgreSQL server whose superuser we may use."""
    explicit = os.environ.get("PAVILION_TEST_POSTGRES_URL")
    if explicit:
        yield explicit
        return
    if _answers(DEFAULT_URL):
        yield DEFAULT_URL
        return
    with _own_cluster() as url:
        yield url


@contextmanager
def _own_cluster() -> Iterator[str]:
    bindir = _bindir()
    workdir = Path(tempfile.mkdtemp(prefix="pavilion-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data = workdir / "data"
    port = _free_port()
    run = subprocess.run
    run(
        [*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {workdir} -c fsync=off"
    run(
        [
            *as_postgres,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(workdir / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 30
        while not _answers(url):
            if time.monotonic() > deadline:
                raise RuntimeError((workdir / "log").read_text()[-2000:])
            time.sleep(0.2)
        yield url
    finally:
        run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)
