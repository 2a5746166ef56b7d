"""The textures step: budgets, WebP/compat encoding, kept originals, metadata stripping."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipeline.errors import ImageError
from pipeline.limits import Limits
from pipeline.model import Asset, Material, Texture
from pipeline.steps.textures import (
    TexturesOptions,
    strip_metadata,
    target_size,
    texture_sizes,
    textures,
)


def noisy_image(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """A photo-like image (smooth blotches plus grain), made fast at any size."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8)
    image = Image.fromarray(coarse, "RGB").resize((width, height), Image.Resampling.BILINEAR)
    grain = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8)).convert("RGB")
    image = Image.blend(image, grain, 0.15)
    if mode == "RGBA":
        mask = Image.new("L", (width, height), 0)
        inset = (width // 6, height // 6, width - width // 6, height - height // 6)
        ImageDraw.Draw(mask).ellipse(inset, fill=255)
        image.putalpha(mask)
    return image


def encoded(image: Image.Image, image_format: str, **params: object) -> bytes:
    out = BytesIO()
    image.save(out, image_format, **params)
    return out.getvalue()


def gps_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (48.0, 51.0, 30.0)
    return exif


def asset_with(*datas: bytes, normal: int | None = None) -> Asset:
    texs = []
    for data in datas:
        with Image.open(BytesIO(data)) as image:
            texs.append(Texture(data, f"image/{(image.format or '').lower()}", *image.size))
    material = Material(base_color_texture=0, normal_texture=normal)
    return Asset(primitives=[], materials=[material], textures=texs)


def decoded(texture: Texture) -> Image.Image:
    image = Image.open(BytesIO(texture.data))
    image.load()
    return image


def test_a_4000x3000_jpeg_is_resized_to_the_budget_and_becomes_webp() -> None:
    source = encoded(noisy_image(4000, 3000), "JPEG", quality=90)

    out = textures(asset_with(source), TexturesOptions(max_size=2048, format="webp"))

    texture = out.textures[0]
    image = decoded(texture)
    assert image.format == "WEBP"
    assert texture.mime_type == "image/webp"
    assert image.size == (2048, 1536) == (texture.width, texture.height)


def test_lod_budgets_keep_the_aspect_ratio_and_never_upscale() -> None:
    assert target_size(4000, 3000, 1024) == (1024, 768)
    assert target_size(3000, 4000, 512) == (384, 512)
    assert target_size(300, 200, 2048) == (300, 200)
    assert target_size(5000, 1, 512) == (512, 1)


def test_a_small_jpeg_in_compat_mode_keeps_its_exact_original_bytes() -> None:
    source = encoded(noisy_image(64, 48), "JPEG", quality=75)

    out = textures(asset_with(source), TexturesOptions(max_size=2048, format="compat"))

    assert out.textures[0].data == source
    assert out.textures[0].mime_type == "image/jpeg"


def test_a_small_jpeg_with_gps_in_compat_mode_loses_the_metadata_but_not_a_pixel() -> None:
    image = noisy_image(64, 48)
    source = encoded(image, "JPEG", quality=75, exif=gps_exif(), icc_profile=b"\0" * 200)

    out = textures(asset_with(source), TexturesOptions(format="compat"))

    result = decoded(out.textures[0])
    assert len(result.getexif()) == 0
    assert "icc_profile" not in result.info
    assert b"Exif" not in out.textures[0].data
    original = Image.open(BytesIO(source))
    assert np.array_equal(np.asarray(result), np.asarray(original))


def test_a_phone_mpo_jpeg_in_compat_mode_keeps_its_first_picture_without_metadata() -> None:
    first, second = noisy_image(64, 48, seed=1), noisy_image(64, 48, seed=2)
    out = BytesIO()
    first.save(out, "MPO", save_all=True, append_images=[second], exif=gps_exif())
    source = out.getvalue()
    assert Image.open(BytesIO(source)).format == "MPO"

    kept = textures(asset_with(source), TexturesOptions(format="compat")).textures[0]

    result = decoded(kept)
    assert (result.format, kept.mime_type) == ("JPEG", "image/jpeg")
    assert len(result.getexif()) == 0
    assert len(kept.data) < len(source) / 2 + 100  # the second picture is gone
    assert np.array_equal(np.asarray(result), np.asarray(Image.open(BytesIO(source))))


def test_a_large_jpeg_in_compat_mode_is_resized_and_stays_jpeg() -> None:
    source = encoded(noisy_image(1200, 600), "JPEG", quality=90, exif=gps_exif())

    out = textures(asset_with(source), TexturesOptions(max_size=512, format="compat"))

    result = decoded(out.textures[0])
    assert result.format == "JPEG"
    assert result.size == (512, 256)
    assert len(result.getexif()) == 0


def test_a_png_in_compat_mode_is_resized_as_png_and_keeps_its_alpha() -> None:
    source = encoded(noisy_image(800, 800, "RGBA"), "PNG")

    out = textures(asset_with(source), TexturesOptions(max_size=256, format="compat"))

    result = decoded(out.textures[0])
    assert (result.format, result.mode, result.size) == ("PNG", "RGBA", (256, 256))
    assert result.getpixel((0, 0))[3] == 0  # type: ignore[index]
    assert result.getpixel((128, 128))[3] == 255  # type: ignore[index]


@pytest.mark.parametrize(("mode", "expected"), [("RGBA", "PNG"), ("RGB", "JPEG")])
def test_a_webp_in_compat_mode_becomes_png_or_jpeg_by_alpha(mode: str, expected: str) -> None:
    source = encoded(noisy_image(100, 80, mode), "WEBP", quality=80)

    out = textures(asset_with(source), TexturesOptions(format="compat"))

    assert decoded(out.textures[0]).format == expected


def test_a_small_webp_in_webp_mode_keeps_its_pixel_data_without_exif() -> None:
    plain = encoded(noisy_image(100, 80), "WEBP", quality=70)
    tagged = encoded(noisy_image(100, 80), "WEBP", quality=70, exif=gps_exif())

    out = textures(asset_with(plain, tagged), TexturesOptions(format="webp"))

    assert out.textures[0].data == plain
    assert len(decoded(out.textures[1]).getexif()) == 0
    assert np.array_equal(
        np.asarray(decoded(out.textures[1])), np.asarray(decoded(out.textures[0]))
    )


def test_an_animated_webp_keeps_only_its_first_frame() -> None:
    frames = [noisy_image(64, 64, seed=seed) for seed in range(3)]
    out = BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], lossless=True)

    kept = textures(asset_with(out.getvalue()), TexturesOptions(format="webp")).textures[0]

    result = decoded(kept)
    assert getattr(result, "n_frames", 1) == 1
    assert b"ANMF" not in kept.data
    assert np.abs(np.asarray(result, dtype=int) - np.asarray(frames[0])).mean() < 8


