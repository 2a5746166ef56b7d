"""Publishing halls: booths built into GLBs by :mod:`scenes`, stored, and the pointer flipped last.

Storage layout (every object immutable and content-addressed, ``Cache-Control:`` :data:`IMMUTABLE`):

    assets/<sha256 of the upload>/web/lod0.glb ...   the pipeline's outputs for one upload
    scenes/<sha256, 128 bits>.glb                    booth LODs and hall shells
    manifests/<hall id>/<sha256>.json                one hall manifest version

A publish reads the hall's booths, slots, logos and products from the database and the products'
LODs from ``assets/``, calls :func:`scenes.build.build_hall` (which rebuilds only booths whose
digest changed), writes every GLB and then the manifest, and only then, in the caller's
transaction, inserts the new :class:`~server.db.models.PublishedManifest` version and flips the
hall's :class:`~server.db.models.HallManifest` pointer to it. A visitor therefore gets either the
old manifest or the new one, and every key a served manifest names already exists. Nothing is
deleted here: old versions stay readable, and a janitor may delete the objects of versions
superseded more than :data:`MANIFEST_GRACE` ago (docs/operations.md).

Errors: scene and pipeline refusals become :class:`PublishError` (their code and status: 4xx, or
503 for a missing font); a lost race with a concurrent publish of the same hall is a
:class:`~server.errors.Conflict` ``publish_conflict``; storage faults stay
:class:`~server.errors.StorageError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from pipeline.errors import PipelineError
from pipeline.parallel import map_threads
from scenes.booth import BoothSpec, ProductModel
from scenes.build import PlacedBooth, build_hall
from scenes.errors import SceneError
from scenes.layout import SlotSpec
from scenes.manifest import BoothRecord
from server.db.models import (
    AssetKind,
    AssetStatus,
    Booth,
    Hall,
    HallManifest,
    Product,
    ProductAsset,
    PublishedManifest,
)
from server.errors import BlobNotFound, Conflict, ExpoError, NotFound, StorageUnavailable
from server.storage.base import IMMUTABLE, BlobStore

logger = logging.getLogger(__name__)

GLB_TYPE = "model/gltf-binary"
# A visitor's client re-reads the manifest at most this often; an edge cache may serve it as long.
MANIFEST_CACHE_CONTROL = "public, max-age=10"
# How long the objects of a superseded manifest version must stay readable: a visitor who loaded
# it keeps fetching its GLBs until the hall's "booth.updated" event makes the client reload.
MANIFEST_GRACE = timedelta(hours=24)
LOD_PATHS = ("web/lod0.glb", "web/lod1.glb", "web/lod2.glb")
# The pipeline writes report.json last: its presence means the upload's outputs are complete.
DONE_MARKER = "report.json"
CONTENT_TYPES = {
    ".glb": GLB_TYPE,
    ".webp": "image/webp",
    ".json": "application/json",
    ".png": "image/png",
    ".jpg": "image/jpeg",
}
FETCH_WORKERS = 8  # blob reads are I/O: more threads than cores
_MANIFEST_CACHE_SIZE = 32


class PublishError(ExpoError):
    """A scene or pipeline refusal during a publish, with that error's code and HTTP status."""

    def __init__(self, message: str, *, code: str, status: int) -> None:
        super().__init__(message, code=code)
        self.status = status


@dataclass(slots=True)
class PublishResult:
    """What a publish did.

    Attributes:
        version: the hall's manifest version now current.
        changed: False when the built manifest was byte-identical to the current one (no flip).
        rebuilt: ids of the booths whose GLBs were built this time.
        objects_written: blobs written (GLBs and the manifest); existing keys are not rewritten.
        skipped_products: ids of products left out because they have no processed outputs.
        timings: seconds per phase (gather, build, store, flip, total).
    """

    hall_id: uuid.UUID
    version: int
    manifest_key: str
    changed: bool
    booths: int
    rebuilt: list[str]
    objects_written: int
    skipped_products: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServedManifest:
    """A manifest ready to send: JSON bytes with URLs resolved, and its entity tag."""

    body: bytes
    etag: str
    version: int


# -- keys and storage of processed products -------------------------------------------------


def asset_key(sha256: str, path: str) -> str:
    """Where the pipeline's output ``path`` for the upload with ``sha256`` is stored."""
    return f"assets/{sha256}/{path}"


def manifest_key(hall_id: uuid.UUID, sha256: str) -> str:
    """The immutable key of one manifest version of a hall."""
    return f"manifests/{hall_id}/{sha256}.json"


def content_type(path: str) -> str:
    """The Content-Type of a pipeline output, from its extension."""
    return CONTENT_TYPES.get(PurePosixPath(path).suffix.lower(), "application/octet-stream")


