"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from server.db.session import ping as ping_database
from server.errors import ExpoError

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "a dependency is down"}})
async def ready(request: Request) -> JSONResponse:
    """Readiness: the database and the blob store answer."""
    checks: dict[str, str] = {}
    try:
        await run_in_threadpool(ping_database, request.app.state.engine)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure, it never raises
        logger.warning("readiness: database: %s", exc)
        checks["database"] = "unavailable"
    try:
        await run_in_threadpool(request.app.state.blobs.ping)
        checks["blobs"] = "ok"
    except (ExpoError, OSError) as exc:
        logger.warning("readiness: blobs: %s", exc)
        checks["blobs"] = "unavailable"
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )
