"""A small tour-protocol client for the socket tests: tickets over HTTP, then one websocket."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.tours.frames import Frame, decode_frame, encode_pose

ORIGIN = "http://127.0.0.1:8000"


def guest_headers(client: TestClient, name: str) -> dict[str, str]:
    response = client.post("/api/auth/guest", json={"display_name": name})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def ticket(client: TestClient, headers: dict[str, str], hall_id: str) -> tuple[str, str]:
    response = client.post(f"/api/halls/{hall_id}/tickets", headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    return body["ticket"], body["url"]


@dataclass
class Peer:
    """One connected client: what it received, decoded, and a way to wait for more."""

    ws: ClientConnection
    messages: list[dict[str, Any]] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def join(cls, url: str, hello: dict[str, Any], origin: str = ORIGIN) -> Peer:
        ws = await connect(url, origin=origin, compression=None, open_timeout=5)  # type: ignore[arg-type]
        peer = cls(ws)
        await ws.send(json.dumps({"type": "hello", "v": 1, **hello}))
        peer.reader = asyncio.get_running_loop().create_task(peer._read())
        await peer.wait("welcome")
        return peer

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                if isinstance(data, bytes):
                    self.frames.append(decode_frame(data))
                else:
                    self.messages.append(json.loads(data))
                self.changed.set()
        except ConnectionClosed:  # the tests look at ws.close_code
            self.changed.set()

    @property
    def me(self) -> int:
        return int(self.first("welcome")["you"]["id"])

    def first(self, kind: str) -> dict[str, Any]:
        return next(m for m in self.messages if m["type"] == kind)

    async def wait(self, kind: str, /, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """The first message of ``kind`` whose fields (or event fields) equal ``match``."""

        def found() -> dict[str, Any] | None:
            for message in self.messages:
                if message["type"] != kind:
                    continue
                fields = {**message, **message.get("event", {})}
                if all(fields.get(key) == value for key, value in match.items()):
                    return message
            return None

        async with asyncio.timeout(timeout):
            while (message := found()) is None:
                self.changed.clear()
                await self.changed.wait()
        return message

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> dict[str, Any]:
        """The first message (received so far or later) for which ``predicate`` is true."""
        async with asyncio.timeout(timeout):
            while True:
                for message in self.messages:
                    if predicate(message):
                        return message
                self.changed.clear()
                await self.changed.wait()

    async def wait_frame(self, predicate: Any, timeout: float = 5.0) -> Frame:
        async with asyncio.timeout(timeout):
            while True:
                for frame in self.frames:
                    if predicate(frame):
                        return frame
                self.changed.clear()
                await self.changed.wait()

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def move(self, x: float, z: float) -> None:
        await self.ws.send(encode_pose((x, 1.6, z), (0.0, 0.0, 0.0, 1.0)))

    async def close(self) -> None:
        await self.ws.close()
        if self.reader is not None:
            await self.reader