def has_outputs(blobs: BlobStore, sha256: str) -> bool:
    """Whether the outputs of the upload with ``sha256`` are stored completely."""
    return _exists(blobs, asset_key(sha256, DONE_MARKER))


def store_outputs(blobs: BlobStore, sha256: str, files: dict[str, bytes]) -> int:
    """Store a pipeline result's ``files`` under ``assets/<sha256>/``, immutable.

    ``report.json`` goes last, so :func:`has_outputs` is true only once every file is there.

    Returns:
        The number of files stored.

    Raises:
        StorageError: the store refused a write.
    """
    ordered = sorted(files, key=lambda path: (path == DONE_MARKER, path))
    for path in ordered:
        blobs.put(
            asset_key(sha256, path),
            files[path],
            content_type=content_type(path),
            cache_control=IMMUTABLE,
        )
    return len(ordered)


# -- publishing -----------------------------------------------------------------------------


def publish_booth(session: Session, blobs: BlobStore, booth_id: uuid.UUID) -> PublishResult:
    """Republish the hall of a booth; only booths whose inputs changed are rebuilt.

    Raises:
        NotFound: ``booth_not_found``; and everything :func:`publish_hall` raises.
    """
    booth = session.get(Booth, booth_id)
    if booth is None:
        raise NotFound("booth not found", code="booth_not_found")
    return publish_hall(session, blobs, booth.hall_id)


def publish_hall(session: Session, blobs: BlobStore, hall_id: uuid.UUID) -> PublishResult:
    """Build what changed in a hall, store it, and flip the hall's manifest pointer.

    The new version row and the pointer are written (and flushed) in ``session``'s transaction;
    the caller commits. Every blob the manifest names is stored before that.

    Args:
        session: a session whose transaction the caller commits.
        blobs: the blob store to read product outputs and logos from and write GLBs to.
        hall_id: the hall.

    Returns:
        The version now current and what was rebuilt and written.

    Raises:
        NotFound: ``hall_not_found``.
        PublishError: a scene or pipeline refusal (e.g. ``logo_invalid``, ``booth_size_invalid``,
            503 ``font_missing``).
        Conflict: ``publish_conflict``, another publish of the hall committed first.
        StorageError: the blob store failed; the pointer is unchanged.
    """
    laps = _Laps()
    hall = session.get(Hall, hall_id)
    if hall is None:
        raise NotFound("hall not found", code="hall_not_found")
    base = session.get(HallManifest, hall_id)
    booths, skipped = _gather(session, blobs, hall_id)
    laps.mark("gather")
    writer = _Writer(blobs)
    previous = _records(base.manifest.records) if base is not None else {}
    try:
        build = build_hall(
            str(hall_id), hall.name, hall.width, hall.depth, booths, writer.put, previous
        )
    except (SceneError, PipelineError) as exc:
        raise PublishError(exc.message, code=exc.code, status=exc.status) from exc
    laps.mark("build")
    new = _Version.of(hall_id, build.manifest, build.manifest_bytes, build.records)
    writer.store(new.key, build.manifest_bytes, "application/json")
    laps.mark("store")
    version, changed = _flip(session, hall_id, base, new)
    laps.mark("flip")
    logger.info(
        "published hall %s version %d: %d booths, %d rebuilt, %d objects written, %.2f s",
        *(hall_id, version, len(booths), len(build.rebuilt), len(writer.written), laps.total),
    )
    return PublishResult(
        hall_id=hall_id,
        version=version,
        manifest_key=new.key,
        changed=changed,
        booths=len(booths),
        rebuilt=build.rebuilt,
        objects_written=len(writer.written),
        skipped_products=skipped,
        warnings=build.warnings,
        timings=laps.timings(),
    )


class _Laps:
    """Seconds spent in each phase, for the result and the log."""

    def __init__(self) -> None:
        self._started = self._last = time.perf_counter()
        self._laps: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self._laps[name] = round(now - self._last, 3)
        self._last = now

    @property
    def total(self) -> float:
        return round(self._last - self._started, 3)

    def timings(self) -> dict[str, float]:
        return {**self._laps, "total": self.total}


@dataclass(frozen=True, slots=True)
class _Version:
    """A built manifest as a version row needs it."""

    key: str
    sha256: str
    size: int
    keys: list[str]  # the manifest's key and every GLB key it names
    records: dict[str, Any]

    @classmethod
    def of(
        cls,
        hall_id: uuid.UUID,
        manifest: dict[str, Any],
        data: bytes,
        records: dict[str, BoothRecord],
    ) -> _Version:
        digest = hashlib.sha256(data).hexdigest()
        key = manifest_key(hall_id, digest)
        return cls(
            key=key,
            sha256=digest,
            size=len(data),
            keys=sorted({key, *_keys(manifest)}),
            records={booth_id: r.to_json() for booth_id, r in records.items()},
        )


