"""Inputs of the scenes benchmark: a product pool converted once, and a generated 100-booth hall.

    python -m bench._scene_inputs [CACHE]   (default var/bench/; converts only what is missing)

Products. Five kinds of source, two variants of each (``-a``, ``-b``: other texture seeds or
shapes, so no two share an image), each run once through ``pipeline.run.convert`` (no
validator) and its three web LODs cached as ``CACHE/scenes-v<VERSION>/<name>-<sha>/lod<i>.glb``
(the source's SHA-256 in the name, so a changed generator converts again; delete the directory
after a pipeline change that alters its outputs):

* ``vase-pbr-2k``: the pipeline benchmark's product (bench/_inputs.py; ``-b`` with another
  texture seed): 15k triangles, 2048 px JPEG baseColor, normal and metallicRoughness;
* ``bottle-pbr-1k``: a mid-size textured mesh: a bottle of revolution, ~42k triangles, the same
  kind of textures at 1024 px;
* ``stool-plain``: a simple untextured mesh (a turned stool, ~1k triangles);
* ``photo-2k``: a 2048x1536 JPEG product photo (a phone shot, noisy backdrop): a product card;
* ``photo-small``: the demo's 640x480 PNG product photo (scenes/demo.py): a product card.

Hall. :func:`hall_booths` makes ``count`` booths in a repeating mix of the three templates
(6 shell 3x3, 3 corner 6x3, 1 island 6x6 in every 10), with distinct names cycling through
Latin, Cyrillic and CJK (Chinese and Japanese), distinct colours, a 1024 px logo each, and
``per_booth`` distinct products drawn from the pool (ids unique per booth; the same GLB bytes
appear in many booths, but not twice in one: the writer stores an image once per GLB, so a
repeat within a booth would make it lighter than real). Booth and product ids are UUIDs, as the
server's. Everything is seeded: the same arguments give the same booths.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import itertools
import math
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench._inputs import _glb, _grid_faces, _noise, _oriented, _textures, product_glb
from scenes.booth import BoothSpec, ProductModel
from scenes.build import PlacedBooth
from scenes.layout import grid_slots, hall_size_for
from scenes.templates import NOMINAL_SIZES

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "var" / "bench"
VERSION = 1  # bump when a generator changes (the source digest also changes the directory)
# Booth and product ids are UUIDs, as the server's (server/scenes.py passes str(uuid)): their
# length is most of the manifest's size. Derived from this namespace, so they are the same
# every run.
ID_NAMESPACE = uuid.UUID("5b0c1e1e-9c1f-4f57-9a43-6d3f3d6f0b5e")
LOD_FILES = ("lod0.glb", "lod1.glb", "lod2.glb")

# Per 10 booths: mostly shell-scheme stands, some corners, one island (as in a trade-fair plan).
TEMPLATE_PATTERN = (
    "shell", "shell", "corner", "shell", "island",
    "shell", "corner", "shell", "shell", "corner",
)  # fmt: skip

# Adjectives x nouns per script: every pair is a distinct name (36 or more per script).
_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "latin": (
        ("Nordic", "Golden", "Silver", "Coastal", "Royal", "Urban", "Alpine", "Crimson"),
        (
            "Textiles",
            "Ceramics",
            "Honey",
            "Spices",
            "Tea House",
            "Carpets",
            "Glassworks",
            "Leather",
        ),
    ),
    "cyrillic": (
        ("Северные", "Уральские", "Золотые", "Волжские", "Сибирские", "Алтайские"),
        ("Ремёсла", "Мёды", "Ковры", "Пряности", "Чаи", "Ткани"),
    ),
    "chinese": (
        ("东方", "金山", "青云", "长江", "天府", "江南"),
        ("茶业", "丝绸", "陶瓷", "香料", "蜂蜜", "地毯"),
    ),
    "japanese": (
        ("さくら", "みどり", "ひかり", "やまと", "あおば", "こはる"),
        ("茶舗", "陶房", "織物", "商店", "工房", "蜂蜜"),
    ),
}
# Latin, Cyrillic, CJK in turn; CJK alternates Chinese and Japanese.
_SCRIPT_CYCLE = ("latin", "cyrillic", "chinese", "latin", "cyrillic", "japanese")
_TAGLINES = {
    "latin": "Handmade since 1998",
    "cyrillic": "Ручная работа с 1998 года",  # noqa: RUF001 (Cyrillic es, on purpose)
    "chinese": "始于1998年的手工艺",
    "japanese": "1998年創業の手仕事",
}


# --- products ---


def _revolution(
    radius: np.ndarray, height: np.ndarray, around: int, *, uvs: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Positions, normals, indices (and UVs) of a surface of revolution of a sampled profile."""
    rings = len(radius)
    t = np.linspace(0.0, 1.0, rings)
    dr, dh = np.gradient(radius, t), np.gradient(height, t)
    theta = np.linspace(0.0, 2 * np.pi, around + 1)
    cos, sin = np.cos(theta)[None, :], np.sin(theta)[None, :]
    r, h = radius[:, None], height[:, None]
    positions = np.stack(np.broadcast_arrays(r * cos, h, r * sin), -1).reshape(-1, 3)
    normals = np.stack(np.broadcast_arrays(dh[:, None] * cos, -dr[:, None], dh[:, None] * sin), -1)
    length = np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-9)
    pos32 = positions.astype(np.float32)
    nrm32 = (normals / length).reshape(-1, 3).astype(np.float32)
    indices = _oriented(pos32, _grid_faces(rings, around + 1), nrm32)
    uv = None
    if uvs:
        grid = np.stack(np.broadcast_arrays(theta[None, :] / (2 * np.pi), 1.0 - t[:, None]), -1)
        uv = grid.reshape(-1, 2).astype(np.float32)
    return pos32, nrm32, indices, uv


