"""Zip archives read fully in memory under our own caps (research-security.md B1-B5).

Nothing is ever extracted to disk and no member name is ever used as a path: the result is a
``dict`` from a normalized member path to its bytes, and relative references (from a .gltf, an
.obj or an .mtl) resolve only to members of that dict through :func:`resolve`.

CPython 3.11.7 lacks the overlapping-entry check of gh-109858, and ``ZipInfo`` sizes are the
attacker's word, so sizes are counted while inflating in chunks, never trusted from headers.
"""

from __future__ import annotations

import io
import itertools
import logging
import posixpath
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from urllib.parse import unquote

from pipeline.errors import ArchiveError, TooLarge
from pipeline.limits import DEFAULT_LIMITS, Limits

logger = logging.getLogger(__name__)

ZIP_MAGIC = b"PK\x03\x04"
_EOCD_MAGIC = b"PK\x05\x06"
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_CHUNK = 64 * 1024
# A tiny highly compressible member (a few KiB of zeros) is legitimate: the ratio cap only
# applies once a member has produced this many bytes.
_RATIO_GRACE_BYTES = 1024 * 1024
# The central directory is parsed by zipfile into Python objects; bound it before that happens.
_CD_BYTES_PER_ENTRY = 4096
MAX_NAME_BYTES = 255
MAX_DEPTH = 8
_NESTED_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!", b"BZh")
_NESTED_SUFFIXES = (".zip", ".gz", ".tgz", ".7z", ".rar", ".tar", ".bz2", ".xz", ".3mf")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_S_IFMT = 0o170000
_S_IFLNK = 0o120000
_S_IFDIR = 0o040000
# Resource forks macOS adds to zips: never content, skipped silently (still counted in caps).
_IGNORED_PREFIXES = ("__MACOSX/",)


@dataclass(slots=True)
class _Budget:
    """Bytes inflated so far across all members."""

    total: int = 0


def read_zip(data: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, bytes]:
    """Read every member of a zip into memory after checking it against ``limits``.

    Args:
        data: The whole archive.
        limits: Entry, size and ratio caps.

    Returns:
        Normalized member path -> member bytes, in archive order. Directories and ``__MACOSX/``
        entries are left out.

    Raises:
        ArchiveError: Malformed archive, zip bomb, unsafe name, link, encryption, nesting.
        TooLarge: Total or per-member uncompressed size over the caps.
    """
    infos = _infolist(data, limits)
    spans = [_check_entry(data, info) for info in infos]
    _check_overlaps(spans)
    members: dict[str, bytes] = {}
    folded: set[str] = set()
    budget = _Budget()
    for info, (_header, start, _end) in zip(infos, spans, strict=True):
        name = normalize_member_name(info.filename)
        if name is None or name.startswith(_IGNORED_PREFIXES):
            continue
        if name.casefold() in folded:
            raise ArchiveError(f"duplicate member {name!r}", code="archive_duplicate_name")
        folded.add(name.casefold())
        body = _inflate(data, info, start, limits, budget)
        if body.startswith(_NESTED_MAGICS) or name.lower().endswith(_NESTED_SUFFIXES):
            raise ArchiveError(f"nested archive {name!r}", code="archive_nested")
        members[name] = body
    return members


def member_names(data: bytes, limits: Limits = DEFAULT_LIMITS) -> list[str]:
    """The normalized file names in a zip's central directory, without inflating anything.

    Args:
        data: The whole archive.
        limits: ``max_zip_entries``.

    Returns:
        Member paths in archive order, without directories and ``__MACOSX/`` entries.

    Raises:
        ArchiveError: As for :func:`read_zip`, for the checks that need no inflating.
    """
    names = [normalize_member_name(info.filename) for info in _infolist(data, limits)]
    return [name for name in names if name is not None and not name.startswith(_IGNORED_PREFIXES)]


