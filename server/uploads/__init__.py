"""Exhibitor uploads: the checks, the storage keys, the quotas and the sessions (no HTTP here).

Three ways in, one set of checks (research-security.md A1-A6, F1-F3)::

    multipart, up to LimitSettings.max_upload_bytes                      (store.store_upload)
        check the bytes -> blob uploads/<uuid4> -> ProductAsset -> accept_upload -> commit
    presigned POST (S3), or resumable chunks (local store)             (sessions.open_session)
        the browser POSTs to S3 / PUTs chunks to the API          (sessions.append_chunk)
        finalize: what arrived is checked against the declaration         (sessions.finalize)

Modules: :mod:`.checks` (size, format from magic bytes, kind, hash, names, keys),
:mod:`.quotas` (per organisation, under a row lock), :mod:`.store` (multipart and the asset
row), :mod:`.sessions` (presigned and resumable sessions, finalize), :mod:`.staging` (chunks on
disk). Every function that creates rows commits before it returns the job to enqueue.
"""

from server.uploads.checks import (
    CONTENT_TYPES,
    UPLOAD_PREFIX,
    Checked,
    check_bytes,
    clean_filename,
    new_key,
)
from server.uploads.quotas import (
    QuotaExceeded,
    check_bytes_quota,
    check_open_uploads,
    check_product_quota,
    lock_organisation,
    organisation_usage,
)
from server.uploads.sessions import (
    Declaration,
    OffsetMismatch,
    SessionState,
    append_chunk,
    finalize,
    open_session,
    session_state,
)
from server.uploads.staging import Staging, staging_directory
from server.uploads.store import (
    Accepted,
    Target,
    add_asset,
    delete_quietly,
    rowcount,
    store_upload,
)

__all__ = [
    "CONTENT_TYPES",
    "UPLOAD_PREFIX",
    "Accepted",
    "Checked",
    "Declaration",
    "OffsetMismatch",
    "QuotaExceeded",
    "SessionState",
    "Staging",
    "Target",
    "add_asset",
    "append_chunk",
    "check_bytes",
    "check_bytes_quota",
    "check_open_uploads",
    "check_product_quota",
    "clean_filename",
    "delete_quietly",
    "finalize",
    "lock_organisation",
    "new_key",
    "open_session",
    "organisation_usage",
    "rowcount",
    "session_state",
    "staging_directory",
    "store_upload",
]
