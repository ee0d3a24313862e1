"""`GET /api/feature-status` and `GET /api/hot-reload-status`: what is on, and why.

Feature status answers for the tenant named by `X-Customer-ID` (optional here: without it,
only features on for everyone are on, and the reasons say so), from the same snapshot the rest
of the request uses. Hot-reload status shows what the watcher watches and what it last did,
including the last refused configuration and why it was refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel

from flagstage.snapshot import Snapshot
from flagstage_app.deps import TENANT_HEADER, check_tenant, single_tenant_header
from flagstage_app.toggles.layering import explain
from flagstage_app.toggles.serving import request_toggles
from flagstage_app.toggles.watcher import LiveToggles

router = APIRouter(prefix="/api", tags=["toggles"])


class FeatureStatus(BaseModel):
    enabled: bool
    reach: str
    source: str
    requires: list[str]
    reason: str
    description: str


class FeatureStatusResponse(BaseModel):
    tenant: str | None
    config_hash: str | None
    stage: str | None
    generation: int | None
    features: dict[str, FeatureStatus]


class RefusedConfigOut(BaseModel):
    version: str
    reason: str
    refused_at: datetime
    claimed_hash: str | None
    excerpt: str


class HotReloadStatus(BaseModel):
    directory: str | None
    mode: str
    directory_present: bool
    layout: str | None
    mount_version: str | None
    config_hash: str | None
    generation: int | None
    stage: str | None
    loaded_from: str
    last_reload_at: datetime | None
    reload_count: int
    refused_count: int
    last_refused: RefusedConfigOut | None
    env_problems: list[str]
    last_error: str | None


@router.get("/feature-status")
def feature_status(
    request: Request,
    x_customer_id: Annotated[str | None, Header(alias=TENANT_HEADER)] = None,
) -> FeatureStatusResponse:
    single_tenant_header(request)
    tenant = check_tenant(x_customer_id) if x_customer_id is not None else None
    snapshot: Snapshot = request_toggles(request)
    features = {}
    for name in snapshot.features:
        why = explain(snapshot, name, tenant)
        features[name] = FeatureStatus(
            enabled=why.enabled,
            reach=why.reach,
            source=why.source,
            requires=list(why.requires),
            reason=why.reason,
            description=why.description,
        )
    return FeatureStatusResponse(
        tenant=tenant,
        config_hash=snapshot.config_hash,
        stage=snapshot.stage,
        generation=snapshot.generation,
        features=features,
    )


@router.get("/hot-reload-status")
def hot_reload_status(request: Request) -> HotReloadStatus:
    live = getattr(request.app.state, "live_toggles", None)
    if not isinstance(live, LiveToggles):
        # Toggles fixed at start-up (no live store installed): nothing is watched.
        live = LiveToggles(None, env={})
    status = live.status()
    refused = status.last_refused
    return HotReloadStatus(
        directory=status.directory,
        mode=status.mode,
        directory_present=status.directory_present,
        layout=status.layout,
        mount_version=status.mount_version,
        config_hash=status.config_hash,
        generation=status.generation,
        stage=status.stage,
        loaded_from=status.loaded_from,
        last_reload_at=status.last_reload_at,
        reload_count=status.reload_count,
        refused_count=status.refused_count,
        last_refused=RefusedConfigOut(**vars(refused)) if refused is not None else None,
        env_problems=list(status.env_problems),
        last_error=status.last_error,
    )
