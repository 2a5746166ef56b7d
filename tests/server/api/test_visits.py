"""GET /api/booths/{booth_id}/visits: a booth's visit analytics, for its exhibitor and admins."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from server.auth import Principal, issue_token
from server.db.models import Role, VisitEvent, VisitKind
from server.settings import Settings
from tests.factories import World, make_user, ok

T0 = datetime(2030, 5, 1, 10, 0, tzinfo=UTC)


def _insert(sessions: sessionmaker[Session], hall_id: str, events: list[dict[str, Any]]) -> None:
    with sessions.begin() as session:
        for event in events:
            session.add(VisitEvent(hall_id=uuid.UUID(hall_id), guest=False, **event))


def _event(booth: str, kind: VisitKind, subject: str, minute: int, **more: Any) -> dict[str, Any]:
    return {
        "booth_id": uuid.UUID(booth),
        "kind": kind,
        "subject": subject,
        "at": T0 + timedelta(minutes=minute),
        **more,
    }


def _visits(client: TestClient, booth: str, headers: dict[str, str], **query: str) -> Any:
    return client.get(f"/api/booths/{booth}/visits", params=query, headers=headers)


def test_the_exhibitor_sees_its_booths_visits_summed_up(
    client: TestClient, world: World, sessions: sessionmaker[Session]
) -> None:
    booth, other_booth = world.booths[0]["id"], world.booths[1]["id"]
    product, gone_product, tour = world.products[0]["id"], str(uuid.uuid4()), uuid.uuid4()
    enter, leave, hotspot = VisitKind.enter, VisitKind.leave, VisitKind.hotspot
    _insert(
        sessions,
        world.hall["id"],
        [
            # ana twice, bo and a guest once: 4 visits by 3 visitors
            _event(booth, enter, "ana", 0),
            _event(booth, leave, "ana", 1, dwell_seconds=10.0),
            _event(booth, enter, "bo", 2),
            _event(booth, hotspot, "bo", 3, product_id=uuid.UUID(product)),
            _event(booth, hotspot, "bo", 3, product_id=uuid.UUID(product)),
            _event(booth, hotspot, "ana", 4, product_id=uuid.UUID(gone_product)),
            _event(booth, leave, "bo", 5, dwell_seconds=20.0),
            _event(booth, enter, "ana", 6),
            _event(booth, enter, "guest:g1", 6),
            _event(booth, leave, "guest:g1", 8, dwell_seconds=60.0),
            _event(booth, VisitKind.tour, "guide", 9, tour_id=tour, dwell_seconds=120.0),
            # another booth's events count for it alone
            _event(other_booth, enter, "cy", 0),
            _event(other_booth, leave, "cy", 1, dwell_seconds=999.0),
            _event(other_booth, hotspot, "cy", 1, product_id=uuid.UUID(product)),
        ],
    )

    body = ok(_visits(client, booth, world.exhibitors[0].headers))

    assert body == {
        "booth_id": booth,
        "visits": 4,
        "unique_visitors": 3,
        "mean_dwell_seconds": pytest.approx(30.0),
        "hotspot_opens": {product: 2, gone_product: 1},
        "tour_visits": 1,
    }
    assert ok(_visits(client, booth, world.admin.headers)) == body


def test_since_and_until_bound_the_summary(
    client: TestClient, world: World, sessions: sessionmaker[Session]
) -> None:
    booth = world.booths[0]["id"]
    _insert(
        sessions,
        world.hall["id"],
        [
            _event(booth, VisitKind.enter, "early", 0),
            _event(booth, VisitKind.leave, "early", 1, dwell_seconds=5.0),
            _event(booth, VisitKind.enter, "on time", 10),
            _event(booth, VisitKind.leave, "on time", 19, dwell_seconds=7.0),
            _event(booth, VisitKind.enter, "late", 20),
        ],
    )
    headers = world.exhibitors[0].headers
    since, until = (
        (T0 + timedelta(minutes=10)).isoformat(),
        (T0 + timedelta(minutes=20)).isoformat(),
    )

    window = ok(_visits(client, booth, headers, since=since, until=until))
    after = ok(_visits(client, booth, headers, since=since))
    before = ok(_visits(client, booth, headers, until=since))

    assert (window["visits"], window["mean_dwell_seconds"]) == (1, 7.0)
    assert (after["visits"], after["unique_visitors"]) == (2, 2)
    assert (before["visits"], before["mean_dwell_seconds"]) == (1, 5.0)


def test_a_booth_without_visits_has_zeros_and_no_mean(client: TestClient, world: World) -> None:
    body = ok(_visits(client, world.booths[1]["id"], world.exhibitors[1].headers))

    assert body == {
        "booth_id": world.booths[1]["id"],
        "visits": 0,
        "unique_visitors": 0,
        "mean_dwell_seconds": None,
        "hotspot_opens": {},
        "tour_visits": 0,
    }


def test_only_the_booths_exhibitor_and_admins_see_its_visits(
    client: TestClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    booth = world.booths[0]["id"]
    guest = issue_token(
        settings.auth, Principal(f"guest:{uuid.uuid4()}", Role.visitor, "g", guest=True)
    ).token
    callers = {
        "other exhibitor": world.exhibitors[1].headers,
        "visitor": make_user(sessions, settings, Role.visitor).headers,
        "guide": make_user(sessions, settings, Role.guide).headers,
        "guest": {"Authorization": f"Bearer {guest}"},
    }

    answers = {who: _visits(client, booth, headers) for who, headers in callers.items()}

    assert {who: r.status_code for who, r in answers.items()} == dict.fromkeys(callers, 403)
    assert answers["other exhibitor"].json()["error"]["code"] == "not_owner"
    assert _visits(client, booth, {}).status_code == 401


def test_an_unknown_booth_is_not_found(client: TestClient, world: World) -> None:
    response = _visits(client, str(uuid.uuid4()), world.admin.headers)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "booth_not_found"


@pytest.mark.parametrize(
    ("since", "until"),
    [("2030-05-01T10:00:00+00:00", "2030-05-01T10:00:00+00:00"), ("2030-05-01T10:00:00", None)],
    ids=["empty range", "naive time"],
)
def test_a_bad_range_is_refused(
    client: TestClient, world: World, since: str, until: str | None
) -> None:
    query = {"since": since} | ({"until": until} if until else {})

    response = _visits(client, world.booths[0]["id"], world.admin.headers, **query)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
