"""The browser harness: Debian's Chromium driven by Playwright, and a read-only static server.

Shared by every browser test (the glTF render checks now, the WebXR client next). The browser is
the system one (``/usr/bin/chromium``, Debian package ``chromium``); Playwright's own browser
download is never used. WebGL runs on SwiftShader (software, through ANGLE): no GPU is needed.
"""

from __future__ import annotations

import logging
import mimetypes
import posixpath
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request, Response

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# --no-sandbox: we run as root in CI. The rest keep Chromium off the network and quiet.
# SwiftShader is asked for explicitly: the silent fallback to it is deprecated in Chromium.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
)

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("model/gltf-binary", ".glb")
mimetypes.add_type("model/gltf+json", ".gltf")
mimetypes.add_type("image/webp", ".webp")


def launch_chromium(playwright: Playwright) -> Browser:
    """Start the system Chromium headless, with software WebGL.

    Raises:
        RuntimeError: ``/usr/bin/chromium`` is missing (``make system`` installs it).
    """
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: install the Debian package 'chromium'")
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
    )


class StaticServer:
    """A read-only HTTP server on a free loopback port that serves mounted folders.

    ``mount("/three/", path)`` serves ``path``'s files under ``/three/``. Only GET and HEAD are
    answered; paths that climb out of a mount (``..``) or match no mount get 404.
    """

    def __init__(self) -> None:
        self._mounts: dict[str, Path] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` (which starts with ``/``) on this server."""
        return f"{self.base_url}{path}"

    def mount(self, prefix: str, folder: Path) -> None:
        """Serve ``folder`` under ``prefix`` (``/name/``); a later mount replaces an earlier one."""
        if not (prefix.startswith("/") and prefix.endswith("/")):
            raise ValueError(f"a mount prefix looks like /name/, not {prefix!r}")
        with self._lock:
            self._mounts[prefix] = folder.resolve()

    def resolve(self, url_path: str) -> Path | None:
        """The file a request path maps to, or None when it is outside every mount."""
        path = posixpath.normpath(unquote(urlsplit(url_path).path))
        if ".." in path.split("/"):
            return None
        with self._lock:
            mounts = sorted(self._mounts.items(), key=lambda item: -len(item[0]))
        for prefix, folder in mounts:
            if (path + "/").startswith(prefix):
                target = (folder / path[len(prefix) :]).resolve()
                if target.is_relative_to(folder) and target.is_file():
                    return target
                return None
        return None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = self._head()
                if data is not None:
                    self.wfile.write(data)

            def do_HEAD(self) -> None:
                self._head()

            def _head(self) -> bytes | None:
                target = server.resolve(self.path)
                if target is None:
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return None
                data = target.read_bytes()
                kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                return data

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("static %s", format % args)

        return Handler


@contextmanager
def static_server() -> Iterator[StaticServer]:
    """A started :class:`StaticServer`, stopped when the block ends."""
    server = StaticServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class PageLog:
    """What a page said that a test should fail on: uncaught errors, console errors, 4xx/5xx,
    failed requests; and warnings, which a test may look at.

    A fetch whose 2xx response arrived and then reports ``net::ERR_ABORTED`` is a warning, not an
    error: Chromium reports that for some fetches whose body the page read to the end (about 1 in
    10 GLB loads here, always right after the response). A body that really was cut short fails
    the page's own checks.
    """

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _answered: set[Request] = field(default_factory=set)

    def attach(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on("console", self._console)
        page.on("response", self._response)
        page.on("requestfailed", self._failed)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            self.errors.append(f"console.error: {message.text} ({where})")
        elif message.type == "warning":
            self.warnings.append(message.text)

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.errors.append(f"HTTP {response.status}: {response.url}")
        else:
            self._answered.add(response.request)

    def _failed(self, request: Request) -> None:
        note = f"requestfailed: {request.url} {request.failure}"
        if request.failure == "net::ERR_ABORTED" and request in self._answered:
            self.warnings.append(note)
        else:
            self.errors.append(note)


@contextmanager
def open_page(
    browser: Browser, *, width: int = 512, height: int = 512
) -> Iterator[tuple[Page, PageLog]]:
    """A fresh page in its own context (no shared cache or storage), with its log attached."""
    context = browser.new_context(
        viewport={"width": width, "height": height}, device_scale_factor=1
    )
    try:
        page = context.new_page()
        log = PageLog()
        log.attach(page)
        yield page, log
    finally:
        context.close()