def vase_glb(seed: int, around: int = 128, rings: int = 60) -> bytes:
    """bench/_inputs.py's product vase with the textures of another seed (it uses 7)."""
    t = np.linspace(0.0, 1.0, rings)
    radius = 0.06 + 0.05 * np.sin(np.pi * t * 1.6) ** 2 + 0.02 * t
    positions, normals, indices, uv = _revolution(radius, 0.35 * t, around, uvs=True)
    return _glb(positions, normals, indices, uv, _textures(size=2048, seed=seed))


def bottle_glb(seed: int, around: int = 192, rings: int = 110) -> bytes:
    """A 0.32 m bottle of 2*around*(rings-1) (~42k) triangles with 1024 px PBR textures."""
    t = np.linspace(0.0, 1.0, rings)
    shoulder = 1 / (1 + np.exp((t - 0.62) * 30))  # body below, neck above
    radius = 0.012 + 0.033 * shoulder + 0.004 * np.sin(t * 40) * shoulder
    positions, normals, indices, uv = _revolution(radius, 0.32 * t, around, uvs=True)
    return _glb(positions, normals, indices, uv, _textures(size=1024, seed=seed))


def stool_glb(around: int = 48, rings: int = 12) -> bytes:
    """A 0.45 m turned stool of 2*around*(rings-1) triangles: normals only, no UVs or textures."""
    t = np.linspace(0.0, 1.0, rings)
    radius = 0.16 - 0.09 * np.sin(np.pi * t) + 0.02 * (t > 0.9)
    positions, normals, indices, _uv = _revolution(radius, 0.45 * t, around, uvs=False)
    return _glb(positions, normals, indices, None, [])


