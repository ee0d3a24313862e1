"""`POST /api/rag-qdrant/query`: revenue-over-time and knowledge-base questions.

`temporal_analysis` questions are answered from the materialized monthly revenue when the
`temporal_analysis` toggle is on for the tenant; when it is off they fall back to the semantic
path, and the response says so in `fallback`. Semantic answers come from the answerer the
knowledge base installs (`flagstage_app.semantic`).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from flagstage_app.deps import AppSettings, DbSession, Tenant
from flagstage_app.errors import AppError
from flagstage_app.gating import TEMPORAL_ANALYSIS, ToggleProvider, get_toggles
from flagstage_app.insights import (
    DEFAULT_LIMIT,
    DEFAULT_WINDOW_MONTHS,
    MAX_WINDOW_MONTHS,
    describe_ranking,
    months_in_question,
    rank_accounts_by_revenue,
)
from flagstage_app.semantic import SemanticAnswerer, SemanticQuery
from flagstage_app.toggles.metrics import FALLBACK_OFF
from flagstage_app.toggles.serving import record_fallback

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/rag-qdrant", tags=["insights"])

SEMANTIC = "semantic"


class SemanticUnavailableError(AppError):
    status_code = 503
    code = "semantic_search_unavailable"


class QueryRequest(BaseModel):
    query: str = Field(min_length=1, max_length=2000)
    query_type: Literal["temporal_analysis", "semantic"] = "semantic"
    months: int | None = Field(default=None, ge=1, le=MAX_WINDOW_MONTHS)
    limit: int | None = Field(default=None, ge=1, le=100)


def _semantic(
    request: Request,
    body: QueryRequest,
    tenant: str,
    session: DbSession,
    settings: AppSettings,
    *,
    fallback_from: str | None,
) -> dict[str, Any] | None:
    answerer = cast(SemanticAnswerer | None, request.app.state.semantic_answerer)
    if answerer is None:
        return None
    question = SemanticQuery(
        tenant=tenant,
        query=body.query,
        top_k=settings.rag_top_k,
        similarity_threshold=settings.rag_similarity_threshold,
        session=session,
        fallback_from=fallback_from,
    )
    result = answerer(question)
    return {"answer": result.answer, "data": result.data}


@router.post("/query")
def answer_query(
    request: Request,
    body: QueryRequest,
    tenant: Tenant,
    session: DbSession,
    settings: AppSettings,
    toggles: Annotated[ToggleProvider, Depends(get_toggles)],
) -> dict[str, Any]:
    response: dict[str, Any] = {"query": body.query, "query_type": body.query_type}

    if body.query_type == TEMPORAL_ANALYSIS:
        if toggles.is_enabled(TEMPORAL_ANALYSIS, tenant):
            months = body.months or months_in_question(body.query) or DEFAULT_WINDOW_MONTHS
            ranking = rank_accounts_by_revenue(
                session, tenant, months=months, limit=body.limit or DEFAULT_LIMIT
            )
            response.update(
                answered_by=TEMPORAL_ANALYSIS,
                answer=describe_ranking(ranking),
                data=ranking.to_json(),
            )
            return response

        logger.info("temporal question of tenant %s falls back: feature off", tenant)
        record_fallback(request, TEMPORAL_ANALYSIS, FALLBACK_OFF)
        fallback = _semantic(
            request, body, tenant, session, settings, fallback_from=TEMPORAL_ANALYSIS
        )
        response["fallback"] = {
            "from": TEMPORAL_ANALYSIS,
            "to": SEMANTIC,
            "reason": f"the {TEMPORAL_ANALYSIS} feature is off for this customer",
            "available": fallback is not None,
        }
        if fallback is None:
            response.update(
                answered_by=None,
                answer=(
                    "Temporal analysis is off for this customer, and the semantic search it "
                    "falls back to is not available in this deployment, so the question was "
                    "not answered."
                ),
                data=None,
            )
        else:
            response.update(answered_by=SEMANTIC, **fallback)
        return response

    answer = _semantic(request, body, tenant, session, settings, fallback_from=None)
    if answer is None:
        raise SemanticUnavailableError(
            "semantic search is not available in this deployment",
            hint="ask a temporal_analysis question, or deploy the knowledge base",
        )
    response.update(answered_by=SEMANTIC, **answer)
    return response
