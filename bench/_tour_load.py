"""The lean load generator of bench/tours.py: N raw websocket clients at 15 Hz, one uvloop process.

    python -m bench._tour_load --url ws://HOST:PORT/ws/halls/ID --clients N --seconds S
        [--api http://HOST:PORT] [--warmup W] [--observers 50] [--server-pid PID] [--profile]

Prints progress on stderr and one JSON object, the counters of the measurement window, as the
last line of stdout. With ``--api`` each client gets a guest token and a ticket from the REST
API right before it connects (tickets live 30 s); without it the ticket is a dummy (the ceiling
accepts any).

Why hand-written: a generator built on the ``websockets`` client costs ~53 % of a core at 1,000
clients and adds its own delay (research-realtime.md §7). Each client here is an
``asyncio.Protocol``: the opening handshake by hand (RFC 6455 §4.1), masked client frames
(§5.3), server frames parsed in place in one bytearray (§5.2: FIN+opcode, 7/16/64-bit lengths).
A pose frame to a non-observer costs a header parse and two additions.

Poses. Client i walks a 1 m circle at 0.4 m/s around a point of a 60 x 40 m hall; its clients
sit in 32 send phases spread over the 1/15 s period (:func:`send_slot`). The head height carries the send counter:
``y = Y_BASE_MM + seq`` (the area of interest ignores y), so a record in a frame names the send
it came from. Latency is measured by the ``--observers`` clients (spread over the connection
order, so over the server's fan-out order): for each near record whose counter it has not seen
yet from that sender, one sample (send time, arrival time, frame tick). See
``bench/_tour_latency.py`` for the server-added latency derived from them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import math
import os
import random
import signal
import struct
import sys
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
import psutil  # type: ignore[import-untyped]

from bench._tour_latency import latency_samples

HZ = 15.0
SLOTS = 32  # send phases per period
RING = 64  # send times kept per client (4 s at 15 Hz): older sends are not looked up
Y_BASE_MM = 2_000  # above the 1.6 m the server gives a joining avatar: never read as a counter
MAX_SEQ = 90_000  # y stays below the protocol's 100 m
HALL_W, HALL_D, RADIUS, SPEED = 60.0, 40.0, 1.0, 0.4
ORIGIN = "http://bench.local"
BATCH = 50  # clients whose tickets are fetched, then connected, together
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3

_POSE = struct.Struct("<B4xBBhhhiii")  # docs/protocol.md 0x01: kind, id 0, flags, qi, q, x, y, z
_NEAR = struct.Struct("<I12xi4x")  # id and y of a 24-byte avatar record
_S16 = 32767 * math.sqrt(2.0)
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
_OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 1, 2, 8, 9, 10


# --- RFC 6455 framing (pure) ---


def mask_bytes(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte masking ``key`` repeated (RFC 6455 §5.3)."""
    size = len(payload)
    stream = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        size, "little"
    )


def client_frame(opcode: int, payload: bytes, key: bytes) -> bytes:
    """One final, masked client frame (RFC 6455 §5.2) of ``payload``."""
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, 0x80 | size))
    elif size < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + key + mask_bytes(payload, key)


def next_frame(buf: bytes | bytearray, pos: int) -> tuple[int, int, int] | None:
    """The server frame at ``pos``: (opcode, payload start, end), or None while incomplete.

    Server frames are unmasked (RFC 6455 §5.1), so the payload is read in place.
    """
    have = len(buf) - pos
    if have < 2:
        return None
    size = buf[pos + 1] & 0x7F
    start = pos + 2
    if size == 126:
        if have < 4:
            return None
        size, start = (buf[pos + 2] << 8) | buf[pos + 3], pos + 4
    elif size == 127:
        if have < 10:
            return None
        size, start = int.from_bytes(buf[pos + 2 : pos + 10], "big"), pos + 10
    end = start + size
    if end > len(buf):
        return None
    return buf[pos] & 0x0F, start, end


def handshake(host: str, path: str, key: str) -> bytes:
    """The opening handshake request (RFC 6455 §4.1) with the bench's Origin."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Origin: {ORIGIN}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def accept_for(key: str) -> str:
    """The Sec-WebSocket-Accept a server must answer to ``key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()  # noqa: S324