class _Writer:
    """The ``put`` handed to :func:`build_hall`: stores GLBs once, from any thread."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        self._lock = threading.Lock()
        self.written: list[str] = []

    def put(self, key: str, data: bytes) -> None:
        self.store(key, data, GLB_TYPE)

    def store(self, key: str, data: bytes, media_type: str) -> None:
        # Content-addressed: an object already at ``key`` with this size holds these bytes.
        try:
            if self._blobs.head(key).size == len(data):
                return
        except BlobNotFound:
            pass
        self._blobs.put(key, data, content_type=media_type, cache_control=IMMUTABLE)
        with self._lock:
            self.written.append(key)


def _records(stored: dict[str, Any]) -> dict[str, BoothRecord]:
    """The booth records of the current version; a record that no longer parses is rebuilt."""
    records = {}
    for booth_id, data in stored.items():
        try:
            records[booth_id] = BoothRecord.from_json(data)
        except (KeyError, TypeError, ValueError, IndexError):
            logger.warning("booth %s: unreadable build record, rebuilding it", booth_id)
    return records


def _keys(node: Any) -> Iterator[str]:
    """Every ``key`` in a manifest (shell and booth LODs), wherever it sits."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name == "key" and isinstance(value, str):
                yield value
            else:
                yield from _keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item)


def _flip(
    session: Session, hall_id: uuid.UUID, base: HallManifest | None, new: _Version
) -> tuple[int, bool]:
    """Insert the new version and point the hall at it; returns (version, changed)."""
    if base is not None and base.manifest.sha256 == new.sha256:
        if base.manifest.records != new.records:  # same GLBs from new inputs: keep the digests
            base.manifest.records = new.records
            session.flush()
        return base.version, False
    now = datetime.now(UTC)
    version = (base.version if base is not None else 0) + 1
    row = PublishedManifest(
        hall_id=hall_id,
        version=version,
        key=new.key,
        sha256=new.sha256,
        size=new.size,
        keys=new.keys,
        records=new.records,
        created_at=now,
    )
    try:
        session.add(row)
        session.flush()  # unique (hall_id, version): a concurrent publish that won fails us here
        pointer = {"manifest_id": row.id, "version": version, "key": new.key, "updated_at": now}
        if base is None:
            session.add(HallManifest(hall_id=hall_id, **pointer))
            session.flush()
            return version, True
        flipped = session.execute(
            update(HallManifest)
            .where(HallManifest.hall_id == hall_id, HallManifest.version == base.version)
            .values(**pointer)
            .execution_options(synchronize_session=False)
        )
    except IntegrityError as exc:
        raise _conflict() from exc
    if flipped.rowcount != 1:  # type: ignore[attr-defined]
        raise _conflict()
    session.execute(
        update(PublishedManifest)
        .where(PublishedManifest.id == base.manifest_id)
        .values(superseded_at=now)
        .execution_options(synchronize_session=False)
    )
    session.expire(base)
    return version, True


def _conflict() -> Conflict:
    return Conflict(
        "another publish of this hall finished first; publish again", code="publish_conflict"
    )


# -- gathering a hall's booths --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _BoothInputs:
    booth: Booth
    logo_key: str | None
    products: list[tuple[str, list[str]]]  # (product id, candidate upload sha256s, best first)


def _gather(
    session: Session, blobs: BlobStore, hall_id: uuid.UUID
) -> tuple[list[PlacedBooth], list[str]]:
    """The hall's booths as scene inputs, and the ids of products left out (no outputs)."""
    rows = session.scalars(
        select(Booth)
        .where(Booth.hall_id == hall_id)
        .options(
            selectinload(Booth.slot), selectinload(Booth.products).selectinload(Product.assets)
        )
    ).all()
    logos = _logo_keys(session, [b.id for b in rows])
    inputs = [
        _BoothInputs(
            booth,
            logos.get(booth.id),
            # The order is part of the booth's digest: make it total (created_at may tie).
            [
                (str(p.id), _candidates(p.assets))
                for p in sorted(booth.products, key=lambda p: (p.created_at, p.id))
            ],
        )
        for booth in rows
    ]
    products = [p for i in inputs for p in i.products]
    models = map_threads(lambda p: _product_model(blobs, *p), products, FETCH_WORKERS)
    found = {p[0]: m for p, m in zip(products, models, strict=True) if m is not None}
    logo_bytes = map_threads(lambda i: _logo(blobs, i), inputs, FETCH_WORKERS)
    skipped = [pid for pid, _ in products if pid not in found]
    placed = [
        PlacedBooth(_spec(i, logo, found), _slot(i.booth))
        for i, logo in zip(inputs, logo_bytes, strict=True)
    ]
    return placed, skipped


