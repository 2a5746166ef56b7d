"""A flaky HTTP proxy for tests: in front of an S3 endpoint, it fails some requests on purpose.

:class:`FlakyProxy` listens on a free loopback port and forwards each request, unchanged, to the
upstream (SeaweedFS's S3 gateway). Signatures stay valid because nothing is rewritten: the
client signs for the proxy's ``Host`` and the upstream checks what it receives. For a fraction of
the requests, drawn from a seeded random generator, it does something else instead
(:class:`FaultPlan`):

    error        answers 503 ``SlowDown`` or 500 ``InternalError`` (S3's XML), not forwarded
    error_after  forwards, then answers 500 ``InternalError``: the request took effect upstream
                 but the client sees a failure (a PUT stored, its answer lost)
    reset        resets the connection (RST, no answer), not forwarded
    delay        forwards after a pause

The sequence of decisions is fixed by the seed (the n-th request to arrive gets the n-th draw);
which request is n-th depends on the threads of the clients. :attr:`FlakyProxy.counts` says what
was done, by kind and by method, for a test's failure message.
"""

from __future__ import annotations

import http.client
import logging
import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

Fault = Literal["forward", "error", "error_after", "reset", "delay"]
# Hop-by-hop headers (RFC 9110 §7.6.1) are the proxy's own business; the body is re-framed.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "proxy-connection"})
_ERRORS = (
    (503, "SlowDown", "Please reduce your request rate."),
    (500, "InternalError", "We encountered an internal error. Please try again."),
)
_UPSTREAM_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """How often each fault happens, as fractions of all requests (their sum must be <= 1).

    Attributes:
        error: answer an S3 error without forwarding.
        error_after: forward, then answer an S3 error.
        reset: reset the connection without forwarding.
        delay: forward after a pause drawn from ``delay_seconds``.
        delay_seconds: the shortest and longest pause.
    """

    error: float = 0.0
    error_after: float = 0.0
    reset: float = 0.0
    delay: float = 0.0
    delay_seconds: tuple[float, float] = (0.05, 0.5)

    def __post_init__(self) -> None:
        rates = (self.error, self.error_after, self.reset, self.delay)
        if min(rates) < 0 or sum(rates) > 1:
            raise ValueError(f"fault rates must be >= 0 and sum to <= 1: {rates}")
        low, high = self.delay_seconds
        if not 0 <= low <= high:
            raise ValueError(f"invalid delay range {self.delay_seconds}")

    def choose(self, draw: float) -> Fault:
        """The fault for a uniform ``draw`` in [0, 1)."""
        rates: tuple[tuple[Fault, float], ...] = (
            ("error", self.error),
            ("error_after", self.error_after),
            ("reset", self.reset),
            ("delay", self.delay),
        )
        edge = 0.0
        for fault, rate in rates:
            edge += rate
            if draw < edge:
                return fault
        return "forward"


NO_FAULTS = FaultPlan()


@dataclass(frozen=True, slots=True)
class Decision:
    """What the proxy does with one request: the fault, its pause, the error it answers."""

    fault: Fault
    pause: float
    error: tuple[int, str, str]


class FlakyProxy:
    """A threaded HTTP/1.1 proxy on ``127.0.0.1`` in front of ``upstream``; a context manager.

    Args:
        upstream: the upstream's base URL, ``http://host:port``.
        seed: seeds the draws (see the module docstring).
        plan: the faults to inject; :data:`NO_FAULTS` forwards everything. Settable at any time
            (e.g. no faults while a test sets up, then faults).
    """

    def __init__(self, upstream: str, *, seed: int, plan: FaultPlan = NO_FAULTS) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream = (parts.hostname, parts.port)
        self.plan = plan
        self.counts: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="flaky-proxy", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FlakyProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def decide(self, method: str) -> Decision:
        """Draw what to do with the next request; count it."""
        with self._lock:
            plan = self.plan
            fault = plan.choose(self._random.random())
            # Three draws for every request whatever its fault: the n-th decision depends on the
            # seed and n only.
            pause = self._random.uniform(*plan.delay_seconds)
            error = _ERRORS[self._random.randrange(len(_ERRORS))]
            self.counts["requests"] += 1
            self.counts[fault] += 1
            self.counts[f"{fault} {method}"] += 1
        return Decision(fault, pause if fault == "delay" else 0.0, error)

    def count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    def summary(self) -> str:
        """The counts as one line, for a failure message."""
        with self._lock:
            return ", ".join(f"{name}: {n}" for name, n in sorted(self.counts.items()))


def _handler_class(proxy: FlakyProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(_ProxyHandler):
        owner = proxy

    return Handler


class _ProxyHandler(BaseHTTPRequestHandler):
    """One client connection; requests on it are forwarded one by one (keep-alive)."""

    owner: FlakyProxy
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._proxy()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError):
            # The client went away mid-request (its pool discards idle connections): its business.
            self.owner.count("client_gone")

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("flaky proxy: " + format, *args)

    def _proxy(self) -> None:
        body = self._read_body()
        if body is None:
            return
        decision = self.owner.decide(self.command)
        if decision.fault == "reset":
            self._reset()
            return
        if decision.fault == "error":
            self._send_error(*decision.error)
            return
        time.sleep(decision.pause)
        try:
            status, reason, headers, payload = self._forward(body)
        except (OSError, http.client.HTTPException) as exc:
            logger.warning("flaky proxy: upstream failed: %r", exc)
            self.owner.count("upstream_failed")
            self._send_error(502, "BadGateway", "the upstream did not answer")
            return
        if decision.fault == "error_after":
            self._send_error(*decision.error)
            return
        self._relay(status, reason, headers, payload)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            # Not needed by boto3 (no aws-chunked uploads: checksums "when_required") nor httpx.
            self.owner.count("unsupported")
            self._send_error(501, "NotImplemented", "chunked request bodies are not proxied")
            self.close_connection = True
            return None
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """Send the request upstream as received; return the whole answer."""
        host, port = self.owner.upstream
        connection = http.client.HTTPConnection(host, port, timeout=_UPSTREAM_TIMEOUT)
        try:
            connection.putrequest(
                self.command, self.path, skip_host=True, skip_accept_encoding=True
            )
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    connection.putheader(name, value)
            connection.endheaders(body or None)
            response = connection.getresponse()
            payload = response.read()
            return response.status, response.reason, response.getheaders(), payload
        finally:
            connection.close()

    def _relay(
        self, status: int, reason: str, headers: list[tuple[str, str]], payload: bytes
    ) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            lowered = name.lower()
            # A HEAD answer keeps the length of the body it does not carry (RFC 9110 §8.6).
            if lowered in _HOP_BY_HOP or (lowered == "content-length" and self.command != "HEAD"):
                continue
            self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send_error(self, status: int, code: str, message: str) -> None:
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<Resource>{self.path.split('?')[0]}</Resource>"
            "<RequestId>flaky-proxy</RequestId></Error>"
        ).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(xml)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(xml)

    def _reset(self) -> None:
        """Close the connection with a TCP RST: SO_LINGER on with a zero timeout (socket(7))."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The socket closes (and resets) once its last reference goes: the reading file holds
        # one; the writing file does not, and stays open for the base class's final flush.
        self.rfile.close()
        self.connection.close()
