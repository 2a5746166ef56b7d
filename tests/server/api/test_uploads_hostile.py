"""Hostile uploads through the API (research-security.md A1-A4, I2, I3; issue 5's acceptance).

Every file of the pipeline's hostile corpus, uploaded as a model, is refused up front with a 4xx
and a code, or accepted (202) and its job then fails with the pipeline's code. Declared content
types are ignored for the detected one; hostile file names end up as inert display names, never
in a key or a header; oversize bodies are cut off at the cap; and the server keeps answering a
probe in < 100 ms while large uploads stream in.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from pipeline.detect import detect
from pipeline.errors import PipelineError
from pipeline.limits import DEFAULT_LIMITS
from server.app import create_app
from server.db.models import AssetStatus, Job, JobState, ProductAsset
from server.processing import Processor
from server.uploads import clean_filename
from tests.factories import ok
from tests.live import live_server
from tests.pipeline.hostile import OBJ_TRIANGLE, cases, encoded_image, triangle_glb
from tests.server.api.test_uploads import GLB, KEY, PNG, Env, make_env, upload_settings


@pytest.fixture
def env(sqlite_url: str, tmp_path: Path) -> Iterator[Env]:
    settings = upload_settings(sqlite_url, tmp_path)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield make_env(client, settings)


def _detect_code(data: bytes) -> str | None:
    """The code ``pipeline.detect`` refuses the bytes with, or None when it accepts them."""
    try:
        detect(data)
    except PipelineError as exc:
        return exc.code
    return None


@pytest.mark.slow
def test_every_hostile_file_is_refused_up_front_or_fails_its_job_with_the_pipeline_code(
    env: Env,
) -> None:
    accepted: dict[str, tuple[str, str]] = {}  # case name -> (job id, expected code)
    failures: list[str] = []
    for case in cases():
        data = case.build()
        response = env.upload(data, filename=f"{case.name}.glb", content_type="model/gltf-binary")
        refused_by_detect = _detect_code(data)
        if response.status_code == 202:
            if refused_by_detect is not None:
                failures.append(f"{case.name}: 202 for what detect refuses ({refused_by_detect})")
            elif case.limits == DEFAULT_LIMITS:
                accepted[case.name] = (response.json()["job_id"], case.code)
            # A case built for tighter limits than the server's may be a fine file here.
            continue
        body = response.json()
        if response.status_code not in {413, 415, 422} or "error" not in body:
            failures.append(f"{case.name}: {response.status_code} {response.text[:200]}")
            continue
        expected = {case.code, "kind_mismatch"}  # a photo's bytes are not a model
        if body["error"]["code"] not in expected:
            failures.append(f"{case.name}: {body['error']['code']}, expected one of {expected}")
    assert failures == []
    assert len(accepted) > 30, "most of the corpus is only caught by the job: it runs here"

    processor = Processor(env.sessions, env.blobs, publish=lambda _topic, _message: None)
    job_ids = {job_id for job_id, _ in accepted.values()}
    for job_id in job_ids:
        processor(job_id)
    with env.sessions() as session:
        for name, (job_id, code) in accepted.items():
            job = session.get(Job, uuid.UUID(job_id))
            assert job is not None
            assert (job.state, job.error_code) == (JobState.failed, code), name
            assets = session.query(ProductAsset).filter(ProductAsset.sha256 == job.sha256).all()
            assert {(a.status, a.error_code) for a in assets} == {(AssetStatus.failed, code)}
    listed = ok(env.client.get(f"/api/products/{env.product}/assets?limit=200"))["items"]
    assert {item["error_code"] for item in listed} >= {code for _, code in accepted.values()}


_FORMATS = [
    ("model", GLB, "model/gltf-binary"),
    ("model", OBJ_TRIANGLE, "model/obj"),
    ("model", b"\x00" * 80 + (1).to_bytes(4, "little") + b"\x00" * 50, "model/stl"),
    ("photo", PNG, "image/png"),
    ("photo", encoded_image("JPEG"), "image/jpeg"),
    ("photo", encoded_image("WEBP"), "image/webp"),
]
_DECLARED = ["text/html", "image/svg+xml", "application/x-php", "model/gltf-binary", "x/y; a=b"]


def test_declared_content_types_are_ignored_for_the_detected_one(env: Env) -> None:
    for kind, data, detected in _FORMATS:
        for declared in _DECLARED:
            response = env.upload(data, kind=kind, filename="f", content_type=declared)
            asset = ok(response, 202)["asset"]
            assert asset["content_type"] == detected, (declared, asset)
    for info in env.blobs.list("uploads/"):
        assert env.blobs.head(info.key).content_type in {d for _, _, d in _FORMATS}


def _raw_multipart(disposition: bytes, data: bytes) -> tuple[bytes, str]:
    """A multipart body whose file part has exactly ``disposition`` as its header."""
    boundary = "pavilion-test-boundary"
    b = boundary.encode()
    body = (
        b"--" + b + b'\r\nContent-Disposition: form-data; name="kind"\r\n\r\nmodel\r\n'
        b"--" + b + b"\r\n" + disposition + b"\r\nContent-Type: text/html\r\n\r\n" + data + b"\r\n"
        b"--" + b + b"--\r\n"
    )
    return body, f"multipart/form-data; boundary={boundary}"


_HOSTILE_NAMES: list[bytes] = [
    b'filename="../../x"',
    b'filename="..\\\\..\\\\windows\\\\x.glb"',
    b'filename="C:\\\\Users\\\\me\\\\chair.glb"',
    b'filename="a\r\nSet-Cookie: x=y"',  # a raw CRLF splits the part header
    b'filename="a%0D%0ASet-Cookie: x=y"',  # what browsers and httpx send for a CRLF
    b"filename*=UTF-8''a%0D%0ASet-Cookie%3A%20x%3Dy.glb",
    b'filename="a\x00b.glb"',
    'filename="evil\u202egpj.glb"'.encode(),
    b'filename="' + b"n" * 10_000 + b'.glb"',
    b'filename="/etc/passwd"',
    b'filename=".."',
    b'filename=""',
]


def _inert(name: str) -> bool:
    return (
        0 < len(name) <= 255
        and "/" not in name
        and "\\" not in name
        and name not in {".", ".."}
        and not any(unicodedata.category(ch).startswith("C") for ch in name)
    )


@pytest.mark.parametrize(
    ("name", "cleaned"),
    [
        ("../../x", "x"),
        ("C:\\Users\\me\\chair.glb", "chair.glb"),
        ("a\r\nSet-Cookie: x=y", "aSet-Cookie: x=y"),
        ("evil\u202egpj.glb", "evilgpj.glb"),
        ("zero\u200bwidth  and\ttabs.obj", "zerowidth andtabs.obj"),
        ("dir/..", "dir"),
        ("/", "upload"),
        ("", "upload"),
        (None, "upload"),
        ("n" * 300 + ".glb", "n" * 251 + ".glb"),
        ("n" * 300, "n" * 255),
        ("Мёд 蜂蜜.png", "Мёд 蜂蜜.png"),
    ],
)
def test_file_names_are_cleaned_to_one_inert_path_part(name: str | None, cleaned: str) -> None:
    assert clean_filename(name) == cleaned


def test_hostile_file_names_become_inert_display_names_and_never_reach_a_key_or_a_header(
    env: Env,
) -> None:
    for name in _HOSTILE_NAMES:
        body, content_type = _raw_multipart(
            b'Content-Disposition: form-data; name="file"; ' + name, GLB
        )
        response = env.client.post(
            f"/api/products/{env.product}/uploads",
            content=body,
            headers={**env.owner, "Content-Type": content_type},
        )
        assert "set-cookie" not in response.headers, name
        if response.status_code != 202:  # a part header the parser cannot read: refused
            assert response.status_code in {400, 422}, (name, response.text)
            continue
        stored = response.json()["asset"]["filename"]
        assert _inert(stored), (name, stored)
        assert "etc" not in stored, stored
        assert "windows" not in stored.lower(), stored
    with env.sessions() as session:
        keys = [a.blob_key for a in session.query(ProductAsset).all()]
    assert keys
    assert all(key is not None and KEY.match(key) for key in keys)
    # Declared names in JSON: path parts dropped, control characters refused.
    declared = {"kind": "model", "content_type": "model/gltf-binary", "size": len(GLB)}
    sha = hashlib.sha256(GLB).hexdigest()
    url = f"/api/products/{env.product}/uploads/resumable"
    x = ok(
        env.client.post(
            url, json={**declared, "sha256": sha, "filename": "../../x"}, headers=env.owner
        ),
        201,
    )
    assert x["filename"] == "x"
    crlf = env.client.post(
        url, json={**declared, "sha256": sha, "filename": "a\r\nSet-Cookie: x=y"}, headers=env.owner
    )
    assert crlf.status_code == 422
    assert "set-cookie" not in crlf.headers


# --- over a real socket -----------------------------------------------------------------------


@pytest.fixture
def live(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, Env]]:
    settings = upload_settings(
        sqlite_url, tmp_path, max_upload_bytes=24 * 1024 * 1024, upload_chunk_bytes=256 * 1024
    )
    app = create_app(settings)
    with TestClient(app) as client:
        env = make_env(client, settings)
    with live_server(app) as base_url:
        app.state.jobs = env.jobs
        yield base_url, env


def _send_chunked(
    base_url: str, path: str, headers: dict[str, str], total: int, prefix: bytes = b""
) -> bytes:
    """Send ``prefix`` then ``total`` bytes, chunked (no Content-Length); return the response
    head."""
    host, port = base_url.removeprefix("http://").split(":")
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(
            f"{path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n{lines}\r\n".encode()
        )
        chunk = b"v 0 0 0\n" * 8192
        sent = 0
        try:
            if prefix:
                sock.sendall(b"%x\r\n%s\r\n" % (len(prefix), prefix))
            while sent < total:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: what we want
        return sock.recv(4096)


def test_oversize_bodies_are_413_declared_or_chunked_and_leave_no_temporary_files(
    live: tuple[str, Env], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, env = live
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))  # where Starlette spools form files
    auth = {"Authorization": env.owner["Authorization"]}
    form = {**auth, "Content-Type": "multipart/form-data; boundary=xyz"}
    cap = env.settings.limits.max_upload_bytes
    head = _send_chunked(
        base_url, f"POST /api/products/{env.product}/uploads", form, 2 * cap, _FILE_PART
    )
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert b"payload_too_large" in head
    declared = httpx.post(
        f"{base_url}/api/products/{env.product}/uploads",
        content=b"x" * (cap + 128 * 1024),
        headers=form,
        timeout=30,
    )
    assert declared.status_code == 413
    upload_id = ok(env.declare(GLB), 201)["upload_id"]
    chunk = env.settings.limits.upload_chunk_bytes
    head = _send_chunked(base_url, f"PUT /api/uploads/{upload_id}?offset=0", auth, 2 * chunk)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert list(spool.iterdir()) == [], "the spooled part was removed"
    assert env.keys() == []


_FILE_PART = (
    b'--xyz\r\nContent-Disposition: form-data; name="kind"\r\n\r\nmodel\r\n'
    b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.obj"\r\n\r\n'
)
_UPLOADER = """
import sys, httpx
url, token, path = sys.argv[1:4]
with open(path, "rb") as f:
    r = httpx.post(url, data={"kind": "model"}, files={"file": ("big.glb", f)},
                   headers={"Authorization": token}, timeout=120)
