"""Plugging live toggles into the FastAPI app: the store, the watcher's lifetime, the header.

`install_live_toggles` puts a `LiveToggles` on `app.state.toggles` (where `get_toggles` finds
it), starts its watcher with the app and stops it at shutdown. A middleware reads the current
snapshot once per request, keeps it on `request.state` so every toggle check of the request
uses that one snapshot, and sends its config hash back in `X-Flagstage-Config-Hash`. The
status endpoints live in `flagstage_app.routes.toggle_status`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagstage_app.toggles.metrics import ToggleMetrics
from flagstage_app.toggles.watcher import POLL_INTERVAL_SECONDS, LiveToggles

CONFIG_HASH_HEADER = "X-Flagstage-Config-Hash"
NO_CONFIG_HASH = "none"
REQUEST_STATE_KEY = "toggles"


def install_live_toggles(
    app: FastAPI,
    *,
    env: Mapping[str, str] | None = None,
    poll_interval_seconds: float = POLL_INTERVAL_SECONDS,
) -> LiveToggles:
    """Serve `app`'s toggles live from `settings.features_config_dir` (defaults and env without).

    Call it in the app factory, after `app.state.lifespan_hooks` and the app's metrics exist.
    """
    metrics = getattr(app.state, "metrics", None)
    live = LiveToggles(
        app.state.settings.features_config_dir,
        env=env,
        poll_interval_seconds=poll_interval_seconds,
        metrics=ToggleMetrics(getattr(metrics, "registry", None)),
    )
    app.state.toggles = live
    app.state.live_toggles = live
    app.state.lifespan_hooks.append(_watching)
    app.add_middleware(SnapshotPerRequest)
    return live


@asynccontextmanager
async def _watching(app: FastAPI) -> AsyncIterator[None]:
    live: LiveToggles = app.state.live_toggles
    live.start()
    try:
        yield
    finally:
        live.stop()


def current_of(toggles: Any) -> Any:
    """The snapshot a toggle holder serves now: a live store's `current`, or a plain snapshot."""
    return getattr(toggles, "current", toggles)


def request_toggles(request: Request) -> Any:
    """The one snapshot this request evaluates against (taken by the middleware)."""
    snapshot = getattr(request.state, REQUEST_STATE_KEY, None)
    return snapshot if snapshot is not None else current_of(request.app.state.toggles)


def record_fallback(request: Request, feature: str, reason: str) -> None:
    """Count that this request took the baseline path instead of `feature`'s (`off`, `error`)."""
    record_app_fallback(request.app, feature, reason)


def record_app_fallback(app: FastAPI, feature: str, reason: str) -> None:
    """Count a fallback outside a request, e.g. in a background worker of `app`."""
    live = getattr(app.state, "live_toggles", None)
    if isinstance(live, LiveToggles):
        live.metrics.record_fallback(feature, reason)


class SnapshotPerRequest:
    """Pin one snapshot per HTTP request and answer with its config hash as a header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        snapshot = current_of(scope["app"].state.toggles)
        scope.setdefault("state", {})[REQUEST_STATE_KEY] = snapshot
        value = getattr(snapshot, "config_hash", None) or NO_CONFIG_HASH

        async def send_with_hash(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append(CONFIG_HASH_HEADER, value)
            await send(message)

        await self.app(scope, receive, send_with_hash)
