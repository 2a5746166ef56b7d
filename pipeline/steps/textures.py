"""Textures step: resize every texture to the tier's budget and encode it for the target.

Two targets, after glTF-Transform's ``textureCompress`` (research-pipeline.md §2, T6/T7/T10):

- ``webp`` (web and WebXR LODs): WebP at quality 80, method 4. Pillow with these parameters
  produces the same bytes as glTF-Transform's sharp encoder (both call libwebp), so our bytes
  match the reference tool. The writer must declare ``EXT_texture_webp`` for ``image/webp``.
- ``compat`` (AR viewers: JPEG/PNG only, glTF 2.0 §3.9.2 core image formats): an original JPEG
  or PNG within budget keeps its bytes; a resize re-encodes PNG as PNG and JPEG as JPEG (the only
  case where a JPEG is re-encoded, since the pixels change anyway); WebP/AVIF inputs become PNG
  when they have meaningful alpha, JPEG otherwise.

Decisions:

- Only downscale, keeping the aspect ratio, with Lanczos. Power-of-two sizes are not required
  by glTF 2.0 (WebGL 2 samples and mipmaps NPOT textures), so sizes are not rounded.
- Normal maps are lossy WebP like every other slot by default, as glTF-Transform does (our byte
  target is <= 1.0x its output). ``lossless_normals=True`` trades bytes for exact normals,
  since WebP's 4:2:0 chroma subsampling blurs the X/Y channels.
- Metadata: EXIF, XMP, IPTC, comments, text chunks and ICC profiles are all removed. ICC is
  dropped without conversion because glTF 2.0 §3.9.2 says "any colorspace information (such as
  ICC profiles, intents, gamma values, etc.) from PNG or JPEG images MUST be ignored": viewers
  never applied it, so dropping it changes nothing they show. Kept originals are stripped at the
  container level (JPEG segments, PNG chunks, RIFF chunks) so their pixels stay bit-exact; an
  original with no metadata keeps its exact bytes.
- A WebP larger than a source that needed no resize is not used: the source is kept (stripped).
- Deterministic: fixed encoder parameters, no timestamps. Textures are processed in parallel
  threads (Pillow releases the GIL while it decodes, resizes and encodes); each texture's bytes
  depend only on its own source, whatever the scheduling. One thread holds one decoded image,
  so memory grows with the thread count, not with the number of textures.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field, replace
from io import BytesIO
from typing import Literal

import numpy as np
from PIL import Image, features

from pipeline.guards.image import open_image
from pipeline.limits import DEFAULT_LIMITS, Limits
from pipeline.model import Asset, Texture
from pipeline.parallel import Budget, available_cpus, map_threads

logger = logging.getLogger(__name__)

NAME = "textures"

TextureTarget = Literal["webp", "compat"]

WEBP_QUALITY = 80
WEBP_METHOD = 4
JPEG_QUALITY = 90

# Pillow plugin names a texture may be decoded with (research-security.md C2: allowlist only).
TEXTURE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP") + (
    ("AVIF",) if features.check("avif") else ()
)
_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "AVIF": "image/avif"}


@dataclass(frozen=True, slots=True)
class TexturesOptions:
    """Options of the textures step.

    Attributes:
        max_size: Longest side in pixels (2048, 1024, 512 for LOD0, LOD1, LOD2).
        format: ``"webp"`` for the web LODs or ``"compat"`` for JPEG/PNG-only AR viewers.
        lossless_normals: Encode normal maps as lossless WebP (bigger, exact).
        limits: Caps for decoding (pixel count).
        workers: Textures processed at once. Default: two per available CPU, so that three
            textures of unequal cost on two cores finish together instead of two, then one.
        pixels_in_flight: Source pixels being processed at once, whatever ``workers`` says
            (a decoded pixel and its working copies take about 10 bytes): the default 24M
            lets four 2K textures or one 4K and a 2K run together, and an 8K one run alone.
    """

    max_size: int = 2048
    format: TextureTarget = "webp"
    lossless_normals: bool = False
    limits: Limits = field(default_factory=lambda: DEFAULT_LIMITS)
    workers: int | None = None
    pixels_in_flight: int = 24_000_000


def textures(asset: Asset, options: TexturesOptions) -> Asset:
    """Resize and encode every texture of ``asset`` for ``options.format``.

    Args:
        asset: The asset; it is not modified.
        options: Size budget and target format.

    Returns:
        A copy of the asset with new ``textures`` (width/height are the new sizes, see
        :func:`texture_sizes` for the report).

    Raises:
        ImageError: A texture cannot be decoded safely (``pipeline.guards.image`` codes).
    """
    normal_maps = {m.normal_texture for m in asset.materials if m.normal_texture is not None}
    budget = Budget(options.pixels_in_flight)

    def process(index: int, texture: Texture) -> Texture:
        with budget.hold(texture.width * texture.height):
            lossless = options.lossless_normals and index in normal_maps
            return _process(texture, options, lossless=lossless)

    result = map_threads(
        lambda item: process(*item),
        enumerate(asset.textures),
        options.workers or 2 * available_cpus(),
    )
    for index, (texture, done) in enumerate(zip(asset.textures, result, strict=True)):
        logger.debug(
            "texture %d: %dx%d %s -> %dx%d %s (%d -> %d bytes)",
            index,
            texture.width,
            texture.height,
            texture.mime_type,
            done.width,
            done.height,
            done.mime_type,
            len(texture.data),
            len(done.data),
        )
    return replace(
        asset,
        primitives=list(asset.primitives),
        materials=list(asset.materials),
        textures=result,
        warnings=list(asset.warnings),
    )


def texture_sizes(asset: Asset) -> list[dict[str, int | str]]:
    """Per-texture sizes for report.json: width, height, bytes and MIME type."""
    return [
        {"width": t.width, "height": t.height, "bytes": len(t.data), "mime_type": t.mime_type}
        for t in asset.textures
    ]


def target_size(width: int, height: int, max_size: int) -> tuple[int, int]:
    """The size after fitting the longest side into ``max_size`` (never upscaled)."""
    longest = max(width, height)
    if longest <= max_size:
        return width, height
    scale = max_size / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _process(texture: Texture, options: TexturesOptions, *, lossless: bool) -> Texture:
    image = open_image(texture.data, options.limits, TEXTURE_FORMATS)
    # Pillow names JPEGs with an MPF block (most phone photos) "MPO"; the bytes are JPEG.
    source_format = "JPEG" if image.format == "MPO" else image.format or ""
    size = target_size(image.width, image.height, options.max_size)
    resized = size != image.size
    if _keepable(image, source_format) and _keep_original(source_format, resized, options.format):
        return _texture(strip_metadata(texture.data, source_format), source_format, size, texture)
    pixels = rgb_pixels(image)
    if resized:
        pixels = pixels.resize(size, Image.Resampling.LANCZOS)
    if options.format == "webp":
        encoded = encode(pixels, "WEBP", lossless=lossless)
        smaller_source = not resized and source_format in {"JPEG", "PNG"} and image.mode != "CMYK"
        if smaller_source and len(encoded) >= len(texture.data):
            stripped = strip_metadata(texture.data, source_format)
            return _texture(stripped, source_format, size, texture)
        return _texture(encoded, "WEBP", size, texture)
    out_format = _compat_format(source_format, pixels)
    return _texture(encode(pixels, out_format), out_format, size, texture)


def _keepable(image: Image.Image, source_format: str) -> bool:
    """Whether the original bytes can be shipped once stripped of metadata.

    An animated WebP keeps its frames in the container, so only its frame 0 is re-encoded (C5);
    MPO (second picture after EOI) and APNG (frames in fcTL/fdAT chunks) strip to frame 0.
    CMYK JPEGs are converted to RGB: AR viewers and some GPUs' decoders do not take them.
    """
    if source_format == "WEBP" and getattr(image, "n_frames", 1) > 1:
        return False
    return image.mode != "CMYK"


def _keep_original(source_format: str, resized: bool, target: TextureTarget) -> bool:
    if resized:
        return False
    if target == "webp":
        return source_format == "WEBP"
    return source_format in {"JPEG", "PNG"}


def _compat_format(source_format: str, pixels: Image.Image) -> str:
    if source_format in {"JPEG", "PNG"}:
        return source_format
    return "PNG" if pixels.mode == "RGBA" else "JPEG"


def _texture(data: bytes, image_format: str, size: tuple[int, int], source: Texture) -> Texture:
    return Texture(
        data=data, mime_type=_MIME[image_format], width=size[0], height=size[1], name=source.name
    )


def rgb_pixels(image: Image.Image) -> Image.Image:
    """A metadata-free RGB or RGBA copy; RGBA only when some pixel is not fully opaque.

    16-bit greyscale is scaled down to 8 bits (Pillow's ``convert`` would clip it to white).
    """
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        array = np.asarray(image, dtype=np.uint32)
        high = 65535 if image.mode != "I" or array.max(initial=0) > 255 else 255
        gray = (array * 255 // max(high, 1)).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    has_alpha = image.mode in {"RGBA", "LA", "La", "RGBa", "PA"} or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        alpha_min = rgba.getchannel("A").getextrema()[0]
        if isinstance(alpha_min, int) and alpha_min < 255:
            return _clean(rgba)
        return _clean(rgba.convert("RGB"))
    return _clean(image.convert("RGB"))


def _clean(image: Image.Image) -> Image.Image:
    """A copy with an empty ``info`` dict, so no encoder finds ICC/EXIF to carry over."""
    fresh = Image.new(image.mode, image.size)
    fresh.paste(image)
    return fresh


def encode(image: Image.Image, image_format: str, *, lossless: bool = False) -> bytes:
    """Encode with fixed parameters and no metadata (deterministic bytes).

    Args:
        image: RGB or RGBA pixels (``info`` is ignored).
        image_format: ``"WEBP"``, ``"JPEG"`` or ``"PNG"``.
        lossless: Lossless WebP.

    Returns:
        The encoded bytes.
    """
    out = BytesIO()
    if image_format == "WEBP":
        image.save(out, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD, lossless=lossless)
    elif image_format == "JPEG":
        image.convert("RGB").save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    else:
        image.save(out, "PNG", optimize=False, compress_level=6)
    return out.getvalue()


def strip_metadata(data: bytes, image_format: str) -> bytes:
    """Remove metadata from encoded bytes without touching the compressed pixels.

    Args:
        data: A JPEG, PNG or WebP file that Pillow has already decoded successfully.
        image_format: Its Pillow format name.

    Returns:
        The same image without EXIF/XMP/IPTC/ICC/comments/text; ``data`` itself when there
        was nothing to remove.
    """
    if image_format == "JPEG":
        return _strip_jpeg(data)
    if image_format == "PNG":
        return _strip_png(data)
    if image_format == "WEBP":
        return _strip_webp(data)
    return data


# JPEG markers kept before the first scan: APP0 (JFIF) and APP14 (Adobe colour transform, needed
# to decode CMYK/YCCK) plus every non-APP, non-COM marker (tables, frame header, restart interval).
_JPEG_APP_KEEP = {0xE0, 0xEE}


def _strip_jpeg(data: bytes) -> bytes:
    parts = [data[:2]]
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        segment = data[pos : pos + 2 + length]
        if marker == 0xDA:  # SOS: the rest is entropy-coded data up to EOI
            end = data.find(b"\xff\xd9", pos)
            # Drop anything after EOI: MPF secondary images carry their own EXIF (and GPS).
            parts.append(data[pos : end + 2] if end >= 0 else data[pos:])
            break
        is_app = 0xE0 <= marker <= 0xEF
        if not (marker == 0xFE or (is_app and marker not in _JPEG_APP_KEEP)):
            parts.append(segment)
        pos += 2 + length
    stripped = b"".join(parts)
    return data if stripped == data else stripped


# PNG chunks kept: the critical ones and tRNS. Everything else is metadata (tEXt, zTXt, iTXt,
# eXIf, tIME), colour information glTF ignores (iCCP, gAMA, cHRM, sRGB) or APNG frames.
_PNG_KEEP = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}


def _strip_png(data: bytes) -> bytes:
    parts = [data[:8]]
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos : pos + 12 + length]
        if kind in _PNG_KEEP:
            parts.append(chunk)
        pos += 12 + length
        if kind == b"IEND":
            break
    stripped = b"".join(parts)
    return data if stripped == data else stripped


_WEBP_DROP = {b"ICCP", b"EXIF", b"XMP "}
_VP8X_META_FLAGS = 0x20 | 0x08 | 0x04  # ICC, EXIF, XMP bits of the VP8X flags byte


def _strip_webp(data: bytes) -> bytes:
    parts: list[bytes] = []
    pos = 12
    while pos + 8 <= len(data):
        kind, length = struct.unpack("<4sI", data[pos : pos + 8])
        chunk = data[pos : pos + 8 + length + (length & 1)]  # RIFF chunks are padded to even
        if kind == b"VP8X":
            flags = chunk[8] & ~_VP8X_META_FLAGS & 0xFF
            chunk = chunk[:8] + bytes([flags]) + chunk[9:]
        if kind not in _WEBP_DROP:
            parts.append(chunk)
        pos += 8 + length + (length & 1)
    body = b"WEBP" + b"".join(parts)
    stripped = b"RIFF" + struct.pack("<I", len(body)) + body
    return data if stripped == data else stripped
