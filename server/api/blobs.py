"""Serving blobs from the embedded store: ``GET/HEAD {prefix}/{key}``.

Mount with ``app.include_router(blobs.router, prefix=settings.blobs.local_url_prefix)``; the
store is ``app.state.blobs``. Store errors are raised as :class:`~server.errors.ExpoError` and
become ``{"error": {...}}`` in :mod:`server.api.errors` (an unsafe key is a 400, a missing one a
404). Conditional and range requests follow RFC 9110 (§13.1.2 If-None-Match, §13.1.5 If-Range,
§14 Range, single ranges only).
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response

from server.api.deps import BlobsDep
from server.storage.base import BlobInfo

router = APIRouter(tags=["blobs"])

DEFAULT_CACHE_CONTROL = "no-cache"
# Blobs are uploads: never let a browser sniff them into HTML, and if one is opened as a page,
# give it no power over the app's origin.
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
# Bounded digits: int() refuses strings over 4300 digits, and no blob is an exabyte.
_RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")


@router.api_route("/{key:path}", methods=["GET", "HEAD"], response_class=Response)
def read_blob(key: str, request: Request, store: BlobsDep) -> Response:
    """Read a stored blob (ranges and If-None-Match supported)."""
    info = store.head(key)
    headers = _headers(info)
    if _matches(request.headers.get("if-none-match"), info.etag):
        return Response(status_code=304, headers=headers)
    span = _range(request, info)
    if span is None:
        body = b"" if request.method == "HEAD" else store.get(key)
        return _response(request, 200, body, info.size, headers, info.content_type)
    if isinstance(span, str):  # "unsatisfiable"
        headers["Content-Range"] = f"bytes */{info.size}"
        return Response(status_code=416, headers=headers)
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    body = b"" if request.method == "HEAD" else store.get(key, start=start, end=end)
    return _response(request, 206, body, end - start + 1, headers, info.content_type)


def _headers(info: BlobInfo) -> dict[str, str]:
    return {
        "ETag": info.etag,
        "Cache-Control": info.cache_control or DEFAULT_CACHE_CONTROL,
        "Accept-Ranges": "bytes",
        **_SECURITY_HEADERS,
    }


def _response(
    request: Request, status: int, body: bytes, length: int, headers: dict[str, str], media: str
) -> Response:
    # A HEAD answer carries the length the GET body would have (RFC 9110 §9.3.2).
    if request.method == "HEAD":
        headers = {**headers, "Content-Length": str(length)}
    return Response(content=body, status_code=status, headers=headers, media_type=media)


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison against a list of entity tags, or ``*``."""
    if if_none_match is None:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or etag.removeprefix("W/") in {t.removeprefix("W/") for t in tags}


def _range(request: Request, info: BlobInfo) -> tuple[int, int] | str | None:
    """The inclusive span asked for, ``"unsatisfiable"``, or None for the whole object.

    Malformed, multi-range and stale If-Range requests get the whole object (§14.2 lets a
    server ignore Range).
    """
    header = request.headers.get("range")
    if header is None:
        return None
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != info.etag:
        return None  # §13.1.5: the client's copy is stale, send it all
    match = _RANGE.match(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    size = info.size
    if first == "":  # suffix range: the last n bytes
        length = int(last)
        if length == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - length), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        return None  # invalid range-spec: ignore it
    if start >= size:
        return "unsatisfiable"
    return start, end
