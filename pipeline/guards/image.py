"""Pillow behind an allowlist and a hard pixel cap (research-security.md C1-C6).

Every image the pipeline decodes, photo or texture, goes through :func:`open_image`:
``Image.open`` gets ``formats=`` so PSD/PDF/EPS/FITS/J2K plugins are never tried, the pixel cap
is checked from the header before any pixel is decoded, Pillow's ``DecompressionBombWarning`` is
an error, and the first frame is fully loaded here so truncated files fail inside the guard.
"""

from __future__ import annotations

import importlib
import logging
import threading
import warnings
from collections.abc import Sequence
from io import BytesIO

from PIL import Image, UnidentifiedImageError

from pipeline.errors import ImageError
from pipeline.limits import DEFAULT_LIMITS, Limits

logger = logging.getLogger(__name__)

DEFAULT_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP")
_HEIF_FORMATS = frozenset({"AVIF", "HEIF", "HEIC"})
# Pillow reports multi-picture JPEGs (camera MPO files) as "MPO"; they are still JPEG bytes.
MIME_TYPES = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
# ``warnings.catch_warnings`` swaps a process-wide filter list: two threads inside it at once
# could leave the wrong filters behind. Only the header parse (where Pillow's bomb check runs)
# is serialised; decoding and encoding run in parallel outside the lock.
_GUARD = threading.Lock()


def open_image(
    data: bytes, limits: Limits = DEFAULT_LIMITS, formats: Sequence[str] = DEFAULT_FORMATS
) -> Image.Image:
    """Open and fully decode the first frame of an encoded image.

    Args:
        data: The encoded image.
        limits: ``max_image_pixels`` is enforced from the header, before decoding.
        formats: Pillow format names to try; AVIF/HEIC need pillow-heif (optional).

    Returns:
        The loaded first frame (``Image.format`` still names the source format).

    Raises:
        ImageError: ``image_unsupported_format`` when the bytes are none of ``formats``,
            ``image_too_many_pixels`` for pixel floods, ``image_plugin_missing`` when AVIF/HEIC
            is asked for without pillow-heif, ``image_invalid`` for corrupt or truncated data.
    """
    image = _header(data, limits, formats)
    try:
        image.seek(0)  # C5: frame 0 only, whatever n_frames says.
        image.load()  # the costly part, outside the lock: decodes run in parallel threads
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot decode image: {exc}", code="image_invalid") from exc
    except Image.DecompressionBombWarning as exc:
        raise ImageError(str(exc), code="image_too_many_pixels") from exc
    return image


def _header(data: bytes, limits: Limits, formats: Sequence[str]) -> Image.Image:
    """Open ``data`` as one of ``formats`` and check its pixel count, decoding no pixels."""
    allowed = _register_plugins(formats)
    with _GUARD, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = _open(data, allowed)
        width, height = image.size
        if width <= 0 or height <= 0 or width * height > limits.max_image_pixels:
            raise ImageError(
                f"{width}x{height} pixels (max {limits.max_image_pixels})",
                code="image_too_many_pixels",
            )
    return image


def image_size(data: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[str, int, int]:
    """Guard a texture's header and return its (MIME type, width, height).

    Only the header is read (format allowlist, pixel cap): loaders call this for every texture,
    and the pixels are decoded, fully guarded, by :func:`open_image` where a step needs them
    (a truncated texture fails there with ``image_invalid``).

    Args:
        data: Encoded JPEG, PNG or WebP bytes.
        limits: As for :func:`open_image`.

    Returns:
        The MIME type of the detected format and the pixel size.

    Raises:
        ImageError: As for :func:`open_image`.
    """
    image = _header(data, limits, DEFAULT_FORMATS)
    return MIME_TYPES[str(image.format)], image.size[0], image.size[1]


def _open(data: bytes, allowed: list[str]) -> Image.Image:
    try:
        return Image.open(BytesIO(data), formats=allowed)
    except UnidentifiedImageError as exc:
        raise ImageError(
            f"not one of {', '.join(allowed)}", code="image_unsupported_format"
        ) from exc
    except Image.DecompressionBombWarning as exc:
        raise ImageError(str(exc), code="image_too_many_pixels") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(str(exc), code="image_too_many_pixels") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"cannot read image header: {exc}", code="image_invalid") from exc


def _register_plugins(formats: Sequence[str]) -> list[str]:
    """Upper-case the allowlist and register pillow-heif when AVIF/HEIC is asked for."""
    allowed = [name.upper() for name in formats]
    wanted = _HEIF_FORMATS.intersection(allowed)
    if not wanted:
        return allowed
    if "AVIF" in wanted and "AVIF" in Image.registered_extensions().values():
        wanted = wanted - {"AVIF"}
    if wanted:
        try:
            heif = importlib.import_module("pillow_heif")
        except ImportError as exc:
            raise ImageError(
                "AVIF/HEIC photos need the optional pillow-heif package",
                code="image_plugin_missing",
            ) from exc
        heif.register_heif_opener()
        if "AVIF" in wanted:
            heif.register_avif_opener()
    return allowed