print(r.status_code)
"""


def test_the_server_answers_a_probe_within_100_ms_while_large_uploads_stream_in(
    live: tuple[str, Env], tmp_path: Path
) -> None:
    base_url, env = live
    big = tmp_path / "big.glb"
    big.write_bytes(GLB + b"\x00" * (20 * 1024 * 1024))
    # Uploaders in their own processes: the server shares this interpreter with the probe only.
    uploaders = [
        subprocess.Popen(
            [sys.executable, "-c", _UPLOADER, f"{base_url}/api/products/{env.product}/uploads",
             env.owner["Authorization"], str(big)],
            stdout=subprocess.PIPE,
        )
        for _ in range(3)
    ]  # fmt: skip
    auth = {
        "Authorization": env.owner["Authorization"],
        "Content-Type": "multipart/form-data; boundary=xyz",
    }
    oversize = threading.Thread(
        target=_send_chunked,
        args=(
            base_url,
            f"POST /api/products/{env.product}/uploads",
            auth,
            60 * 1024 * 1024,
            _FILE_PART,
        ),
    )
    oversize.start()
    latencies: list[float] = []
    with httpx.Client(base_url=base_url, timeout=5) as probe:
        probe.get("/health")
        while any(p.poll() is None for p in uploaders) and len(latencies) < 2000:
            started = time.perf_counter()
            assert probe.get("/health").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.01)
    outputs = [p.communicate(timeout=120)[0].decode().strip() for p in uploaders]
    oversize.join(timeout=60)
    assert outputs == ["202"] * 3
    assert len(latencies) >= 10, "the uploads finished before the probe could measure anything"
    assert max(latencies) < 0.1, sorted(latencies)[-5:]
    assert len(env.keys()) == 3, "the same bytes three times: three assets..."
    assert len(set(env.jobs.ids)) == 1, "...and one job"


def test_a_tiny_triangle_is_not_mistaken_for_hostile(env: Env) -> None:
    # The control case: a valid model is accepted, so the refusals above are not blanket ones.
    assert ok(env.upload(triangle_glb()), 202)["asset"]["status"] == "processing"