def photo_jpeg(width: int = 2048, height: int = 1536, seed: int = 5) -> bytes:
    """A phone-like product photo: a noisy backdrop, a table, a jar (JPEG q90)."""
    rng = np.random.default_rng(seed)
    backdrop = _noise(max(width, height), rng, octaves=8)[:height, :width, None]
    pixels = 150 + 100 * (backdrop - 0.5) * np.array([1.0, 0.95, 0.85])
    # Sensor noise is what makes photos large: sigma 6 gives ~650 KB of JPEG q90 and ~200 KB of
    # WebP q80 at 2048 px, about what a phone shot of a product weighs after the pipeline.
    pixels += rng.normal(0.0, 6.0, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, height * 3 // 4, width, height], fill=(96, 70, 50))
    cx, w = width // 2, width // 6
    draw.rounded_rectangle([cx - w, height // 3, cx + w, height * 4 // 5], 60, fill=(226, 150, 20))
    draw.rectangle([cx - w * 4 // 5, height // 4, cx + w * 4 // 5, height // 3], fill=(40, 40, 48))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def _demo_photo(category: str, primary: str, accent: str) -> bytes:
    from scenes.demo import product_photo

    return product_photo(category, primary, accent, 0)


SOURCES: dict[str, Callable[[], bytes]] = {
    "vase-pbr-2k-a": product_glb,
    "vase-pbr-2k-b": lambda: vase_glb(seed=8),
    "bottle-pbr-1k-a": lambda: bottle_glb(seed=13),
    "bottle-pbr-1k-b": lambda: bottle_glb(seed=14),
    "stool-plain-a": stool_glb,
    "stool-plain-b": lambda: stool_glb(around=40, rings=14),
    "photo-2k-a": photo_jpeg,
    "photo-2k-b": lambda: photo_jpeg(seed=6),
    "photo-small-a": lambda: _demo_photo("honey", "#7a3b12", "#f2c14e"),
    "photo-small-b": lambda: _demo_photo("wine", "#5b1a2e", "#e8d5b0"),
}


def ensure_products(cache: Path = CACHE) -> dict[str, Path]:
    """Convert (once) every pool source and return the directory of its LOD GLBs by name.

    Args:
        cache: the benchmark cache (``var/bench``); created if missing.

    Returns:
        ``{name: directory holding lod0.glb, lod1.glb, lod2.glb}``.

    Raises:
        PipelineError: the pipeline refused a source (a bug in a generator).
    """
    from pipeline.run import ConvertOptions, convert

    products = {}
    for name, make in SOURCES.items():
        source = make()
        folder = cache / f"scenes-v{VERSION}" / f"{name}-{hashlib.sha256(source).hexdigest()[:12]}"
        if not all((folder / f).exists() for f in LOD_FILES):
            print(f"converting {name} into {folder}", file=sys.stderr)
            folder.mkdir(parents=True, exist_ok=True)
            files = convert(source, ConvertOptions(validate=False)).files
            for index, lod in enumerate(LOD_FILES):
                partial = folder / f"{lod}.part"
                partial.write_bytes(files[f"web/lod{index}.glb"])
                partial.replace(folder / lod)
        products[name] = folder
    return products


def read_pool(folders: dict[str, Path]) -> dict[str, tuple[bytes, bytes, bytes]]:
    """The three LOD GLBs of each pool product, read from :func:`ensure_products`' folders."""
    pool = {}
    for name, folder in folders.items():
        lod0, lod1, lod2 = ((folder / f).read_bytes() for f in LOD_FILES)
        pool[name] = (lod0, lod1, lod2)
    return pool


# --- the hall ---


def template_mix(count: int) -> list[str]:
    """``count`` template names in :data:`TEMPLATE_PATTERN`'s repeating mix."""
    return [TEMPLATE_PATTERN[i % len(TEMPLATE_PATTERN)] for i in range(count)]


def booth_names(count: int, seed: int = 1) -> list[tuple[str, str]]:
    """``count`` distinct (name, script) pairs, cycling Latin, Cyrillic and CJK.

    Raises:
        ValueError: a script has fewer names than its share of ``count``.
    """
    rng = np.random.default_rng(seed)
    shuffled: dict[str, list[str]] = {}
    for script, (adjectives, nouns) in _NAMES.items():
        joiner = "" if script in ("chinese", "japanese") else " "
        names = [a + joiner + n for a, n in itertools.product(adjectives, nouns)]
        shuffled[script] = [names[i] for i in rng.permutation(len(names))]
    result = []
    for index in range(count):
        script = _SCRIPT_CYCLE[index % len(_SCRIPT_CYCLE)]
        if not shuffled[script]:
            raise ValueError(f"not enough {script} names for {count} booths")
        result.append((shuffled[script].pop(), script))
    return result


def booth_colors(count: int) -> list[tuple[str, str]]:
    """``count`` distinct (primary, accent) colours: golden-ratio hues, alternating shades."""
    colors = []
    for index in range(count):
        hue = (index * 0.618033988749895) % 1.0
        value = (0.42, 0.55, 0.68)[index % 3]
        primary = colorsys.hsv_to_rgb(hue, 0.65, value)
        accent = colorsys.hsv_to_rgb((hue + 0.5) % 1.0, 0.55, 0.95)
        colors.append((_hex(primary), _hex(accent)))
    return colors


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb)


def logo_png(index: int, primary: str, accent: str, size: int = 1024) -> bytes:
    """A round emblem with a polygon of 3 + index % 7 sides, rotated by index (RGBA PNG)."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    border = size // 32
    draw.ellipse([border, border, size - border, size - border], fill=primary, outline=accent,
                 width=border)  # fmt: skip
    sides, turn = 3 + index % 7, index * 0.37
    points = [
        (size / 2 + size * 0.3 * math.cos(turn + 2 * math.pi * k / sides),
         size / 2 + size * 0.3 * math.sin(turn + 2 * math.pi * k / sides))
        for k in range(sides)
    ]  # fmt: skip
    draw.polygon(points, fill=accent)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def draw_products(
    count: int, per_booth: int, pool: Sequence[str], seed: int = 2
) -> list[list[str]]:
    """For each booth, ``per_booth`` pool names drawn uniformly (seeded).

    Names are distinct within a booth while the pool has enough of them; with ``per_booth``
    larger than the pool, they are drawn with replacement.
    """
    rng = np.random.default_rng(seed)
    repeat = per_booth > len(pool)
    return [
        [pool[int(i)] for i in rng.choice(len(pool), per_booth, replace=repeat)]
        for _ in range(count)
    ]


def hall_booths(
    pool: dict[str, tuple[bytes, bytes, bytes]], count: int = 100, per_booth: int = 5
) -> tuple[float, float, list[PlacedBooth]]:
    """A generated hall: its size and ``count`` booths with ``per_booth`` products each.

    Args:
        pool: product LODs by pool name (see :func:`read_pool`).
        count: booths.
        per_booth: products per booth.

    Returns:
        (hall width, hall depth, booths in slot order), the hall just big enough for the grid.
    """
    templates = template_mix(count)
    sizes = [NOMINAL_SIZES[t] for t in templates]
    width, depth = hall_size_for(sizes)
    slots = grid_slots(sizes, width, depth)
    names, colors = booth_names(count), booth_colors(count)
    drawn = draw_products(count, per_booth, sorted(pool))
    booths = []
    for index, (template, slot) in enumerate(zip(templates, slots, strict=True)):
        (name, script), (primary, accent) = names[index], colors[index]
        products = tuple(
            ProductModel(_id(f"booth-{index}-product-{k}"), pool[source])
            for k, source in enumerate(drawn[index])
        )
        spec = BoothSpec(
            id=_id(f"booth-{index}"),
            template=template,
            width=slot.width,
            depth=slot.depth,
            name=name,
            tagline=_TAGLINES[script],
            primary_color=primary,
            accent_color=accent,
            logo=logo_png(index, primary, accent),
            products=products,
        )
        booths.append(PlacedBooth(spec, slot))
    return width, depth, booths


def _id(name: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, name))


def renamed(booths: list[PlacedBooth], index: int, suffix: str = " (new)") -> list[PlacedBooth]:
    """The same booths with booth ``index``'s name changed: the one-booth rebuild's input."""
    changed = booths[index]
    spec = replace(changed.spec, name=changed.spec.name + suffix)
    return [*booths[:index], PlacedBooth(spec, changed.slot), *booths[index + 1 :]]


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    for name, folder in ensure_products(Path(args[0]) if args else CACHE).items():
        print(f"{name}\t{folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
