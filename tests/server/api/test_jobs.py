"""Jobs over HTTP: the in-process queue runs them; REST and server-sent events report them."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from fastapi.testclient import TestClient

from server.db.models import Booth, Job, JobState, Role
from server.processing import accept_upload
from server.settings import Settings
from tests.factories import make_user
from tests.server.test_processing import committed_hall, new_product, upload_asset
from tests.server.test_scenes_publish import (  # noqa: F401 - the local and uploads fixtures
    Env,
    Upload,
    local,
    make_hall,
    uploads,
)


def submit(env: Env, booth_id: uuid.UUID, data: bytes) -> str:
    """Store an upload as the routes do and enqueue its job on the app's queue."""
    with env.sessions() as session:
        asset = upload_asset(session, env.blobs, new_product(session, booth_id, "Tea"), data)
        job = accept_upload(session, asset)
        session.commit()
        assert job is not None
        job_id = str(job.id)
    app: Any = env.client.app
    app.state.jobs.enqueue(job_id)
    return job_id


def events(client: TestClient, job_id: str, headers: dict[str, str]) -> list[tuple[str, Any]]:
    """Read the event stream to its end: (event name, data) pairs."""
    received: list[tuple[str, Any]] = []
    with client.stream("GET", f"/api/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                received.append((name or "message", json.loads(line.removeprefix("data: "))))
    return received


def test_a_job_is_run_by_the_apps_queue_and_streamed_to_its_end(
    local: Env,  # noqa: F811
    uploads: dict[str, Upload],  # noqa: F811
) -> None:
    hall = committed_hall(local, uploads, (0,))
    job_id = submit(local, hall.booth_ids[0], uploads["portrait"].data)
    stream = events(local.client, job_id, local.admin)
    states = [data["state"] for name, data in stream if name == "job"]
    assert states[-1] == "succeeded"
    percents = [data["percent"] for name, data in stream if name == "job"]
    assert percents == sorted(percents)
    assert percents[-1] == 100
    job = local.client.get(f"/api/jobs/{job_id}", headers=local.admin).json()
    assert (job["state"], job["step"], job["error_code"]) == ("succeeded", "done", None)
    manifest = local.client.get(f"/api/halls/{hall.hall_id}/manifest").json()
    [booth] = manifest["booths"]
    assert len(booth["hotspots"]) == 1


def test_a_failed_job_streams_its_code_and_stops(
    local: Env,  # noqa: F811
    uploads: dict[str, Upload],  # noqa: F811
) -> None:
    hall = committed_hall(local, uploads, (0,))
    job_id = submit(local, hall.booth_ids[0], b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    stream = events(local.client, job_id, local.admin)
    name, last = stream[-1]
    assert name == "job"
    assert last["state"] == "failed"
    assert last["error_code"].startswith("image_")


def test_only_the_uploading_exhibitor_or_an_admin_may_follow_a_job(
    local: Env,  # noqa: F811
    uploads: dict[str, Upload],  # noqa: F811
) -> None:
    app: Any = local.client.app
    settings: Settings = app.state.settings
    hall = committed_hall(local, uploads, (0,))
    with local.sessions() as session:
        owner_org = session.get(Booth, hall.booth_ids[0]).organisation_id  # type: ignore[union-attr]
    job_id = submit(local, hall.booth_ids[0], uploads["landscape"].data + b"z")
    owner = make_user(local.sessions, settings, Role.exhibitor, owner_org)
    stranger = make_user(local.sessions, settings, Role.exhibitor, None)
    visitor = make_user(local.sessions, settings, Role.visitor)
    assert local.client.get(f"/api/jobs/{job_id}", headers=owner.headers).status_code == 200
    for actor in (stranger, visitor):
        for path in (f"/api/jobs/{job_id}", f"/api/jobs/{job_id}/events"):
            response = local.client.get(path, headers=actor.headers)
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "not_owner"
    assert local.client.get(f"/api/jobs/{job_id}").status_code == 401
    missing = local.client.get(f"/api/jobs/{uuid.uuid4()}", headers=local.admin)
    assert missing.status_code == 404
    _wait_finished(local, job_id)


def test_queued_jobs_are_enqueued_again_when_the_app_starts(
    local: Env,  # noqa: F811
    uploads: dict[str, Upload],  # noqa: F811
) -> None:
    from server.app import create_app

    app: Any = local.client.app
    with local.sessions() as session:
        hall = make_hall(session, local.blobs, uploads, (0,))
        asset = upload_asset(
            session, local.blobs, new_product(session, hall.booth_ids[0], "T"), b""
        )
        asset.sha256 = uuid.uuid4().hex * 2  # never enqueued: as if the process died after commit
        job = accept_upload(session, asset)
        session.commit()
        assert job is not None
        job_id = job.id
    with TestClient(create_app(app.state.settings)) as restarted:
        restarted_app: Any = restarted.app
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with restarted_app.state.sessions() as session:
                state = session.get(Job, job_id).state
            if state in (JobState.succeeded, JobState.failed):
                break
            time.sleep(0.1)
    assert state == JobState.failed  # it ran: its (empty) upload is refused with a code


def _wait_finished(env: Env, job_id: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = env.client.get(f"/api/jobs/{job_id}", headers=env.admin).json()["state"]
        if state in ("succeeded", "failed"):
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")
