"""The visitor's 3D hall (``#/hall/<id>``, issue 7 item 1) in Chromium against the real app.

The page loads the demo hall's manifest, its shell and its booths nearest-first at the LOD their
distance needs; the visitor walks with WASD, teleports with a click on the floor, opens product
cards from hotspots, and in an emulated headset (iwer, injected before the page's scripts)
enters immersive VR and teleports with a controller. The tests read ``window.pavilion`` (the view
and its stats) where a pixel check is not the point. Screenshots go to
test-artifacts/e2e/hall-client-*.png.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from playwright.sync_api import Browser, CDPSession, Page, expect

from tests.e2e.client.conftest import DemoApp
from tests.e2e.harness import REPO, PageLog, open_page

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 960, 540
READY_MS = 20_000
DEMO_PASSWORD = "pavilion-demo"  # server/cli.py DEMO_PASSWORD
IWER = REPO / "web" / "node_modules" / "iwer" / "build" / "iwer.js"  # the UMD build: window.IWER
FIRST_BOOTH_BUDGET_MS = 2000  # issue 7: the first booth within 2 s of the manifest on loopback
# docs/manifest.md: LOD0 within ~8 m, LOD1 within ~25 m, LOD2 beyond.
LOD_EDGES = (8.0, 25.0)

Pixels = NDArray[np.int16]


@pytest.fixture(scope="module")
def hall_id(demo_app: DemoApp) -> str:
    expos = cast(dict[str, Any], demo_app.api("/api/expos"))
    halls = cast(dict[str, Any], demo_app.api(f"/api/expos/{expos['items'][0]['id']}/halls"))
    return cast(str, halls["items"][0]["id"])


@pytest.fixture(scope="module")
def manifest(demo_app: DemoApp, hall_id: str) -> dict[str, Any]:
    return cast(dict[str, Any], demo_app.api(f"/api/halls/{hall_id}/manifest"))


@pytest.fixture
def page_and_log(browser: Browser) -> Iterator[tuple[Page, PageLog]]:
    with open_page(browser, width=WIDTH, height=HEIGHT) as opened:
        yield opened


def open_hall(
    page: Page, demo_app: DemoApp, hall_id: str, *, lang: str = "en", booths: bool = True
) -> None:
    """Open the hall page and wait for the view (and every booth's first GLB)."""
    page.add_init_script(f"localStorage.setItem('pavilion.lang', {json.dumps(lang)})")
    page.goto(demo_app.url(f"/#/hall/{hall_id}"))
    page.wait_for_function("() => window.pavilion?.ready", timeout=READY_MS)
    page.evaluate("() => window.pavilion.ready.then(() => true)")
    if not booths:
        return
    page.wait_for_function(
        "() => { const s = window.pavilion.stats; return s.boothsTotal > 0 && s.boothsLoaded === s.boothsTotal; }",
        timeout=READY_MS,
    )


def wait_frames(page: Page, count: int = 3, key: str = "frames") -> None:
    start = page.evaluate(f"() => window.pavilion.stats.{key}")
    page.wait_for_function(
        f"(start) => window.pavilion.stats.{key} >= start + {count}", arg=start, timeout=READY_MS
    )


def rig(page: Page) -> list[float]:
    return cast(list[float], page.evaluate("() => window.pavilion.view.rig.position.toArray()"))


def teleport(page: Page, position: list[float], yaw_degrees: float) -> None:
    page.evaluate(
        "([p, yaw]) => window.pavilion.view.teleport(p, yaw * Math.PI / 180)",
        [position, yaw_degrees],
    )
    wait_frames(page)


def project(page: Page, point: list[float]) -> tuple[float, float]:
    xy = page.evaluate("(p) => window.pavilion.view.project(p)", point)
    assert xy is not None, f"{point} is behind the camera"
    return float(xy[0]), float(xy[1])


def screenshot(page: Page, artifacts: Path, name: str, *, panels: bool = True) -> Pixels:
    """The canvas as shown (with the panels over it), or the 3D view alone (``panels=False``)."""
    page.evaluate(
        """(show) => { for (const panel of document.querySelectorAll('.hall-overlay, .hall-loading'))
                         panel.style.visibility = show ? '' : 'hidden'; }""",
        panels,
    )
    png = page.locator("canvas.hall-canvas").screenshot()
    (artifacts / f"hall-client-{name}.png").write_bytes(png)
    return np.asarray(Image.open(BytesIO(png)).convert("RGB"), dtype=np.int16)


def distinct_colours(pixels: Pixels) -> int:
    return len({tuple(c) for c in (pixels.reshape(-1, 3) // 16).tolist()})


def newly_cyan(before: Pixels, after: Pixels) -> int:
    """Pixels that turned the highlight's colour (#19e3ff, give or take shading)."""
    r, g, b = after[..., 0], after[..., 1], after[..., 2]
    cyan = (r < 120) & (g > 170) & (b > 200)
    changed = np.abs(after - before).sum(axis=2) > 60
    return int((cyan & changed).sum())


def floor_point_in_view(
    page: Page, candidates: list[list[float]]
) -> tuple[list[float], float, float]:
    """The first candidate point whose spot on screen shows the canvas (no panel over it)."""
    for point in candidates:
        x, y = project(page, point)
        if page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y)?.classList.contains('hall-canvas')",
            [x, y],
        ):
            return point, x, y
    raise AssertionError(f"every candidate is under a panel: {candidates}")


def hold(page: Page, key: str, until: str) -> None:
    """Hold a key until the JavaScript condition on the rig position ``p`` holds."""
    page.keyboard.down(key)
    try:
        page.wait_for_function(
            f"() => {{ const p = window.pavilion.view.rig.position; return {until}; }}",
            timeout=5000,
        )
    finally:
        page.keyboard.up(key)


def raw_lod(distance: float) -> int:
    return sum(distance > edge for edge in LOD_EDGES)


def inside(polygon: list[list[float]], x: float, z: float) -> bool:
    xs, zs = [p[0] for p in polygon], [p[1] for p in polygon]
    return min(xs) <= x <= max(xs) and min(zs) <= z <= max(zs)  # the demo hall is a rectangle


def booth_rectangles(page: Page, manifest: dict[str, Any]) -> list[tuple[int, int, int, int]]:
    """Canvas rectangles (x0, y0, x1, y1) of the booths whose bounds are wholly in front."""
    left, top, width, height = page.evaluate(
        """() => { const r = document.querySelector('canvas.hall-canvas').getBoundingClientRect();
                   return [r.left, r.top, r.width, r.height]; }"""
    )
    boxes = []
    for booth in manifest["booths"]:
        lo, hi = booth["bounds"]["min"], booth["bounds"]["max"]
        corners = [
            [x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])
        ]
        points = [page.evaluate("(p) => window.pavilion.view.project(p)", c) for c in corners]
        if any(p is None for p in points):
            continue
        xs, ys = [p[0] - left for p in points], [p[1] - top for p in points]
        x0, y0 = max(0, int(min(xs))), max(0, int(min(ys)))
        x1, y1 = min(int(width), int(max(xs))), min(int(height), int(max(ys)))
        if x1 - x0 > 10 and y1 - y0 > 10:
            boxes.append((x0, y0, x1, y1))
    return boxes


def test_the_demo_hall_renders_its_booths_within_two_seconds_of_the_manifest(
    page_and_log: tuple[Page, PageLog],
    demo_app: DemoApp,
    hall_id: str,
    manifest: dict[str, Any],
    artifacts: Path,
) -> None:
    page, log = page_and_log
    open_hall(page, demo_app, hall_id)
    stats = page.evaluate("() => ({...window.pavilion.stats})")
    (artifacts / "hall-client-stats.json").write_text(json.dumps(stats, indent=1))
    assert stats["boothsLoaded"] == len(manifest["booths"]) == 14
    assert 0 < stats["firstBoothMs"] <= FIRST_BOOTH_BUDGET_MS, stats

    wait_frames(page)
    screenshot(page, artifacts, "entrance")
    shot = screenshot(page, artifacts, "entrance-3d", panels=False)
    assert distinct_colours(shot) > 150, "a blank or flat canvas"
    # Hide the booth GLBs (their far boxes are hidden already): the booths' screen areas change.
    boxes = booth_rectangles(page, manifest)
    assert boxes, "no booth wholly in front of the visitor at the entrance"
    page.evaluate("() => { window.pavilion.view.boothRoot.visible = false; }")
    wait_frames(page)
    bare = screenshot(page, artifacts, "entrance-without-booths", panels=False)
    changed = [
        float(np.abs(shot[y0:y1, x0:x1] - bare[y0:y1, x0:x1]).mean()) for x0, y0, x1, y1 in boxes
    ]
    assert len(boxes) >= 10
    assert min(changed) > 15, f"booth areas that look like the empty hall: {changed}"
    assert log.errors == []


def test_booths_load_at_the_lod_of_their_distance_and_swap_when_the_visitor_crosses_the_hall(
    page_and_log: tuple[Page, PageLog], demo_app: DemoApp, hall_id: str, manifest: dict[str, Any]
) -> None:
    page, log = page_and_log
    open_hall(page, demo_app, hall_id)
    state = {b["id"]: b for b in page.evaluate("() => window.pavilion.view.boothState()")}
    # Nobody moved yet: every booth has the LOD of its distance, without hysteresis.
    assert len({b["lod"] for b in state.values()}) >= 2, state
    for booth in state.values():
        assert booth["lod"] == raw_lod(booth["distance"]), booth

    # Cross to the far end of the hall: the booths near the entrance go coarse, the far ones fine.
    depth = manifest["hall"]["depth"]
    teleport(page, [0.0, 0.0, -depth / 2 + 2.5], 180.0)
    page.wait_for_function(
        """() => window.pavilion.view.boothState().every((b) => b.loading === null
              && (b.distance < 8 - 2 ? b.lod === 0 : b.distance > 25 + 2 ? b.lod === 2 : true))""",
        timeout=READY_MS,
    )
    after = {b["id"]: b for b in page.evaluate("() => window.pavilion.view.boothState()")}
    swapped = [i for i in state if state[i]["lod"] != after[i]["lod"]]
    assert len(swapped) >= 4, f"too few LOD swaps: {swapped}"
    assert log.errors == []


def test_wasd_walks_and_a_click_on_the_floor_teleports_there(
    page_and_log: tuple[Page, PageLog],
    demo_app: DemoApp,
    hall_id: str,
    manifest: dict[str, Any],
    artifacts: Path,
) -> None:
    page, log = page_and_log
    open_hall(page, demo_app, hall_id)
    spawn = manifest["spawn_points"][0]
    teleport(page, spawn["position"], spawn["yaw"])  # yaw 0: looking towards -z
    page.locator("canvas.hall-canvas").focus()

    start = rig(page)
    hold(page, "w", f"p.z < {start[2] - 1}")  # forward is -z
    walked = rig(page)
    assert abs(walked[0] - start[0]) < 0.05
    hold(page, "d", f"p.x > {walked[0] + 0.5}")  # right is +x
    strafed = rig(page)
    assert abs(strafed[2] - walked[2]) < 0.05

    # Backing into the entrance wall stops at the walkable floor's edge (21.7 in the demo hall).
    edge = max(p[1] for p in manifest["walkable"])
    hold(page, "s", f"p.z > {edge - 0.2}")
    page.keyboard.down("s")
    page.wait_for_timeout(500)
    page.keyboard.up("s")
    backed = rig(page)
    assert inside(manifest["walkable"], backed[0], backed[2]), backed

    # A click on an aisle point a few metres ahead (not under a panel) teleports there.
    here = rig(page)
    ahead = [
        t
        for t in manifest["teleport_targets"]
        if 4 <= here[2] - t[2] <= 9 and abs(t[0] - here[0]) <= 3
    ]
    target, x, y = floor_point_in_view(page, sorted(ahead, key=lambda t: here[2] - t[2]))
    page.mouse.click(x, y)
    page.wait_for_function(
        "([x, z]) => { const p = window.pavilion.view.rig.position; return Math.hypot(p.x - x, p.z - z) < 0.3; }",
        arg=[target[0], target[2]],
        timeout=5000,
    )
    screenshot(page, artifacts, "after-teleport")
    assert log.errors == []


def test_a_hotspot_click_opens_the_product_card_in_the_visitors_language(
    page_and_log: tuple[Page, PageLog],
    demo_app: DemoApp,
    hall_id: str,
    manifest: dict[str, Any],
    artifacts: Path,
) -> None:
    page, log = page_and_log
    open_hall(page, demo_app, hall_id, lang="ru")
    booth = manifest["booths"][0]
    teleport(page, booth["waypoint"]["position"], booth["waypoint"]["yaw"])
    page.evaluate("() => { window.pavilion.view.camera.rotation.x = -0.15; }")  # look a bit down
    page.wait_for_function(
        "(id) => window.pavilion.view.boothState().find((b) => b.id === id).lod === 0",
        arg=booth["id"],
        timeout=READY_MS,
    )
    wait_frames(page)
    card = page.locator(".hall-card[data-state='ready']")

    # The marker over the first product.
    first = booth["hotspots"][0]
    page.mouse.click(*project(page, first["anchor"]))
    card.wait_for(timeout=5000)
    product = cast(dict[str, Any], demo_app.api(f"/api/products/{first['product_id']}"))
    assert card.get_attribute("data-product") == first["product_id"]
    assert card.locator(".hall-card-name").text_content() == product["names"]["ru"]
    assert product["price"].split(".")[0] in (card.locator(".hall-card-price").text_content() or "")
    assert card.locator(".hall-card-photo").get_attribute("src") == product["photo_url"]
    screenshot(page, artifacts, "product-card")
    page.locator(".hall-card-close").click()

    # The product's own mesh (below its marker) opens its card too.
    second = booth["hotspots"][1]
    centre = page.evaluate(
        """(id) => { const view = window.pavilion.view, node = view.streamer.findProduct(id);
                     const box = view.hotspots.box.clone().setFromObject(node);
                     return box.getCenter(node.position.clone()).toArray(); }""",
        second["product_id"],
    )
    page.mouse.click(*project(page, centre))
    page.wait_for_function(
        "(id) => document.querySelector(`.hall-card[data-state='ready']`)?.dataset.product === id",
        arg=second["product_id"],
        timeout=5000,
    )
    other = cast(dict[str, Any], demo_app.api(f"/api/products/{second['product_id']}"))
    assert card.locator(".hall-card-name").text_content() == other["names"]["ru"]

    # A highlighted product (a guide pointing at it) gets an amber ring and box around it.
    plain = screenshot(page, artifacts, "before-highlight", panels=False)
    page.evaluate("(id) => window.pavilion.view.highlightProduct(id)", second["product_id"])
    wait_frames(page)
    lit = screenshot(page, artifacts, "highlight", panels=False)
    assert newly_cyan(plain, lit) > 200, newly_cyan(plain, lit)
    page.evaluate("() => window.pavilion.view.highlightProduct(null)")
    wait_frames(page)
    off = screenshot(page, artifacts, "highlight-off", panels=False)
    assert newly_cyan(plain, off) < 20
    assert log.errors == []


def test_an_emulated_headset_enters_vr_renders_and_teleports_with_a_controller(
    page_and_log: tuple[Page, PageLog],
    demo_app: DemoApp,
    hall_id: str,
    manifest: dict[str, Any],
    artifacts: Path,
) -> None:
    page, log = page_and_log
    # iwer replaces navigator.xr before the page's scripts run (Chromium has a native one).
    page.add_init_script(
        IWER.read_text()
        + "\nwindow.__xr = new IWER.XRDevice(IWER.metaQuest3);"
        + "\nwindow.__xr.installRuntime({ forceInstall: true });"
    )
    open_hall(page, demo_app, hall_id)
    spawn = manifest["spawn_points"][0]
    teleport(page, spawn["position"], spawn["yaw"])
    page.get_by_role("button", name="ENTER VR").click()
    page.wait_for_function("() => window.pavilion.view.renderer.xr.isPresenting", timeout=READY_MS)
    wait_frames(page, 5, key="xrFrames")
    png = page.screenshot()
    (artifacts / "hall-client-vr.png").write_bytes(png)
    pixels = np.asarray(Image.open(BytesIO(png)).convert("RGB"), dtype=np.int16)
    assert distinct_colours(pixels) > 150, "the headset view is blank"
    assert page.evaluate("() => window.pavilion.view.getPose().vr") is True

    # Point the right controller ahead and 30° down, press and release the trigger.
    before = rig(page)
    page.evaluate(
        f"""() => {{ const c = window.__xr.controllers.right;
                    c.position.set(0.2, 1.3, -0.3);
                    c.quaternion.set({-math.sin(math.radians(15))}, 0, 0, {math.cos(math.radians(15))});
                    c.updateButtonValue('trigger', 1); }}"""
    )
    page.wait_for_function("() => window.pavilion.view.xr.arc.visible", timeout=20_000)
    page.evaluate("() => window.__xr.controllers.right.updateButtonValue('trigger', 0)")
    page.wait_for_function(
        "(z) => window.pavilion.view.rig.position.z < z - 1", arg=before[2], timeout=20_000
    )
    after = rig(page)
    target = page.evaluate("() => window.pavilion.view.xr.lastTarget")
    head = page.evaluate("() => window.pavilion.view.getPose().position")
    # The visitor's head lands on the arc's end, on the walkable floor.
    assert math.hypot(head[0] - target[0], head[2] - target[2]) < 0.05, (head, target)
    assert inside(manifest["walkable"], target[0], target[2])
    assert before[2] - after[2] > 1

    # A push of the thumbstick to the right turns the visitor 30° clockwise.
    yaw = page.evaluate("() => window.pavilion.view.rig.rotation.y")
    page.evaluate("() => window.__xr.controllers.right.updateAxes('thumbstick', 1, 0)")
    page.wait_for_function(
        "(y) => Math.abs(window.pavilion.view.rig.rotation.y - (y - Math.PI / 6)) < 1e-6",
        arg=yaw,
        timeout=20_000,
    )
    assert log.errors == []


def test_the_booth_list_filters_by_country_and_walks_to_a_booth_and_its_products(
    page_and_log: tuple[Page, PageLog],
    demo_app: DemoApp,
    hall_id: str,
    manifest: dict[str, Any],
    artifacts: Path,
) -> None:
    page, log = page_and_log
    open_hall(page, demo_app, hall_id, booths=False)
    panel = page.locator(".hall-booths")
    toggle = panel.locator(".hall-booths-toggle")
    if toggle.get_attribute("aria-expanded") != "true":
        toggle.click()  # closed at first on a small window
    items = panel.locator(".hall-booth-list > li")
    expect(items).to_have_count(len(manifest["booths"]))

    panel.get_by_label("Country").select_option("RU")
    expected = cast(dict[str, Any], demo_app.api(f"/api/halls/{hall_id}/booths?country=RU"))
    assert expected["total"] >= 1
    ids = [b["id"] for b in expected["items"]]
    expect(items).to_have_count(len(ids))
    assert [items.nth(i).get_attribute("data-booth") for i in range(len(ids))] == ids

    # A click on the booth glides to its waypoint and lists its products by their names.
    booth = next(b for b in manifest["booths"] if b["id"] == ids[0])
    items.first.locator(".hall-booth").click()
    waypoint = booth["waypoint"]["position"]
    page.wait_for_function(
        """([x, z]) => { const p = window.pavilion.view.rig.position;
                         return Math.hypot(p.x - x, p.z - z) < 0.05; }""",
        arg=[waypoint[0], waypoint[2]],
        timeout=5000,
    )
    products = cast(dict[str, Any], demo_app.api(f"/api/booths/{booth['id']}/products"))
    buttons = items.first.locator(".hall-product")
    expect(buttons).to_have_count(products["total"])
    assert buttons.all_text_contents() == [
        p["names"].get("en", p["name"]) for p in products["items"]
    ]
    buttons.first.click()
    card = page.locator(".hall-card[data-state='ready']")
    expect(card).to_have_attribute("data-product", products["items"][0]["id"])
    screenshot(page, artifacts, "booth-list")
    assert log.errors == []


def touch(cdp: CDPSession, kind: str, x: float = 0, y: float = 0) -> None:
    points = [] if kind == "touchEnd" else [{"x": x, "y": y}]
    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})


