"""The demo expo's content, drawn by our own code: product photos, logos, and the demo hall.

``assets/demo/expo.json`` defines the SCO special-products pavilion behind ``make run``; this
module draws every image it needs with Pillow (no third-party files) and turns the definition
into :class:`scenes.build.PlacedBooth` inputs, running each product photo through the pipeline
(a product card per photo). The server seeds the same expo into its database
(``server/demo.py``); ``python -m scenes build-demo OUTDIR`` builds its hall offline.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from pipeline.parallel import map_threads
from pipeline.run import ConvertOptions, convert
from scenes.booth import BoothSpec, ProductModel
from scenes.build import PlacedBooth
from scenes.layout import SlotSpec, grid_slots
from scenes.templates import NOMINAL_SIZES

DEFINITION = Path(__file__).resolve().parent.parent / "assets" / "demo" / "expo.json"


def load_definition(path: Path = DEFINITION) -> dict[str, Any]:
    """The demo expo definition (expo, hall, guide, exhibitors)."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def demo_slots(definition: dict[str, Any]) -> list[SlotSpec]:
    """The demo booths packed into rows (see :func:`scenes.layout.grid_slots`)."""
    sizes = [NOMINAL_SIZES[e["template"]] for e in definition["exhibitors"]]
    hall = definition["hall"]
    return grid_slots(sizes, float(hall["width"]), float(hall["depth"]))


def initials(org: str) -> str:
    return "".join(word[0] for word in org.split()[:2])


def product_models(photo: bytes, product_id: str) -> ProductModel:
    """A product card for ``photo``: the pipeline's three web LODs."""
    files = convert(photo, ConvertOptions(validate=False)).files
    lods = (files["web/lod0.glb"], files["web/lod1.glb"], files["web/lod2.glb"])
    return ProductModel(product_id, lods)


def demo_booths(definition: dict[str, Any] | None = None) -> list[PlacedBooth]:
    """Every demo booth with its products processed, ids derived from the definition."""
    definition = definition or load_definition()
    slots = demo_slots(definition)
    jobs: list[tuple[str, bytes]] = []
    for b, exhibitor in enumerate(definition["exhibitors"]):
        primary, accent = exhibitor["colors"]
        for p, item in enumerate(exhibitor["products"]):
            jobs.append((f"demo-{b}-{p}", product_photo(item["category"], primary, accent, p)))
    models = dict(
        zip(
            (j[0] for j in jobs),
            map_threads(lambda j: product_models(j[1], j[0]), jobs),
            strict=True,
        )
    )
    booths = []
    for b, (exhibitor, slot) in enumerate(zip(definition["exhibitors"], slots, strict=True)):
        primary, accent = exhibitor["colors"]
        width, depth = NOMINAL_SIZES[exhibitor["template"]]
        spec = BoothSpec(
            id=f"demo-{b}",
            template=exhibitor["template"],
            width=width,
            depth=depth,
            name=exhibitor["fascia"],
            tagline=exhibitor["tagline"],
            primary_color=primary,
            accent_color=accent,
            logo=logo(initials(exhibitor["org"]), primary, accent),
            products=tuple(models[f"demo-{b}-{p}"] for p in range(len(exhibitor["products"]))),
        )
        booths.append(PlacedBooth(spec, slot))
    return booths


def _hex(color: str) -> tuple[int, int, int]:
    return (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16))


Rgb = tuple[int, int, int]
LIGHT: Rgb = (250, 246, 238)


def _draw_jar(draw: ImageDraw.ImageDraw, cx: int, ink: Rgb, accent: Rgb) -> None:
    draw.rounded_rectangle([cx - 90, 170, cx + 90, 410], 30, fill=(226, 150, 20))
    draw.rectangle([cx - 70, 140, cx + 70, 175], fill=ink)
    draw.rounded_rectangle([cx - 60, 250, cx + 60, 320], 10, fill=LIGHT)


