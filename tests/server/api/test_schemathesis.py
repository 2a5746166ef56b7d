"""Property-based API testing from the OpenAPI schema (schemathesis): no input makes a 500.

Every operation is exercised against a real uvicorn server, as an admin (so writes get past auth
and reach validation and the database) and anonymously. Besides "no 5xx", responses must match
the documented status codes, content types and schemas.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS
from sqlalchemy.orm import Session, sessionmaker

from server.app import create_app
from server.settings import Settings
from tests.conftest import make_settings
from tests.factories import World, build_world
from tests.live import live_server

EXAMPLES = 40
CHECK_NAMES = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
]


@pytest.fixture
def live(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, World, Settings]]:
    app_settings = make_settings(sqlite_url, tmp_path)
    app = create_app(app_settings)
    with TestClient(app) as client:
        sessions: sessionmaker[Session] = app.state.sessions
        world = build_world(client, sessions, app_settings)
    with live_server(create_app(app_settings)) as base_url:
        yield base_url, world, app_settings


def _checks() -> list[Any]:
    by_name = {check.__name__: check for check in CHECKS.get_all()}
    return [by_name[name] for name in CHECK_NAMES]


@pytest.mark.slow
@pytest.mark.parametrize("who", ["admin", "anonymous"])
def test_no_generated_request_makes_the_api_fail(
    live: tuple[str, World, Settings], who: str
) -> None:
    base_url, world, _ = live
    app = create_app(live[2])
    schema = schemathesis.openapi.from_dict(app.openapi())
    headers = world.admin.headers if who == "admin" else {}
    checks = _checks()
    known = {
        "expo_id": world.expo["id"],
        "hall_id": world.hall["id"],
        "organisation_id": world.orgs[0]["id"],
        "slot_id": world.slots[0]["id"],
        "booth_id": world.booths[0]["id"],
        "product_id": world.products[0]["id"],
    }
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]

        @given(case=operation.as_strategy(), real_ids=st.booleans())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: Any, real_ids: bool) -> None:
            if real_ids and case.path_parameters:
                # Half the examples address objects that exist, so they get past the 404.
                for name in case.path_parameters:
                    if name in known:
                        case.path_parameters[name] = known[name]
            response = case.call(base_url=base_url, headers=headers)
            case.validate_response(response, checks=checks)

        try:
            exercise()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:800]}")
    assert failures == [], "\n\n".join(failures)
