"""The demo hall, built by ``python -m scenes build-demo``, loads and renders in three.js in Chromium.

tests/e2e/hall_viewer reads the manifest, loads the shell and the booths with GLTFLoader (meshopt
decoder, WebP), places each booth where the manifest says and renders one frame. The checks are
on what the loader saw and on the pixels; the screenshots go to test-artifacts/e2e/ for a person
to look at.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from playwright.sync_api import Browser

from scenes.cli import main as scenes_main
from tests.e2e.harness import PageLog, StaticServer, open_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VIEWER = Path(__file__).resolve().parent / "hall_viewer"
BACKGROUND = np.array((255, 0, 255), dtype=np.int16)  # the viewer's clear colour
TIMEOUT_MS = 120_000


@dataclass
class Shot:
    result: dict[str, Any]
    log: PageLog
    pixels: NDArray[np.int16]

    @property
    def drawn(self) -> NDArray[np.bool_]:
        """True where something was drawn (not the clear colour)."""
        return np.asarray(np.abs(self.pixels - BACKGROUND).max(axis=2) > 12)


class Hall:
    def __init__(
        self, browser: Browser, server: StaticServer, artifacts: Path, manifest: dict[str, Any]
    ):
        self.browser, self.server, self.artifacts, self.manifest = (
            browser,
            server,
            artifacts,
            manifest,
        )

    def shot(self, name: str, *, camera: str, booths: str = "all") -> Shot:
        query = f"manifest=/hall/manifest.json&camera={camera}&booths={booths}"
        with open_page(self.browser, width=960, height=540) as (page, log):
            page.goto(self.server.url(f"/hall-viewer/index.html?{query}"))
            page.wait_for_function("() => window.__result !== undefined", timeout=TIMEOUT_MS)
            result: dict[str, Any] = page.evaluate("() => window.__result")
            png = page.locator("#view").screenshot()
        (self.artifacts / f"hall-{name}.png").write_bytes(png)
        pixels = np.asarray(Image.open(BytesIO(png)).convert("RGB"), dtype=np.int16)
        return Shot(result, log, pixels)


@pytest.fixture(scope="module")
def hall(
    browser: Browser,
    server: StaticServer,
    artifacts: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Hall:
    outdir = tmp_path_factory.mktemp("demo-hall")
    assert scenes_main(["build-demo", str(outdir)]) == 0
    server.mount("/hall-viewer/", VIEWER)
    server.mount("/hall/", outdir)
    manifest = json.loads((outdir / "manifest.json").read_bytes())
    return Hall(browser, server, artifacts, manifest)


def test_the_whole_demo_hall_loads_and_renders_from_above(hall: Hall) -> None:
    shot = hall.shot("overview", camera="overview")
    assert shot.result["ok"], shot.result.get("error")
    assert shot.log.errors == []
    booths = shot.result["booths"]
    assert len(booths) == len(hall.manifest["booths"]) == 14
    assert all(b["triangles"] > 100 for b in booths)
    assert shot.result["farBoxes"] == 14
    # The hall fills most of the frame (floor, walls, booths); only the sky above is background.
    assert shot.drawn.mean() > 0.5
    # Many booths in many colours: a blank or flat image has few distinct colours.
    colours = {tuple(c) for c in (shot.pixels[shot.drawn] // 16).tolist()}
    assert len(colours) > 60


def test_the_shell_alone_shows_every_booth_as_a_coloured_box(hall: Hall) -> None:
    shot = hall.shot("shell", camera="overview", booths="none")
    assert shot.result["ok"], shot.result.get("error")
    assert shot.result["booths"] == []
    pixels = shot.pixels[shot.drawn]
    saturation = pixels.max(axis=1) - pixels.min(axis=1)
    assert (saturation > 60).mean() > 0.005, "no coloured booth boxes on the grey floor"


def test_one_booth_seen_from_its_waypoint_is_drawn_and_differs_from_another(hall: Hall) -> None:
    first, second = hall.manifest["booths"][0]["number"], hall.manifest["booths"][5]["number"]
    one = hall.shot(f"booth-{first}", camera=f"booth:{first}", booths=first)
    other = hall.shot(f"booth-{second}", camera=f"booth:{second}", booths=second)
    for shot in (one, other):
        assert shot.result["ok"], shot.result.get("error")
        assert shot.log.errors == []
        assert len(shot.result["booths"]) == 1
        assert shot.drawn.mean() > 0.9  # standing in the hall: walls, floor and booth everywhere
        assert shot.pixels.std() > 20  # not a flat colour (the inside of a far box would be)
    difference = np.abs(one.pixels - other.pixels).mean()
    assert difference > 20, f"the two booths look alike (mean difference {difference:.1f})"


def test_a_visitor_at_the_entrance_sees_the_booths_ahead(hall: Hall) -> None:
    shot = hall.shot("spawn", camera="spawn")
    assert shot.result["ok"], shot.result.get("error")
    height = shot.pixels.shape[0]
    band = shot.pixels[height // 3 : height // 2]  # the horizon band, where the booths stand
    saturation = band.max(axis=2) - band.min(axis=2)
    assert (saturation > 60).mean() > 0.02, "no coloured booth fronts ahead of the visitor"
