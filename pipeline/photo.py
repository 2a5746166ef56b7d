"""Photos become product cards: a thin panel (or a cut-out standee) textured with the photo.

Decisions (issue 3 §5):

- Orientation: EXIF orientation is applied to the pixels (``ImageOps.exif_transpose``), then
  every piece of metadata is dropped by building a fresh image from the pixels: no EXIF (GPS!),
  XMP, IPTC, comments or ICC survive. A non-sRGB ICC profile (Display P3 from phones, Adobe RGB)
  is first converted to sRGB, because glTF viewers ignore ICC (glTF 2.0 §3.9.2) and would show
  the raw values washed out.
- Size: the card is ``CARD_HEIGHT_M`` = 0.6 m tall at the photo's true aspect ratio, unless
  that makes it wider than ``CARD_MAX_WIDTH_M`` = 1.2 m (panoramas), then it is 1.2 m wide.
  It stands on the floor (y from 0), centred on x, front facing +Z, ``CARD_DEPTH_M`` = 1.5 cm
  deep, like the footprint-centred origin the normalize step produces.
- Texture: the photo is capped at ``MAX_PHOTO_SIDE`` = 2048 px (the largest texture budget) and
  stored as JPEG q90 4:4:4 (one lossy generation; the textures step then makes WebP or keeps it
  for compat), or as PNG for a cut-out (alpha must survive).
- Cut-outs: a PNG/WebP/AVIF where at least 1 % of the pixels have alpha < 0.5 is a standee: the
  image is cropped to its opaque bounding box so the subject stands on the plate, drawn on one
  double-sided quad with ``alphaMode: MASK`` and ``alphaCutoff: 0.5`` (glTF 2.0 §3.9.4) above a
  dark base plate.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from io import BytesIO

import numpy as np
from PIL import Image, ImageCms, ImageOps, features

from pipeline.guards.image import open_image
from pipeline.limits import Limits
from pipeline.model import Asset, Format, Material, Primitive, Texture
from pipeline.steps.textures import encode, rgb_pixels, target_size

logger = logging.getLogger(__name__)

PHOTO_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP") + (
    ("AVIF",) if features.check("avif") else ()
)
CARD_HEIGHT_M = 0.6
CARD_MAX_WIDTH_M = 1.2
CARD_DEPTH_M = 0.015
MAX_PHOTO_SIDE = 2048
CUTOUT_MIN_FRACTION = 0.01  # share of pixels with alpha < 0.5 that makes a cut-out
PLATE_HEIGHT_M = 0.01
PLATE_DEPTH_M = 0.2

_FORMATS = {
    "JPEG": Format.jpeg,
    "MPO": Format.jpeg,
    "PNG": Format.png,
    "WEBP": Format.webp,
    "AVIF": Format.avif,
}
_FRONT = Material(name="photo", base_color_texture=0, roughness_factor=0.8)
_BACK = Material(name="card-back", base_color_factor=(0.8, 0.8, 0.8, 1.0), roughness_factor=0.9)
_PLATE = Material(name="plate", base_color_factor=(0.1, 0.1, 0.1, 1.0), roughness_factor=0.6)


def photo_card(data: bytes, *, limits: Limits) -> Asset:
    """Turn a photo into a product card or, when it has a transparent background, a standee.

    Args:
        data: JPEG, PNG, WebP (or AVIF when Pillow supports it) bytes.
        limits: ``max_image_pixels`` is enforced before decoding.

    Returns:
        An asset in metres (``unit_hint="m"``), Y-up, standing on y = 0, front facing +Z.

    Raises:
        ImageError: The photo cannot be decoded safely (``pipeline.guards.image`` codes).
    """
    image = open_image(data, limits, PHOTO_FORMATS)
    source = _FORMATS.get(image.format or "", Format.jpeg)
    pixels = _clean_pixels(image)
    cutout = pixels.mode == "RGBA" and _is_cutout(pixels)
    if cutout:
        pixels = pixels.crop(_opaque_box(pixels))
    elif pixels.mode == "RGBA":  # a few transparent pixels: flatten onto white
        white = Image.new("RGBA", pixels.size, (255, 255, 255, 255))
        pixels = Image.alpha_composite(white, pixels).convert("RGB")
    size = target_size(pixels.width, pixels.height, MAX_PHOTO_SIDE)
    if size != pixels.size:
        pixels = pixels.resize(size, Image.Resampling.LANCZOS)
    texture = _texture(pixels, cutout=cutout)
    width, height = card_size(pixels.width, pixels.height)
    logger.info(
        "photo %dx%d -> %s %.3f x %.3f m", *size, "standee" if cutout else "card", width, height
    )
    asset = _standee(width, height) if cutout else _card(width, height)
    asset.textures.append(texture)
    asset.source_format = source
    asset.unit_hint = "m"
    return asset


def card_size(pixel_width: int, pixel_height: int) -> tuple[float, float]:
    """The card's (width, height) in metres for a photo of this pixel size."""
    aspect = pixel_width / pixel_height
    height = CARD_HEIGHT_M
    if height * aspect > CARD_MAX_WIDTH_M:
        height = CARD_MAX_WIDTH_M / aspect
    return height * aspect, height


