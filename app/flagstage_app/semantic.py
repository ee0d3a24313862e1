"""The seam between the query endpoint and the knowledge base's semantic answers.

The query endpoint does not know how retrieval works. It builds a `SemanticQuery` and calls the
answerer installed on `app.state.semantic_answerer` (see `install_semantic_answerer`); the
answerer returns the JSON-ready `data` and `answer` of the response. Until one is installed,
`semantic` questions are refused with 503 and temporal questions whose feature is off say
that no fallback could answer them. The answerer is called from a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import FastAPI
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class SemanticQuery:
    """One question for the knowledge base; `fallback_from` names the path that declined it."""

    tenant: str
    query: str
    top_k: int
    similarity_threshold: float
    session: Session
    fallback_from: str | None = None
    # Similarity multipliers per document id (continuous learning); None ranks by similarity.
    boosts: Mapping[str, float] | None = None


@dataclass(frozen=True)
class SemanticAnswer:
    answer: str
    data: dict[str, Any]


class SemanticAnswerer(Protocol):
    def __call__(self, question: SemanticQuery) -> SemanticAnswer: ...


def install_semantic_answerer(app: FastAPI, answerer: SemanticAnswerer) -> None:
    """Serve `query_type: semantic` (and fallbacks to it) with `answerer`."""
    app.state.semantic_answerer = answerer
