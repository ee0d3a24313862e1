"""The app's errors and how each becomes a JSON response.

Every error carries an HTTP status, a stable `code` clients can branch on, a sentence saying
what happened, and, where there is one, what to do next. Handlers raise; `install_handlers`
turns them into `{"error": {...}}` bodies, so no route formats errors by hand.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class AppError(Exception):
    """Base of every error the insights API reports to its clients."""

    status_code = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        hint: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details
        if status_code is not None:
            self.status_code = status_code

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class TenantError(AppError):
    """The request did not name a valid tenant in `X-Customer-ID`."""

    status_code = 400
    code = "invalid_tenant"


class AuthError(AppError):
    """An admin endpoint was called without the right bearer token."""

    status_code = 401
    code = "unauthorized"


class IngestError(AppError):
    """An upload was refused; `details` lists each row and column at fault."""

    status_code = 422
    code = "invalid_upload"


class UnsupportedFormatError(AppError):
    """The upload's format is not accepted for this customer."""

    status_code = 415
    code = "unsupported_format"


class FormatMismatchError(AppError):
    """The format or dataset the caller named is not what the upload holds."""

    status_code = 422
    code = "format_mismatch"


class UploadTooLargeError(AppError):
    """The upload is over the size limit."""

    status_code = 413
    code = "upload_too_large"


class ConflictError(AppError):
    """The request collides with work already in progress."""

    status_code = 409
    code = "conflict"


class NotFoundError(AppError):
    status_code = 404
    code = "not_found"


class BadRequestError(AppError):
    status_code = 400
    code = "bad_request"


def install_handlers(app: FastAPI) -> None:
    """Answer every `AppError` with its JSON body and status."""

    async def handle_app_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(exc.to_json(), status_code=exc.status_code, headers=headers)

    app.add_exception_handler(AppError, handle_app_error)

    async def handle_invalid_request(_request: Request, exc: Exception) -> JSONResponse:
        # FastAPI's own handler echoes each invalid input and fails with a 500 on a body that
        # is not UTF-8 or holds Infinity or NaN; this one answers the same 422, with such
        # inputs shown as text.
        assert isinstance(exc, RequestValidationError)
        errors = _json_safe(jsonable_encoder(exc.errors(), custom_encoder={bytes: _printable}))
        return JSONResponse({"detail": errors}, status_code=422)

    app.add_exception_handler(RequestValidationError, handle_invalid_request)


def _printable(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value
