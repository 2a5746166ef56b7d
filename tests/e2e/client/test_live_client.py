"""The live layer of the hall page (web/src/live, issue 7 items 1, 2 and 4) in Chromium against
the real app and its tour server.

Each test opens its own browser contexts (guests, or the demo guide logged in through the API)
on ``#/hall/<id>``, reads the live state the page exposes as ``window.pavilion.live`` and the
hall view's ``window.pavilion.view``, and keeps screenshots in test-artifacts/e2e/live-*.png.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from playwright.sync_api import Browser, Dialog, Page

from server.tours.aoi import AoiOptions, plan_frames
from server.tours.frames import FLAG_VR, HandPose, PoseTable, decode_frame, encode_pose
from tests.e2e.client.conftest import DemoApp
from tests.e2e.harness import PageLog

pytestmark = pytest.mark.browser

GUIDE = "guide@pavilion.demo"
PASSWORD = "pavilion-demo"
WIDTH, HEIGHT = 800, 500
CONNECT_MS = 20_000
SEE_MS = 10_000
XSS = "<img src=x onerror=alert(1)>"
# A stand-in microphone: a 440 Hz tone from Web Audio. Debian's headless Chromium has no audio
# input, and the harness does not pass --use-fake-device-for-media-stream.
TONE_MIC = """
navigator.mediaDevices.getUserMedia = async () => {
  window.micAsks = (window.micAsks ?? 0) + 1;
  const context = new AudioContext();
  const tone = context.createOscillator();
  const out = context.createMediaStreamDestination();
  tone.connect(out);
  tone.start();
  return out.stream;
};
"""


@dataclass
class Visitor:
    """One browser context on the hall page."""

    name: str
    page: Page
    log: PageLog
    dialogs: list[str] = field(default_factory=list)

    def live(self, expression: str) -> Any:
        """Evaluate ``expression`` with ``live`` bound to window.pavilion.live."""
        return self.page.evaluate(
            f"() => {{ const live = window.pavilion.live; return {expression}; }}"
        )

    def view(self, expression: str) -> Any:
        return self.page.evaluate(
            f"() => {{ const view = window.pavilion.view; return {expression}; }}"
        )

    def wait(self, predicate: str, timeout: int = SEE_MS) -> None:
        """Wait until ``predicate`` (with ``live`` and ``view`` bound) is truthy."""
        self.page.wait_for_function(
            "p => { const live = window.pavilion?.live, view = window.pavilion?.view;"
            " try { return Boolean(eval(p)); } catch { return false; } }",
            arg=predicate,
            timeout=timeout,
            polling=50,
        )

    def drawn(self, frames: int = 2) -> None:
        """Wait until the view has drawn ``frames`` more frames."""
        now = self.view("view.stats.frames")
        self.wait(f"view.stats.frames >= {now + frames}")

    @property
    def me(self) -> int:
        return cast(int, self.live("live.me.id"))

    def rig(self) -> tuple[float, float, float]:
        x, y, z = self.view("view.rig.position.toArray()")
        return x, y, z

    def panels(self, shown: bool) -> None:
        """Show or hide the overlay (panels, cards) over the 3D view."""
        self.page.evaluate(
            "shown => { document.querySelector('.hall-overlay').style.visibility ="
            " shown ? '' : 'hidden'; }",
            shown,
        )

    def shot(self, artifacts: Path, name: str, *, panels: bool = True) -> NDArray[np.int16]:
        """A screenshot kept as an artifact; ``panels=False`` hides the overlay (3D pixels only)."""
        if not panels:
            self.panels(False)
            self.page.wait_for_timeout(100)
        png = self.page.screenshot()
        if not panels:
            self.panels(True)
        (artifacts / f"live-{name}.png").write_bytes(png)
        return np.asarray(Image.open(BytesIO(png)).convert("RGB"), dtype=np.int16)


def hall_id(demo_app: DemoApp) -> str:
    expos = cast(dict[str, Any], demo_app.api("/api/expos"))["items"]
    halls = cast(dict[str, Any], demo_app.api(f"/api/expos/{expos[0]['id']}/halls"))["items"]
    return cast(str, halls[0]["id"])


def guide_token(demo_app: DemoApp) -> str:
    response = httpx.post(
        demo_app.url("/api/auth/login"), json={"email": GUIDE, "password": PASSWORD}, timeout=10
    )
    response.raise_for_status()
    return cast(str, response.json()["access_token"])


@pytest.fixture
def open_visitor(browser: Browser, demo_app: DemoApp) -> Iterator[Callable[..., Visitor]]:
    """Opens hall pages in fresh contexts (``connected`` waits for them); closes them after the test.

    ``mic=False`` grants no microphone permission; ``tone=True`` makes getUserMedia a tone.
    """
    hall = hall_id(demo_app)
    with ExitStack() as stack:

        def opener(
            name: str, token: str | None = None, *, mic: bool = True, tone: bool = False
        ) -> Visitor:
            context = browser.new_context(
                viewport={"width": WIDTH, "height": HEIGHT},
                device_scale_factor=1,
                permissions=["microphone"] if mic else [],
            )
            stack.callback(context.close)
            if tone:
                context.add_init_script(TONE_MIC)
            # Runs before the page's own scripts: the name (and a user's token) are in place when
            # the live layer asks for a guest token or a ticket.
            store = {"pavilion.name": name, **({"pavilion.token": token} if token else {})}
            context.add_init_script(
                f"for (const [k, v] of Object.entries({json.dumps(store)})) localStorage.setItem(k, v);"
            )
            page = context.new_page()
            log = PageLog()
            log.attach(page)
            visitor = Visitor(name, page, log)

            def on_dialog(dialog: Dialog) -> None:
                visitor.dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)
            page.goto(demo_app.url(f"/#/hall/{hall}"))
            return visitor

        yield opener


def connected(*visitors: Visitor) -> tuple[Visitor, ...]:
    """Wait until every page has loaded its hall and is welcomed by the tour server.

    Pages load side by side: opening them all first and then waiting is the quickest.
    """
    for visitor in visitors:
        visitor.wait("live && live.connection === 'open' && live.me", CONNECT_MS)
    return visitors


def ahead_of(visitor: Visitor, metres: float) -> tuple[float, float]:
    """The floor point ``metres`` in front of where ``visitor`` looks (yaw 0 looks to -z)."""
    x, _, z = visitor.rig()
    yaw = cast(float, visitor.view("view.rig.rotation.y"))
    return x - math.sin(yaw) * metres, z - math.cos(yaw) * metres


def avatar_of(watcher: Visitor, avatar_id: int) -> dict[str, Any] | None:
    avatars = cast(list[dict[str, Any]], watcher.live("live.avatars"))
    return next((a for a in avatars if a["id"] == avatar_id), None)


def wait_avatar_at(watcher: Visitor, avatar_id: int, x: float, z: float, tolerance: float) -> None:
    watcher.wait(
        f"live.avatars.some(a => a.id === {avatar_id} && a.visible && a.mode === 'near'"
        f" && Math.hypot(a.position[0] - {x}, a.position[2] - {z}) < {tolerance})"
    )


def region(pixels: NDArray[Any], centre: tuple[float, float], half: int) -> NDArray[Any]:
    cx, cy = int(centre[0]), int(centre[1])
    return pixels[max(0, cy - half) : cy + half, max(0, cx - half) : cx + half]


def no_errors(*visitors: Visitor) -> None:
    for visitor in visitors:
        assert visitor.log.errors == [], visitor.name
        assert visitor.dialogs == [], visitor.name


def click(visitor: Visitor, selector: str) -> None:
    # force: a hall page under software WebGL draws few frames a second, and Playwright's
    # "stable" check waits for two of them; the panels' buttons do not move.
    visitor.page.locator(selector).click(force=True)


def start_tour(guide: Visitor, title: str) -> str:
    """The guide starts an ad-hoc tour from its panel; returns the tour id."""
    guide.page.locator("[data-live=create-form] input").fill(title)
    click(guide, "[data-live=create-form] [data-action=create]")
    guide.wait("live.tour && live.tour.guide.id === live.me.id")
    return cast(str, guide.live("live.tour.id"))


def join(visitor: Visitor, tour_id: str) -> None:
    click(visitor, f"button[data-action=join][data-tour='{tour_id}']")
    visitor.wait(f"live.tour && live.tour.id === '{tour_id}'")


def member_button(guide: Visitor, action: str, member: int, within: str = "members") -> None:
    click(guide, f"[data-live={within}] button[data-action={action}][data-member='{member}']")


def test_two_guests_each_see_the_other_move(
    open_visitor: Callable[..., Visitor], artifacts: Path
) -> None:
    ann, bob = connected(open_visitor("Ann"), open_visitor("Bob"))
    ann_id, bob_id = ann.me, bob.me
    assert ann_id != bob_id
    # Each page gets the other's avatar (and never its own).
    ann.wait(f"live.avatars.some(a => a.id === {bob_id} && a.visible)")
    bob.wait(f"live.avatars.some(a => a.id === {ann_id} && a.visible)")
    assert avatar_of(ann, ann_id) is None
    assert avatar_of(bob, bob_id) is None
    assert bob.live("[...live.members.values()].map(m => m.name)").count("Ann") == 1

    # Visitors of earlier tests stay in the hall for the 30 s resume window, standing around
    # the spawn point: Bob moves to the aisle point farthest from every other avatar first.
    sx, sz = bob.page.evaluate(
        """() => {
          const others = window.pavilion.live.avatars.map((a) => a.position);
          const hall = window.pavilion.view.manifest.hall;
          let best = null, far = -1;
          // Away from the walls: Ann stands 3 m behind and 4 m in front of Bob.
          const inner = window.pavilion.view.manifest.teleport_targets.filter(
            ([x, , z]) => Math.abs(x) < hall.width / 2 - 8 && Math.abs(z) < hall.depth / 2 - 8);
          for (const [x, , z] of inner) {
            const d = Math.min(1e9, ...others.map((p) => Math.hypot(p[0] - x, p[2] - z)));
            if (d > far) { far = d; best = [x, z]; }
          }
          return best;
        }"""
    )
    bob.view(f"view.teleport([{sx}, 0, {sz}], 0)")

    # Ann stands behind Bob (out of his view), then walks into it with the W key.
    bx, bz = ahead_of(bob, -3.0)
    bob_yaw = bob.view("view.rig.rotation.y")
    ann.view(f"view.teleport([{bx}, 0, {bz}], {bob_yaw})")
    bx, _, bz = ann.view("view.getPose().position")  # the view keeps her on the walkable floor
    wait_avatar_at(bob, ann_id, bx, bz, 0.15)
    before = bob.shot(artifacts, "bob-before", panels=False)
    fx, fz = ahead_of(bob, 4.0)
    ann.view(f"view.teleport([{fx}, 0, {fz}], {bob_yaw} + Math.PI)")  # facing Bob
    fx, _, fz = ann.view("view.getPose().position")
    wait_avatar_at(bob, ann_id, fx, fz, 0.15)
    ann.page.keyboard.down("w")
    ann.page.wait_for_timeout(800)
    ann.page.keyboard.up("w")
    ax, _, az = ann.view("view.getPose().position")
    assert math.hypot(ax - fx, az - fz) > 0.2, "the W key did not walk Ann"
    # Bob's drawn avatar follows Ann's pose (smoothed, ~100 ms behind).
    wait_avatar_at(bob, ann_id, ax, az, 0.1)
    head = avatar_of(bob, ann_id)
    assert head is not None
    assert 1.4 < head["position"][1] < 1.8
    screen = bob.view(f"view.project({json.dumps(head['position'])})")
    after = bob.shot(artifacts, "bob-sees-ann-3d", panels=False)
    bob.shot(artifacts, "bob-sees-ann")
    # Pixels: where Ann's head is drawn, Bob's view changed (it was hall before she came).
    changed = np.abs(region(after, screen, 14) - region(before, screen, 14)).max(axis=2) > 40
    assert changed.mean() > 0.3

    # And Ann sees Bob move: he steps two metres to his right.
    px, _, pz = bob.view("view.getPose().position")
    wait_avatar_at(ann, bob_id, px, pz, 0.1)
    bob.view(f"view.teleport([{px} + 2 * Math.cos({bob_yaw}), 0, {pz} - 2 * Math.sin({bob_yaw})])")
    qx, _, qz = bob.view("view.getPose().position")
    assert math.hypot(qx - px, qz - pz) > 1.5
    wait_avatar_at(ann, bob_id, qx, qz, 0.1)
    ann.shot(artifacts, "ann-sees-bob")
    no_errors(ann, bob)


def test_a_guide_summons_two_visitors_and_points_at_a_product(
    open_visitor: Callable[..., Visitor], demo_app: DemoApp, artifacts: Path
) -> None:
    guide, *visitors = connected(
        open_visitor("Guide", guide_token(demo_app)), open_visitor("Cleo"), open_visitor("Dan")
    )
    assert guide.live("live.me.role") == "guide"
    # The guide starts a tour from the panel; the visitors join it from theirs.
    tour_id = start_tour(guide, "Honey walk")
    for visitor in visitors:
        join(visitor, tour_id)
    guide.wait("live.tour.members.length === 2")

    # The guide walks off to a far aisle; the summons brings both visitors next to it.
    manifest = guide.view("view.manifest")
    start = visitors[0].rig()
    target = max(
        manifest["teleport_targets"], key=lambda t: math.hypot(t[0] - start[0], t[2] - start[2])
    )
    guide.view(f"view.teleport({json.dumps(target)}, 0)")
    for visitor in visitors:  # the guide's pose has reached the server (and the members)
        wait_avatar_at(visitor, guide.me, target[0], target[2], 0.2)
    click(guide, "[data-action=summon]")
    for visitor in visitors:
        visitor.wait("live.lastTeleport && live.lastTeleport.reason === 'summon'")
        x, _, z = visitor.rig()
        assert 0.5 < math.hypot(x - target[0], z - target[2]) < 2.0

    # Go to the first booth (everyone faces it), then point at its first product.
    booth = manifest["booths"][0]
    click(guide, "[data-action=goto]")
    for visitor in visitors:
        visitor.wait("live.lastTeleport.reason === 'goto'")
        visitor.wait(f"live.tour.stop && live.tour.stop.booth_id === '{booth['id']}'")
    product = booth["hotspots"][0]["product_id"]
    before = [v.shot(artifacts, f"before-point-{v.name}", panels=False) for v in visitors]
    click(guide, f"[data-live=products] button[data-action=point][data-product='{product}']")
    for visitor, shot_before in zip(visitors, before, strict=True):
        visitor.wait(
            f"live.tour.pointing === '{product}' && view.hotspots.highlighted === '{product}'"
        )
        visitor.page.wait_for_timeout(300)  # a frame or two to draw the highlight
        after = visitor.shot(artifacts, f"pointed-{visitor.name}-3d", panels=False)
        # Pixels: the highlight (ring and outline) appeared around the product, nowhere else moved.
        anchor = visitor.view(f"view.project({json.dumps(booth['hotspots'][0]['anchor'])})")
        changed = np.abs(after - shot_before).max(axis=2) > 60
        assert region(changed, anchor, 110).sum() > 150
    no_errors(guide, *visitors)


def test_a_chat_message_with_markup_shows_as_text(
    open_visitor: Callable[..., Visitor], artifacts: Path
) -> None:
    ann, bob = connected(open_visitor("Ann"), open_visitor(XSS))  # the name is hostile too
    ann.page.locator("[data-live=chat-input]").fill(XSS)
    click(ann, "[data-live=chat-send]")
    bob.wait(f"live.messages.some(m => m.text === {json.dumps(XSS)})")
    line = bob.page.locator("[data-live=chat-log] li").last
    assert line.locator(".live-chat-text").text_content() == XSS
    assert line.locator(".live-chat-name").text_content() == "Ann"
    ann.wait(
        f"live.messages.length === 1 && [...live.members.values()].some(m => m.name === {json.dumps(XSS)})"
    )
    for visitor in (ann, bob):
        assert visitor.page.locator("[data-live=chat] img").count() == 0
        assert visitor.page.locator("img[src=x]").count() == 0
    # A reaction shows with its sender's name; a line is capped at 500 characters.
    click(ann, "[data-live=chat] button[data-react='👏']")
    bob.wait(
        "document.querySelector('[data-live=chat-log] li.live-chat-react')?.textContent === 'Ann👏'"
    )
    assert ann.page.locator("[data-live=chat-input]").get_attribute("maxlength") == "500"
    longest = "é" * 500
    ann.page.locator("[data-live=chat-input]").fill(longest)
    click(ann, "[data-live=chat-send]")
    bob.wait(f"live.messages.some(m => m.text === '{longest}')")
    bob.page.wait_for_timeout(300)  # an onerror would have fired by now
    bob.shot(artifacts, "chat")
    no_errors(ann, bob)  # no dialog, and no request for "x"


def test_a_dropped_visitor_resumes_as_the_same_avatar_catches_up_and_follows(
    open_visitor: Callable[..., Visitor], demo_app: DemoApp, artifacts: Path
) -> None:
    guide, ann = connected(open_visitor("Guide", guide_token(demo_app)), open_visitor("Ann"))
    tour_id = start_tour(guide, "Resume walk")
    join(ann, tour_id)
    ann_id, seq = ann.me, ann.live("live.tour.seq")
    # Ann's socket drops and, while she is away, the guide turns follow mode on. Her reconnect is
    # held back (a stand-in for a network outage: Chromium's offline mode spares websockets).
    ann.live(
        "(() => { const c = live.client; c.held = c._connect; c._connect = () => { c.due = true; };"
        " c.socket.close(); return true; })()"
    )
    ann.wait("live.client.due === true", 5_000)  # full jitter: the first retry is within 2 s
    click(guide, "[data-action=follow]")
    guide.wait("live.tour.follow === true")
    ann.live("(() => { const c = live.client; c._connect = c.held; c._connect(); return true; })()")
    ann.wait("live.connection === 'open'", 5_000)
    assert ann.me == ann_id
    ann.wait(f"live.tour && live.tour.id === '{tour_id}' && live.tour.follow === true")
    assert ann.live("live.tour.seq") > seq
    assert ann.page.locator("[data-live=follow]").get_attribute("data-following") == "true"
    # Follow mode: the guide moves off and Ann's view glides after it, to ~2 m behind.
    gx, _, gz = ann.rig()
    guide.view(f"view.teleport([{gx - 5}, 0, {gz - 3}], 0)")  # yaw 0 looks to -z: behind is +z
    gx, _, gz = guide.view("view.getPose().position")
    ann.wait(f"Math.hypot(view.rig.position.x - {gx}, view.rig.position.z - ({gz} + 2)) < 0.5")
    ann.shot(artifacts, "following")
    # An event whose seq skips ahead is not applied: the page asks for a snapshot instead.
    ann.live(
        "(() => { const c = live.client, send = c.send.bind(c); c.sent = [];"
        " c.send = (m) => { c.sent.push(m.type); return send(m); };"
        " c.emit('tour.event', {type: 'tour.event', tour_id: live.tour.id, seq: live.tour.seq + 3,"
        " event: {kind: 'follow', on: false}}); return true; })()"
    )
    ann.wait("live.client.sent.includes('tour.sync')")
    ann.wait(f"live.tour.seq === {guide.live('live.tour.seq')} && live.tour.follow === true")
    no_errors(guide, ann)


def test_the_guide_spotlights_a_raised_hand_then_mutes_and_kicks_the_member(
    open_visitor: Callable[..., Visitor], demo_app: DemoApp, artifacts: Path
) -> None:
    guide, eve = connected(open_visitor("Guide", guide_token(demo_app)), open_visitor("Eve"))
    tour_id = start_tour(guide, "Q and A")
    join(eve, tour_id)
    eve_id = eve.me
    # A tour-scope chat line reaches the guide marked as the tour's.
    eve.page.locator("[data-live=chat-scope]").select_option("tour")
    eve.page.locator("[data-live=chat-input]").fill("Can we taste the honey?")
    click(eve, "[data-live=chat-send]")
    guide.wait(f"live.messages.some(m => m.scope === 'tour' && m.tour_id === '{tour_id}')")
    assert guide.page.locator("[data-live=chat-log] li[data-scope=tour]").count() == 1

    click(eve, "[data-action=hand]")
    guide.wait(f"live.tour.hands.includes({eve_id})")
    guide.shot(artifacts, "hand-queue")
    member_button(guide, "spotlight", eve_id, within="hands")
    eve.wait(f"live.tour.spotlight === {eve_id} && live.tour.hands.length === 0")

    member_button(guide, "mute", eve_id)
    eve.wait(f"live.tour.muted.includes({eve_id}) && live.voice.guideMuted === true")

    member_button(guide, "kick", eve_id)
    eve.wait("live.tour === null")
    assert "removed you" in (eve.page.locator("[data-live=note]").text_content() or "")
    click(eve, f"button[data-action=join][data-tour='{tour_id}']")
    eve.wait("document.querySelector('[data-live=status]').textContent.includes('forbidden')")
    assert eve.live("live.tour") is None
    eve.shot(artifacts, "kicked")
    no_errors(guide, eve)


def test_a_guide_points_by_clicking_a_product_and_starts_a_scheduled_tour(
    open_visitor: Callable[..., Visitor], demo_app: DemoApp, artifacts: Path
) -> None:
    (guide,) = connected(open_visitor("Guide", guide_token(demo_app)))
    start_tour(guide, "Pointing walk")
    booth = guide.view("view.manifest.booths[0]")
    click(guide, "[data-action=goto]")  # the guide goes too
    guide.wait("live.lastTeleport && live.lastTeleport.reason === 'goto'")
    # Pointing mode on, then a click on the product's hotspot in the 3D view.
    click(guide, "[data-action=pointing]")
    hotspot = booth["hotspots"][0]
    guide.drawn()  # the camera matrices are those of the new place
    x, y = guide.view(f"view.project({json.dumps(hotspot['anchor'])})")
    guide.panels(False)  # the click goes to the canvas, not a panel over it
    guide.page.mouse.click(x, y)
    guide.wait(f"live.tour.pointing === '{hotspot['product_id']}'")
    assert guide.view("view.hotspots.highlighted") == hotspot["product_id"]
    guide.panels(True)
    guide.shot(artifacts, "guide-pointed")
    # End the ad-hoc tour; start a scheduled one of the guide's from the list.
    click(guide, "[data-action=end]")
    guide.wait("live.tour === null")
    scheduled = guide.live("live.scheduled[0]")
    click(guide, f"button[data-action=start][data-tour='{scheduled['id']}']")
    guide.wait(f"live.tour && live.tour.scheduled_id === '{scheduled['id']}'")
    assert guide.live("live.tour.title") == scheduled["title"]
    assert scheduled["id"] not in [t["id"] for t in guide.live("live.scheduled")]
    click(guide, "[data-action=end]")
    guide.wait("live.tour === null")
    no_errors(guide)


def voice_stats(visitor: Visitor) -> dict[str, Any]:
    return cast(dict[str, Any], visitor.page.evaluate("() => window.pavilion.live.voiceStats()"))


def received(visitor: Visitor, peer: int, mid: str) -> int:
    return int(voice_stats(visitor)[str(peer)]["received"].get(mid, 0))


def test_tour_voice_reaches_every_member_and_the_spotlight_is_relayed(
    open_visitor: Callable[..., Visitor], demo_app: DemoApp, artifacts: Path
) -> None:
    guide, mia, noa = connected(
        open_visitor("Guide", guide_token(demo_app), tone=True),
        open_visitor("Mia", tone=True),
        open_visitor("Noa", mic=False),  # refuses the microphone: listens only
    )
    tour_id = start_tour(guide, "Voice walk")
    guide.wait("live.voice.mic === 'on'")
    assert mia.page.evaluate("() => window.micAsks ?? 0") == 0  # not before joining a tour
    for member in (mia, noa):
        join(member, tour_id)
    mia.wait("live.voice.mic === 'on'")
    assert mia.page.evaluate("() => window.micAsks") == 1
    noa.wait("['refused', 'unavailable'].includes(live.voice.mic)")
    assert "you can listen" in (noa.page.locator("[data-live=mic]").text_content() or "")
    peers_up = "Object.values(live.voice.peers).filter(s => s === 'connected').length"
    guide.wait(f"{peers_up} === 2", 20_000)
    for member in (mia, noa):
        member.wait(f"{peers_up} === 1", 20_000)
    g, m = guide.me, mia.me
    # Audio flows: the guide hears Mia; both members hear the guide (Noa without a microphone too).
    guide.page.wait_for_timeout(1000)
    assert received(guide, m, "0") > 0
    assert received(mia, g, "0") > 0
    assert received(noa, g, "0") > 0
    assert guide.live(f"live.avatars.find(a => a.id === {m}).speaking") is True

    # Spotlight Mia: the guide relays her voice to Noa on the second transceiver.
    member_button(guide, "spotlight", m)
    noa.wait(f"live.tour.spotlight === {m}")
    noa.page.wait_for_timeout(1000)
    assert received(noa, g, "1") > 0
    # Muted by the guide, Mia's microphone track is off and her speaking flag goes out.
    member_button(guide, "mute", m)
    mia.wait("live.voice.guideMuted === true")
    guide.wait(f"live.avatars.find(a => a.id === {m}).speaking === false")
    noa.shot(artifacts, "voice-listener")
    no_errors(guide, mia, noa)


def pose_cases(count: int, seed: int) -> list[dict[str, Any]]:
    """Random poses: positions at several precisions, a quaternion tie, hands on every third."""
    rng = random.Random(seed)

    def quaternion() -> list[float]:
        return [rng.gauss(0, 1) for _ in range(4)]

    cases = []
    for n in range(count):
        hand = {"offset": [rng.uniform(-0.8, 0.8) for _ in range(3)], "rotation": quaternion()}
        cases.append(
            {
                "position": [
                    round(rng.uniform(-30, 30), n % 7),
                    rng.uniform(0, 2),
                    rng.uniform(-20, 20),
                ],
                # A four-way tie every 50th: the lowest index is the one left out.
                "rotation": [0.5, 0.5, -0.5, 0.5] if n % 50 == 0 else quaternion(),
                "flags": FLAG_VR * (n % 2),
                "hands": [hand, {**hand, "rotation": quaternion()}] if n % 3 == 0 else None,
            }
        )
    return cases


def test_poses_encode_and_frames_decode_as_the_server_does(
    open_visitor: Callable[..., Visitor],
) -> None:
    (visitor,) = connected(open_visitor("Codec"))
    cases = pose_cases(400, seed=7)
    js = visitor.page.evaluate(
        "cases => cases.map(c => window.pavilion.live.codec"
        ".encodePose(c.position, c.rotation, c.flags, c.hands))",
        cases,
    )
    table = PoseTable()
    for n, case in enumerate(cases):
        hands = case["hands"] and tuple(
            HandPose(tuple(h["offset"]), tuple(h["rotation"])) for h in case["hands"]
        )
        expected = encode_pose(
            tuple(case["position"]), tuple(case["rotation"]), case["flags"], hands
        )
        assert bytes(js[n]) == expected, case
        if n < 40:
            table.add(n + 1, (0.0, 1.6, 0.0), 0.0, 0.0)
            assert table.update(n + 1, expected, 0.0)
    # A frame the server builds for avatar 1 (near records with and without hands, far records).
    for tick in range(10):
        frame = plan_frames(table, tick, [(1, None)], AoiOptions())[0][0]
        decoded = decode_frame(frame)
        if decoded.far:
            break
    assert decoded.near
    assert decoded.far
    got = visitor.page.evaluate(
        "bytes => window.pavilion.live.codec.decodeFrame(bytes)", list(frame)
    )
    assert got["tick"] == decoded.tick
    assert [r["id"] for r in got["near"]] == [r.id for r in decoded.near]
    for mine, theirs in zip(got["near"], decoded.near, strict=True):
        assert mine["flags"] == theirs.flags
        assert mine["position"] == pytest.approx(list(theirs.position), abs=1e-9)
        assert mine["rotation"] == pytest.approx(list(theirs.rotation), abs=1e-9)
        assert (mine["hands"] is None) == (theirs.hands is None)
        for hand, their_hand in zip(mine["hands"] or [], theirs.hands or [], strict=True):
            assert hand["offset"] == pytest.approx(list(their_hand.offset), abs=1e-9)
            assert hand["rotation"] == pytest.approx(list(their_hand.rotation), abs=1e-9)
    assert [(r["id"], r["position"], r["yaw"], r["flags"]) for r in got["far"]] == [
        (r.id, pytest.approx(list(r.position)), pytest.approx(r.yaw), r.flags) for r in decoded.far
    ]
    no_errors(visitor)