def _infolist(data: bytes, limits: Limits) -> list[zipfile.ZipInfo]:
    _check_directory_size(data, limits)
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, struct.error, OSError) as exc:
        raise ArchiveError(f"not a readable zip: {exc}", code="archive_invalid") from exc
    if len(infos) > limits.max_zip_entries:
        raise ArchiveError(
            f"{len(infos)} entries (max {limits.max_zip_entries})",
            code="archive_too_many_entries",
        )
    return infos


def normalize_member_name(raw: str) -> str | None:
    """A member's normalized path, ``None`` for a directory, or an error for an unsafe name.

    Args:
        raw: The name as stored in the central directory.

    Returns:
        The path with ``.`` components removed, or ``None`` for directory entries.

    Raises:
        ArchiveError: ``archive_unsafe_path`` for absolute, drive-letter, backslash, NUL, ``..``,
            over-long or over-deep names.
    """
    if raw.endswith("/"):
        return None
    unsafe = (
        not raw
        or "\\" in raw
        or "\x00" in raw
        or raw.startswith("/")
        or re.match(r"^[A-Za-z]:", raw) is not None
        or len(raw.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES
    )
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if unsafe or ".." in parts or not parts or len(parts) > MAX_DEPTH:
        raise ArchiveError(f"unsafe member name {raw!r}", code="archive_unsafe_path")
    return "/".join(parts)


def resolve(members: dict[str, bytes], base_member: str, reference: str) -> bytes:
    """The bytes of the member that ``reference`` names, relative to ``base_member``.

    Percent-escapes are decoded first (glTF 2.0 §3.3.4 URIs are RFC 3986 references), so
    ``%2e%2e/`` is ``../``. Backslashes (Windows-authored MTL files) count as ``/``. When the
    exact path is missing, a unique case-insensitive match is accepted.

    Args:
        members: The upload's members, from :func:`read_zip`.
        base_member: The member that holds the reference ("" for the archive root).
        reference: The relative reference as written in the file.

    Returns:
        The referenced member's bytes.

    Raises:
        ArchiveError: ``archive_reference_outside`` for schemes, absolute paths or ``..`` that
            escapes the archive root; ``archive_member_missing`` when no member matches.
    """
    path = _reference_path(base_member, reference)
    if path in members:
        return members[path]
    matches = [name for name in members if name.casefold() == path.casefold()]
    if len(matches) == 1:
        return members[matches[0]]
    raise ArchiveError(f"{reference!r} is not in the upload", code="archive_member_missing")


def _reference_path(base_member: str, reference: str) -> str:
    decoded = unquote(reference.strip()).replace("\\", "/")
    if (
        not decoded
        or _SCHEME.match(decoded)
        or decoded.startswith("/")
        or "\x00" in decoded
        or "?" in decoded
        or "#" in decoded
    ):
        raise ArchiveError(
            f"reference {reference!r} is not relative", code="archive_reference_outside"
        )
    parts: list[str] = [p for p in posixpath.dirname(base_member).split("/") if p]
    for part in decoded.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ArchiveError(
                    f"reference {reference!r} leaves the upload", code="archive_reference_outside"
                )
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def _check_directory_size(data: bytes, limits: Limits) -> None:
    """Bound the central directory before zipfile turns it into objects (ASVS 5.2.3)."""
    tail_start = max(0, len(data) - (65535 + 22))
    at = data.rfind(_EOCD_MAGIC, tail_start)
    if at < 0 or at + 22 > len(data):
        raise ArchiveError("no end of central directory record", code="archive_invalid")
    _disk, _cd_disk, _here, entries, cd_size, _cd_offset, _comment = struct.unpack_from(
        "<HHHHIIH", data, at + 4
    )
    if entries != 0xFFFF and entries > limits.max_zip_entries:
        raise ArchiveError(
            f"{entries} entries (max {limits.max_zip_entries})", code="archive_too_many_entries"
        )
    if cd_size != 0xFFFFFFFF and cd_size > _CD_BYTES_PER_ENTRY * limits.max_zip_entries:
        raise ArchiveError(f"central directory of {cd_size} bytes", code="archive_too_many_entries")


def _check_entry(data: bytes, info: zipfile.ZipInfo) -> tuple[int, int, int]:
    """Reject what we never read; return (local header offset, data start, data end)."""
    if info.flag_bits & 0x1:
        raise ArchiveError(f"encrypted member {info.filename!r}", code="archive_encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ArchiveError(
            f"compression method {info.compress_type} in {info.filename!r}",
            code="archive_unsupported_method",
        )
    mode = (info.external_attr >> 16) & _S_IFMT
    if mode == _S_IFLNK:
        raise ArchiveError(f"symlink member {info.filename!r}", code="archive_symlink")
    offset = info.header_offset
    if offset < 0 or offset + _LOCAL_HEADER.size > len(data):
        raise ArchiveError(f"member {info.filename!r} outside the file", code="archive_invalid")
    fields = _LOCAL_HEADER.unpack_from(data, offset)
    if fields[0] != ZIP_MAGIC:
        raise ArchiveError(f"bad local header for {info.filename!r}", code="archive_invalid")
    start = offset + _LOCAL_HEADER.size + fields[9] + fields[10]
    end = start + info.compress_size
    if end > len(data):
        raise ArchiveError(f"member {info.filename!r} is truncated", code="archive_invalid")
    return offset, start, end


def _check_overlaps(spans: list[tuple[int, int, int]]) -> None:
    """Fifield's non-recursive zip bomb reuses one deflate stream from many headers (gh-109858).

    Each member occupies [local header offset, end of data); no two may overlap. The local
    header starts 30 + name + extra bytes before the data, so the span begins at the header.
    """
    headers = sorted((header, end) for header, _start, end in spans)
    for (_header_a, end_a), (header_b, _end_b) in itertools.pairwise(headers):
        if header_b < end_a:
            raise ArchiveError("overlapping members (zip bomb)", code="archive_overlap")


def _inflate(
    data: bytes, info: zipfile.ZipInfo, start: int, limits: Limits, budget: _Budget
) -> bytes:
    """Inflate one member in chunks, counting the bytes actually produced."""
    raw = memoryview(data)[start : start + info.compress_size]
    cap = min(limits.max_zip_member_bytes, limits.max_zip_total_bytes - budget.total)
    if info.compress_type == zipfile.ZIP_STORED:
        body = bytes(raw)
        _check_growth(info, len(body), len(raw), cap, limits)
    else:
        body = _inflate_deflate(info, raw, cap, limits)
    if len(body) != info.file_size or zlib.crc32(body) != info.CRC:
        raise ArchiveError(
            f"member {info.filename!r} does not match its recorded size or CRC",
            code="archive_invalid",
        )
    budget.total += len(body)
    return body


def _inflate_deflate(info: zipfile.ZipInfo, raw: memoryview, cap: int, limits: Limits) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    consumed = 0
    pending = b""
    try:
        while True:
            if not pending:
                if consumed >= len(raw):
                    break
                pending = bytes(raw[consumed : consumed + _CHUNK])
                consumed += len(pending)
            out += inflater.decompress(pending, _CHUNK)
            pending = inflater.unconsumed_tail
            _check_growth(info, len(out), consumed, cap, limits)
            if inflater.eof:
                break
        # All input has been fed, so flush only drains zlib's window (<= 32 KiB).
        out += inflater.flush()
    except zlib.error as exc:
        raise ArchiveError(
            f"corrupt member {info.filename!r}: {exc}", code="archive_invalid"
        ) from exc
    _check_growth(info, len(out), consumed, cap, limits)
    return bytes(out)


def _check_growth(
    info: zipfile.ZipInfo, produced: int, consumed: int, cap: int, limits: Limits
) -> None:
    if produced > cap:
        raise TooLarge(
            f"member {info.filename!r} inflates past {cap} bytes", code="archive_too_large"
        )
    if produced > _RATIO_GRACE_BYTES and produced > limits.max_zip_ratio * max(consumed, 1):
        raise ArchiveError(
            f"member {info.filename!r} inflates more than {limits.max_zip_ratio:g}:1",
            code="archive_ratio",
        )