def _clean_pixels(image: Image.Image) -> Image.Image:
    """Oriented sRGB RGB/RGBA pixels in a fresh image with no metadata at all."""
    oriented = ImageOps.exif_transpose(image)
    icc = image.info.get("icc_profile")
    if isinstance(icc, bytes) and icc and oriented.mode in {"RGB", "RGBA", "CMYK"}:
        mode = "RGBA" if oriented.mode == "RGBA" else "RGB"
        oriented = _to_srgb(oriented, icc, mode)
    return rgb_pixels(oriented)


def _to_srgb(image: Image.Image, icc: bytes, mode: str) -> Image.Image:
    try:
        profile = ImageCms.ImageCmsProfile(BytesIO(icc))
        srgb = ImageCms.createProfile("sRGB")
        result = ImageCms.profileToProfile(image, profile, srgb, outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        logger.warning("ignoring an unusable ICC profile: %s", exc)
        return image.convert(mode)
    assert result is not None  # inPlace=False always returns an image
    return result


def _is_cutout(image: Image.Image) -> bool:
    alpha = np.asarray(image.getchannel("A"))
    return bool(np.count_nonzero(alpha < 128) >= CUTOUT_MIN_FRACTION * alpha.size)


def _opaque_box(image: Image.Image) -> tuple[int, int, int, int]:
    mask = image.getchannel("A").point(lambda a: 255 if a >= 128 else 0)
    box = mask.getbbox()
    return box if box is not None else (0, 0, image.width, image.height)


def _texture(pixels: Image.Image, *, cutout: bool) -> Texture:
    if cutout:
        data, mime = encode(pixels, "PNG"), "image/png"
    else:
        out = BytesIO()
        pixels.save(out, "JPEG", quality=90, subsampling=0, optimize=True)
        data, mime = out.getvalue(), "image/jpeg"
    return Texture(
        data=data, mime_type=mime, width=pixels.width, height=pixels.height, name="photo"
    )


def _quad(
    corners: list[tuple[float, float, float]], normal: tuple[float, float, float]
) -> Primitive:
    """Two triangles over 4 corners given top-left, top-right, bottom-right, bottom-left.

    Corners are counter-clockwise seen from the side ``normal`` points to (glTF 2.0 §3.7.2.1:
    front faces wind counter-clockwise). UVs put the image's top-left at the first corner
    (glTF's UV origin is the top-left of the image).
    """
    return Primitive(
        positions=np.array(corners, dtype=np.float32),
        indices=np.array([0, 3, 2, 0, 2, 1], dtype=np.uint32),
        normals=np.array([normal] * 4, dtype=np.float32),
        uvs=np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float32),
    )


def _box_faces(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float) -> list[Primitive]:
    """The six faces of an axis-aligned box, front (+Z) first."""
    return [
        _quad([(x0, y1, z1), (x1, y1, z1), (x1, y0, z1), (x0, y0, z1)], (0, 0, 1)),
        _quad([(x1, y1, z0), (x0, y1, z0), (x0, y0, z0), (x1, y0, z0)], (0, 0, -1)),
        _quad([(x1, y1, z1), (x1, y1, z0), (x1, y0, z0), (x1, y0, z1)], (1, 0, 0)),
        _quad([(x0, y1, z0), (x0, y1, z1), (x0, y0, z1), (x0, y0, z0)], (-1, 0, 0)),
        _quad([(x0, y1, z0), (x1, y1, z0), (x1, y1, z1), (x0, y1, z1)], (0, 1, 0)),
        _quad([(x0, y0, z1), (x1, y0, z1), (x1, y0, z0), (x0, y0, z0)], (0, -1, 0)),
    ]


def _merge(faces: list[Primitive], material: int) -> Primitive:
    offsets = np.cumsum([0] + [f.vertex_count for f in faces[:-1]])
    return Primitive(
        positions=np.concatenate([f.positions for f in faces]),
        indices=np.concatenate(
            [f.indices + np.uint32(o) for f, o in zip(faces, offsets, strict=True)]
        ),
        normals=np.concatenate([f.normals for f in faces if f.normals is not None]),
        uvs=np.concatenate([f.uvs for f in faces if f.uvs is not None]),
        material=material,
    )


def _card(width: float, height: float) -> Asset:
    half = CARD_DEPTH_M / 2
    faces = _box_faces(-width / 2, width / 2, 0.0, height, -half, half)
    front = _merge(faces[:1], 0)
    rest = _merge(faces[1:], 1)
    return Asset(primitives=[front, rest], materials=[replace(_FRONT), replace(_BACK)])


def _standee(width: float, height: float) -> Asset:
    x0, x1, y0, y1 = -width / 2, width / 2, PLATE_HEIGHT_M, PLATE_HEIGHT_M + height
    quad = _merge([_quad([(x0, y1, 0), (x1, y1, 0), (x1, y0, 0), (x0, y0, 0)], (0, 0, 1))], 0)
    plate_half = max(width * 0.6, 0.1) / 2
    plate = _box_faces(
        -plate_half, plate_half, 0.0, PLATE_HEIGHT_M, -PLATE_DEPTH_M / 2, PLATE_DEPTH_M / 2
    )
    # glTF 2.0 §3.9.4: MASK draws texels with alpha >= alphaCutoff fully opaque, the rest not.
    front = replace(_FRONT, alpha_mode="MASK", alpha_cutoff=0.5, double_sided=True)
    return Asset(primitives=[quad, _merge(plate, 1)], materials=[front, replace(_PLATE)])
