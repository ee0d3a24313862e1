"""`POST /api/refresh-data/{dataset}` and `GET /api/refresh-data/jobs/{job_id}` (admin only).

Refreshing rewrites data for every tenant, so it takes the admin bearer token, not a tenant
header. With no `ADMIN_TOKEN` configured the endpoints refuse everyone and say how to enable
them.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from flagstage_app.deps import AppSettings, get_session_factory
from flagstage_app.errors import AuthError
from flagstage_app.refreshing import get_job, job_to_json, start_refresh

router = APIRouter(prefix="/api/refresh-data", tags=["refresh"])


def require_admin(
    settings: AppSettings,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    expected = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if not expected:
        raise AuthError(
            "data refresh is disabled: no admin token is configured",
            status_code=403,
            hint="set ADMIN_TOKEN in the app's environment and send it as 'Authorization: "
            "Bearer <token>'",
        )
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthError(
            "this endpoint needs the admin token", hint="send 'Authorization: Bearer <token>'"
        )
    if not secrets.compare_digest(token.strip().encode(), expected.encode()):
        raise AuthError("the admin token is wrong", status_code=403)


Admin = Depends(require_admin)


@router.get("/jobs/{job_id}", dependencies=[Admin])
def read_job(job_id: str, request: Request) -> dict[str, Any]:
    return job_to_json(get_job(get_session_factory(request), job_id))


@router.post("/{dataset}", dependencies=[Admin], status_code=202)
def refresh(dataset: str, request: Request) -> JSONResponse:
    job = start_refresh(request.app, dataset)
    location = f"/api/refresh-data/jobs/{job.id}"
    return JSONResponse(
        {"job": job_to_json(job), "poll": location}, status_code=202, headers={"Location": location}
    )
