"""`/api/knowledge/notes`: the notes a tenant adds to its own knowledge base.

A note is a `kb_documents` row of kind `note`; semantic questions retrieve it beside the
account summaries. Like every data change, a note reaches the index on the next
`rag_knowledge_base` refresh, or at once (after the response, in the background, with the same
atomic alias swap) where `event_driven_rag` is on for the tenant. A tenant only ever sees,
replaces or deletes its own notes.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from flagstage_app.deps import DbSession, Tenant
from flagstage_app.errors import BadRequestError, NotFoundError
from flagstage_app.gating import ToggleProvider, get_toggles
from flagstage_app.ingesting import ensure_tenant
from flagstage_app.knowledge.index import Document
from flagstage_app.models import KnowledgeDocument
from flagstage_app.toggles.metrics import FALLBACK_ERROR, FALLBACK_OFF
from flagstage_app.toggles.serving import record_fallback

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/knowledge/notes", tags=["knowledge"])

NOTE = "note"
EVENT_DRIVEN_RAG = "event_driven_rag"
NOTE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"
MAX_NOTE_CHARS = 20_000
LATER = "unchanged until the next rag_knowledge_base refresh"


class NoteRequest(BaseModel):
    note_id: str = Field(pattern=NOTE_ID_PATTERN)
    text: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)


def _doc_id(note_id: str) -> str:
    return f"{NOTE}:{note_id}"


def _note_json(row: KnowledgeDocument) -> dict[str, Any]:
    return {
        "note_id": row.doc_id.removeprefix(f"{NOTE}:"),
        "doc_id": row.doc_id,
        "text": row.text,
        "updated_at": row.updated_at.isoformat(),
    }


def _reindex_later(
    request: Request,
    background: BackgroundTasks,
    toggles: ToggleProvider,
    tenant: str,
    *,
    documents: list[Document],
    removed: list[str],
) -> str:
    if not toggles.is_enabled(EVENT_DRIVEN_RAG, tenant):
        record_fallback(request, EVENT_DRIVEN_RAG, FALLBACK_OFF)
        return LATER
    knowledge = getattr(request.app.state, "knowledge_base", None)
    if knowledge is None:
        return LATER

    def reindex() -> None:
        try:
            knowledge.index.reindex(tenant, documents, removed)
        except Exception:
            # The note is stored; the next rag_knowledge_base refresh indexes it.
            logger.exception("re-index of the notes of %s failed", tenant)
            record_fallback(request, EVENT_DRIVEN_RAG, FALLBACK_ERROR)

    background.add_task(reindex)
    return "re-index queued"


@router.put("/{note_id}")
def put_note(
    note_id: str,
    body: NoteRequest,
    tenant: Tenant,
    session: DbSession,
    request: Request,
    background: BackgroundTasks,
    toggles: Annotated[ToggleProvider, Depends(get_toggles)],
) -> dict[str, Any]:
    """Add or replace the note `note_id` of the calling tenant."""
    if body.note_id != note_id:
        raise BadRequestError(
            f"the path names note {note_id!r} but the body names {body.note_id!r}; make them "
            "the same"
        )
    ensure_tenant(session, tenant)
    doc_id = _doc_id(note_id)
    row = session.get(KnowledgeDocument, (tenant, doc_id))
    now = datetime.now(UTC)
    if row is None:
        row = KnowledgeDocument(tenant_id=tenant, doc_id=doc_id, kind=NOTE, text=body.text)
        session.add(row)
    row.text = body.text
    row.updated_at = now
    session.commit()
    indexed = _reindex_later(
        request,
        background,
        toggles,
        tenant,
        documents=[Document(tenant, doc_id, NOTE, body.text)],
        removed=[],
    )
    return {**_note_json(row), "knowledge_base": indexed}


@router.get("")
def list_notes(tenant: Tenant, session: DbSession) -> dict[str, Any]:
    rows = session.scalars(
        select(KnowledgeDocument)
        .where(KnowledgeDocument.tenant_id == tenant, KnowledgeDocument.kind == NOTE)
        .order_by(KnowledgeDocument.doc_id)
    )
    return {"notes": [_note_json(row) for row in rows]}


@router.delete("/{note_id}", status_code=204)
def delete_note(
    note_id: str,
    tenant: Tenant,
    session: DbSession,
    request: Request,
    background: BackgroundTasks,
    toggles: Annotated[ToggleProvider, Depends(get_toggles)],
) -> Response:
    doc_id = _doc_id(note_id)
    row = session.get(KnowledgeDocument, (tenant, doc_id))
    if row is None:
        raise NotFoundError(f"this customer has no note {note_id!r}")
    session.delete(row)
    session.commit()
    _reindex_later(request, background, toggles, tenant, documents=[], removed=[doc_id])
    return Response(status_code=204)
