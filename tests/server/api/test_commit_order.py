"""A write route answers only after its transaction committed: a failing commit is never a 2xx."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tests.factories import World


def test_a_commit_that_fails_turns_the_answer_into_a_503(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_commit(self: Session) -> None:
        raise OperationalError("COMMIT", {}, Exception("the database went away"))

    monkeypatch.setattr(Session, "commit", failing_commit)
    response = client.post(
        "/api/organisations",
        json={"name": "Never Stored Ltd", "country": "KZ"},
        headers=world.admin.headers,
    )
    assert response.status_code == 503
    body: dict[str, Any] = response.json()
    assert body["error"]["code"] == "database_unavailable"
