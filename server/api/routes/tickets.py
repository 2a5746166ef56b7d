"""Tickets for the tour websocket: an access token buys a single-use, 30-second ticket.

The tour server runs on its own port (docs/protocol.md "Why the endpoint has its own port"); the
app sets ``app.state.tours_public_url`` (e.g. ``ws://127.0.0.1:8001``) when it starts it, and the
ticket response tells the client the hall's websocket URL under it. Behind the reverse proxy
(``tours.public_url = "same-origin"``) that URL is the origin the request came to, with ``ws`` or
``wss`` for its scheme: the proxy routes ``/ws/`` to the tour ports (docs/operations.md).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel

from server.api.deps import CurrentUser, SessionDep, SettingsDep, get_or_404
from server.db.models import Hall
from server.errors import ServiceUnavailable
from server.tours.tickets import issue_ticket

router = APIRouter(tags=["tickets"])


class TicketResponse(BaseModel):
    ticket: str
    url: str
    expires_at: datetime


SAME_ORIGIN = "same-origin"


def get_tours_url(request: Request, settings: SettingsDep) -> str:
    """The tour server's public base URL, without a trailing slash.

    With ``tours.public_url = "same-origin"`` it is the request's own origin: ``wss`` when the
    request came over https (uvicorn's ``proxy_headers`` take the scheme from the proxy's
    ``X-Forwarded-Proto``), else ``ws``, and the request's ``Host``.

    Raises:
        ServiceUnavailable: ``tours_unavailable`` when the app runs no tour server.
    """
    url: str | None = getattr(request.app.state, "tours_public_url", None)
    if not url:
        raise ServiceUnavailable("the tour server is not running", code="tours_unavailable")
    if settings.tours.public_url == SAME_ORIGIN:
        scheme = "wss" if request.url.scheme == "https" else "ws"
        return f"{scheme}://{request.url.netloc}"
    return url.rstrip("/")


ToursUrlDep = Annotated[str, Depends(get_tours_url)]


@router.post(
    "/halls/{hall_id}/tickets", response_model=TicketResponse, status_code=status.HTTP_201_CREATED
)
def create_ticket(
    hall_id: uuid.UUID,
    principal: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    tours_url: ToursUrlDep,
    response: Response,
) -> TicketResponse:
    """A single-use ticket (30 s by default) to join the hall's tour websocket; guests too."""
    get_or_404(session, Hall, hall_id, "hall")
    secret = settings.auth.secret_key.get_secret_value().encode()
    ttl = settings.tours.ticket_seconds
    ticket, expires_at = issue_ticket(secret, principal, hall_id, time.time(), ttl)
    # A credential: no cache may keep it (RFC 6749 §5.1 asks the same of access tokens).
    response.headers["Cache-Control"] = "no-store"
    return TicketResponse(
        ticket=ticket,
        url=f"{tours_url}/ws/halls/{hall_id}",
        expires_at=datetime.fromtimestamp(expires_at, UTC),
    )
