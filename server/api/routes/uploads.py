"""Uploads: multipart for small files, presigned POST (S3) or resumable chunks (local) for large.

The checks, keys, quotas and sessions are in :mod:`server.uploads`; this module is the HTTP
glue: who may upload where (the booth's exhibitor or an admin, checked in dependencies before any
byte of the body is read), reading the body, and handing the job to the queue.

Enqueue after commit: :mod:`server.uploads` commits the asset and its job before returning, and
only then is the job id handed to ``app.state.jobs``. The session dependency cannot be relied on
for this: FastAPI (0.163) exits request-scoped dependencies after the response has been sent,
background tasks included, so a BackgroundTask would run *before* that commit, and a commit
failing there would follow a 202. A missed enqueue (the queue down, the process killed between
commit and enqueue) is recovered by the reaper, which enqueues queued jobs again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from server.api.deps import (
    BlobsDep,
    CurrentUser,
    SessionDep,
    SettingsDep,
    check_booth_owner,
    get_or_404,
)
from server.api.errors import error_response
from server.api.limits import PathCap
from server.api.routes.products import asset_public
from server.api.schemas import (
    ErrorResponse,
    PresignedUploadPublic,
    UploadAccepted,
    UploadDeclaration,
    UploadPublic,
)
from server.db.models import AssetKind, Booth, Product, UploadMethod, UploadSession
from server.errors import Invalid, PayloadTooLarge
from server.settings import LimitSettings, Settings
from server.storage.base import BlobStore
from server.uploads import (
    Accepted,
    Declaration,
    OffsetMismatch,
    Staging,
    Target,
    append_chunk,
    finalize,
    open_session,
    session_state,
    staging_directory,
    store_upload,
)

logger = logging.getLogger(__name__)

router = APIRouter(tags=["uploads"])

# Room for the multipart framing around the file: boundaries, part headers, the `kind` field.
MULTIPART_OVERHEAD = 64 * 1024
_KINDS = {"model": AssetKind.model, "photo": AssetKind.photo}

_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        413: "Body, file or declared size too large (`payload_too_large`, `upload_too_large`), "
        "or the organisation's storage quota is used up (`quota_bytes`)",
        415: "Not a supported format (`unsupported_format`) or not one for this kind "
        "(`kind_mismatch`)",
        429: "Too many uploads open at once for the organisation (`quota_uploads`)",
        503: "The database or the blob store is unavailable: try again",
    }.items()
}


def _file_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }


_BINARY = {"type": "string", "format": "binary"}
_PRODUCT_FORM = _file_body(
    {"kind": {"type": "string", "enum": list(_KINDS)}, "file": _BINARY}, ["kind", "file"]
)
_LOGO_FORM = _file_body({"file": _BINARY}, ["file"])
_CHUNK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": _BINARY}},
    }
}


def body_caps(limits: LimitSettings, prefix: str = "/api") -> list[PathCap]:
    """The body caps of the upload routes, for :class:`server.api.limits.BodyLimitMiddleware`."""
    multipart = limits.max_upload_bytes + MULTIPART_OVERHEAD
    return [
        PathCap("POST", rf"{prefix}/products/[^/]+/uploads", multipart),
        PathCap("POST", rf"{prefix}/booths/[^/]+/logo", multipart),
        PathCap("PUT", rf"{prefix}/uploads/[^/]+", limits.upload_chunk_bytes),
    ]


# --- dependencies: who may upload where, before any byte of the body is read ----------------


def owned_product(product_id: uuid.UUID, principal: CurrentUser, session: SessionDep) -> Product:
    """The product, when the caller may upload to it (its booth's exhibitor or an admin)."""
    product = get_or_404(session, Product, product_id, "product")
    check_booth_owner(principal, product.booth)
    return product


def owned_booth(booth_id: uuid.UUID, principal: CurrentUser, session: SessionDep) -> Booth:
    """The booth, when the caller may change it."""
    booth = get_or_404(session, Booth, booth_id, "booth")
    check_booth_owner(principal, booth)
    return booth


def owned_upload(
    upload_id: uuid.UUID, principal: CurrentUser, session: SessionDep
) -> UploadSession:
    """The upload session, when the caller may upload to its booth."""
    upload = get_or_404(session, UploadSession, upload_id, "upload")
    check_booth_owner(principal, get_or_404(session, Booth, upload.booth_id, "booth"))
    return upload


def get_staging(settings: SettingsDep) -> Staging:
    return Staging(staging_directory(settings))


OwnedProduct = Annotated[Product, Depends(owned_product)]
OwnedBooth = Annotated[Booth, Depends(owned_booth)]
OwnedUpload = Annotated[UploadSession, Depends(owned_upload)]
StagingDep = Annotated[Staging, Depends(get_staging)]


# --- multipart --------------------------------------------------------------------------------


@router.post(
    "/products/{product_id}/uploads",
    response_model=UploadAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=_RESPONSES,
    openapi_extra=_PRODUCT_FORM,
)
async def upload_product_file(
    request: Request,
    product: OwnedProduct,
    session: SessionDep,
    blobs: BlobsDep,
    settings: SettingsDep,
) -> UploadAccepted:
    """Upload a product's model or photo (multipart `kind`, `file`; up to 25 MiB by default)."""
    # Release the database connection while the client sends the file (maybe slowly); the
    # product and its booth stay loaded (the sessions do not expire objects on commit).
    await run_in_threadpool(session.commit)
    async with _one_file(request, {"kind", "file"}) as (fields, file):
        kind = _KINDS.get(fields.get("kind", ""))
        if kind is None:
            raise Invalid("kind: must be 'model' or 'photo'", code="validation_error")
        data = await file.read()
        filename = file.filename
    target = Target.for_product(product, kind)
    accepted = await run_in_threadpool(
        store_upload, session, blobs, target, filename, data, settings.limits
    )
    return await _answer(request, accepted, blobs)


@router.post(
    "/booths/{booth_id}/logo",
    response_model=UploadAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=_RESPONSES,
    openapi_extra=_LOGO_FORM,
)
async def upload_logo(
    request: Request,
    booth: OwnedBooth,
    session: SessionDep,
    blobs: BlobsDep,
    settings: SettingsDep,
) -> UploadAccepted:
    """Upload a booth's logo (multipart `file`: JPEG, PNG, WebP, AVIF or HEIC)."""
    target = Target.for_logo(booth)
    await run_in_threadpool(session.commit)
    async with _one_file(request, {"file"}) as (_fields, file):
        data = await file.read()
        filename = file.filename
    accepted = await run_in_threadpool(
        store_upload, session, blobs, target, filename, data, settings.limits
    )
    return await _answer(request, accepted, blobs)


@asynccontextmanager
async def _one_file(
    request: Request, allowed: set[str]
) -> AsyncIterator[tuple[dict[str, str], UploadFile]]:
    """The form's text fields and its one file, spooled to a temporary file (research A2, I3).

    One file part and a few small fields at most; the temporary file is removed on exit, and
    by Starlette when the body is cut off by the size cap.
    """
    async with request.form(max_files=1, max_fields=len(allowed), max_part_size=1024) as form:
        fields: dict[str, str] = {}
        file: UploadFile | None = None
        for name, value in form.multi_items():
            if name not in allowed:
                raise Invalid(f"{name}: unknown form field", code="validation_error")
            if isinstance(value, UploadFile) != (name == "file"):
                raise Invalid(
                    f"{name}: must be a file" if name == "file" else f"{name}: must be text",
                    code="validation_error",
                )
            if isinstance(value, UploadFile):
                file = value
            else:
                fields[name] = value
        if file is None:
            raise Invalid("file: a file part named 'file' is required", code="validation_error")
        yield fields, file


# --- presigned and resumable sessions ---------------------------------------------------------


def _declared(body: UploadDeclaration) -> Declaration:
    return Declaration(body.filename, body.content_type, body.size, body.sha256)


@router.post(
    "/products/{product_id}/uploads/presigned",
    response_model=PresignedUploadPublic,
    status_code=status.HTTP_201_CREATED,
    responses=_RESPONSES,
)
def open_presigned_upload(
    body: UploadDeclaration,
    product: OwnedProduct,
    session: SessionDep,
    blobs: BlobsDep,
    settings: SettingsDep,
) -> PresignedUploadPublic:
    """Start a large upload straight to S3: POST the file to `url` with `fields`, then finalize.

    With the local blob store: 409 `presigned_unavailable` (use `/uploads/resumable`).
    """
    target = Target.for_product(product, _KINDS[body.kind])
    upload, post = open_session(
        session, blobs, target, _declared(body), UploadMethod.presigned, settings.limits
    )
    assert post is not None
    public = _upload_public(upload, settings)
    return PresignedUploadPublic(**public.model_dump(), url=post.url, fields=post.fields)


@router.post(
    "/products/{product_id}/uploads/resumable",
    response_model=UploadPublic,
    status_code=status.HTTP_201_CREATED,
    responses=_RESPONSES,
)
def open_resumable_upload(
    body: UploadDeclaration,
    product: OwnedProduct,
    session: SessionDep,
    blobs: BlobsDep,
    settings: SettingsDep,
) -> UploadPublic:
    """Start a large upload in chunks: PUT `/uploads/{id}?offset=N` from 0, then finalize.

    With the S3 blob store: 409 `resumable_unavailable` (use `/uploads/presigned`).
    """
    target = Target.for_product(product, _KINDS[body.kind])
    upload, _ = open_session(
        session, blobs, target, _declared(body), UploadMethod.resumable, settings.limits
    )
    return _upload_public(upload, settings)


@router.put(
    "/uploads/{upload_id}",
    response_model=UploadPublic,
    responses=_RESPONSES,
    openapi_extra=_CHUNK_BODY,
)
async def put_chunk(
    request: Request,
    upload: OwnedUpload,
    session: SessionDep,
    staging: StagingDep,
    settings: SettingsDep,
    offset: Annotated[int, Query(ge=0, le=10**12, description="where this chunk starts")],
) -> Any:
    """Append one chunk (at most `chunk_size` bytes) at `offset`, the bytes received so far.

    409 `offset_mismatch` with the current `offset` (also in the `Upload-Offset` header) when
    `offset` is not where the upload stands: resume from there.
    """
    try:
        if offset != upload.received:  # say so before reading a chunk that will be refused
            raise OffsetMismatch(upload.received)
        await run_in_threadpool(session.commit)
        data = await _read_body(request, settings.limits.upload_chunk_bytes)
        await run_in_threadpool(
            append_chunk, session, staging, upload, offset, data, settings.limits
        )
    except OffsetMismatch as exc:
        response = error_response(409, exc.code, exc.message, offset=exc.offset)
        response.headers["Upload-Offset"] = str(exc.offset)
        return response
    return _upload_public(upload, settings)


async def _read_body(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:  # the middleware caps this path too; this keeps the route honest
            raise PayloadTooLarge(f"chunks are at most {limit} bytes", code="chunk_too_large")
    return bytes(body)


@router.get("/uploads/{upload_id}", response_model=UploadPublic)
def get_upload(upload: OwnedUpload, settings: SettingsDep) -> UploadPublic:
    """Where a large upload stands: `offset` (bytes received) and `state`."""
    return _upload_public(upload, settings)


@router.post(
    "/uploads/{upload_id}/finalize",
    response_model=UploadAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=_RESPONSES,
)
async def finalize_upload(
    request: Request,
    upload: OwnedUpload,
    session: SessionDep,
    blobs: BlobsDep,
    staging: StagingDep,
    settings: SettingsDep,
) -> UploadAccepted:
    """Check the uploaded file against its declaration (size, SHA-256, format) and process it.

    A mismatch deletes what arrived and answers 4xx with its code (`size_mismatch`,
    `sha256_mismatch`, `unsupported_format`, `kind_mismatch`...). Calling it again after success
    answers the same asset.
    """
    accepted = await run_in_threadpool(finalize, session, blobs, staging, upload, settings.limits)
    return await _answer(request, accepted, blobs)


# --- answers ----------------------------------------------------------------------------------


def _upload_public(upload: UploadSession, settings: Settings) -> UploadPublic:
    resumable = upload.method is UploadMethod.resumable
    return UploadPublic(
        upload_id=upload.id,
        method=upload.method,
        kind=upload.kind,
        filename=upload.filename,
        size=upload.size,
        offset=upload.received,
        chunk_size=settings.limits.upload_chunk_bytes if resumable else None,
        state=session_state(upload),
        expires_at=upload.expires_at,
        asset_id=upload.asset_id,
    )


async def _answer(request: Request, accepted: Accepted, blobs: BlobStore) -> UploadAccepted:
    if accepted.job is not None and accepted.created:
        await run_in_threadpool(_enqueue, request, str(accepted.job.id))
    return UploadAccepted(
        asset=asset_public(accepted.asset, blobs),
        job_id=accepted.job.id if accepted.job is not None else None,
    )


def _enqueue(request: Request, job_id: str) -> None:
    """Hand a committed job to the queue (see the module docstring)."""
    jobs = getattr(request.app.state, "jobs", None)
    if jobs is None:
        logger.error("no job queue (app.state.jobs): job %s waits for the reaper", job_id)
        return
    try:
        jobs.enqueue(job_id)
    except Exception:  # the job is committed, and the reaper enqueues it again
        logger.warning("job %s: enqueue failed; the reaper will enqueue it", job_id, exc_info=True)
