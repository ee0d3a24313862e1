"""The real `openai` client against an OpenAI-compatible server on loopback, and semantic
questions through the app: answers cite their sources and stay inside the asking tenant."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flagstage_app.knowledge import KnowledgeBase, KnowledgeIndex
from flagstage_app.knowledge.answering import OpenAIWriter
from flagstage_app.knowledge.embedding import OpenAIEmbedder
from flagstage_app.knowledge.index import Document
from flagstage_app.main import create_app
from flagstage_app.models import Account, KnowledgeDocument, Tenant
from flagstage_app.settings import Settings
from pydantic import SecretStr
from qdrant_client import QdrantClient

from tests.app.knowledge.conftest import FakeOpenAI

NOTE = "Globex is at churn risk after the pricing change; renewal due in March."
SECRET = "Initech plans to double its seats next quarter, confidential."
ADMIN_TOKEN = "kb-admin"

MakeClient = Callable[..., TestClient]


def test_openai_embeddings_and_answers_go_through_the_real_client(
    fake_openai: FakeOpenAI,
) -> None:
    client = fake_openai.client()
    index = KnowledgeIndex(QdrantClient(location=":memory:"), OpenAIEmbedder(client), local=True)
    index.rebuild({"acme": [Document("acme", "note:1", "note", NOTE)]})
    hits = index.search("acme", "Which accounts are at churn risk?", top_k=10, score_threshold=0.2)
    answer = OpenAIWriter(client).write("Which accounts are at churn risk?", hits)

    assert answer.citations == ("note:1",)
    assert answer.text.startswith("Per [note:1]:")
    paths = [path for path, _ in fake_openai.requests]
    assert paths == ["/v1/embeddings", "/v1/embeddings", "/v1/chat/completions"]
    assert fake_openai.requests[0][1]["dimensions"] == 512
    index.client.close()


def seed(app: FastAPI) -> None:
    now = datetime.now(UTC)
    with app.state.session_factory() as session:
        for tenant in ("acme", "initech"):
            session.add(Tenant(tenant_id=tenant, created_at=now))
        session.flush()
        session.add(
            Account(
                tenant_id="acme",
                account_id="A1",
                name="Globex",
                industry="manufacturing",
                revenue=Decimal("120000.00"),
                revenue_month="2026-10",
            )
        )
        session.add(
            KnowledgeDocument(
                tenant_id="acme", doc_id="note:churn", kind="note", text=NOTE, updated_at=now
            )
        )
        session.add(
            KnowledgeDocument(
                tenant_id="initech", doc_id="note:seats", kind="note", text=SECRET, updated_at=now
            )
        )
        session.commit()


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[MakeClient]:
    clients: list[TestClient] = []

    def _make(**overrides: object) -> TestClient:
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'app.db'}",
            qdrant_path=":memory:",
            admin_token=SecretStr(ADMIN_TOKEN),
            **overrides,
        )
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        seed(client.app)  # type: ignore[arg-type]
        return client

    yield _make
    for client in clients:
        client.__exit__(None, None, None)


def ask(client: TestClient, tenant: str, question: str) -> dict[str, object]:
    response = client.post(
        "/api/rag-qdrant/query",
        json={"query": question, "query_type": "semantic"},
        headers={"X-Customer-ID": tenant},
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_offline_semantic_answers_quote_and_cite_the_tenants_own_documents(
    make_client: MakeClient,
) -> None:
    client = make_client()
    reply = ask(client, "acme", "Which accounts are at churn risk?")
    data = reply["data"]
    assert isinstance(data, dict)
    assert data["citations"][0] == "note:churn"
    assert data["written_by"] == "extractive"
    assert data["retrieval"]["embedder"] == "lexical-hash-512"
    assert "churn risk" in str(reply["answer"]) and "[note:churn]" in str(reply["answer"])

    # initech's confidential note is the best match for this question, but not acme's to see.
    leak = ask(client, "acme", SECRET)
    assert "note:seats" not in str(leak)
    own = ask(client, "initech", SECRET)
    assert own["data"]["citations"] == ["note:seats"]  # type: ignore[index]


def test_with_an_openai_key_the_model_writes_and_a_failing_model_falls_back(
    make_client: MakeClient,
    fake_openai: FakeOpenAI,
) -> None:
    # The fake server embeds lexically, so it needs the floor the lexical embedder uses.
    client = make_client(
        openai_api_key=SecretStr("k"),
        openai_base_url=fake_openai.url,
        rag_similarity_threshold=0.2,
    )
    reply = ask(client, "acme", "Which accounts are at churn risk?")
    assert reply["data"]["written_by"] == "openai-gpt-4o-mini"  # type: ignore[index]
    assert str(reply["answer"]).startswith("Per [")

    fake_openai.fail_chat = True
    fallback = ask(client, "acme", "Which accounts are at churn risk?")
    data = fallback["data"]
    assert data["written_by"] == "extractive"  # type: ignore[index]
    assert data["writer_fallback"]["from"] == "openai-gpt-4o-mini"  # type: ignore[index]
    assert "[note:churn]" in str(fallback["answer"])


def test_the_refresh_rebuilds_every_tenant_and_switches_the_alias(
    make_client: MakeClient,
) -> None:
    client = make_client()
    ask(client, "acme", "churn")
    knowledge: KnowledgeBase = client.app.state.knowledge_base  # type: ignore[attr-defined]
    before = knowledge.index.collection_of("acme")

    job = client.post(
        "/api/refresh-data/rag_knowledge_base",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ).json()["job"]
    for _ in range(200):
        job = client.get(
            f"/api/refresh-data/jobs/{job['id']}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ).json()
        if job["status"] != "running":
            break
        time.sleep(0.02)
    assert job["status"] == "succeeded", job
    assert "3 documents of 2 customers" in job["summary"]
    assert knowledge.index.collection_of("acme") not in (None, before)
    assert ask(client, "acme", "churn")["data"]["citations"][0] == "note:churn"  # type: ignore[index]
