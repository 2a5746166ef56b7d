"""Processing jobs: their state over REST and live as server-sent events.

Who may look: an admin, or an exhibitor whose organisation uploaded the bytes the job processes
(a job is shared by every upload of the same bytes). The event stream needs the Authorization
header like every other route, so browsers read it with ``fetch()`` and a stream reader, not
``EventSource`` (which cannot send headers; a token in the URL would end up in logs).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.api.deps import CurrentUser, SessionDep, get_or_404
from server.auth import Principal
from server.db.models import Booth, Job, JobState, ProductAsset, Role
from server.errors import Forbidden
from server.processing import job_public, job_topic

router = APIRouter(tags=["jobs"])

POLL_SECONDS = 2.0  # the database is read this often too: pubsub is at-most-once
KEEPALIVE_SECONDS = 15.0
FINISHED_VALUES = frozenset({JobState.succeeded.value, JobState.failed.value})


def check_job_reader(session: Session, principal: Principal, job: Job) -> None:
    """Admins, and exhibitors whose organisation uploaded these bytes."""
    if principal.role is Role.admin:
        return
    if principal.role is Role.exhibitor and principal.organisation_id is not None:
        owned = session.scalar(
            select(ProductAsset.id)
            .join(Booth, Booth.id == ProductAsset.booth_id)
            .where(
                ProductAsset.sha256 == job.sha256,
                Booth.organisation_id == principal.organisation_id,
            )
            .limit(1)
        )
        if owned is not None:
            return
    raise Forbidden("only the exhibitor who uploaded the file may follow its job", code="not_owner")


@router.get("/jobs/{job_id}")
def get_job(job_id: uuid.UUID, principal: CurrentUser, session: SessionDep) -> dict[str, Any]:
    """A processing job: state, step, percent, and the error code when it failed."""
    job = get_or_404(session, Job, job_id, "job")
    check_job_reader(session, principal, job)
    return job_public(job)


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def job_events(
    job_id: uuid.UUID, request: Request, principal: CurrentUser, session: SessionDep
) -> StreamingResponse:
    """Live progress of a job as server-sent events, ending when the job has finished."""
    job = get_or_404(session, Job, job_id, "job")
    check_job_reader(session, principal, job)
    sessions: sessionmaker[Session] = request.app.state.sessions
    stream = _events(request, sessions, job_id)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


def _snapshot(sessions: sessionmaker[Session], job_id: uuid.UUID) -> dict[str, Any] | None:
    with sessions() as session:
        job = session.get(Job, job_id)
        return None if job is None else job_public(job)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _events(
    request: Request, sessions: sessionmaker[Session], job_id: uuid.UUID
) -> AsyncIterator[bytes]:
    """The job's state now, then every change: from pubsub as it happens, and from the
    database every ``POLL_SECONDS`` (a message lost between processes is caught up there)."""
    pubsub = request.app.state.pubsub
    async with pubsub.subscribe(job_topic(job_id)) as subscription:
        wake = asyncio.Event()

        async def pump() -> None:
            async for _ in subscription:
                wake.set()  # the row changed: read it (the row is the source of truth)

        pumping = asyncio.create_task(pump())
        try:
            last: dict[str, Any] | None = None
            idle = 0.0
            while True:
                state = await run_in_threadpool(_snapshot, sessions, job_id)
                if state is None:
                    yield _sse("gone", {"id": str(job_id)})
                    return
                if state != last:
                    yield _sse("job", state)
                    last, idle = state, 0.0
                if state["state"] in FINISHED_VALUES:
                    return
                try:
                    await asyncio.wait_for(wake.wait(), timeout=POLL_SECONDS)
                    wake.clear()
                except TimeoutError:
                    idle += POLL_SECONDS
                    if idle >= KEEPALIVE_SECONDS:
                        yield b": keep-alive\n\n"
                        idle = 0.0
                if await request.is_disconnected():
                    return
        finally:
            pumping.cancel()
