"""`POST /api/feedback`, `DELETE /api/feedback/{answer_id}` and `GET /api/feedback/boosts`.

A tenant rates an answer it got (+1 or -1, by the `answer_id` of the query response). Ratings
are always stored; they change the tenant's retrieval ranking only while `continuous_learning`
is on for it (see `flagstage_app.learning`), and the responses say which.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from flagstage_app.deps import DbSession, Tenant
from flagstage_app.errors import NotFoundError
from flagstage_app.gating import ToggleProvider, get_toggles
from flagstage_app.learning import (
    CONTINUOUS_LEARNING,
    MAX_BOOST,
    RATING_SCALE,
    boost_factor,
    delete_feedback,
    net_ratings,
    record_feedback,
)

router = APIRouter(prefix="/api/feedback", tags=["feedback"])


class FeedbackRequest(BaseModel):
    answer_id: str = Field(min_length=1, max_length=32)
    rating: Literal[1, -1]
    comment: str | None = Field(default=None, max_length=2000)


def _ranking_note(toggles: ToggleProvider, tenant: str) -> dict[str, Any]:
    applied = toggles.is_enabled(CONTINUOUS_LEARNING, tenant)
    return {
        "applied": applied,
        "note": (
            "this customer's retrieval ranking takes the rating into account"
            if applied
            else f"stored; the ranking is unchanged while {CONTINUOUS_LEARNING} is off"
        ),
    }


@router.post("")
def rate_answer(
    body: FeedbackRequest,
    tenant: Tenant,
    session: DbSession,
    toggles: Annotated[ToggleProvider, Depends(get_toggles)],
) -> dict[str, Any]:
    documents = record_feedback(
        session, tenant=tenant, answer_id=body.answer_id, rating=body.rating, comment=body.comment
    )
    session.commit()
    return {
        "answer_id": body.answer_id,
        "rating": body.rating,
        "documents": documents,
        "ranking": _ranking_note(toggles, tenant),
    }


@router.delete("/{answer_id}")
def forget_rating(
    answer_id: str,
    tenant: Tenant,
    session: DbSession,
    toggles: Annotated[ToggleProvider, Depends(get_toggles)],
) -> dict[str, Any]:
    if not delete_feedback(session, tenant=tenant, answer_id=answer_id):
        raise NotFoundError(f"answer {answer_id!r} has no rating from this customer")
    session.commit()
    return {"answer_id": answer_id, "deleted": True, "ranking": _ranking_note(toggles, tenant)}


@router.get("/boosts")
def show_boosts(
    tenant: Tenant,
    session: DbSession,
    toggles: Annotated[ToggleProvider, Depends(get_toggles)],
) -> dict[str, Any]:
    nets = net_ratings(session, tenant)
    return {
        "formula": f"1 + {MAX_BOOST} * tanh(net_rating / {RATING_SCALE:g})",
        "ranking": _ranking_note(toggles, tenant),
        "documents": {
            doc_id: {"net_rating": net, "factor": round(boost_factor(net), 4)}
            for doc_id, net in sorted(nets.items())
        },
    }
