"""`POST /api/rag-qdrant/query`: revenue-over-time and knowledge-base questions.

`temporal_analysis` questions are answered from the materialized monthly revenue when the
`temporal_analysis` toggle is on for the tenant; when it is off, or the revenue path fails,
they fall back to the semantic path, and the response says so in `fallback`. Semantic answers
come from the answerer the knowledge base installs (`flagstage_app.semantic`); with
`continuous_learning` on, its ranking takes the tenant's answer ratings into account
(`flagstage_app.learning`). Every response has an `answer_id` to rate with `POST /api/feedback`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

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
from flagstage_app.learning import CONTINUOUS_LEARNING, document_boosts, record_answer
from flagstage_app.semantic import SemanticAnswerer, SemanticQuery
from flagstage_app.toggles.metrics import FALLBACK_ERROR, FALLBACK_OFF
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
    boosts: Mapping[str, float] | None = None,
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
        boosts=boosts,
    )
    result = answerer(question)
    return {"answer": result.answer, "data": result.data}


def _boosts(request: Request, tenant: str, session: DbSession, toggles: ToggleProvider) -> Any:
    if not toggles.is_enabled(CONTINUOUS_LEARNING, tenant):
        record_fallback(request, CONTINUOUS_LEARNING, FALLBACK_OFF)
        return None
    try:
        return document_boosts(session, tenant)
    except Exception:
        logger.exception("feedback boosts of tenant %s failed; ranking by similarity", tenant)
        session.rollback()
        record_fallback(request, CONTINUOUS_LEARNING, FALLBACK_ERROR)
        return None


def _remember(session: DbSession, tenant: str, response: dict[str, Any]) -> None:
    data = response.get("data") or {}
    cited = data.get("citations") or [source["doc_id"] for source in data.get("sources", [])]
    try:
        record_answer(
            session,
            tenant=tenant,
            answer_id=response["answer_id"],
            query=response["query"],
            answered_by=response.get("answered_by"),
            cited=cited if isinstance(cited, list) else [],
        )
        session.commit()
    except SQLAlchemyError:
        # The answer still goes out; only rating it will not find it.
        session.rollback()
        logger.exception("could not keep answer %s of tenant %s", response["answer_id"], tenant)


@router.post("/query")
def answer_query(
    request: Request,
    body: QueryRequest,
    tenant: Tenant,
    session: DbSession,
    settings: AppSettings,
    toggles: Annotated[ToggleProvider, Depends(get_toggles)],
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "answer_id": uuid.uuid4().hex,
        "query": body.query,
        "query_type": body.query_type,
    }
    answered = _answer(request, body, tenant, session, settings, toggles, response)
    _remember(session, tenant, answered)
    return answered


def _answer(
    request: Request,
    body: QueryRequest,
    tenant: str,
    session: DbSession,
    settings: AppSettings,
    toggles: ToggleProvider,
    response: dict[str, Any],
) -> dict[str, Any]:
    if body.query_type == TEMPORAL_ANALYSIS:
        reason = f"the {TEMPORAL_ANALYSIS} feature is off for this customer"
        state = "is off"
        if toggles.is_enabled(TEMPORAL_ANALYSIS, tenant):
            months = body.months or months_in_question(body.query) or DEFAULT_WINDOW_MONTHS
            try:
                ranking = rank_accounts_by_revenue(
                    session, tenant, months=months, limit=body.limit or DEFAULT_LIMIT
                )
            except Exception as err:
                logger.exception("temporal question of tenant %s failed; falls back", tenant)
                session.rollback()
                record_fallback(request, TEMPORAL_ANALYSIS, FALLBACK_ERROR)
                reason = f"the {TEMPORAL_ANALYSIS} path failed ({type(err).__name__})"
                state = "failed"
            else:
                response.update(
                    answered_by=TEMPORAL_ANALYSIS,
                    answer=describe_ranking(ranking),
                    data=ranking.to_json(),
                )
                return response
        else:
            logger.info("temporal question of tenant %s falls back: feature off", tenant)
            record_fallback(request, TEMPORAL_ANALYSIS, FALLBACK_OFF)

        fallback = _semantic(
            request,
            body,
            tenant,
            session,
            settings,
            fallback_from=TEMPORAL_ANALYSIS,
            boosts=_boosts(request, tenant, session, toggles),
        )
        response["fallback"] = {
            "from": TEMPORAL_ANALYSIS,
            "to": SEMANTIC,
            "reason": reason,
            "available": fallback is not None,
        }
        if fallback is None:
            response.update(
                answered_by=None,
                answer=(
                    f"Temporal analysis {state} for this customer, and the semantic search it "
                    "falls back to is not available in this deployment, so the question was "
                    "not answered."
                ),
                data=None,
            )
        else:
            response.update(answered_by=SEMANTIC, **fallback)
        return response

    answer = _semantic(
        request,
        body,
        tenant,
        session,
        settings,
        fallback_from=None,
        boosts=_boosts(request, tenant, session, toggles),
    )
    if answer is None:
        raise SemanticUnavailableError(
            "semantic search is not available in this deployment",
            hint="ask a temporal_analysis question, or deploy the knowledge base",
        )
    response.update(answered_by=SEMANTIC, **answer)
    return response
