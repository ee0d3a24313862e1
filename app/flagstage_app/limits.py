"""A cap on request body sizes, enforced while the body arrives rather than after.

The ingest and upload handlers check their limits once the whole body is in memory, which is
too late to protect the process: a client could stream gigabytes first. `BodySizeLimit` refuses
a declared `Content-Length` over the cap at once, and stops reading a streamed (chunked) body
the moment it passes the cap; both answer 413 in the app's error format. The data endpoints get
room for their own limits plus multipart framing; every other route takes small JSON bodies.
What a handler then accepts is still the handler's business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagstage_app.errors import UploadTooLargeError
from flagstage_app.routes.ingest import MAX_UPLOAD_BYTES as INGEST_MAX_BYTES
from flagstage_app.uploading import BASELINE_MAX_BYTES

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
MULTIPART_SLACK_BYTES = 64 * 1024


class _BodyTooLargeError(Exception):
    pass


@dataclass(frozen=True)
class BodyLimits:
    """The cap per path prefix, and the cap for every other path."""

    by_prefix: tuple[tuple[str, int], ...]
    default: int = DEFAULT_MAX_BODY_BYTES

    def for_path(self, path: str) -> int:
        for prefix, limit in self.by_prefix:
            if path.startswith(prefix):
                return limit
        return self.default


def body_limits_of(app: FastAPI) -> BodyLimits:
    """The caps for `app`: its upload and ingest limits plus framing, 1 MiB elsewhere."""
    uploads = max(app.state.settings.upload_max_bytes, BASELINE_MAX_BYTES)
    return BodyLimits(
        (
            ("/api/ingest/", INGEST_MAX_BYTES + MULTIPART_SLACK_BYTES),
            ("/api/uploads", uploads + MULTIPART_SLACK_BYTES),
        )
    )


def install_body_limits(app: FastAPI) -> None:
    """Cap request bodies of `app` (call in the app factory, after the settings are set)."""
    app.add_middleware(BodySizeLimit, limits=body_limits_of(app))


class BodySizeLimit:
    """ASGI middleware: 413 for a body over the cap of its path, declared or streamed."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.for_path(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return

        received = 0
        over = False
        answered = False

        async def counting_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise _BodyTooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if over:
                # The app may turn the interrupted read into an error of its own (FastAPI
                # answers 400); whatever it answers, the client gets the 413.
                if not answered:
                    answered = True
                    await _refuse(send, limit)
                return
            if message["type"] == "http.response.start":
                answered = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLargeError:
            if answered:
                raise
            await _refuse(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, limit: int) -> None:
    error = UploadTooLargeError(
        f"the request body is over the limit of {limit} bytes for this endpoint",
        hint="split the data into smaller requests",
    )
    body = json.dumps(error.to_json()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
