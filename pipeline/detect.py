"""Input format detection from magic bytes, never from a file name (research-security.md A3).

The size cap is checked before anything else looks at the bytes. Zips are classified by their
central directory (no member is inflated here): a ``.gltf``/``.glb`` member makes a glTF upload,
an ``.obj`` member an OBJ upload, anything else is unsupported.
"""

from __future__ import annotations

import logging
import re

from pipeline.errors import MeshError, TooLarge, UnsupportedFormat
from pipeline.guards.archive import member_names
from pipeline.guards.meshfile import STL_HEADER_BYTES, STL_RECORD_BYTES, stl_kind
from pipeline.limits import DEFAULT_LIMITS, Limits
from pipeline.model import Format

logger = logging.getLogger(__name__)

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
# Formats people upload by mistake (or on purpose, renamed): named in the error message.
_KNOWN_UNSUPPORTED = {
    b"%PDF": "PDF",
    b"8BPS": "PSD",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"\x1f\x8b": "gzip",
    b"7z\xbc\xaf": "7z",
    b"Rar!": "RAR",
    b"\x00\x00\x00\x0cjP  ": "JPEG 2000",
    b"SIMPLE  =": "FITS",
    b"%!PS": "PostScript",
    b"Kaydara FBX": "FBX",
    b"OFF": "OFF",
}
_OBJ_KEYWORDS = frozenset(
    b"v vt vn vp f l p g o s usemtl mtllib cstype deg curv curv2 surf parm trim hole "
    b"scrv sp end con bmat step call csh maplib usemap mg lod shadow_obj trace_obj "
    b"ctech stech bevel c_interp d_interp".split()
)
_OBJ_VERTEX = re.compile(rb"^v\s+[-+.\deE]+\s+[-+.\deE]+\s+[-+.\deE]+", re.MULTILINE)
_OBJ_SCAN_BYTES = 64 * 1024


def detect(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Format:
    """Identify an upload's format from its bytes.

    Args:
        data: The whole upload.
        limits: ``max_input_bytes`` and the zip caps used to list an archive.

    Returns:
        The detected format.

    Raises:
        MeshError: ``empty_input`` for zero bytes.
        TooLarge: ``too_large`` over ``max_input_bytes`` (checked first).
        UnsupportedFormat: ``unsupported_format`` for anything we do not load.
        ArchiveError: A zip whose directory is unreadable or names an unsafe path.
    """
    if not data:
        raise MeshError("the upload is empty", code="empty_input")
    if len(data) > limits.max_input_bytes:
        raise TooLarge(f"{len(data)} bytes (max {limits.max_input_bytes})", code="too_large")
    found = _binary_magic(data)
    if found is None and data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        found = _zip_format(data, limits)
    if found is None:
        found = _mesh_magic(data)
    if found is None:
        raise UnsupportedFormat(f"unrecognized content ({_describe(data)})")
    logger.debug("detected %s (%d bytes)", found, len(data))
    return found


def _binary_magic(data: bytes) -> Format | None:
    if data.startswith(b"glTF"):
        return Format.glb
    if data.startswith(_PNG):
        return Format.png
    if data.startswith(_JPEG):
        return Format.jpeg
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return Format.webp
    if data[4:8] == b"ftyp":
        return _ftyp_format(data)
    return None


def _ftyp_format(data: bytes) -> Format | None:
    """ISO BMFF (HEIF/AVIF): the major brand, then the compatible brands of the ftyp box."""
    size = int.from_bytes(data[:4], "big")
    box = data[8 : min(max(size, 16), 256)]
    brands = {box[i : i + 4] for i in range(0, len(box) - 3, 4)} - {b"\x00\x00\x00\x00"}
    if box[:4] in _AVIF_BRANDS or brands & _AVIF_BRANDS:
        return Format.avif
    if box[:4] in _HEIC_BRANDS or brands & _HEIC_BRANDS:
        return Format.heic
    return None


def _zip_format(data: bytes, limits: Limits) -> Format:
    suffixes = {name.rsplit(".", 1)[-1].lower() for name in member_names(data, limits)}
    if suffixes & {"gltf", "glb"}:
        return Format.gltf_zip
    if "obj" in suffixes:
        return Format.obj_zip
    raise UnsupportedFormat("a zip without a .gltf, .glb or .obj member")


def _mesh_magic(data: bytes) -> Format | None:
    if data.startswith((b"ply\n", b"ply\r\n")):
        return Format.ply
    # An STL's 80-byte header is free text, so an exact STL match wins over other magics.
    if stl_kind(data) is not None:
        return Format.stl
    for magic, name in _KNOWN_UNSUPPORTED.items():
        if data.startswith(magic):
            raise UnsupportedFormat(f"{name} files are not supported")
    if _looks_like_binary_stl(data):
        return Format.stl
    if _looks_like_obj(data[:_OBJ_SCAN_BYTES]):
        return Format.obj
    if data.lstrip()[:1] == b"{" and b'"asset"' in data[:_OBJ_SCAN_BYTES]:
        raise UnsupportedFormat("a bare .gltf: upload it zipped with its .bin and images")
    return None


def _looks_like_binary_stl(data: bytes) -> bool:
    """A body that is a whole number of 50-byte records is an STL even if its count lies.

    The count is then checked (and rejected) by pipeline.guards.meshfile with a precise code.
    """
    body = len(data) - STL_HEADER_BYTES
    return body >= STL_RECORD_BYTES and body % STL_RECORD_BYTES == 0 and not _is_text(data[:512])


def _looks_like_obj(head: bytes) -> bool:
    """Text whose lines are OBJ statements, with at least one ``v x y z`` line.

    Up to 10 % unknown lines are tolerated (exporters add oddities); random text is not OBJ.
    """
    if not _is_text(head) or _OBJ_VERTEX.search(head) is None:
        return False
    lines = [line.split(maxsplit=1) for line in head.splitlines()]
    words = [line[0] for line in lines if line and not line[0].startswith(b"#")]
    known = sum(1 for word in words if word in _OBJ_KEYWORDS)
    return known >= 0.9 * len(words)


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        return exc.start >= len(head) - 3
    return True


def _describe(data: bytes) -> str:
    return f"{len(data)} bytes starting {data[:8]!r}"
