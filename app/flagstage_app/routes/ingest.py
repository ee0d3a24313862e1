"""`POST /api/ingest/accounts` and `/api/ingest/metrics`: a tenant's data, all or nothing.

The body is a CSV with a header row (`text/csv`), a JSON array (`application/json`), or either
as a `file` field of a multipart form. A refused upload answers 422 with every bad row and
column and writes nothing; an accepted one answers with what was loaded.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import UploadFile

from flagstage_app.db import transaction
from flagstage_app.deps import Tenant, get_session_factory
from flagstage_app.errors import IngestError
from flagstage_app.ingesting import ACCOUNTS, METRICS, UploadError, load_records, parse_upload

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
) -> dict[str, Any]:
    text, content_type = await _read_body(request)
    try:
        records = parse_upload(text, dataset, content_type)
        with transaction(factory) as session:
            report = load_records(session, tenant, dataset, records)
    except UploadError as err:
        raise IngestError(
            err.message, details=[problem.to_json() for problem in err.problems]
        ) from err
    return report.to_json()