def pose_message(x_mm: int, y_mm: int, z_mm: int, yaw_q: int) -> bytes:
    """A 25-byte ``0x01`` pose: turned about +y (``yaw_q`` = sin(yaw/2) x 32767√2, |yaw| <= π/2)."""
    return _POSE.pack(1, 0, 3, 0, yaw_q, 0, x_mm, y_mm, z_mm)


def send_slot(index: int) -> int:
    """Client ``index``'s send phase, of SLOTS: a golden-ratio sequence, so the phases of any run
    of consecutive clients (the first 33, whose records the ceiling sends) spread evenly over
    the period; the tick cut-offs are estimated from them (bench/_tour_latency.py)."""
    return int((index * _GOLDEN) % 1.0 * SLOTS)


# --- the clients ---


class Client(asyncio.Protocol):
    """One raw websocket client: handshake, hello, poses out, frames in."""

    def __init__(self, run: Run, index: int, ticket: str, observer: bool) -> None:
        self.run, self.index, self.ticket, self.observer = run, index, ticket, observer
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.key = base64.b64encode(os.urandom(16)).decode()
        self.open = False
        self.avatar = 0
        self.joined: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.frames = self.bytes = self.seq = 0
        self.closed: int | None = None
        self.sent = [0.0] * RING
        self.seen: dict[int, int] = {}  # observers: sender avatar -> last counter seen
        rng = random.Random(index)  # noqa: S311 - seeded positions, not secrets
        self.cx = rng.uniform(-HALL_W / 2 + RADIUS, HALL_W / 2 - RADIUS)
        self.cz = rng.uniform(-HALL_D / 2 + RADIUS, HALL_D / 2 - RADIUS)
        self.angle = rng.uniform(0.0, 2 * math.pi)
        self.yaw_q = round(math.sin(rng.uniform(-0.7, 0.7) / 2) * _S16)

    def itself(self) -> Client:
        """The protocol factory of this client's connection."""
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass, but has its methods
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(handshake(self.run.host, self.run.path, self.key))

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self.closed is None:
            self.closed = 1006
        if not self.joined.done():
            self.joined.set_exception(ConnectionError(f"client {self.index}: closed {self.closed}"))

    def data_received(self, data: bytes) -> None:
        self.bytes += len(data)
        buf = self.buf
        buf += data
        if not self.open and not self._upgrade():
            return
        pos = 0
        while (frame := next_frame(buf, pos)) is not None:
            opcode, start, pos = frame
            if opcode == _OP_BINARY:
                self.frames += 1
                if self.observer:
                    self.run.observe(self, buf, start, pos)
            elif opcode != _OP_TEXT or not self.joined.done():
                self._control(opcode, bytes(buf[start:pos]))
        if pos:
            del buf[:pos]

    def _upgrade(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[: end + 4]
        if not head.startswith("HTTP/1.1 101") or accept_for(self.key) not in head:
            self._fail(f"handshake refused: {head.splitlines()[0]!r}")
            return False
        self.open = True
        hello = {"type": "hello", "v": 1, "ticket": self.ticket}
        self._write(_OP_TEXT, json.dumps(hello).encode())
        return True

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == _OP_TEXT:  # the first text message: welcome
            message = json.loads(payload)
            if message.get("type") != "welcome":
                self._fail(f"expected welcome, got {message.get('type')!r}")
                return
            self.avatar = int(message["you"]["id"])
            self.joined.set_result(self.avatar)
        elif opcode == _OP_PING:
            self._write(_OP_PONG, payload)
        elif opcode == _OP_CLOSE:
            self.closed = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self._write(_OP_CLOSE, payload[:2])
            self.close()

    def _write(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload, self.run.mask))

    def _fail(self, why: str) -> None:
        if not self.joined.done():
            self.joined.set_exception(ConnectionError(f"client {self.index}: {why}"))
        self.close()

    def close(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.close()

    def send_pose(self, now: float) -> None:
        """Write the next pose (the hot path: 15 a second per client)."""
        seq = self.seq
        self.seq = seq + 1
        angle = self.angle + now * (SPEED / RADIUS)
        x = int((self.cx + RADIUS * math.cos(angle)) * 1000)
        z = int((self.cz + RADIUS * math.sin(angle)) * 1000)
        payload = _POSE.pack(1, 0, 3, 0, self.yaw_q, 0, x, Y_BASE_MM + seq % MAX_SEQ, z)
        masked = (int.from_bytes(payload, "little") ^ self.run.mask25).to_bytes(25, "little")
        self.sent[seq % RING] = now
        assert self.transport is not None
        self.transport.write(self.run.pose_head + masked)


class Run:
    """The clients, the send schedule and the counters of one benchmark run."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        url = urlsplit(args.url)
        self.address = (url.hostname or "127.0.0.1", url.port or 80)
        self.host, self.path = url.netloc, url.path
        self.mask = os.urandom(4)
        self.mask25 = int.from_bytes((self.mask * 7)[:25], "little")
        self.pose_head = bytes((0x80 | _OP_BINARY, 0x80 | 25)) + self.mask
        self.clients: list[Client] = []
        self.by_avatar: dict[int, Client] = {}
        self.slots: list[list[Client]] = [[] for _ in range(SLOTS)]
        self.recording = False
        self.window_start = 0.0
        self.sends, self.arrivals, self.ticks = array("d"), array("d"), array("q")
        self.lags = array("d")
        self.skipped_frames = 0  # observed frames whose records are not all 24 bytes
        self.stopping = False

    def observe(self, client: Client, buf: bytearray, start: int, end: int) -> None:
        """Latency samples from one frame to an observer: its near records not seen before."""
        now = time.monotonic()
        if not self.recording:
            return
        near = buf[start + 4] | (buf[start + 5] << 8)
        far = buf[start + 6] | (buf[start + 7] << 8)
        if end - start != 8 + 24 * near + 10 * far:  # hand records: this parser skips the frame
            self.skipped_frames += 1
            return
        tick = buf[start + 2] | (buf[start + 3] << 8)
        seen, by_avatar = client.seen, self.by_avatar
        for avatar, y in _NEAR.iter_unpack(buf[start + 8 : start + 8 + 24 * near]):
            seq = y - Y_BASE_MM
            sender = by_avatar.get(avatar)
            if sender is None or sender is client or seq <= seen.get(avatar, -1):
                continue
            seen[avatar] = seq
            if not 0 < sender.seq - seq <= RING:
                continue
            sent = sender.sent[seq % RING]
            if sent >= self.window_start:
                self.sends.append(sent)
                self.arrivals.append(now)
                self.ticks.append(tick)

    async def send_loop(self) -> None:
        """Every client sends a pose each period, in its slot's phase; lateness is recorded."""
        step = 1.0 / HZ / SLOTS
        origin, k = time.monotonic(), 0
        while not self.stopping:
            target = origin + k * step
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            if self.recording:
                self.lags.append(now - target)
            for client in self.slots[k % SLOTS]:
                if client.open:
                    client.send_pose(now)
            k += 1
            if now - target > 1.0 / HZ:  # a period behind: skip, never bunch the sends
                k = math.ceil((now - origin) / step)

    async def connect(self) -> None:
        """Connect every client, a batch at a time, each batch with fresh tickets."""
        loop = asyncio.get_running_loop()
        count, observers = self.args.clients, max(1, min(self.args.observers, self.args.clients))
        watched = {round(i * count / observers) for i in range(observers)}
        for first in range(0, count, BATCH):
            indices = range(first, min(first + BATCH, count))
            tickets = await self.tickets(len(indices))
            batch = [
                Client(self, i, t, i in watched) for i, t in zip(indices, tickets, strict=True)
            ]
            await asyncio.gather(*(loop.create_connection(c.itself, *self.address) for c in batch))
            await asyncio.wait_for(asyncio.gather(*(c.joined for c in batch)), 30.0)
            for client in batch:
                self.clients.append(client)
                self.by_avatar[client.avatar] = client
                self.slots[send_slot(client.index)].append(client)
            print(f"  {len(self.clients)} clients connected", file=sys.stderr)

    async def tickets(self, count: int) -> list[str]:
        """``count`` tickets: a guest token and a ticket each from the API, or dummies."""
        if not self.args.api:
            return ["bench"] * count
        import httpx

        hall = self.path.rstrip("/").rsplit("/", 1)[-1]
        async with httpx.AsyncClient(base_url=self.args.api, timeout=30.0) as http:

            async def one(i: int) -> str:
                token = await http.post("/api/auth/guest", json={"display_name": f"bench {i}"})
                token.raise_for_status()
                headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
                ticket = await http.post(f"/api/halls/{hall}/tickets", headers=headers)
                ticket.raise_for_status()
                return str(ticket.json()["ticket"])

            return list(await asyncio.gather(*(one(len(self.clients) + i) for i in range(count))))


def _cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _busy_cpus() -> list[float]:
    """Busy seconds of each CPU so far (everything but idle and I/O wait)."""
    return [
        t.user + t.nice + t.system + t.irq + t.softirq + t.steal for t in psutil.cpu_times(True)
    ]


def _ms(values: npt.NDArray[np.float64], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 2) if len(values) else None


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Connect, warm up, measure for ``args.seconds``; the window's counters."""
    run = Run(args)
    started = time.monotonic()
    sender = asyncio.get_running_loop().create_task(run.send_loop())
    try:
        await run.connect()
        connect_seconds = time.monotonic() - started
        await asyncio.sleep(args.warmup)
        before = [(c.frames, c.bytes) for c in run.clients]
        server0, own0 = _cpu_seconds(args.server_pid), time.process_time()
        busy0 = _busy_cpus()
        if args.profile and args.server_pid:
            os.kill(args.server_pid, signal.SIGUSR1)
        run.window_start = t0 = time.monotonic()
        run.recording = True
        await asyncio.sleep(args.seconds)
        run.recording = False
        wall = time.monotonic() - t0
        server_cpu, own_cpu = _cpu_seconds(args.server_pid) - server0, time.process_time() - own0
        busy = [b - b0 for b, b0 in zip(_busy_cpus(), busy0, strict=True)]
        if args.profile and args.server_pid:
            os.kill(args.server_pid, signal.SIGUSR2)
        frames = sum(c.frames - f for c, (f, _) in zip(run.clients, before, strict=True))
        received = sum(c.bytes - b for c, (_, b) in zip(run.clients, before, strict=True))
        # before this process closes its own sockets: the server's closes only
        closed = Counter(str(c.closed) for c in run.clients if c.closed is not None)
    finally:
        run.stopping = True
        await sender
        for client in run.clients:
            client.close()
    e2e, added = latency_samples(run.sends, run.arrivals, run.ticks, HZ)
    lags = np.asarray(run.lags)
    return {
        "clients": len(run.clients),
        "seconds": wall,
        "connect_seconds": connect_seconds,
        "frames": frames,
        "expected_frames": len(run.clients) * wall * HZ,
        "bytes": received,
        "server_cpu": server_cpu / wall if args.server_pid else None,
        "generator_cpu": own_cpu / wall,
        "cpu_busy": [b / wall for b in busy],
        "samples": len(e2e),
        "skipped_frames": run.skipped_frames,
        "e2e_ms": [_ms(e2e, 50), _ms(e2e, 99)],
        "added_ms": [_ms(added, 50), _ms(added, 99)],
        "send_lag_ms": [_ms(lags, 99), _ms(lags, 100)],
        "closed": dict(closed),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--url", required=True, help="ws://host:port/ws/halls/<id>")
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True, help="the measurement window")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after the last join")
    parser.add_argument("--observers", type=int, default=50, help="clients that measure latency")
    parser.add_argument("--api", help="the REST API for guest tokens and tickets")
    parser.add_argument("--server-pid", type=int, help="whose CPU time to measure")
    parser.add_argument("--profile", action="store_true", help="SIGUSR1/SIGUSR2 the server")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or (args.seconds + 600) * HZ > MAX_SEQ:
        parser.error("--clients must be positive and --seconds in (0, 5,000)")
    import uvloop

    result = uvloop.run(measure(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
