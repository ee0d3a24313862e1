"""`POST /api/uploads`: a data file of any supported format, loaded as the tenant's toggles say.

The file is the raw body, or the `file` field of a multipart form. `format`, `dataset` and
`mode` come as query parameters or form fields; which of them are needed, and what the upload
does, depends on the upload features (see `flagstage_app.uploading`). The response says which
paths the upload took, and any feature it fell back from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from flagstage_app.deps import Tenant
from flagstage_app.errors import BadRequestError
from flagstage_app.gating import ToggleProvider, get_toggles
from flagstage_app.toggles.serving import record_fallback
from flagstage_app.uploading import UploadedFile, UploadPipeline, UploadToggles

router = APIRouter(prefix="/api", tags=["ingest"])


def install_upload_pipeline(app: FastAPI) -> UploadPipeline:
    """Serve uploads with `app`'s database and limits; changes go to its re-index queue."""
    settings = app.state.settings

    def announce(tenant: str, accounts: Sequence[str]) -> None:
        queue = getattr(app.state, "reindex_queue", None)
        if queue is None:
            raise RuntimeError("no knowledge base is installed to re-index")
        queue.emit(tenant, accounts)

    pipeline = UploadPipeline(
        app.state.session_factory,
        max_bytes=settings.upload_max_bytes,
        max_rows=settings.upload_max_rows,
        on_change=announce,
    )
    app.state.upload_pipeline = pipeline
    return pipeline


def get_upload_pipeline(request: Request) -> UploadPipeline:
    return cast(UploadPipeline, request.app.state.upload_pipeline)


async def _read_upload(request: Request) -> tuple[bytes, dict[str, str]]:
    content_type = request.headers.get("content-type") or ""
    if not content_type.startswith("multipart/form-data"):
        return await request.body(), {}
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise BadRequestError("the form has no `file` field; send the data file as `file`")
    fields = {
        name: value
        for name in ("format", "dataset", "mode")
        if isinstance(value := form.get(name), str) and value
    }
    return await upload.read(), fields


@router.post("/uploads")
async def upload_file(
    request: Request,
    tenant: Tenant,
    toggles: Annotated[ToggleProvider, Depends(get_toggles)],
    pipeline: Annotated[UploadPipeline, Depends(get_upload_pipeline)],
    file_format: Annotated[str | None, Query(alias="format")] = None,
    dataset: Annotated[str | None, Query()] = None,
    mode: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    content, fields = await _read_upload(request)
    upload = UploadedFile(
        tenant=tenant,
        content=content,
        declared_format=file_format or fields.get("format"),
        declared_dataset=dataset or fields.get("dataset"),
        mode=mode or fields.get("mode"),
    )
    features = UploadToggles.of(lambda name: toggles.is_enabled(name, tenant))

    def fell_back(feature: str, reason: str) -> None:
        record_fallback(request, feature, reason)

    # The pipeline blocks on SQL (and openpyxl); keep the event loop free meanwhile.
    outcome = await run_in_threadpool(pipeline.run, upload, features, fell_back)
    return outcome.to_json()
