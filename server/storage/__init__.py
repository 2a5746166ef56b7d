"""Blob storage: the :class:`BlobStore` port and its two adapters.

``build_blob_store(settings.blobs)`` is called by the app's lifespan (never at import time).
"""

from __future__ import annotations

from server.settings import BlobSettings
from server.storage.base import (
    IMMUTABLE,
    SHORT_CACHE,
    BlobInfo,
    BlobStore,
    PresignedPost,
    check_key,
)
from server.storage.local import LocalBlobStore
from server.storage.s3 import S3BlobStore

__all__ = [
    "IMMUTABLE",
    "SHORT_CACHE",
    "BlobInfo",
    "BlobStore",
    "LocalBlobStore",
    "PresignedPost",
    "S3BlobStore",
    "build_blob_store",
    "check_key",
]


def build_blob_store(settings: BlobSettings) -> BlobStore:
    """The adapter ``settings.backend`` names, configured from ``settings``.

    Building does no I/O beyond creating the local directory; call ``ping()`` (and
    ``S3BlobStore.ensure_bucket()`` where the app owns the bucket) to check the store.
    """
    if settings.backend == "s3":
        return S3BlobStore(settings)
    return LocalBlobStore(settings.local_dir, settings.local_url_prefix)
