"""Answers, the documents they cited, ratings of them, and the retrieval boost ratings earn.

Every query response carries an `answer_id`; the answer and the documents it cited are kept
(`record_answer`) so a later rating (`record_feedback`, +1 or -1, one per answer, the latest
wins) can be traced to documents. A document's net rating is the sum of the ratings of the
answers that cited it. With `continuous_learning` on for the tenant, retrieval multiplies each
document's similarity by

    factor = 1 + MAX_BOOST * tanh(net / RATING_SCALE)

so one rating moves a document by about 6%, and no number of ratings moves it by more than 20%
either way. Nothing about the index changes: the boost is applied at query time, so deleting
the feedback, or turning the feature off, gives the base ranking back at once. Feedback is
stored whether the feature is on or not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from flagstage_app.errors import NotFoundError
from flagstage_app.models import AnswerCitation, AnswerFeedback, AnswerRecord

CONTINUOUS_LEARNING = "continuous_learning"
MAX_BOOST = 0.2
RATING_SCALE = 3.0


def boost_factor(net_rating: int) -> float:
    """The similarity multiplier of a document rated `net_rating` overall (see the module)."""
    return 1.0 + MAX_BOOST * math.tanh(net_rating / RATING_SCALE)


def record_answer(
    session: Session,
    *,
    tenant: str,
    answer_id: str,
    query: str,
    answered_by: str | None,
    cited: Sequence[str],
) -> None:
    """Keep an answer and the documents it cited, in the session's transaction."""
    session.add(
        AnswerRecord(
            tenant_id=tenant,
            answer_id=answer_id,
            query=query,
            answered_by=answered_by,
            created_at=datetime.now(UTC),
        )
    )
    session.flush()
    session.add_all(
        AnswerCitation(tenant_id=tenant, answer_id=answer_id, doc_id=doc_id)
        for doc_id in dict.fromkeys(cited)
    )


def cited_documents(session: Session, tenant: str, answer_id: str) -> list[str]:
    """The documents `answer_id` cited; `NotFoundError` when the tenant has no such answer."""
    if session.get(AnswerRecord, (tenant, answer_id)) is None:
        raise NotFoundError(
            f"there is no answer {answer_id!r} for this customer; rate the answer_id a query "
            "response gave"
        )
    return list(
        session.scalars(
            select(AnswerCitation.doc_id)
            .where(AnswerCitation.tenant_id == tenant, AnswerCitation.answer_id == answer_id)
            .order_by(AnswerCitation.doc_id)
        )
    )


def record_feedback(
    session: Session, *, tenant: str, answer_id: str, rating: int, comment: str | None
) -> list[str]:
    """Store (or replace) the rating of an answer; returns the documents it applies to."""
    cited = cited_documents(session, tenant, answer_id)
    feedback = session.get(AnswerFeedback, (tenant, answer_id))
    if feedback is None:
        feedback = AnswerFeedback(tenant_id=tenant, answer_id=answer_id)
        session.add(feedback)
    feedback.rating = rating
    feedback.comment = comment
    feedback.created_at = datetime.now(UTC)
    return cited


def delete_feedback(session: Session, *, tenant: str, answer_id: str) -> bool:
    """Forget the rating of an answer; False when it had none."""
    result = session.execute(
        delete(AnswerFeedback).where(
            AnswerFeedback.tenant_id == tenant, AnswerFeedback.answer_id == answer_id
        )
    )
    return bool(getattr(result, "rowcount", 0))


def net_ratings(session: Session, tenant: str) -> dict[str, int]:
    """Each rated document of `tenant` and the sum of its answers' ratings (zero sums left out)."""
    total = func.sum(AnswerFeedback.rating)
    rows = session.execute(
        select(AnswerCitation.doc_id, total)
        .join(
            AnswerFeedback,
            (AnswerFeedback.tenant_id == AnswerCitation.tenant_id)
            & (AnswerFeedback.answer_id == AnswerCitation.answer_id),
        )
        .where(AnswerCitation.tenant_id == tenant)
        .group_by(AnswerCitation.doc_id)
    )
    return {doc_id: int(net) for doc_id, net in rows if net}


def document_boosts(session: Session, tenant: str) -> dict[str, float]:
    """The similarity multiplier of every rated document of `tenant`."""
    return {doc_id: boost_factor(net) for doc_id, net in net_ratings(session, tenant).items()}


def boosted(score: float, doc_id: str, boosts: Mapping[str, float]) -> float:
    return score * boosts.get(doc_id, 1.0)
