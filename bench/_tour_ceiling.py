"""The ceiling of bench/tours.py: a bare ``websockets`` server doing our fan-out and nothing else.

    python -m bench._tour_ceiling --port PORT [--hz 15]

What research-realtime.md §7 measured: ``websockets`` (``compression=None``) on uvloop keeps each
client's latest 24-byte avatar record (copied from its ``0x01`` pose, docs/protocol.md) and every
1/15 s sends every client one frame built like ours, a ``0x02`` header and the records of the
first 33 clients to join (no area of interest: 8 + 33 x 24 = 800 bytes), with one
``websockets.broadcast`` (non-blocking writes). It speaks just enough of our hello for the same
load generator: any ticket is accepted and answered ``{"type": "welcome", "you": {"id": n}}``.

Prints ``ready <port>`` on stdout once it listens; runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import struct
import sys
from collections.abc import Sequence

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

NEAR = 33
_HEADER = struct.Struct("<BBHHH")  # kind, version, tick, near, far
_RECORD = struct.Struct("<IBBhhhiii")  # id, flags, qi, q[3], x, y, z


class Ceiling:
    """The latest record of every client, in join order, and the tick loop that sends them."""

    def __init__(self, hz: float) -> None:
        self.hz = hz
        self.records: dict[ServerConnection, bytearray] = {}
        self.next_id = 0

    async def handle(self, connection: ServerConnection) -> None:
        try:
            hello = json.loads(await asyncio.wait_for(connection.recv(), 10.0))
        except (TimeoutError, ConnectionClosed, ValueError):
            await connection.close(4401, "hello expected")
            return
        if not isinstance(hello, dict) or hello.get("type") != "hello":
            await connection.close(4401, "hello expected")
            return
        self.next_id += 1
        avatar = self.next_id
        record = bytearray(_RECORD.pack(avatar, 2, 3, 0, 0, 0, 0, 1600, 0))
        await connection.send(json.dumps({"type": "welcome", "v": 1, "you": {"id": avatar}}))
        self.records[connection] = record
        try:
            async for message in connection:
                if isinstance(message, bytes) and len(message) == 25 and message[0] == 1:
                    record[4:] = message[5:]  # keep the id, take the rest of the client's record
        except ConnectionClosed:
            pass
        finally:
            del self.records[connection]

    async def ticks(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.hz
        deadline, tick = loop.time(), 0
        while True:  # the same schedule as server/tours/shell.py HallRuntime._ticks
            deadline += period
            now = loop.time()
            if deadline < now:
                deadline = now + period
            await asyncio.sleep(deadline - now)
            tick += 1
            near = list(itertools.islice(self.records.values(), NEAR))
            frame = _HEADER.pack(2, 1, tick & 0xFFFF, len(near), 0) + b"".join(near)
            broadcast(self.records, frame)


async def serve_ceiling(port: int, hz: float) -> None:
    """Listen on 127.0.0.1:``port`` and tick forever."""
    ceiling = Ceiling(hz)
    async with serve(
        ceiling.handle,
        "127.0.0.1",
        port,
        origins=[Origin("http://bench.local")],
        max_size=64 * 1024,
        max_queue=64,
        compression=None,
        ping_interval=20.0,
        ping_timeout=20.0,
    ):
        print(f"ready {port}", flush=True)
        await ceiling.ticks()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hz", type=float, default=15.0)
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(serve_ceiling(args.port, args.hz))
    return 0


if __name__ == "__main__":
    sys.exit(main())