def test_on_a_touch_screen_a_tap_teleports_a_drag_looks_and_the_stick_walks(
    browser: Browser, demo_app: DemoApp, hall_id: str, manifest: dict[str, Any]
) -> None:
    context = browser.new_context(
        viewport={"width": WIDTH, "height": HEIGHT}, device_scale_factor=1, has_touch=True
    )
    try:
        page = context.new_page()
        log = PageLog()
        log.attach(page)
        cdp = context.new_cdp_session(page)
        open_hall(page, demo_app, hall_id, booths=False)
        spawn = manifest["spawn_points"][0]
        teleport(page, spawn["position"], spawn["yaw"])

        # A tap on the floor a few metres ahead (nothing in front of the entrance) goes there.
        x0, _, z0 = spawn["position"]
        target, x, y = floor_point_in_view(
            page, [[x0 + dx, 0.0, z0 - dz] for dz in (3, 4, 5) for dx in (-2, 2, 0)]
        )
        page.touchscreen.tap(x, y)
        page.wait_for_function(
            """([x, z]) => { const p = window.pavilion.view.rig.position;
                             return Math.hypot(p.x - x, p.z - z) < 0.3; }""",
            arg=[target[0], target[2]],
            timeout=5000,
        )

        # A one-finger drag to the right turns the view left (the scene follows the finger).
        yaw = page.evaluate("() => window.pavilion.view.rig.rotation.y")
        touch(cdp, "touchStart", 480, 300)
        for step in range(1, 11):
            touch(cdp, "touchMove", 480 + 10 * step, 300)
        touch(cdp, "touchEnd")
        turned = page.evaluate("() => window.pavilion.view.rig.rotation.y") - yaw
        assert 0.2 < turned < 0.6, turned

        # The stick (shown since the first touch): pushed up, the visitor walks ahead.
        stick = page.locator(".hall-stick")
        assert stick.is_visible()
        box = stick.bounding_box()
        assert box is not None
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        before = rig(page)
        touch(cdp, "touchStart", cx, cy)
        touch(cdp, "touchMove", cx, cy - box["height"] / 2)
        page.wait_for_timeout(800)
        touch(cdp, "touchEnd")
        after = rig(page)
        heading = page.evaluate("() => window.pavilion.view.rig.rotation.y")
        ahead = (after[0] - before[0]) * -math.sin(heading) + (after[2] - before[2]) * -math.cos(
            heading
        )
        assert ahead > 0.5, (before, after)
        assert log.errors == []
    finally:
        context.close()


