"""The server's error tree.

Every error the server raises on purpose derives from :class:`ExpoError` and carries a stable
string ``code`` and the HTTP ``status`` it maps to. One handler in :mod:`server.api.errors` turns
them into ``{"error": {"code": ..., "message": ...}}``; inner layers never raise HTTPException.

    ExpoError
    +-- BadRequest            400 bad_request
    +-- Unauthorized          401 unauthorized / token_expired / invalid_token / invalid_credentials
    +-- Forbidden             403 forbidden
    +-- NotFound              404 <thing>_not_found
    +-- Conflict              409 <thing>_exists / conflict
    +-- PayloadTooLarge       413 payload_too_large
    +-- UnsupportedMediaType  415 unsupported_media_type
    +-- Invalid               422 validation_error
    +-- StorageError          (adapters)
    |   +-- BlobNotFound      404 blob_not_found
    |   +-- InvalidBlobKey    400 invalid_blob_key
    |   +-- StorageUnavailable 503 storage_unavailable
    +-- ServiceUnavailable    503 service_unavailable
"""

from __future__ import annotations


class ExpoError(Exception):
    """Base of every error the server raises on purpose."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(ExpoError):
    status = 400
    code = "bad_request"


class Unauthorized(ExpoError):
    status = 401
    code = "unauthorized"


class Forbidden(ExpoError):
    status = 403
    code = "forbidden"


class NotFound(ExpoError):
    status = 404
    code = "not_found"


class Conflict(ExpoError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ExpoError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ExpoError):
    status = 415
    code = "unsupported_media_type"


class Invalid(ExpoError):
    status = 422
    code = "validation_error"


class ServiceUnavailable(ExpoError):
    status = 503
    code = "service_unavailable"


class StorageError(ExpoError):
    """Base of the blob store adapters' errors; vendor errors are translated with ``from exc``."""

    status = 503
    code = "storage_error"


class BlobNotFound(StorageError):
    status = 404
    code = "blob_not_found"


class InvalidBlobKey(StorageError):
    status = 400
    code = "invalid_blob_key"


class StorageUnavailable(StorageError):
    status = 503
    code = "storage_unavailable"
