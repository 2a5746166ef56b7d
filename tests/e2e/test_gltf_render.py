"""Every GLB the pipeline writes loads in three.js' GLTFLoader in Chromium and renders the model.

Each source is converted once; each output (the three meshopt + WebP web LODs and the plain
compat model) is loaded by tests/e2e/gltf_viewer, rendered once on SwiftShader, and checked by
what GLTFLoader saw (triangles, size) and by the pixels of the screenshot, which is kept in
test-artifacts/e2e/ for a person to look at.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh
from numpy.typing import NDArray
from PIL import Image, ImageDraw
from playwright.sync_api import Browser

from pipeline.run import ConvertOptions, Result, convert
from tests.e2e.harness import REPO, PageLog, StaticServer, open_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CORPUS = REPO.parent / "shared" / "corpus" / "meshes"
VIEWER = Path(__file__).resolve().parent / "gltf_viewer"
OUTPUTS = ("web/lod0.glb", "web/lod1.glb", "web/lod2.glb", "compat/model.glb")
BACKGROUND = (255, 0, 255)  # magenta: the viewer's clear colour, in no model here
RENDER_TIMEOUT_MS = 60_000

Pixels = NDArray[np.int16]


def duck() -> tuple[bytes, ConvertOptions]:
    """The Khronos sample duck: textured, from the shared corpus."""
    return (CORPUS / "Duck.glb").read_bytes(), ConvertOptions(validate=False)


def photo() -> tuple[bytes, ConvertOptions]:
    """A 4:3 photo in four colours: red top-left, blue top-right, green bottom-left, white."""
    image = Image.new("RGB", (400, 300), (240, 240, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 199, 149), fill=(210, 30, 30))
    draw.rectangle((200, 0, 399, 149), fill=(30, 30, 210))
    draw.rectangle((0, 150, 199, 299), fill=(30, 190, 30))
    out = BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue(), ConvertOptions(validate=False)


def box() -> tuple[bytes, ConvertOptions]:
    """An untextured 40 x 20 x 30 mm box as binary STL (Z up)."""
    data: bytes = trimesh.creation.box(extents=(40.0, 20.0, 30.0)).export(file_type="stl")
    return data, ConvertOptions(unit="mm", name="box.stl", validate=False)


def ball() -> tuple[bytes, ConvertOptions]:
    """An 81,920-triangle sphere: the one source whose LODs are really simplified."""
    sphere = trimesh.creation.icosphere(subdivisions=6, radius=40.0)
    data: bytes = sphere.export(file_type="stl")
    return data, ConvertOptions(unit="mm", name="ball.stl", validate=False)


SOURCES: dict[str, Callable[[], tuple[bytes, ConvertOptions]]] = {
    "duck": duck,
    "photo": photo,
    "box": box,
    "ball": ball,
}


@dataclass
class Render:
    """What the viewer reported, what the page logged, and the screenshot's pixels."""

    result: dict[str, Any]
    log: PageLog
    pixels: Pixels
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def model_mask(self) -> NDArray[np.bool_]:
        """True where a pixel is not the background colour (antialiased edges count as model)."""
        distance = np.abs(self.pixels - np.array(BACKGROUND, dtype=np.int16)).max(axis=2)
        return np.asarray(distance > 12)

    def model_pixels(self) -> Pixels:
        return self.pixels[self.model_mask]


class Renders:
    """Converts each source once and renders each output once, on demand, for all tests."""

    def __init__(self, browser: Browser, server: StaticServer, models: Path, artifacts: Path):
        self._browser = browser
        self._server = server
        self._models = models
        self._artifacts = artifacts
        self._results: dict[str, Result] = {}
        self._renders: dict[tuple[str, str], Render] = {}

    def converted(self, source: str) -> Result:
        """The pipeline's result for ``source``, its files also written under /models/."""
        if source not in self._results:
            data, options = SOURCES[source]()
            result = convert(data, options)
            for path, content in result.files.items():
                target = self._models / source / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            self._results[source] = result
        return self._results[source]

    def render(self, source: str, output: str) -> Render:
        """The render of one output of one source; the screenshot goes to test-artifacts/e2e."""
        key = (source, output)
        if key not in self._renders:
            report = self.converted(source).report
            render = self.render_url(f"/models/{source}/{output}")
            render.report = report["outputs"][output] | {"dimensions_m": report["dimensions_m"]}
            name = f"{source}-{output.replace('/', '-').removesuffix('.glb')}.png"
            Image.fromarray(render.pixels.astype(np.uint8)).save(self._artifacts / name)
            self._renders[key] = render
        return self._renders[key]

    def render_bytes(self, name: str, glb: bytes) -> Render:
        """Render a GLB that is not a pipeline output (not cached, no screenshot kept)."""
        target = self._models / "other" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(glb)
        return self.render_url(f"/models/other/{name}")

    def render_url(self, model_url: str) -> Render:
        """Load ``model_url`` in the viewer page, wait for its result, take the screenshot."""
        bg = "".join(f"{c:02x}" for c in BACKGROUND)
        with open_page(self._browser) as (page, log):
            page.goto(self._server.url(f"/gltf-viewer/index.html?model={model_url}&bg={bg}"))
            page.wait_for_function("() => window.__result !== undefined", timeout=RENDER_TIMEOUT_MS)
            result: dict[str, Any] = page.evaluate("() => window.__result")
            png = page.locator("#view").screenshot()
        pixels = np.asarray(Image.open(BytesIO(png)).convert("RGB"), dtype=np.int16)
        return Render(result=result, log=log, pixels=pixels)