def _draw_bottle(draw: ImageDraw.ImageDraw, cx: int, ink: Rgb, accent: Rgb) -> None:
    draw.rounded_rectangle([cx - 45, 200, cx + 45, 410], 20, fill=ink)
    draw.rectangle([cx - 14, 90, cx + 14, 210], fill=ink)
    draw.rectangle([cx - 40, 280, cx + 40, 350], fill=LIGHT)


def _draw_cup(draw: ImageDraw.ImageDraw, cx: int, ink: Rgb, accent: Rgb) -> None:
    draw.pieslice([cx - 110, 220, cx + 110, 420], 0, 180, fill=LIGHT)
    draw.arc([cx + 80, 250, cx + 150, 330], 270, 90, fill=LIGHT, width=12)
    draw.ellipse([cx - 110, 300, cx + 110, 340], fill=(120, 60, 20))


def _draw_carpet(draw: ImageDraw.ImageDraw, cx: int, ink: Rgb, accent: Rgb) -> None:
    for i in range(8):
        box = [cx - 150 + i * 12, 150 + i * 12, cx + 150 - i * 12, 410 - i * 12]
        draw.rectangle(box, outline=ink if i % 2 else accent, width=6)


def _draw_cloth(draw: ImageDraw.ImageDraw, cx: int, ink: Rgb, accent: Rgb) -> None:
    for i in range(5):  # a stack of folded cloth
        top = 230 + i * 34
        draw.rounded_rectangle(
            [cx - 130, top, cx + 130, top + 30],
            8,
            fill=accent if i % 2 else LIGHT,
            outline=ink,
            width=3,
        )


def _draw_heap(draw: ImageDraw.ImageDraw, cx: int, ink: Rgb, accent: Rgb) -> None:
    draw.pieslice([cx - 120, 230, cx + 120, 470], 180, 360, fill=accent, outline=ink, width=4)
    draw.pieslice([cx - 150, 300, cx + 150, 440], 0, 180, fill=LIGHT, outline=ink, width=6)


def _draw_parcel(draw: ImageDraw.ImageDraw, cx: int, ink: Rgb, accent: Rgb) -> None:
    draw.rounded_rectangle([cx - 110, 200, cx + 110, 410], 12, fill=LIGHT, outline=ink, width=8)
    draw.rectangle([cx - 12, 200, cx + 12, 410], fill=accent)


_ITEMS = {
    "honey": _draw_jar,
    "wine": _draw_bottle,
    "tea": _draw_cup,
    "carpets": _draw_carpet,
    "textiles": _draw_cloth,
    "spices": _draw_heap,
    "nuts": _draw_heap,
    "dried-fruit": _draw_heap,
    "grains": _draw_heap,
}


def product_photo(category: str, primary: str, accent: str, seed: int) -> bytes:
    """A 640x480 studio-style picture of a product of ``category``, drawn with Pillow (PNG)."""
    width, height = 640, 480
    top, bottom = _hex(accent), _hex(primary)
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / (height - 1)
        draw.line(
            [(0, y), (width, y)],
            fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
        )
    draw.ellipse([140, 380, 500, 440], fill=tuple(c // 2 for c in bottom))  # shadow on the table
    cx = width // 2 + (seed % 5 - 2) * 12
    draw_item = _ITEMS.get(category, _draw_parcel)
    draw_item(draw, cx, _hex(primary), _hex(accent))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def logo(initials: str, primary: str, accent: str) -> bytes:
    """A round emblem in the booth's colours (PNG with transparency); initials as bars, no font."""
    size = 256
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse([8, 8, size - 8, size - 8], fill=_hex(primary), outline=_hex(accent), width=14)
    code = sum(ord(c) for c in initials)
    for i in range(6):  # a sunburst whose rays depend on the name: distinct per exhibitor
        angle = (code * 37 + i * 60) % 360
        x = size / 2 + 70 * math.cos(math.radians(angle))
        y = size / 2 + 70 * math.sin(math.radians(angle))
        draw.line([(size / 2, size / 2), (x, y)], fill=_hex(accent), width=16)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
