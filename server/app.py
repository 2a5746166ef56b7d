"""The composition root: ``create_app(settings)`` wires adapters, routes and middleware."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from server import metrics
from server.api import blobs as blob_routes
from server.api.errors import install_error_handlers
from server.api.limits import BodyLimitMiddleware
from server.api.routes import (
    auth,
    booths,
    expos,
    health,
    jobs,
    organisations,
    products,
    tickets,
    tours,
    uploads,
    visits,
)
from server.api.schemas import ErrorResponse
from server.background import start_background
from server.db.session import build_engine, session_factory
from server.pubsub import build_pubsub
from server.settings import Settings
from server.storage import S3BlobStore, build_blob_store
from server.tours.service import start_tours

logger = logging.getLogger(__name__)

_ERRORS = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Bad request",
        401: "No, expired or invalid token",
        403: "The caller may not do this",
        404: "Not found",
        409: "Conflicts with existing data",
        413: "Body too large",
        422: "Invalid input",
    }.items()
}

_FALLBACK_PAGE = """<!doctype html><meta charset="utf-8"><title>Pavilion</title>
<h1>Pavilion</h1><p>The web client is not built (run <code>make web</code>).
The API is at <a href="/docs">/docs</a>; the expos at <a href="/api/expos">/api/expos</a>.</p>"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = build_engine(settings.database)
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    blobs = build_blob_store(settings.blobs)
    if isinstance(blobs, S3BlobStore) and settings.blobs.s3_create_bucket:
        await run_in_threadpool(blobs.ensure_bucket)
        await run_in_threadpool(blobs.set_cors, settings.cors_origins)
    app.state.blobs = blobs
    app.state.pubsub = build_pubsub(settings)
    background = await start_background(settings, app.state.sessions, blobs, app.state.pubsub)
    app.state.jobs = background.queue
    tours = None
    if settings.tours.enabled:
        tours = await start_tours(settings, app.state.sessions, blobs, app.state.pubsub)
        app.state.tours = tours
        app.state.tours_public_url = tours.public_url
    logger.info(
        "pavilion ready: database=%s blobs=%s",
        engine.url.render_as_string(hide_password=True),
        settings.blobs.backend,
    )
    try:
        yield
    finally:
        if tours is not None:
            await tours.stop()
        await background.stop()
        app.state.pubsub.close()
        engine.dispose()


def create_app(settings: Settings) -> FastAPI:
    """Build the ASGI app for ``settings``; adapters are created in the lifespan."""
    app = FastAPI(
        title="Pavilion",
        version="0.1.0",
        summary="Cloud expo backend: halls, booths, products, guided tours",
        lifespan=lifespan,
        responses=_ERRORS,  # type: ignore[arg-type]
    )
    app.state.settings = settings
    metrics.configure_logging(metrics.ObservabilitySettings().log_format)
    install_error_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.limits.max_body_bytes,
        path_caps=uploads.body_caps(settings.limits),
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            # Resumable uploads tell the client where to resume (docs/api.md "Uploads").
            expose_headers=["Upload-Offset"],
        )
    app.include_router(health.router)
    app.include_router(metrics.router)  # internal: the reverse proxy does not route /metrics
    for module in (
        auth,
        organisations,
        expos,
        booths,
        products,
        tours,
        tickets,
        uploads,
        jobs,
        visits,
    ):
        app.include_router(module.router, prefix="/api")
    if settings.blobs.backend == "local":
        app.include_router(
            blob_routes.router, prefix=settings.blobs.local_url_prefix, include_in_schema=False
        )
    _mount_web(app, settings)
    return app


def _mount_web(app: FastAPI, settings: Settings) -> None:
    if (settings.web_dist / "index.html").is_file():
        app.mount("/", StaticFiles(directory=settings.web_dist, html=True), name="web")
        return

    @app.get("/", include_in_schema=False)
    def fallback_page() -> HTMLResponse:
        return HTMLResponse(_FALLBACK_PAGE)
