"""The knowledge base as the app uses it: semantic answers and the `rag_knowledge_base` rebuild.

`KnowledgeBase.answer` serves `query_type: semantic` through the seam in
`flagstage_app.semantic`; `KnowledgeBase.refresh` is the refresher of `rag_knowledge_base`.
A tenant whose index does not exist yet gets it built from SQL on its first question. With
`OPENAI_API_KEY` set, embeddings and answers come from OpenAI (or any compatible server at
`OPENAI_BASE_URL`); without it, the offline lexical embedder and the extractive writer answer.
When the chat model fails, the answer falls back to the extractive writer and says so.
A question may carry per-document boosts (`continuous_learning`): retrieval then looks further
down and re-ranks by similarity times boost (`rerank`). `app.state.reindex_queue` re-indexes a
tenant's changed accounts in the background (`flagstage_app.knowledge.events`).

Qdrant's local mode is opened lazily (first use) and closed at shutdown: it locks its
directory, so only one process, and one app in a process, may hold it at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from openai import OpenAI, OpenAIError
from qdrant_client import QdrantClient
from sqlalchemy.engine import make_url

from flagstage_app.errors import AppError
from flagstage_app.knowledge.answering import (
    Answer,
    AnswerWriter,
    ExtractiveWriter,
    OpenAIWriter,
    no_match_answer,
)
from flagstage_app.knowledge.documents import all_tenants, documents_by_tenant, tenant_documents
from flagstage_app.knowledge.embedding import Embedder, LexicalEmbedder, OpenAIEmbedder
from flagstage_app.knowledge.events import ReindexQueue
from flagstage_app.knowledge.index import Hit, KnowledgeIndex
from flagstage_app.learning import MAX_BOOST, boosted
from flagstage_app.refreshing import RAG_KNOWLEDGE_BASE, RefreshContext, register_refresher
from flagstage_app.semantic import SemanticAnswer, SemanticQuery, install_semantic_answerer
from flagstage_app.settings import Settings
from flagstage_app.toggles.metrics import FALLBACK_ERROR
from flagstage_app.toggles.serving import record_app_fallback

logger = logging.getLogger(__name__)

DEFAULT_QDRANT_PATH = "./var/qdrant"
EVENT_DRIVEN_RAG = "event_driven_rag"
OPENAI_TIMEOUT_SECONDS = 30.0


class KnowledgeBaseError(AppError):
    """Retrieval could not run (the embedding service or Qdrant failed)."""

    status_code = 503
    code = "knowledge_base_unavailable"


class KnowledgeBase:
    """Retrieval and answers over per-tenant indexes; thread-safe."""

    def __init__(
        self,
        open_index: Callable[[], KnowledgeIndex],
        writer: AnswerWriter,
        *,
        fallback_writer: AnswerWriter | None = None,
    ) -> None:
        self._open_index = open_index
        self._index: KnowledgeIndex | None = None
        self._opening = threading.Lock()
        self.writer = writer
        self.fallback_writer = fallback_writer or ExtractiveWriter()

    @property
    def index(self) -> KnowledgeIndex:
        with self._opening:
            if self._index is None:
                self._index = self._open_index()
            return self._index

    def close(self) -> None:
        with self._opening:
            if self._index is not None:
                self._index.client.close()
                self._index = None

    def answer(self, question: SemanticQuery) -> SemanticAnswer:
        index = self.index
        if index.collection_of(question.tenant) is None:
            docs = tenant_documents(question.session, question.tenant)
            logger.info(
                "building the knowledge base of %s: %d documents", question.tenant, len(docs)
            )
            index.rebuild({question.tenant: docs})

        threshold = index.embedder.score_threshold(question.similarity_threshold)
        boosts = question.boosts or {}
        try:
            hits = index.search(
                question.tenant,
                question.query,
                # Boosted documents may climb from below the cut: look that far down first.
                top_k=question.top_k + len(boosts),
                score_threshold=threshold / (1 + MAX_BOOST) if boosts else threshold,
            )
        except (OpenAIError, ValueError) as err:
            raise KnowledgeBaseError(
                f"the knowledge base could not search: {err}",
                hint="check the embedding service and Qdrant, then ask again",
            ) from err
        base_scores = {hit.doc_id: hit.score for hit in hits}
        if boosts:
            hits = rerank(hits, boosts, top_k=question.top_k, score_threshold=threshold)

        fallback: dict[str, str] | None = None
        if not hits:
            written = Answer(no_match_answer(question.similarity_threshold), (), "none")
        else:
            try:
                written = self.writer.write(question.query, hits)
            except (OpenAIError, ValueError) as err:
                logger.warning(
                    "answer writer failed for %s, quoting instead: %s", question.tenant, err
                )
                fallback = {"from": getattr(self.writer, "name", "writer"), "reason": str(err)}
                written = self.fallback_writer.write(question.query, hits)

        data: dict[str, Any] = {
            "sources": [
                {
                    "doc_id": hit.doc_id,
                    "kind": hit.kind,
                    "score": round(hit.score, 4),
                    "base_score": round(base_scores.get(hit.doc_id, hit.score), 4),
                    "text": hit.text,
                }
                for hit in hits
            ],
            "citations": list(written.citations),
            "written_by": written.written_by,
            "retrieval": {
                "embedder": index.embedder.name,
                "top_k": question.top_k,
                "similarity_threshold": question.similarity_threshold,
                "score_threshold": threshold,
                "boosted": {
                    hit.doc_id: round(boosts[hit.doc_id], 4) for hit in hits if hit.doc_id in boosts
                },
            },
        }
        if fallback is not None:
            data["writer_fallback"] = fallback
        return SemanticAnswer(written.text, data)

    def refresh(self, context: RefreshContext) -> str:
        """Rebuild every tenant's index from SQL and switch them all at once."""
        tenants = all_tenants(context.session)
        counts = self.index.rebuild(documents_by_tenant(context.session, tenants))
        return (
            f"knowledge base rebuilt: {sum(counts.values())} documents of {len(counts)} customers"
        )


