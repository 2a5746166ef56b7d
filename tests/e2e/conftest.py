"""Browser fixtures: one Chromium per session, one static server per session, screenshot folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.e2e.harness import REPO, StaticServer, launch_chromium, static_server

ARTIFACTS = REPO / "test-artifacts" / "e2e"
THREE = REPO / "web" / "node_modules" / "three"


# Package scope, not session: Playwright's sync API keeps an asyncio loop running on the main
# thread while it is open, and tests after this package call asyncio.run() there.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium with software WebGL, shared by this package's tests."""
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="package")
def server() -> Iterator[StaticServer]:
    """The static server with ``/three/`` (web/node_modules/three) mounted; tests mount the rest."""
    if not (THREE / "build" / "three.module.js").is_file():
        pytest.fail("web/node_modules/three is missing: run `make web` (npm ci in web/)")
    with static_server() as running:
        running.mount("/three/", THREE)
        yield running


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (git-ignored), kept after the run for a person to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
