"""Photos become product cards: orientation applied, metadata gone, true aspect, standees."""

from __future__ import annotations

from io import BytesIO
from typing import Literal

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageDraw

from pipeline.errors import ImageError
from pipeline.limits import DEFAULT_LIMITS
from pipeline.model import Asset, Format
from pipeline.photo import CARD_HEIGHT_M, card_size, photo_card


def photo(width: int, height: int) -> Image.Image:
    """Left half red, right half blue, so a rotation is visible in the pixels."""
    image = Image.new("RGB", (width, height), (200, 30, 30))
    ImageDraw.Draw(image).rectangle((width // 2, 0, width, height), fill=(30, 30, 200))
    return image


def jpeg(image: Image.Image, **params: object) -> bytes:
    out = BytesIO()
    image.save(out, "JPEG", quality=90, **params)
    return out.getvalue()


def phone_exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "PhoneMaker"
    exif[0x0110] = "Model X"
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (48.0, 51.0, 30.0)
    gps[3] = "E"
    gps[4] = (2.0, 17.0, 40.0)
    return exif


def cutout_png() -> bytes:
    image = Image.new("RGBA", (200, 300), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((50, 40, 150, 260), fill=(20, 160, 40, 255))
    out = BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def texture_image(asset: Asset) -> Image.Image:
    image = Image.open(BytesIO(asset.textures[0].data))
    image.load()
    return image


def extent(asset: Asset) -> np.ndarray:
    low, high = asset.bounds()
    return high - low


def test_an_exif_rotated_phone_photo_is_turned_upright_and_loses_every_tag() -> None:
    data = jpeg(photo(400, 300), exif=phone_exif(6))

    card = photo_card(data, limits=DEFAULT_LIMITS)

    image = texture_image(card)
    assert image.size == (300, 400)  # orientation 6: rotate 90° clockwise
    assert len(image.getexif()) == 0
    assert image.getexif().get_ifd(0x8825) == {}
    assert not {"exif", "xmp", "icc_profile"} & set(image.info)
    assert b"PhoneMaker" not in card.textures[0].data
    # The red left half of the sensor image is the top after a clockwise turn.
    red, _, blue = image.getpixel((150, 50))  # type: ignore[misc]
    assert red > 150 > blue


@pytest.mark.parametrize(("width", "height"), [(400, 300), (300, 400), (1000, 250)])
def test_the_card_has_the_photo_aspect_ratio_within_one_percent(width: int, height: int) -> None:
    card = photo_card(jpeg(photo(width, height)), limits=DEFAULT_LIMITS)

    size = extent(card)
    assert size[0] / size[1] == pytest.approx(width / height, rel=0.01)
    assert 0.01 <= size[2] <= 0.02  # a thin panel


def test_the_card_stands_on_the_floor_facing_plus_z_with_the_photo_on_the_front() -> None:
    card = photo_card(jpeg(photo(400, 300)), limits=DEFAULT_LIMITS)

    low, high = card.bounds()
    assert low[1] == 0.0
    assert high[1] == pytest.approx(CARD_HEIGHT_M)
    assert low[0] == pytest.approx(-high[0])
    front = card.primitives[0]
    assert card.materials[front.material or 0].base_color_texture == 0
    assert front.normals is not None
    assert np.allclose(front.normals, [0, 0, 1])
    assert front.uvs is not None
    # glTF UV origin is the image's top-left: the top vertices have v = 0.
    top = front.positions[:, 1] == front.positions[:, 1].max()
    assert np.all(front.uvs[top, 1] == 0)
    assert card.materials[card.primitives[1].material or 0].base_color_texture is None
    assert card.source_format == Format.jpeg


def test_front_triangles_wind_counter_clockwise_seen_from_the_front() -> None:
    card = photo_card(jpeg(photo(400, 300)), limits=DEFAULT_LIMITS)

    front = card.primitives[0]
    tris = front.positions[front.indices.reshape(-1, 3)]
    normals = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    assert np.all(normals[:, 2] > 0)


def test_a_png_with_a_transparent_background_becomes_a_mask_standee() -> None:
    standee = photo_card(cutout_png(), limits=DEFAULT_LIMITS)

    material = standee.materials[standee.primitives[0].material or 0]
    assert material.alpha_mode == "MASK"
    assert material.alpha_cutoff == 0.5
    assert material.double_sided
    assert standee.primitives[0].triangle_count == 2
    assert len(standee.primitives) == 2  # the quad and its base plate
    image = texture_image(standee)
    assert image.mode == "RGBA"
    assert image.size == (101, 221)  # cropped to the opaque ellipse
    assert standee.source_format == Format.png


def test_an_opaque_png_is_a_plain_card() -> None:
    out = BytesIO()
    photo(120, 80).convert("RGBA").save(out, "PNG")

    card = photo_card(out.getvalue(), limits=DEFAULT_LIMITS)

    assert card.materials[0].alpha_mode == "OPAQUE"
    assert texture_image(card).mode == "RGB"


@pytest.mark.parametrize("space", ["sRGB", "LAB"])
def test_an_embedded_icc_profile_is_applied_or_ignored_but_never_carried(
    space: Literal["sRGB", "LAB"],
) -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile(space)).tobytes()

    card = photo_card(jpeg(photo(40, 30), icc_profile=profile), limits=DEFAULT_LIMITS)

    image = texture_image(card)
    assert "icc_profile" not in image.info
    red, _, blue = image.getpixel((5, 15))  # type: ignore[misc]
    assert red > 150 > blue  # sRGB -> sRGB is the identity; an unusable profile is ignored


def test_a_huge_photo_is_capped_at_2048_pixels() -> None:
    card = photo_card(jpeg(photo(4096, 1024)), limits=DEFAULT_LIMITS)

    assert texture_image(card).size == (2048, 512)
    assert card_size(2048, 512)[0] == pytest.approx(1.2)  # panoramas are capped in width


def test_a_16_bit_greyscale_png_keeps_its_tones() -> None:
    ramp = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (32, 1))
    out = BytesIO()
    Image.fromarray(ramp).save(out, "PNG")

    image = texture_image(photo_card(out.getvalue(), limits=DEFAULT_LIMITS))

    grey = np.asarray(image.convert("L"), dtype=int)[16]
    assert grey[0] < 10
    assert 100 < grey[32] < 160
    assert grey[-1] > 245


def test_a_gif_is_not_a_photo_we_accept() -> None:
    out = BytesIO()
    photo(10, 10).save(out, "GIF")

    with pytest.raises(ImageError) as caught:
        photo_card(out.getvalue(), limits=DEFAULT_LIMITS)

    assert caught.value.code == "image_unsupported_format"


def test_cards_and_standees_are_deterministic() -> None:
    for data in (jpeg(photo(640, 480), exif=phone_exif(8)), cutout_png()):
        first = photo_card(data, limits=DEFAULT_LIMITS)
        second = photo_card(data, limits=DEFAULT_LIMITS)
        assert first.textures[0].data == second.textures[0].data
        for a, b in zip(first.primitives, second.primitives, strict=True):
            assert a.positions.tobytes() == b.positions.tobytes()
            assert a.indices.tobytes() == b.indices.tobytes()