@pytest.fixture(scope="module")
def renders(
    browser: Browser,
    server: StaticServer,
    artifacts: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Renders:
    models = tmp_path_factory.mktemp("models")
    server.mount("/gltf-viewer/", VIEWER)
    server.mount("/models/", models)
    return Renders(browser, server, models, artifacts)


def test_the_duck_is_in_the_corpus() -> None:
    assert (CORPUS / "Duck.glb").is_file(), f"{CORPUS} is missing: it lives beside the repo"


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("source", SOURCES)
def test_every_output_loads_in_gltf_loader_and_renders_the_whole_model(
    renders: Renders, source: str, output: str
) -> None:
    render = renders.render(source, output)
    assert render.result["ok"], render.result.get("error")
    assert render.log.errors == []
    assert render.result["triangles"] == render.report["triangles"]
    dimensions = render.report["dimensions_m"]
    for seen, expected in zip(render.result["size"], dimensions.values(), strict=True):
        assert math.isclose(seen, expected, rel_tol=0.02, abs_tol=0.001), render.result["size"]
    mask = render.model_mask
    height, width = mask.shape
    centre = mask[height * 2 // 5 : height * 3 // 5, width * 2 // 5 : width * 3 // 5]
    assert centre.mean() > 0.9, "the middle of the frame is background: no model drawn there"
    assert 0.08 < mask.mean() < 0.9, f"the model covers {mask.mean():.0%} of the frame"
    # Framed: the model reaches towards the frame's edges but is not cut off by them.
    edges = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    assert edges.mean() < 0.05, "the model runs off the frame"


@pytest.mark.parametrize("output", OUTPUTS)
def test_the_duck_is_drawn_yellow_from_its_texture(renders: Renders, output: str) -> None:
    render = renders.render("duck", output)
    assert [list(size) for size in render.result["textures"]] != []
    r, g, b = render.model_pixels().T
    yellow = (r > 120) & (g > 90) & (b < 0.6 * g)
    assert yellow.mean() > 0.5, f"only {yellow.mean():.0%} of the duck is yellow"


@pytest.mark.parametrize("output", OUTPUTS)
def test_the_photo_card_shows_the_photo_the_right_way_round(renders: Renders, output: str) -> None:
    render = renders.render("photo", output)
    pixels = render.pixels
    r, g, b = (pixels[..., i] for i in range(3))
    quadrants = {
        "red": (r > 1.6 * g) & (r > 1.6 * b),
        "blue": (b > 1.6 * r) & (b > 1.6 * g),
        "green": (g > 1.6 * r) & (g > 1.6 * b),
    }
    centroids = {}
    for name, mask in quadrants.items():
        assert mask.mean() > 0.01, f"no {name} quarter of the photo on screen"
        rows, columns = np.nonzero(mask)
        centroids[name] = (columns.mean(), rows.mean())
    assert centroids["red"][0] < centroids["blue"][0], "the photo is mirrored left to right"
    assert centroids["red"][1] < centroids["green"][1], "the photo is upside down"


@pytest.mark.parametrize("output", OUTPUTS)
def test_the_untextured_box_is_grey_and_shaded_face_by_face(renders: Renders, output: str) -> None:
    render = renders.render("box", output)
    assert render.result["textures"] == []
    model = render.model_pixels()
    assert np.abs(model - model.mean(axis=1, keepdims=True)).max(axis=1).mean() < 12, "not grey"
    luminance = model.mean(axis=1)
    spread = np.percentile(luminance, 90) - np.percentile(luminance, 10)
    assert spread > 20, "the faces are shaded alike: normals are lost"


def test_the_ball_loses_triangles_from_lod_to_lod_as_three_js_sees_them(renders: Renders) -> None:
    triangles = [renders.render("ball", output).result["triangles"] for output in OUTPUTS[:3]]
    assert triangles[0] > triangles[1] > triangles[2] > 0
    assert triangles[2] <= 5_000


def test_a_truncated_glb_fails_in_gltf_loader_and_the_page_says_so(renders: Renders) -> None:
    glb = renders.converted("box").files["compat/model.glb"]
    render = renders.render_bytes("truncated.glb", glb[: len(glb) // 2])
    assert not render.result["ok"]
    assert any("console.error" in error for error in render.log.errors)


def test_a_missing_glb_is_an_http_error_not_a_blank_canvas(renders: Renders) -> None:
    render = renders.render_url("/models/no-such-model.glb")
    assert not render.result["ok"]
    assert any(error.startswith("HTTP 404") for error in render.log.errors)
