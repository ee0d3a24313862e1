"""`POST /api/ingest/accounts` and `/api/ingest/metrics`: a tenant's data, all or nothing.

The body is a CSV with a header row (`text/csv`), a JSON array (`application/json`), or either
as a `file` field of a multipart form. A refused upload answers 422 with every bad row and
column and writes nothing; an accepted one answers with what was loaded. With
`real_time_ingestion` on for the tenant, the loaded accounts' monthly revenue and health scores
are rewritten in the same transaction; off, they wait for the next refresh. With
`event_driven_rag` on, their knowledge-base documents are re-indexed in the background.
`POST /api/uploads` is the upload that detects formats and reports row by row.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import UploadFile

from flagstage_app.db import transaction
from flagstage_app.deps import Tenant, get_session_factory
from flagstage_app.errors import IngestError
from flagstage_app.gating import ToggleProvider, get_toggles
from flagstage_app.ingesting import ACCOUNTS, METRICS, UploadError, load_records, parse_upload
from flagstage_app.recomputing import refresh_accounts
from flagstage_app.toggles.metrics import FALLBACK_ERROR, FALLBACK_OFF
from flagstage_app.toggles.serving import record_fallback
from flagstage_app.uploading import EVENT_DRIVEN_RAG, REAL_TIME_INGESTION

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/ingest", tags=["ingest"])

MAX_UPLOAD_BYTES = 64 * 1024 * 1024


async def _read_body(request: Request) -> tuple[str, str | None]:
    content_type = request.headers.get("content-type")
    if content_type and content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise IngestError("the form has no `file` field; send the CSV or JSON as `file`")
        raw = await upload.read()
        content_type = upload.content_type
    else:
        raw = await request.body()
    if len(raw) > MAX_UPLOAD_BYTES:
        raise IngestError(
            f"the upload is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB; split it",
            status_code=413,
        )
    try:
        return raw.decode("utf-8"), content_type
    except UnicodeDecodeError as err:
        raise IngestError("the upload is not UTF-8 text; save the file as UTF-8") from err


@router.post("/{dataset}")
async def ingest(
    request: Request,
    dataset: Annotated[str, Path(pattern=f"^({ACCOUNTS}|{METRICS})$")],
    tenant: Tenant,
    factory: Annotated[sessionmaker[Session], Depends(get_session_factory)],
    toggles: Annotated[ToggleProvider, Depends(get_toggles)],
) -> dict[str, Any]:
    text, content_type = await _read_body(request)
    real_time = toggles.is_enabled(REAL_TIME_INGESTION, tenant)
    if not real_time:
        record_fallback(request, REAL_TIME_INGESTION, FALLBACK_OFF)
    try:
        records = parse_upload(text, dataset, content_type)
        with transaction(factory) as session:
            report = load_records(session, tenant, dataset, records, rebuild_revenue=False)
            accounts = sorted({str(record["account_id"]).strip() for record in records})
            if real_time:
                try:
                    with session.begin_nested():
                        update = refresh_accounts(session, tenant, accounts)
                    report.monthly_revenue_rows = update.revenue_rows
                except Exception:
                    logger.exception("real-time refresh of %s failed; deferred", tenant)
                    record_fallback(request, REAL_TIME_INGESTION, FALLBACK_ERROR)
    except UploadError as err:
        raise IngestError(
            err.message, details=[problem.to_json() for problem in err.problems]
        ) from err
    if toggles.is_enabled(EVENT_DRIVEN_RAG, tenant):
        request.app.state.reindex_queue.emit(tenant, accounts)
    return report.to_json()
