"""Publishing halls (server/scenes.py): immutable GLBs, a manifest pointer flipped last, REST.

Halls here have two or three booths with tiny product cards (LODs converted once per session);
only the demo test builds the full demo hall.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pipeline.run import ConvertOptions, convert
from pipeline.validate import validate_many
from scenes.demo import logo
from scenes.manifest import SCHEMA_PATH
from server.app import create_app
from server.cli import main as cli_main
from server.db.models import (
    AssetKind,
    AssetStatus,
    Booth,
    BoothSlot,
    BoothTemplate,
    Expo,
    Hall,
    HallManifest,
    Organisation,
    Product,
    ProductAsset,
    PublishedManifest,
    Role,
)
from server.db.session import build_engine, session_factory, transaction
from server.demo import publish_demo, seed_demo
from server.errors import Conflict, StorageUnavailable
from server.scenes import (
    GLB_TYPE,
    MANIFEST_CACHE_CONTROL,
    PublishError,
    PublishResult,
    asset_key,
    has_outputs,
    publish_booth,
    publish_hall,
    store_outputs,
)
from server.settings import DatabaseSettings, Settings
from server.storage import IMMUTABLE, BlobInfo, BlobStore, LocalBlobStore, S3BlobStore
from tests.conftest import make_settings
from tests.databases import sqlite_copy
from tests.factories import make_user
from tests.services import S3Service, drop_bucket, s3_settings

SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


# -- products, processed once -------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """A product photo and the pipeline's outputs for it."""

    data: bytes
    files: dict[str, bytes]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _photo(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    image = Image.new("RGB", size, (240, 236, 228))
    ImageDraw.Draw(image).ellipse([8, 8, size[0] - 8, size[1] - 8], fill=color)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def uploads() -> dict[str, Upload]:
    """A landscape and a portrait product card (the pipeline takes ~0.5 s for each)."""
    photos = {
        "landscape": _photo((160, 120), (200, 120, 30)),
        "portrait": _photo((90, 160), (40, 90, 170)),
    }
    return {
        name: Upload(data, convert(data, ConvertOptions(validate=False)).files)
        for name, data in photos.items()
    }


# -- a small hall in the database -----------------------------------------------------------


@dataclass
class SmallHall:
    hall_id: uuid.UUID
    booth_ids: list[uuid.UUID]
    product_ids: list[uuid.UUID] = field(default_factory=list)


def _put_blob(blobs: BlobStore, data: bytes, suffix: str, media_type: str) -> tuple[str, str]:
    digest = hashlib.sha256(data).hexdigest()
    key = f"uploads/{digest}.{suffix}"
    blobs.put(key, data, content_type=media_type, cache_control=IMMUTABLE)
    return key, digest


def add_upload(
    session: Session,
    blobs: BlobStore,
    booth: Booth,
    product: Product,
    upload: Upload,
    kind: AssetKind = AssetKind.photo,
    *,
    processed: bool = True,
) -> None:
    key, digest = _put_blob(blobs, upload.data, "png", "image/png")
    session.add(
        ProductAsset(
            booth_id=booth.id,
            product_id=product.id,
            kind=kind,
            status=AssetStatus.ready,
            filename="p.png",
            content_type="image/png",
            size=len(upload.data),
            sha256=digest,
            blob_key=key,
        )
    )
    if processed:
        store_outputs(blobs, digest, upload.files)


def make_hall(
    session: Session,
    blobs: BlobStore,
    uploads: dict[str, Upload],
    products_per_booth: tuple[int, ...] = (1, 1),
) -> SmallHall:
    """A hall of 3x3 shell booths side by side, each with a logo and its product cards."""
    tag = uuid.uuid4().hex[:8]
    expo = Expo(slug=f"expo-{tag}", name="Expo", starts_on=date(2030, 1, 1))
    hall = Hall(name="Hall", width=24.0, depth=16.0)
    expo.halls.append(hall)
    session.add(expo)
    session.flush()
    small = SmallHall(hall.id, [])
    colors = [("#1f4e79", "#f2c14e"), ("#7a1f3d", "#e0d2b4"), ("#2e6b3a", "#f0e6c8")]
    for index, count in enumerate(products_per_booth):
        organisation = Organisation(name=f"Org {tag} {index}", country="RU")
        slot = BoothSlot(
            hall_id=hall.id,
            number=f"A{index + 1}",
            template=BoothTemplate.shell,
            width=3.0,
            depth=3.0,
            x=-4.0 + 4.0 * index,
            z=0.0,
        )
        session.add_all([organisation, slot])
        session.flush()
        primary, accent = colors[index % len(colors)]
        booth = Booth(
            hall_id=hall.id,
            slot_id=slot.id,
            organisation_id=organisation.id,
            fascia_name=f"Exhibitor {index}",
            primary_color=primary,
            accent_color=accent,
        )
        session.add(booth)
        session.flush()
        key, digest = _put_blob(blobs, logo(f"E{index}", primary, accent), "png", "image/png")
        session.add(
            ProductAsset(
                booth_id=booth.id,
                kind=AssetKind.logo,
                status=AssetStatus.ready,
                filename="logo.png",
                content_type="image/png",
                size=1,
                sha256=digest,
                blob_key=key,
            )
        )
        for p in range(count):
            product = Product(booth_id=booth.id, name=f"P{p}", category="honey", country="RU")
            session.add(product)
            session.flush()
            add_upload(session, blobs, booth, product, uploads["landscape"])
            small.product_ids.append(product.id)
        small.booth_ids.append(booth.id)
    session.flush()
    return small


# -- stores that record or fail -------------------------------------------------------------


class RecordingStore:
    """A BlobStore that records the keys put through it and can fail the Nth put."""

    def __init__(self, inner: BlobStore, *, fail_on: int | None = None) -> None:
        self.inner = inner
        self.fail_on = fail_on
        self.puts: list[str] = []
        self.on_put: Callable[[str], None] | None = None
        self._lock = threading.Lock()

    def put(
        self, key: str, data: bytes, *, content_type: str, cache_control: str | None = None
    ) -> BlobInfo:
        with self._lock:
            self.puts.append(key)
            count = len(self.puts)
        if self.on_put is not None:
            hook, self.on_put = self.on_put, None
            hook(key)
        if self.fail_on is not None and count >= self.fail_on:
            raise StorageUnavailable(f"injected failure on put {count} ({key})")
        return self.inner.put(key, data, content_type=content_type, cache_control=cache_control)

    def get(self, key: str, *, start: int | None = None, end: int | None = None) -> bytes:
        return self.inner.get(key, start=start, end=end)

    def head(self, key: str) -> BlobInfo:
        return self.inner.head(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        return self.inner.list(prefix)

    def url(self, key: str, *, expires_in: int | None = None) -> str:
        return self.inner.url(key, expires_in=expires_in)

    def ping(self) -> None:
        self.inner.ping()


# -- the app with either blob store ---------------------------------------------------------


@dataclass
class Env:
    client: TestClient
    sessions: sessionmaker[Session]
    blobs: BlobStore
    backend: str
    admin: dict[str, str]

    def fetch(self, url: str) -> Fetched:
        """GET a published URL the way a browser would."""
        if self.backend == "local":
            r = self.client.get(url)
            return Fetched(r.status_code, dict(r.headers), r.content)
        response = httpx.get(url, timeout=10)
        return Fetched(response.status_code, dict(response.headers), response.content)


@dataclass(frozen=True)
class Fetched:
    status_code: int
    headers: dict[str, str]
    content: bytes


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def env(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[Env]:
    settings = make_settings(database_url, tmp_path)
    boto_session = request.getfixturevalue("boto_session")
    if request.param == "s3":
        service: S3Service = request.getfixturevalue("s3_service")
        settings = settings.model_copy(
            update={"blobs": s3_settings(service, s3_create_bucket=True)}
        )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        app: Any = client.app
        admin = make_user(app.state.sessions, settings, Role.admin)
        yield Env(client, app.state.sessions, app.state.blobs, request.param, admin.headers)
    if request.param == "s3":
        drop_bucket(S3BlobStore(settings.blobs, session=boto_session))


@pytest.fixture
def local(client: TestClient, settings: Settings) -> Env:
    """The app on both databases with the local blob store."""
    app: Any = client.app
    admin = make_user(app.state.sessions, settings, Role.admin)
    return Env(client, app.state.sessions, app.state.blobs, "local", admin.headers)


def _hall(env: Env, uploads: dict[str, Upload], counts: tuple[int, ...] = (1, 1)) -> SmallHall:
    with transaction(env.sessions) as session:
        return make_hall(session, env.blobs, uploads, counts)


def _publish(env: Env, hall_id: uuid.UUID, blobs: BlobStore | None = None) -> PublishResult:
    with transaction(env.sessions) as session:
        return publish_hall(session, blobs or env.blobs, hall_id)


def _manifest(env: Env, hall_id: uuid.UUID) -> dict[str, Any]:
    response = env.client.get(f"/api/halls/{hall_id}/manifest")
    assert response.status_code == 200, response.text
    manifest: dict[str, Any] = response.json()
    return manifest


def _glbs(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [manifest["shell"], *(lod for booth in manifest["booths"] for lod in booth["lods"])]


def _booth(manifest: dict[str, Any], booth_id: uuid.UUID) -> dict[str, Any]:
    found: dict[str, Any] = next(b for b in manifest["booths"] if b["id"] == str(booth_id))
    return found


def _without_urls(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_urls(v) for k, v in node.items() if k != "url"}
    if isinstance(node, list):
        return [_without_urls(item) for item in node]
    return node


def _rename(env: Env, booth_id: uuid.UUID, name: str) -> None:
    with transaction(env.sessions) as session:
        session.get_one(Booth, booth_id).fascia_name = name


# -- tests ------------------------------------------------------------------------------------


def test_a_published_hall_serves_a_valid_manifest_whose_urls_fetch_immutable_glbs(
    env: Env, uploads: dict[str, Upload]
) -> None:
    small = _hall(env, uploads, (2, 1, 0))
    response = env.client.post(f"/api/halls/{small.hall_id}/publish", headers=env.admin)
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["version"] == 1
    assert summary["changed"] is True
    assert sorted(summary["rebuilt"]) == sorted(str(b) for b in small.booth_ids)
    assert summary["objects_written"] == 3 * 3 + 1 + 1, "3 LODs per booth, the shell, the manifest"
    manifest = _manifest(env, small.hall_id)
    jsonschema.validate(manifest, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert manifest["hall"]["id"] == str(small.hall_id)
    hotspots = {h["product_id"] for b in manifest["booths"] for h in b["hotspots"]}
    assert hotspots == {str(p) for p in small.product_ids}
    for glb in _glbs(manifest):
        info = env.blobs.head(glb["key"])
        assert (info.content_type, info.cache_control) == (GLB_TYPE, IMMUTABLE)
        fetched = env.fetch(glb["url"])
        assert fetched.status_code == 200, glb["url"]
        assert fetched.headers["content-type"] == GLB_TYPE
        assert fetched.headers["cache-control"] == IMMUTABLE
        assert len(fetched.content) == glb["bytes"]
        assert fetched.content[:4] == b"glTF"
        assert glb["key"] == f"scenes/{hashlib.sha256(fetched.content).hexdigest()[:32]}.glb"
    stored = env.blobs.head(summary["manifest_key"])
    assert (stored.content_type, stored.cache_control) == ("application/json", IMMUTABLE)


def test_the_manifest_is_short_cached_and_answers_304_to_its_etag(
    local: Env, uploads: dict[str, Upload]
) -> None:
    small = _hall(local, uploads)
    _publish(local, small.hall_id)
    url = f"/api/halls/{small.hall_id}/manifest"
    first = local.client.get(url)
    assert first.headers["cache-control"] == MANIFEST_CACHE_CONTROL == "public, max-age=10"
    etag = first.headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = local.client.get(url, headers={"If-None-Match": header})
        assert again.status_code == 304, header
        assert again.content == b""
        assert again.headers["etag"] == etag
    assert local.client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    _rename(local, small.booth_ids[0], "Renamed")
    _publish(local, small.hall_id)
    changed = local.client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200, "a new version has a new ETag"
    assert changed.headers["etag"] != etag


def test_a_hall_without_a_manifest_answers_404_with_a_stable_code(
    local: Env, uploads: dict[str, Upload]
) -> None:
    small = _hall(local, uploads)
    unpublished = local.client.get(f"/api/halls/{small.hall_id}/manifest")
    assert unpublished.status_code == 404
    assert unpublished.json()["error"]["code"] == "manifest_not_found"
    unknown = local.client.get(f"/api/halls/{uuid.uuid4()}/manifest")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "hall_not_found"
    publish = local.client.post(f"/api/halls/{uuid.uuid4()}/publish", headers=local.admin)
    assert publish.status_code == 404
    assert publish.json()["error"]["code"] == "hall_not_found"


def test_changing_one_booths_fascia_rebuilds_and_writes_only_that_booth(
    local: Env, uploads: dict[str, Upload]
) -> None:
    small = _hall(local, uploads, (1, 1, 1))
    _publish(local, small.hall_id)
    before = _manifest(local, small.hall_id)
    changed = small.booth_ids[1]
    _rename(local, changed, "Новое имя 新名字")
    recorder = RecordingStore(local.blobs)
    result = _publish(local, small.hall_id, recorder)
    assert result.rebuilt == [str(changed)]
    assert (result.version, result.changed) == (2, True)
    after = _manifest(local, small.hall_id)
    new_lods = {lod["key"] for lod in _booth(after, changed)["lods"]}
    assert new_lods.isdisjoint(lod["key"] for lod in _booth(before, changed)["lods"])
    assert sorted(recorder.puts) == sorted([*new_lods, result.manifest_key])
    assert result.objects_written == len(recorder.puts) == 4
    for booth_id in set(small.booth_ids) - {changed}:
        assert _booth(after, booth_id)["lods"] == _booth(before, booth_id)["lods"]
    assert after["shell"] == before["shell"], "a fascia is not part of the hall shell"


def test_publishing_an_unchanged_hall_keeps_its_version_and_writes_nothing(
    local: Env, uploads: dict[str, Upload]
) -> None:
    small = _hall(local, uploads)
    first = _publish(local, small.hall_id)
    recorder = RecordingStore(local.blobs)
    again = _publish(local, small.hall_id, recorder)
    assert (again.version, again.changed, again.rebuilt) == (first.version, False, [])
    assert again.manifest_key == first.manifest_key
    assert recorder.puts == []
    with local.sessions() as session:
        assert session.scalar(select(func.count()).select_from(PublishedManifest)) == 1


# Two booths change: puts 1-6 are their GLBs (the shell exists already), put 7 the manifest.
@pytest.mark.parametrize("fail_on", [1, 4, 7])
def test_a_put_failing_mid_build_leaves_the_previous_manifest_served(
    local: Env, uploads: dict[str, Upload], fail_on: int
) -> None:
    small = _hall(local, uploads)
    _publish(local, small.hall_id)
    url = f"/api/halls/{small.hall_id}/manifest"
    before = local.client.get(url)
    for booth_id in small.booth_ids:
        _rename(local, booth_id, f"Changed {booth_id.hex[:6]}")
    app: Any = local.client.app
    failing = RecordingStore(local.blobs, fail_on=fail_on)
    app.state.blobs = failing
    try:
        response = local.client.post(f"/api/halls/{small.hall_id}/publish", headers=local.admin)
    finally:
        app.state.blobs = local.blobs
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "storage_unavailable"
    assert len(failing.puts) >= fail_on
    after = local.client.get(url)
    assert (after.status_code, after.content) == (200, before.content)
    assert after.headers["etag"] == before.headers["etag"]
    with local.sessions() as session:
        pointer = session.get_one(HallManifest, small.hall_id)
        assert pointer.version == 1
        assert session.scalar(select(func.count()).select_from(PublishedManifest)) == 1
    retried = _publish(local, small.hall_id)
    assert retried.version == 2
    assert sorted(retried.rebuilt) == sorted(str(b) for b in small.booth_ids)


def test_an_old_manifests_glbs_stay_readable_after_a_rebuild(
    local: Env, uploads: dict[str, Upload]
) -> None:
    small = _hall(local, uploads)
    first = _publish(local, small.hall_id)
    old = _manifest(local, small.hall_id)
    _rename(local, small.booth_ids[0], "A new name")
    publish_result = local.client.post(f"/api/halls/{small.hall_id}/publish", headers=local.admin)
    assert publish_result.json()["version"] == 2
    assert _manifest(local, small.hall_id) != old
    for glb in _glbs(old):
        assert local.fetch(glb["url"]).status_code == 200, glb["key"]
    assert json.loads(local.blobs.get(first.manifest_key)) == _without_urls(old)
    with local.sessions() as session:
        versions = session.scalars(
            select(PublishedManifest)
            .where(PublishedManifest.hall_id == small.hall_id)
            .order_by(PublishedManifest.version)
        ).all()
        assert [v.version for v in versions] == [1, 2]
        assert versions[0].superseded_at is not None
        assert versions[1].superseded_at is None
        assert versions[0].superseded_at >= versions[0].created_at
        assert {g["key"] for g in _glbs(old)} | {first.manifest_key} == set(versions[0].keys)


def test_a_scene_error_answers_its_4xx_code_and_changes_nothing(
    local: Env, uploads: dict[str, Upload]
) -> None:
    small = _hall(local, uploads)
    _publish(local, small.hall_id)
    with transaction(local.sessions) as session:
        logo_asset = session.scalars(
            select(ProductAsset).where(
                ProductAsset.booth_id == small.booth_ids[0], ProductAsset.kind == AssetKind.logo
            )
        ).one()
        key, digest = _put_blob(local.blobs, b"not an image at all", "png", "image/png")
        logo_asset.blob_key, logo_asset.sha256 = key, digest
    response = local.client.post(f"/api/halls/{small.hall_id}/publish", headers=local.admin)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "logo_invalid"
    with local.sessions() as session:
        assert session.get_one(HallManifest, small.hall_id).version == 1
    with transaction(local.sessions) as session, pytest.raises(PublishError) as caught:
        publish_hall(session, local.blobs, small.hall_id)
    assert (caught.value.code, caught.value.status) == ("logo_invalid", 422)


def test_a_product_without_processed_outputs_is_left_off_its_booth(
    local: Env, uploads: dict[str, Upload]
) -> None:
    small = _hall(local, uploads, (1, 0))
    with transaction(local.sessions) as session:
        booth = session.get_one(Booth, small.booth_ids[1])
        waiting = Product(booth_id=booth.id, name="Waiting", category="tea", country="LK")
        session.add(waiting)
        session.flush()
        add_upload(session, local.blobs, booth, waiting, uploads["portrait"], processed=False)
        waiting_id = str(waiting.id)
    result = _publish(local, small.hall_id)
    assert result.skipped_products == [waiting_id]
    hotspots = [
        h["product_id"] for b in _manifest(local, small.hall_id)["booths"] for h in b["hotspots"]
    ]
    assert hotspots == [str(small.product_ids[0])]


def test_a_ready_model_is_preferred_over_a_photo_of_the_same_product(
    local: Env, uploads: dict[str, Upload]
) -> None:
    small = _hall(local, uploads, (1,))
    with transaction(local.sessions) as session:
        booth = session.get_one(Booth, small.booth_ids[0])
        product = session.get_one(Product, small.product_ids[0])
        # The "model" upload's outputs are the portrait card: taller than wide once placed.
        add_upload(session, local.blobs, booth, product, uploads["portrait"], AssetKind.model)
    _publish(local, small.hall_id)
    with local.sessions() as session:
        records = session.get_one(HallManifest, small.hall_id).manifest.records
    (placement,) = records[str(small.booth_ids[0])]["placements"]
    width, height, _ = placement["size"]
    assert height > width, placement


def test_publish_booth_republishes_its_hall_rebuilding_only_that_booth(
    local: Env, uploads: dict[str, Upload]
) -> None:
    small = _hall(local, uploads)
    _publish(local, small.hall_id)
    _rename(local, small.booth_ids[1], "Only me")
    with transaction(local.sessions) as session:
        result = publish_booth(session, local.blobs, small.booth_ids[1])
    assert (result.hall_id, result.version, result.rebuilt) == (
        small.hall_id,
        2,
        [str(small.booth_ids[1])],
    )
    assert _booth(_manifest(local, small.hall_id), small.booth_ids[1])["name"] == "Only me"


def test_a_publish_that_loses_a_race_is_a_conflict_and_the_winner_stays(
    local: Env, uploads: dict[str, Upload]
) -> None:
    small = _hall(local, uploads)
    _publish(local, small.hall_id)
    _rename(local, small.booth_ids[0], "Racing")
    recorder = RecordingStore(local.blobs)
    winner: list[PublishResult] = []
    # While the loser is storing its first GLB, another publish of the hall runs and commits.
    recorder.on_put = lambda _key: winner.append(_publish(local, small.hall_id))
    with pytest.raises(Conflict) as caught, transaction(local.sessions) as session:
        publish_hall(session, recorder, small.hall_id)
    assert caught.value.code == "publish_conflict"
    assert winner[0].version == 2
    with local.sessions() as session:
        pointer = session.get_one(HallManifest, small.hall_id)
        assert (pointer.version, pointer.key) == (2, winner[0].manifest_key)


def test_only_admins_may_publish_and_anyone_may_read_the_manifest(
    local: Env, uploads: dict[str, Upload], settings: Settings
) -> None:
    small = _hall(local, uploads, (1,))
    exhibitor = make_user(local.sessions, settings, Role.exhibitor)
    refused = local.client.post(f"/api/halls/{small.hall_id}/publish", headers=exhibitor.headers)
    assert refused.status_code == 403
    anonymous = local.client.post(f"/api/halls/{small.hall_id}/publish")
    assert anonymous.status_code == 401
    assert local.client.post(f"/api/halls/{small.hall_id}/publish", headers=local.admin).is_success
    assert local.client.get(f"/api/halls/{small.hall_id}/manifest").status_code == 200


def test_outputs_are_stored_with_their_types_and_the_report_last(
    tmp_path: Path, uploads: dict[str, Upload]
) -> None:
    upload = uploads["landscape"]
    blobs = LocalBlobStore(tmp_path / "blobs")
    interrupted = RecordingStore(blobs, fail_on=len(upload.files))
    with pytest.raises(StorageUnavailable):
        store_outputs(interrupted, upload.sha256, upload.files)
    assert interrupted.puts[-1] == asset_key(upload.sha256, "report.json")
    assert not has_outputs(blobs, upload.sha256), "no report, no outputs"
    assert store_outputs(blobs, upload.sha256, upload.files) == len(upload.files)
    assert has_outputs(blobs, upload.sha256)
    types = {path: blobs.head(asset_key(upload.sha256, path)).content_type for path in upload.files}
    assert types == {
        "web/lod0.glb": GLB_TYPE,
        "web/lod1.glb": GLB_TYPE,
        "web/lod2.glb": GLB_TYPE,
        "compat/model.glb": GLB_TYPE,
        "thumbnail.webp": "image/webp",
        "report.json": "application/json",
    }
    assert {blobs.head(asset_key(upload.sha256, p)).cache_control for p in upload.files} == {
        IMMUTABLE
    }


def test_the_publish_hall_command_publishes_and_refuses_bad_ids(
    local: Env,
    uploads: dict[str, Upload],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    small = _hall(local, uploads, (1,))
    monkeypatch.setenv("PAVILION_DATABASE__URL", settings.database.url)
    monkeypatch.setenv("PAVILION_BLOBS__LOCAL_DIR", str(settings.blobs.local_dir))
    assert cli_main(["publish-hall", str(small.hall_id)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["version"], summary["rebuilt"]) == (1, [str(small.booth_ids[0])])
    assert local.client.get(f"/api/halls/{small.hall_id}/manifest").status_code == 200
    assert cli_main(["publish-hall", "not-a-uuid"]) == 2
    assert cli_main(["publish-hall", str(uuid.uuid4())]) == 2
    assert "hall_not_found" in capsys.readouterr().err


# -- the demo -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Demo:
    sessions: sessionmaker[Session]
    blobs: LocalBlobStore
    hall_id: uuid.UUID
    results: list[PublishResult]


@pytest.fixture(scope="module")
def demo(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo seeded and published once (~15 s: 30 photos through the pipeline, 14 booths)."""
    directory = tmp_path_factory.mktemp("demo-publish")
    engine = build_engine(DatabaseSettings(url=sqlite_copy(sqlite_template, directory)))
    sessions = session_factory(engine)
    blobs = LocalBlobStore(directory / "blobs")
    with transaction(sessions) as session:
        expo = seed_demo(session, blobs, "demo-password")
        hall_id = expo.halls[0].id
    with transaction(sessions) as session:
        results = publish_demo(session, blobs)
    yield Demo(sessions, blobs, hall_id, results)
    engine.dispose()


@pytest.mark.slow
def test_the_demo_hall_is_published_with_every_booth_and_product(demo: Demo) -> None:
    (result,) = demo.results
    assert (result.hall_id, result.version, result.skipped_products) == (demo.hall_id, 1, [])
    with demo.sessions() as session:
        booths = session.scalars(select(Booth).where(Booth.hall_id == demo.hall_id)).all()
        products = {str(p.id) for b in booths for p in b.products}
        pointer = session.get_one(HallManifest, demo.hall_id)
        manifest = json.loads(demo.blobs.get(pointer.key))
    jsonschema.validate(manifest, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert {b["id"] for b in manifest["booths"]} == {str(b.id) for b in booths}
    assert {h["product_id"] for b in manifest["booths"] for h in b["hotspots"]} == products
    assert len({b["lods"][0]["key"] for b in manifest["booths"]}) == len(booths)
    # Every GLB of the shell and of the first booth passes the Khronos validator.
    first = manifest["booths"][0]
    items = [(g["key"], demo.blobs.get(g["key"])) for g in [manifest["shell"], *first["lods"]]]
    reports = validate_many(items, allowed_warnings=None)
    assert [r.num_errors for r in reports] == [0] * len(items)


@pytest.mark.slow
def test_publishing_the_demo_again_changes_nothing(demo: Demo) -> None:
    before = sorted((b.key, b.etag) for b in demo.blobs.list())
    with transaction(demo.sessions) as session:
        (again,) = publish_demo(session, demo.blobs)
    assert (again.version, again.changed, again.rebuilt, again.objects_written) == (1, False, [], 0)
    assert sorted((b.key, b.etag) for b in demo.blobs.list()) == before


def test_publish_demo_does_nothing_before_the_demo_is_seeded(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = build_engine(DatabaseSettings(url=sqlite_url))
    try:
        with transaction(session_factory(engine)) as session:
            assert publish_demo(session, LocalBlobStore(tmp_path / "blobs")) == []
    finally:
        engine.dispose()


def test_a_branding_change_republishes_the_booth_and_tells_the_halls_visitors(
    local: Env, uploads: dict[str, Upload], monkeypatch: pytest.MonkeyPatch
) -> None:
    small = _hall(local, uploads, (1, 1))
    booth_id = small.booth_ids[0]
    published: list[tuple[str, dict[str, Any]]] = []
    pubsub = local.client.app.state.pubsub  # type: ignore[attr-defined]
    monkeypatch.setattr(
        pubsub, "publish", lambda topic, message: published.append((topic, message))
    )
    # Before the hall's first publish a change waits for the organiser's publish.
    patched = local.client.patch(
        f"/api/booths/{booth_id}", json={"tagline": "Early"}, headers=local.admin
    )
    assert patched.status_code == 200, patched.text
    assert published == []
    assert local.client.post(f"/api/halls/{small.hall_id}/publish", headers=local.admin).is_success
    assert published[-1] == (
        f"hall:{small.hall_id}",
        {
            "type": "booth.updated",
            "hall_id": str(small.hall_id),
            "booth_id": None,
            "manifest_version": 1,
        },
    )
    before = _manifest(local, small.hall_id)
    patched = local.client.patch(
        f"/api/booths/{booth_id}", json={"fascia_name": "Altai Gold"}, headers=local.admin
    )
    assert patched.status_code == 200, patched.text
    deadline = time.monotonic() + 10  # the republish runs after the response
    while _booth(after := _manifest(local, small.hall_id), booth_id)["name"] != "Altai Gold":
        assert time.monotonic() < deadline, "the booth was not republished"
        time.sleep(0.05)
    assert _booth(after, booth_id)["lods"] != _booth(before, booth_id)["lods"]
    other = small.booth_ids[1]
    assert _booth(after, other)["lods"] == _booth(before, other)["lods"]  # only that booth rebuilt
    assert published[-1] == (
        f"hall:{small.hall_id}",
        {
            "type": "booth.updated",
            "hall_id": str(small.hall_id),
            "booth_id": str(booth_id),
            "manifest_version": 2,
        },
    )