def _candidates(assets: list[ProductAsset]) -> list[str]:
    """Upload hashes to look for outputs of: ready models newest first, then ready photos."""
    ready = [a for a in assets if a.status is AssetStatus.ready and a.sha256]
    ordered: list[str] = []
    for kind in (AssetKind.model, AssetKind.photo):
        for asset in sorted(ready, key=lambda a: (a.created_at, a.id), reverse=True):
            if asset.kind is kind and asset.sha256 and asset.sha256 not in ordered:
                ordered.append(asset.sha256)
    return ordered


def _product_model(blobs: BlobStore, product_id: str, shas: list[str]) -> ProductModel | None:
    for sha in shas:
        try:
            lod0, lod1, lod2 = (blobs.get(asset_key(sha, path)) for path in LOD_PATHS)
        except BlobNotFound:
            continue  # not processed (yet): try an older upload
        return ProductModel(product_id, (lod0, lod1, lod2))
    logger.info("product %s has no processed outputs: left off its booth", product_id)
    return None


def _logo_keys(session: Session, booth_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The newest ready logo of each booth."""
    rows = session.execute(
        select(ProductAsset.booth_id, ProductAsset.blob_key)
        .where(
            ProductAsset.booth_id.in_(booth_ids),
            ProductAsset.kind == AssetKind.logo,
            ProductAsset.status == AssetStatus.ready,
            ProductAsset.blob_key.is_not(None),
        )
        .order_by(ProductAsset.created_at, ProductAsset.id)
    )
    return {booth_id: key for booth_id, key in rows if key}


def _logo(blobs: BlobStore, inputs: _BoothInputs) -> bytes | None:
    if inputs.logo_key is None:
        return None
    try:
        return blobs.get(inputs.logo_key)
    except BlobNotFound:
        logger.warning("booth %s: its logo blob is missing", inputs.booth.id)
        return None


def _spec(inputs: _BoothInputs, logo: bytes | None, found: dict[str, ProductModel]) -> BoothSpec:
    booth = inputs.booth
    return BoothSpec(
        id=str(booth.id),
        template=booth.slot.template.value,
        width=booth.slot.width,
        depth=booth.slot.depth,
        name=booth.fascia_name,
        tagline=booth.tagline,
        primary_color=booth.primary_color,
        accent_color=booth.accent_color,
        logo=logo,
        products=tuple(found[pid] for pid, _ in inputs.products if pid in found),
    )


def _slot(booth: Booth) -> SlotSpec:
    slot = booth.slot
    return SlotSpec(slot.number, slot.width, slot.depth, slot.x, slot.z, slot.rotation)


# -- serving --------------------------------------------------------------------------------

_cache: OrderedDict[str, Any] = OrderedDict()
_cache_lock = threading.Lock()


def served_manifest(session: Session, blobs: BlobStore, hall_id: uuid.UUID) -> ServedManifest:
    """The hall's current manifest with a ``url`` next to every ``key``, and its ETag.

    The ETag hashes the bytes sent, URLs included: with presigned S3 URLs it changes when they
    are re-signed, so a client never keeps a copy whose URLs have expired.

    Raises:
        NotFound: ``hall_not_found``, or ``manifest_not_found`` before the first publish.
        StorageError: the manifest object cannot be read.
    """
    pointer = session.get(HallManifest, hall_id)
    if pointer is None:
        if session.get(Hall, hall_id) is None:
            raise NotFound("hall not found", code="hall_not_found")
        raise NotFound("this hall has not been published yet", code="manifest_not_found")
    manifest = _load(blobs, pointer.key, pointer.manifest.sha256)
    body = json.dumps(
        with_urls(manifest, blobs), ensure_ascii=False, separators=(",", ":")
    ).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return ServedManifest(body, etag, pointer.version)


def with_urls(node: Any, blobs: BlobStore) -> Any:
    """A copy of a manifest with ``url`` (from ``blobs.url``) beside every ``key``."""
    if isinstance(node, dict):
        copy = {name: with_urls(value, blobs) for name, value in node.items()}
        if isinstance(node.get("key"), str):
            copy["url"] = blobs.url(node["key"])
        return copy
    if isinstance(node, list):
        return [with_urls(item, blobs) for item in node]
    return node


def _load(blobs: BlobStore, key: str, sha256: str) -> Any:
    """A stored manifest, parsed; cached by hash (an immutable object never changes)."""
    with _cache_lock:
        if sha256 in _cache:
            _cache.move_to_end(sha256)
            return _cache[sha256]
    data = blobs.get(key)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise StorageUnavailable(f"manifest {key} does not match its recorded hash")
    manifest = json.loads(data)
    with _cache_lock:
        _cache[sha256] = manifest
        while len(_cache) > _MANIFEST_CACHE_SIZE:
            _cache.popitem(last=False)
    return manifest


def _exists(blobs: BlobStore, key: str) -> bool:
    try:
        blobs.head(key)
    except BlobNotFound:
        return False
    return True
