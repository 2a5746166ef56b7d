"""Request body cap counted in the ASGI receive path (research A1).

Checking ``Content-Length`` alone is bypassed by a chunked body, so the middleware counts the
bytes as the app reads them; past the cap it stops reading and answers 413 whatever the app
made of the truncated body.

The cap is ``max_bytes`` unless a :class:`PathCap` matches the request's method and path: the
upload routes take larger bodies (a 25 MiB multipart file, an 8 MiB resumable chunk) while every
other route keeps the small default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True, slots=True)
class PathCap:
    """A body cap for the requests whose method is ``method`` and whose path matches ``pattern``
    (a regular expression matched against the whole path)."""

    method: str
    pattern: str
    max_bytes: int


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, path_caps: Sequence[PathCap] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._caps = [(c.method.upper(), re.compile(c.pattern), c.max_bytes) for c in path_caps]

    def cap_for(self, method: str, path: str) -> int:
        """The body cap of a request: the first matching path cap's, else ``max_bytes``."""
        for cap_method, pattern, max_bytes in self._caps:
            if cap_method == method and pattern.fullmatch(path):
                return max_bytes
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.cap_for(scope["method"], scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(send, limit)
            return
        seen = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the app answers to a truncated body, the answer is 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            exceeded = True
        if exceeded and not started:
            await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "payload_too_large",
                    "message": f"request body exceeds {limit} bytes",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
