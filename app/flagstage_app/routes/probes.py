"""Liveness and readiness probes for Kubernetes.

`/healthz` answers as long as the process serves requests; `/readyz` also checks the database
answers, so a pod that lost its database is taken out of the Service without being restarted.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from flagstage_app.deps import get_session_factory

logger = logging.getLogger(__name__)

router = APIRouter(tags=["probes"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(
    factory: Annotated[sessionmaker[Session], Depends(get_session_factory)],
) -> dict[str, Any] | JSONResponse:
    try:
        with factory() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as err:
        logger.warning("readiness check failed: database unreachable: %s", err)
        return JSONResponse(
            {"status": "unavailable", "database": "unreachable", "reason": str(err)[:200]},
            status_code=503,
        )
    return {"status": "ready", "database": "ok"}