def test_a_cmyk_jpeg_in_compat_mode_becomes_an_rgb_jpeg() -> None:
    source = encoded(noisy_image(64, 48).convert("CMYK"), "JPEG", quality=90)

    kept = textures(asset_with(source), TexturesOptions(format="compat")).textures[0]

    assert decoded(kept).mode == "RGB"


def test_a_png_with_text_and_icc_chunks_is_stripped_losslessly() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret location")
    source = encoded(noisy_image(40, 30), "PNG", pnginfo=info, icc_profile=b"\0" * 100)

    stripped = strip_metadata(source, "PNG")

    result = Image.open(BytesIO(stripped))
    assert b"secret" not in stripped
    assert "icc_profile" not in result.info
    assert np.array_equal(np.asarray(result), np.asarray(Image.open(BytesIO(source))))


def test_normal_maps_can_be_encoded_losslessly() -> None:
    source = encoded(noisy_image(64, 64), "PNG")

    out = textures(
        asset_with(source, normal=0), TexturesOptions(format="webp", lossless_normals=True)
    )

    assert np.array_equal(np.asarray(decoded(out.textures[0])), np.asarray(noisy_image(64, 64)))


def test_texture_sizes_are_reported() -> None:
    source = encoded(noisy_image(300, 100), "PNG")

    out = textures(asset_with(source), TexturesOptions(max_size=150, format="webp"))

    assert texture_sizes(out) == [
        {
            "width": 150,
            "height": 50,
            "bytes": len(out.textures[0].data),
            "mime_type": "image/webp",
        }
    ]


def test_the_step_is_deterministic() -> None:
    sources = (
        encoded(noisy_image(700, 500), "JPEG", quality=90, exif=gps_exif()),
        encoded(noisy_image(600, 600, "RGBA"), "PNG"),
    )
    for options in (TexturesOptions(512, "webp"), TexturesOptions(512, "compat")):
        first = textures(asset_with(*sources), options)
        second = textures(asset_with(*sources), options)
        assert [t.data for t in first.textures] == [t.data for t in second.textures]


def test_a_pixel_flood_is_rejected_from_the_header() -> None:
    source = encoded(Image.new("L", (3000, 3000)), "PNG")

    with pytest.raises(ImageError) as caught:
        textures(asset_with(source), TexturesOptions(limits=Limits(max_image_pixels=1_000_000)))

    assert caught.value.code == "image_too_many_pixels"


def test_an_image_format_outside_the_allowlist_is_unsupported() -> None:
    source = encoded(Image.new("RGB", (8, 8)), "BMP")

    with pytest.raises(ImageError) as caught:
        textures(asset_with(source), TexturesOptions())

    assert caught.value.code == "image_unsupported_format"
