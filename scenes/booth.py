"""Build one booth: its template, signs, logo and products, as one GLB per LOD.

A booth GLB is in booth-local coordinates (see :mod:`scenes.templates`); the hall manifest
says where it stands. Per LOD:

* LOD0: the full template, a 1024 px wide fascia sign, the logo at 512 px, products at their
  LOD0 (100k triangles, 2048 px textures at most);
* LOD1: the same template, sign and logo at half size, products at LOD1;
* LOD2: walls and boards only (no counters, pedestals or shelves), sign and logo at a quarter,
  products at LOD2.

Products are the pipeline's web LODs (quantized, ``EXT_meshopt_compression``); they are decoded
and written again into the booth's document, their WebP textures kept byte for byte. Their
placement is computed once, from LOD0's bounds, so a product stands in the same place at every
LOD. Everything is deterministic: the same :class:`BoothSpec` gives the same bytes, and
:func:`booth_digest` names that input, so a hall rebuild skips booths whose digest it has built.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field

from PIL import Image

from pipeline.detect import detect
from pipeline.errors import PipelineError
from pipeline.guards.image import open_image
from pipeline.loaders import load
from pipeline.meshopt_decode import decode_meshopt_glb
from pipeline.model import AlphaMode, Asset, Material, Texture
from pipeline.steps.textures import encode, rgb_pixels
from pipeline.write import SceneDocument, SceneNode, WriteOptions, write_scene_glb
from scenes.colors import linear_rgb
from scenes.errors import SceneError
from scenes.geometry import MeshBuilder
from scenes.placement import Placement, ProductBox, place
from scenes.signage import SignStyle, sign_texture
from scenes.templates import BoothKit, Mat, build_kit

logger = logging.getLogger(__name__)

BUILDER_VERSION = 1  # bump when the output of the same input changes
LOD_COUNT = 3
SIGN_WIDTHS = (1024, 512, 256)
LOGO_SIZES = (512, 256, 128)

Rgba = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class ProductModel:
    """A processed product: its id and the pipeline's ``web/lod0..2.glb`` bytes."""

    id: str
    lods: tuple[bytes, bytes, bytes]


@dataclass(frozen=True, slots=True)
class BoothSpec:
    """Everything a booth's GLBs depend on (not where it stands: that is the hall's)."""

    id: str
    template: str
    width: float
    depth: float
    name: str
    tagline: str = ""
    primary_color: str = "#1f4e79"
    accent_color: str = "#f2c14e"
    logo: bytes | None = None
    products: tuple[ProductModel, ...] = ()


@dataclass(frozen=True, slots=True)
class BuiltLod:
    glb: bytes
    triangles: int


@dataclass(slots=True)
class BuiltBooth:
    """A booth's GLBs and what the manifest says about them (booth-local coordinates)."""

    digest: str
    lods: list[BuiltLod]
    placements: list[Placement]
    unplaced: list[str]
    bounds: tuple[tuple[float, float, float], tuple[float, float, float]]
    warnings: list[str] = field(default_factory=list)


def booth_digest(spec: BoothSpec) -> str:
    """A SHA-256 over everything the booth's GLBs depend on, including the builder version."""
    h = hashlib.sha256()
    head = {
        "builder": BUILDER_VERSION,
        "template": spec.template,
        "size": [spec.width, spec.depth],
        "name": spec.name,
        "tagline": spec.tagline,
        "colors": [spec.primary_color, spec.accent_color],
        "products": [p.id for p in spec.products],
    }
    h.update(json.dumps(head, sort_keys=True, ensure_ascii=False).encode())
    for blob in [spec.logo or b"", *(lod for p in spec.products for lod in p.lods)]:
        h.update(hashlib.sha256(blob).digest())
    return h.hexdigest()


def build_booth(spec: BoothSpec) -> BuiltBooth:
    """Build every LOD of a booth.

    Raises:
        SceneError: a bad template or size, a product GLB that cannot be read
            (``product_invalid``), a logo that is not an image (``logo_invalid``).
    """
    models = [[_product_asset(p, level) for level in range(LOD_COUNT)] for p in spec.products]
    boxes = [
        ProductBox(p.id, _size(lods[0])) for p, lods in zip(spec.products, models, strict=True)
    ]
    full = build_kit(spec.template, spec.width, spec.depth, detail=0)
    placements, unplaced = place(boxes, full.slots)
    logo = _logo_image(spec.logo) if spec.logo else None
    lods = []
    for level in range(LOD_COUNT):
        kit = full if level < 2 else build_kit(spec.template, spec.width, spec.depth, detail=1)
        structure = _structure(spec, kit, level, logo)
        products = [models[int(_index(spec, p.product_id))][level] for p in placements]
        lods.append(_write(spec, kit, structure, products, placements))
    warnings = [f"no room on the booth for product {pid}" for pid in unplaced]
    low, high = _bounds(full)
    return BuiltBooth(booth_digest(spec), lods, placements, unplaced, (low, high), warnings)


def _index(spec: BoothSpec, product_id: str) -> int:
    return next(i for i, p in enumerate(spec.products) if p.id == product_id)


def _product_asset(product: ProductModel, level: int) -> Asset:
    data = product.lods[level]
    try:
        return load(decode_meshopt_glb(data), detect(data))
    except PipelineError as exc:
        raise SceneError(
            f"product {product.id} LOD{level} cannot be read: {exc}", code="product_invalid"
        ) from exc


