"""The software-rendered thumbnail shows the model: colours, textures, cut-outs, background."""

from __future__ import annotations

import time
from io import BytesIO

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipeline.limits import DEFAULT_LIMITS
from pipeline.model import Asset, Material, Primitive
from pipeline.photo import photo_card
from pipeline.thumbnail import BACKGROUND, render_thumbnail


def sphere(rings: int, radius: float = 0.5, *, normals: bool = True) -> Primitive:
    """A UV sphere standing on the floor with 2 * rings * rings triangles."""
    theta = np.linspace(0, np.pi, rings + 1)
    phi = np.linspace(0, 2 * np.pi, rings + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    unit = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    first = np.arange(rings)[:, None] * (rings + 1) + np.arange(rings)[None, :]
    a, b, c, d = first, first + 1, first + rings + 1, first + rings + 2
    indices = np.stack([a, c, b, b, c, d], -1).reshape(-1)
    return Primitive(
        positions=(unit * radius + [0, radius, 0]).astype(np.float32),
        indices=indices.astype(np.uint32),
        normals=unit.astype(np.float32) if normals else None,
        material=0,
    )


def red_sphere(rings: int = 32, *, normals: bool = True) -> Asset:
    return Asset([sphere(rings, normals=normals)], [Material(base_color_factor=(1, 0, 0, 1))])


def pixels(data: bytes) -> np.ndarray:
    image = Image.open(BytesIO(data))
    assert image.format == "WEBP"
    return np.asarray(image.convert("RGB"), dtype=np.int64)


def is_background(rgb: np.ndarray) -> np.ndarray:
    close: np.ndarray = np.abs(rgb - np.array(BACKGROUND)) <= 3
    return np.asarray(close.all(axis=-1))


def is_red(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0] > 100) & (rgb[..., 0] > 2 * rgb[..., 1]) & (rgb[..., 0] > 2 * rgb[..., 2])


@pytest.mark.parametrize("normals", [True, False])
def test_a_red_sphere_fills_the_centre_with_shaded_red_on_a_light_background(
    normals: bool,
) -> None:
    rgb = pixels(render_thumbnail(red_sphere(normals=normals), size=128))

    assert rgb.shape == (128, 128, 3)
    centre = rgb[32:96, 32:96]
    assert is_red(centre).mean() > 0.95
    for corner in (rgb[:8, :8], rgb[:8, -8:], rgb[-8:, :8], rgb[-8:, -8:]):
        assert is_background(corner).all()
    # Lambert shading: the sphere is not one flat colour.
    reds = centre[..., 0][is_red(centre)]
    assert reds.max() - reds.min() > 60


def test_the_photo_on_a_card_is_visible_and_the_right_way_round() -> None:
    photo = Image.new("RGB", (400, 300), (220, 20, 20))
    ImageDraw.Draw(photo).rectangle((200, 0, 400, 300), fill=(20, 20, 220))
    out = BytesIO()
    photo.save(out, "JPEG", quality=95)
    card = photo_card(out.getvalue(), limits=DEFAULT_LIMITS)

    rgb = pixels(render_thumbnail(card, size=128))

    middle = rgb[40:90]
    left, right = middle[:, 20:55], middle[:, 75:110]
    assert is_red(left).mean() > 0.8
    blue = (right[..., 2] > 100) & (right[..., 2] > 2 * right[..., 0])
    assert blue.mean() > 0.8


def test_a_mask_standee_shows_the_background_where_the_photo_is_transparent() -> None:
    image = Image.new("RGBA", (200, 300), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((0, 0, 200, 300), fill=(20, 200, 40, 255))
    out = BytesIO()
    image.save(out, "PNG")
    standee = photo_card(out.getvalue(), limits=DEFAULT_LIMITS)

    rgb = pixels(render_thumbnail(standee, size=128))

    green = (rgb[..., 1] > 100) & (rgb[..., 1] > 2 * rgb[..., 0])
    assert green.mean() > 0.15
    upper = rgb[:64]
    dark = upper.max(axis=-1) < 60  # transparent texels are black: they must not be drawn
    assert dark.sum() == 0


def test_an_asset_without_triangles_renders_the_background_only() -> None:
    rgb = pixels(render_thumbnail(Asset(primitives=[]), size=32))

    assert is_background(rgb).all()


def test_thumbnails_are_deterministic() -> None:
    assert render_thumbnail(red_sphere(), size=96) == render_thumbnail(red_sphere(), size=96)


def test_an_absurd_size_is_refused() -> None:
    with pytest.raises(ValueError, match="size"):
        render_thumbnail(red_sphere(4), size=100_000)


@pytest.mark.slow
def test_a_100k_triangle_mesh_renders_within_its_cpu_budget() -> None:
    asset = red_sphere(224)  # 100,352 triangles
    assert asset.triangle_count > 100_000

    start = time.process_time()  # CPU time: other jobs on the 2 shared cores do not count
    data = render_thumbnail(asset)
    elapsed = time.process_time() - start

    assert elapsed < 3.0  # measured ~1.0 s on the 2-core dev machine
    assert is_red(pixels(data)[200:300, 200:300]).mean() > 0.95


def test_stray_vertices_neither_crash_nor_shrink_the_framing() -> None:
    prim = sphere(16)
    stray = np.array([[np.nan, 0, 0], [100, 100, 100]], dtype=np.float32)
    prim.positions = np.concatenate([prim.positions, stray])
    assert prim.normals is not None
    prim.normals = np.concatenate([prim.normals, np.zeros((2, 3), np.float32)])
    asset = Asset([prim], [Material(base_color_factor=(1, 0, 0, 1))])

    rgb = pixels(render_thumbnail(asset, size=64))

    assert is_red(rgb[16:48, 16:48]).mean() > 0.95