def rerank(
    hits: Sequence[Hit], boosts: Mapping[str, float], *, top_k: int, score_threshold: float
) -> list[Hit]:
    """`hits` scored by similarity times their boost, best first, cut at `top_k`."""
    scored = [replace(hit, score=boosted(hit.score, hit.doc_id, boosts)) for hit in hits]
    kept = [hit for hit in scored if hit.score >= score_threshold]
    return sorted(kept, key=lambda hit: (-hit.score, hit.doc_id))[:top_k]


def qdrant_location(settings: Settings) -> str:
    """Local mode's storage: `qdrant_path`, else beside the SQLite file, else ./var/qdrant."""
    if settings.qdrant_path:
        return settings.qdrant_path
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return str(Path(url.database).parent / "qdrant")
    return DEFAULT_QDRANT_PATH


def build_knowledge_base(settings: Settings) -> KnowledgeBase:
    """The knowledge base `settings` describe (OpenAI or offline; Qdrant server or local)."""
    embedder: Embedder
    writer: AnswerWriter
    if settings.openai_api_key is not None:
        client = OpenAI(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            timeout=OPENAI_TIMEOUT_SECONDS,
            max_retries=1,
        )
        embedder, writer = OpenAIEmbedder(client), OpenAIWriter(client)
    else:
        embedder, writer = LexicalEmbedder(), ExtractiveWriter()

    def open_index() -> KnowledgeIndex:
        if settings.qdrant_url:
            return KnowledgeIndex(QdrantClient(url=settings.qdrant_url), embedder, local=False)
        location = qdrant_location(settings)
        if location == ":memory:":
            client = QdrantClient(location=":memory:")
        else:
            Path(location).mkdir(parents=True, exist_ok=True)
            client = QdrantClient(path=location, force_disable_check_same_thread=True)
        return KnowledgeIndex(client, embedder, local=True)

    return KnowledgeBase(open_index, writer)


def install_knowledge_base(app: FastAPI) -> KnowledgeBase:
    """Serve semantic questions and the `rag_knowledge_base` refresh from a knowledge base."""
    knowledge = build_knowledge_base(app.state.settings)
    app.state.knowledge_base = knowledge
    install_semantic_answerer(app, knowledge.answer)
    register_refresher(app, RAG_KNOWLEDGE_BASE, knowledge.refresh)

    def count_failure(_tenant: str) -> None:
        record_app_fallback(app, EVENT_DRIVEN_RAG, FALLBACK_ERROR)

    app.state.reindex_queue = ReindexQueue(
        app.state.session_factory, lambda: knowledge.index, on_failure=count_failure
    )
    app.state.lifespan_hooks.append(_closing)
    return knowledge


@asynccontextmanager
async def _closing(app: FastAPI) -> AsyncIterator[None]:
    queue: ReindexQueue = app.state.reindex_queue
    queue.start()
    try:
        yield
    finally:
        queue.stop()
        app.state.knowledge_base.close()
