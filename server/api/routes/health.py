"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from server.db.session import ping as ping_database

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


# A dependency that accepts connections but never answers must not hold the probe: each check
# gets this long, then counts as unavailable (its thread finishes or times out on its own).
CHECK_SECONDS = 3.0


async def _check(name: str, probe: Callable[[], object]) -> str:
    try:
        await asyncio.wait_for(run_in_threadpool(probe), timeout=CHECK_SECONDS)
        return "ok"
    except TimeoutError:
        logger.warning("readiness: %s did not answer within %.0f s", name, CHECK_SECONDS)
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure, it never raises
        logger.warning("readiness: %s: %s", name, exc)
    return "unavailable"


@router.get("/ready", responses={503: {"description": "a dependency is down"}})
async def ready(request: Request) -> JSONResponse:
    """Readiness: the database, the blob store and pub/sub answer (each within a few seconds)."""
    state = request.app.state
    engine, blobs, pubsub = state.engine, state.blobs, state.pubsub
    database, blob_store, messages = await asyncio.gather(
        _check("database", lambda: ping_database(engine)),
        _check("blobs", blobs.ping),
        _check("pubsub", pubsub.ping),
    )
    checks = {"database": database, "blobs": blob_store, "pubsub": messages}
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )
