"""The real app for browser tests of the web client: migrated, demo seeded and published, serving
web/dist, its API and its tour server on free loopback ports (one per test package)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import REPO
from tests.live import free_port

WEB_DIST = REPO / "web" / "dist"


@dataclass(frozen=True)
class DemoApp:
    base_url: str
    tours_port: int
    env: dict[str, str]
    log: Path

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def api(self, path: str) -> object:
        response = httpx.get(self.url(path), timeout=10)
        response.raise_for_status()
        return response.json()


def _run(args: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("ab") as out:
        done = subprocess.run(
            args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="package")
def demo_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoApp]:
    """``make run``'s embedded default on free ports, in a temporary directory."""
    if not (WEB_DIST / "index.html").is_file():
        pytest.fail("web/dist is missing: run `make web`")
    workdir = tmp_path_factory.mktemp("demo-app")
    port, tours_port = free_port(), free_port()
    env = {
        **os.environ,
        "PAVILION_ENVIRONMENT": "development",
        "PAVILION_PORT": str(port),
        "PAVILION_TOURS__PORT": str(tours_port),
        "PAVILION_DATABASE__URL": f"sqlite:///{workdir / 'pavilion.db'}",
        "PAVILION_BLOBS__LOCAL_DIR": str(workdir / "blobs"),
        "PAVILION_VAR_DIR": str(workdir),
        "PAVILION_WEB_DIST": str(WEB_DIST),
        "PAVILION_LOG_LEVEL": "WARNING",
    }
    env.pop("PAVILION_REDIS_URL", None)
    log = workdir / "app.log"
    _run([sys.executable, "-m", "server", "migrate"], env, log)
    _run([sys.executable, "-m", "server", "seed-demo"], env, log)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.1)
        yield DemoApp(base, tours_port, env, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