def test_a_republished_booth_is_reloaded_in_the_open_hall_and_the_others_are_kept(
    page_and_log: tuple[Page, PageLog], demo_app: DemoApp, hall_id: str, manifest: dict[str, Any]
) -> None:
    page, log = page_and_log
    open_hall(page, demo_app, hall_id)
    booth, other = manifest["booths"][-1], manifest["booths"][0]
    objects = "(id) => window.pavilion.view.streamer.entries.get(id).object.uuid"
    kept = page.evaluate(objects, other["id"])

    admin = login(demo_app, "admin@pavilion.demo")
    original = cast(dict[str, Any], demo_app.api(f"/api/booths/{booth['id']}"))["tagline"]
    try:
        patch = admin.patch(
            f"/api/booths/{booth['id']}", json={"tagline": "Now with a new tagline"}
        )
        patch.raise_for_status()
        # The PATCH republishes that booth by itself, right after its answer.
        keys = booth_keys(demo_app, hall_id, booth["id"], changed_from=booth_lod_keys(booth))
        # The view reloads the manifest (the live layer also does on booth.updated).
        page.evaluate("() => window.pavilion.view.reloadManifest()")
        page.wait_for_function(
            """([id, keys]) => keys.includes(
                   window.pavilion.view.boothState().find((b) => b.id === id).key)""",
            arg=[booth["id"], sorted(keys)],
            timeout=READY_MS,
        )
        assert page.evaluate(objects, other["id"]) == kept, "an unchanged booth was reloaded"
        assert page.evaluate("() => window.pavilion.view.manifest.booths.length") == 14
    finally:
        admin.patch(f"/api/booths/{booth['id']}", json={"tagline": original}).raise_for_status()
        admin.close()
        # Content-addressed: the original branding gives back the original GLBs.
        booth_keys(demo_app, hall_id, booth["id"], equal_to=booth_lod_keys(booth))
    assert log.errors == []


def booth_lod_keys(booth: dict[str, Any]) -> set[str]:
    return {lod["key"] for lod in booth["lods"]}


def booth_keys(
    demo_app: DemoApp,
    hall_id: str,
    booth_id: str,
    *,
    changed_from: set[str] | None = None,
    equal_to: set[str] | None = None,
) -> set[str]:
    """The booth's GLB keys in the served manifest, once they differ from or equal the given."""
    deadline = time.monotonic() + 30
    while True:
        fresh = cast(dict[str, Any], demo_app.api(f"/api/halls/{hall_id}/manifest"))
        keys = {lod["key"] for b in fresh["booths"] if b["id"] == booth_id for lod in b["lods"]}
        if (changed_from is not None and keys != changed_from) or keys == equal_to:
            return keys
        assert time.monotonic() < deadline, "the booth was not republished"
        time.sleep(0.1)


def login(demo_app: DemoApp, email: str) -> httpx.Client:
    client = httpx.Client(base_url=demo_app.base_url, timeout=30)
    response = client.post("/api/auth/login", json={"email": email, "password": DEMO_PASSWORD})
    response.raise_for_status()
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return client
