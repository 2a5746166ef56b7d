"""The one place where errors become HTTP: ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.errors import ExpoError

logger = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _describe(errors: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    details: list[dict[str, Any]] = [
        {"loc": [str(part) for part in err.get("loc", ())], "msg": str(err.get("msg", ""))}
        for err in errors[:20]
    ]
    if not details:
        return "invalid request", details
    loc: list[str] = details[0]["loc"]
    where = ".".join(loc[1:] or loc)
    message: str = details[0]["msg"]
    return (f"{where}: {message}" if where else message), details


async def _expo_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ExpoError)
    return error_response(exc.status, exc.code, exc.message)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, details = _describe(list(exc.errors()))
    return error_response(422, "validation_error", message, details=details)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    response = error_response(exc.status_code, code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _integrity_error(_request: Request, exc: Exception) -> JSONResponse:
    # Unique and foreign-key races that the routes' own checks did not catch first.
    logger.info("integrity error: %s", exc)
    return error_response(409, "conflict", "the change conflicts with existing data")


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database error: %s", exc)
    return error_response(503, "database_unavailable", "the database is not reachable")


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    # Process boundary: log the traceback here, never send it.
    logger.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ExpoError, _expo_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(DBAPIError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