def _size(asset: Asset) -> tuple[float, float, float]:
    low, high = asset.bounds()
    return (float(high[0] - low[0]), float(high[1] - low[1]), float(high[2] - low[2]))


def _bounds(kit: BoothKit) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    w, d = kit.width / 2, kit.depth / 2
    return ((-w, 0.0, -d), (w, kit.height, d))


def _rgba(color: str) -> Rgba:
    return (*linear_rgb(color), 1.0)


def _materials(
    spec: BoothSpec, sign: int | None, logo: int | None, *, logo_alpha: bool
) -> list[Material]:
    # A logo with transparency is cut out (glTF 2.0 §3.9.4 MASK), not drawn on black.
    logo_mode: AlphaMode = "MASK" if logo_alpha else "OPAQUE"
    return [
        Material("floor", (0.16, 0.16, 0.17, 1.0), roughness_factor=0.9),
        Material("wall", (0.86, 0.86, 0.84, 1.0), roughness_factor=0.8),
        Material("primary", _rgba(spec.primary_color), roughness_factor=0.6),
        Material("accent", _rgba(spec.accent_color), roughness_factor=0.5),
        Material("metal", (0.6, 0.6, 0.62, 1.0), metallic_factor=0.8, roughness_factor=0.35),
        Material("wood", (0.42, 0.26, 0.13, 1.0), roughness_factor=0.7),
        Material("sign", base_color_texture=sign, roughness_factor=0.6),
        Material("logo", base_color_texture=logo, roughness_factor=0.6, alpha_mode=logo_mode),
    ]


def _structure(spec: BoothSpec, kit: BoothKit, level: int, logo: Image.Image | None) -> Asset:
    boards = MeshBuilder()
    textures: list[Texture] = []
    sign_index = logo_index = None
    if kit.signs:
        board = kit.signs[0]
        width = SIGN_WIDTHS[level]
        height = max(32, round(width * board.height / board.width))
        style = SignStyle(
            width=width,
            height=height,
            background=spec.primary_color,
            foreground=_ink(spec),
            padding=max(2, height // 10),
            min_size=max(6, height // 6),
        )
        tagline = spec.tagline if level == 0 else None  # unreadable at the far LODs' sizes
        textures.append(sign_texture(spec.name, style, tagline=tagline))
        sign_index = 0
        for board in kit.signs:
            boards.panel(Mat.sign, board.center, board.width, board.height, facing=board.facing)
    if logo is not None and kit.logos:
        side = LOGO_SIZES[level]
        fitted = logo.copy()
        fitted.thumbnail((side, side), Image.Resampling.LANCZOS)
        textures.append(_webp(fitted, "logo"))
        logo_index = len(textures) - 1
        aspect = fitted.width / fitted.height
        for board in kit.logos:
            w, h = (
                (board.width, board.width / aspect)
                if aspect >= 1
                else (board.height * aspect, board.height)
            )
            boards.panel(Mat.logo, board.center, w, h, facing=board.facing)
    primitives = [*kit.structure, *boards.primitives()]
    return Asset(
        primitives,
        _materials(
            spec, sign_index, logo_index, logo_alpha=logo is not None and logo.mode == "RGBA"
        ),
        textures,
    )


def _ink(spec: BoothSpec) -> str:
    """White or near-black text, whichever reads better on the primary colour."""
    r, g, b, _ = _rgba(spec.primary_color)
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "#111111" if luminance > 0.35 else "#ffffff"


def _webp(image: Image.Image, name: str) -> Texture:
    return Texture(encode(image, "WEBP"), "image/webp", image.width, image.height, name)


def _logo_image(data: bytes) -> Image.Image:
    try:
        return rgb_pixels(open_image(data))
    except PipelineError as exc:
        raise SceneError(f"the logo cannot be used: {exc}", code="logo_invalid") from exc


def _write(
    spec: BoothSpec,
    kit: BoothKit,
    structure: Asset,
    products: list[Asset],
    placements: list[Placement],
) -> BuiltLod:
    lights = [
        {"type": "spot", "position": list(h.position), "target": list(h.target),
         "angle": h.angle, "intensity": h.intensity}
        for h in kit.lights
    ]  # fmt: skip
    root = SceneNode(name=f"booth {spec.name}", children=[1], extras={"lights": lights})
    nodes = [root, SceneNode("structure", mesh=0)]
    for index, p in enumerate(placements):
        nodes[0].children.append(len(nodes))
        nodes.append(
            SceneNode(
                name=f"product {p.product_id}",
                mesh=index + 1,
                translation=p.position,
                rotation=_yaw_quaternion(p.yaw),
                scale=(p.scale, p.scale, p.scale),
                extras={"product_id": p.product_id},
            )
        )
    document = SceneDocument(meshes=[structure, *products], nodes=nodes, roots=[0])
    glb = write_scene_glb(document, WriteOptions(quantize=True, meshopt=True))
    triangles = structure.triangle_count + sum(a.triangle_count for a in products)
    return BuiltLod(glb, triangles)


def _yaw_quaternion(degrees: float) -> tuple[float, float, float, float]:
    half = math.radians(degrees) / 2
    return (0.0, round(math.sin(half), 7), 0.0, round(math.cos(half), 7))
