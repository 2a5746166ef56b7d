"""What every upload passes, whichever way it came: size, format from magic bytes, kind, hash.

The format comes from ``pipeline.detect``, never from the file name nor the client's
Content-Type (research-security.md A3): 415 with the pipeline's code when it is unsupported, and
415 ``kind_mismatch`` when it does not fit the kind (a model for ``model``, a photo for ``photo``
and ``logo``). The stored Content-Type is the detected format's (A7). Keys are generated and the
file name is display metadata only, cleaned by :func:`clean_filename` (A4).
"""

from __future__ import annotations

import hashlib
import unicodedata
import uuid
from dataclasses import dataclass

from pipeline.detect import detect
from pipeline.errors import PipelineError, TooLarge, UnsupportedFormat
from pipeline.model import Format
from server.db.models import AssetKind
from server.errors import ExpoError, Invalid, PayloadTooLarge, UnsupportedMediaType

UPLOAD_PREFIX = "uploads/"
MAX_FILENAME_CHARS = 255
FALLBACK_FILENAME = "upload"

# What the stored object is served as: the detected format's type, never the client's.
CONTENT_TYPES: dict[Format, str] = {
    Format.glb: "model/gltf-binary",
    Format.gltf_zip: "application/zip",
    Format.obj_zip: "application/zip",
    Format.obj: "model/obj",
    Format.stl: "model/stl",
    Format.ply: "application/octet-stream",  # PLY has no registered media type
    Format.jpeg: "image/jpeg",
    Format.png: "image/png",
    Format.webp: "image/webp",
    Format.avif: "image/avif",
    Format.heic: "image/heic",
}


@dataclass(frozen=True, slots=True)
class Checked:
    """Bytes that passed the checks: their format, the type to store them as, their hash."""

    format: Format
    content_type: str
    sha256: str
    size: int


def new_key() -> str:
    """A fresh object key for an upload; nothing of the user's input is in it (A4)."""
    return f"{UPLOAD_PREFIX}{uuid.uuid4()}"


def clean_filename(name: str | None) -> str:
    """A display name from a client's file name: inert in a page, a log line or a header (A4).

    Control, format (bidi overrides, zero-width) and line/paragraph-separator characters are
    removed, only the last path part is kept (``../../x`` -> ``x``, ``C:\\a\\b.glb`` -> ``b.glb``),
    whitespace runs become one space, and the result is cut to 255 characters keeping a short
    extension. An empty result becomes ``upload``.
    """
    kept = "".join(" " if ch.isspace() else ch for ch in name or "" if _printable(ch))
    parts = [p.strip() for p in kept.replace("\\", "/").split("/")]
    last = next((p for p in reversed(parts) if p and p not in {".", ".."}), "")
    cleaned = " ".join(last.split())
    if len(cleaned) > MAX_FILENAME_CHARS:
        stem, dot, ext = cleaned.rpartition(".")
        if dot and stem and 0 < len(ext) <= 16:
            cleaned = stem[: MAX_FILENAME_CHARS - len(ext) - 1] + "." + ext
        else:
            cleaned = cleaned[:MAX_FILENAME_CHARS]
    return cleaned or FALLBACK_FILENAME


def _printable(ch: str) -> bool:
    category = unicodedata.category(ch)
    return not category.startswith("C") and category not in {"Zl", "Zp"}


def check_bytes(data: bytes, kind: AssetKind, *, max_bytes: int) -> Checked:
    """Check an upload's bytes for ``kind``.

    Args:
        data: the whole file.
        kind: what the file is uploaded as.
        max_bytes: the size cap of the way it came in.

    Returns:
        The detected format, the Content-Type to store it with, its SHA-256 and size.

    Raises:
        PayloadTooLarge: ``upload_too_large`` over ``max_bytes``; the pipeline's ``too_large``.
        UnsupportedMediaType: the pipeline's ``unsupported_format``; ``kind_mismatch`` when the
            format does not fit ``kind``.
        Invalid: another pipeline refusal at detection (``empty_input``, ``archive_*``).
    """
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"the file has {len(data)} bytes (max {max_bytes})", code="upload_too_large"
        )
    try:
        fmt = detect(data)
    except PipelineError as exc:
        raise _refusal(exc) from exc
    if fmt.is_photo != (kind is not AssetKind.model):
        wanted = (
            "a 3D model" if kind is AssetKind.model else "a photo (JPEG, PNG, WebP, AVIF, HEIC)"
        )
        raise UnsupportedMediaType(
            f"a {kind.value} upload must be {wanted}; this file is {fmt.value}",
            code="kind_mismatch",
        )
    return Checked(fmt, CONTENT_TYPES[fmt], hashlib.sha256(data).hexdigest(), len(data))


def _refusal(exc: PipelineError) -> ExpoError:
    """The HTTP-level error for a pipeline refusal, keeping the pipeline's code."""
    if isinstance(exc, UnsupportedFormat):
        return UnsupportedMediaType(exc.message, code=exc.code)
    if isinstance(exc, TooLarge):
        return PayloadTooLarge(exc.message, code=exc.code)
    return Invalid(exc.message, code=exc.code)
