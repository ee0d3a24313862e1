"""Revenue-over-time questions through `POST /api/rag-qdrant/query`, with hand-worked sums."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.app.conftest import ask, csv_body, tenant, toggles_with, upload

ACCOUNTS = csv_body(
    "account_id,name,industry,revenue,revenue_month",
    "A1,Northwind,retail,1000.00,2024-01",
    "A2,Globex,energy,2000.00,2024-05",
    "A3,Initech,software,300.00,2024-05",
)
METRICS = csv_body(
    "account_id,month,revenue_growth_pct,active_users,support_tickets,nps",
    "A1,2024-02,10,50,2,40",
    "A1,2024-03,-5,48,3,35",
    "A1,2024-05,20,55,1,45",
    "A2,2024-02,100,200,10,20",
    "A2,2024-03,0,210,8,25",
    "A2,2024-04,-20,190,12,10",
    "A2,2024-05,25,220,6,30",
    "A3,2024-05,0,10,0,60",
)
QUESTION = "Which accounts have the highest revenue across last 4 months?"


def load_example(client: TestClient, customer: str = "acme") -> None:
    upload(client, customer, "accounts", ACCOUNTS)
    upload(client, customer, "metrics", METRICS)


def totals(reply: dict[str, Any]) -> list[tuple[str, str]]:
    return [(item["account_id"], item["total_revenue"]) for item in reply["data"]["accounts"]]


def test_top_accounts_sum_compounded_revenue_over_the_last_four_months(client: TestClient) -> None:
    load_example(client)

    reply = ask(client, "acme", QUESTION)

    assert reply["answered_by"] == "temporal_analysis"
    assert reply["data"]["window"] == ["2024-02", "2024-03", "2024-04", "2024-05"]
    # A2 (base 2000.00 in 2024-05, back-computed): 2000.00 + 2000.00 + 1600.00 + 2000.00 = 7600.00
    # A1 (base 1000.00 in 2024-01): 1100.00 + 1045.00 + 1045.00 (gap) + 1254.00 = 4444.00
    # A3 (base 300.00 in 2024-05, nothing earlier): 300.00
    assert totals(reply) == [("A2", "7600.00"), ("A1", "4444.00"), ("A3", "300.00")]

    northwind = reply["data"]["accounts"][1]
    assert northwind["name"] == "Northwind"
    assert northwind["months"] == [
        {"month": "2024-02", "revenue": "1100.00", "growth_pct": "10", "estimated": False},
        {"month": "2024-03", "revenue": "1045.00", "growth_pct": "-5", "estimated": False},
        {"month": "2024-04", "revenue": "1045.00", "growth_pct": None, "estimated": True},
        {"month": "2024-05", "revenue": "1254.00", "growth_pct": "20", "estimated": False},
    ]
    assert "Globex (A2): 7,600.00" in reply["answer"]
    assert "estimated" in reply["answer"]


def test_the_window_length_is_read_from_the_question_or_the_body(client: TestClient) -> None:
    load_example(client)

    from_text = ask(client, "acme", "Top accounts by revenue over the past two months")
    from_body = ask(client, "acme", "Top accounts by revenue", months=2, limit=2)

    # 2024-04..05: A2 1600.00 + 2000.00 = 3600.00; A1 1045.00 + 1254.00 = 2299.00; A3 300.00
    assert from_text["data"]["window"] == ["2024-04", "2024-05"]
    assert totals(from_text) == [("A2", "3600.00"), ("A1", "2299.00"), ("A3", "300.00")]
    assert totals(from_body) == [("A2", "3600.00"), ("A1", "2299.00")]


def test_a_reupload_replaces_the_rows_and_the_revenue_follows(client: TestClient) -> None:
    load_example(client)

    upload(
        client,
        "acme",
        "metrics",
        csv_body(
            "account_id,month,revenue_growth_pct,active_users,support_tickets,nps",
            "A1,2024-04,-10,50,2,40",
        ),
    )
    reply = ask(client, "acme", QUESTION, limit=2)

    # A1: 1100.00 + 1045.00 + 1045.00 * 0.90 = 940.50 + 940.50 * 1.20 = 1128.60 -> 4214.10
    assert totals(reply) == [("A2", "7600.00"), ("A1", "4214.10")]


def test_a_customer_without_data_gets_an_empty_answer_that_says_what_to_load(
    client: TestClient,
) -> None:
    reply = ask(client, "empty-co", QUESTION)

    assert reply["data"] == {"window": [], "accounts": []}
    assert "load accounts and monthly metrics" in reply["answer"]


def test_when_temporal_analysis_is_off_the_question_falls_back_and_says_so(
    app: FastAPI, client: TestClient
) -> None:
    load_example(client)
    app.state.toggles = toggles_with(temporal_analysis=False)
    app.state.semantic_answerer = None  # a deployment without the knowledge base

    reply = ask(client, "acme", QUESTION)

    assert reply["answered_by"] is None
    assert reply["data"] is None
    assert reply["fallback"] == {
        "from": "temporal_analysis",
        "to": "semantic",
        "reason": "the temporal_analysis feature is off for this customer",
        "available": False,
    }
    assert "Temporal analysis is off for this customer" in reply["answer"]


def test_the_toggle_is_read_per_customer(app: FastAPI, client: TestClient) -> None:
    class OnlyFor:
        def is_enabled(self, feature: str, tenant: str | None = None) -> bool:
            return tenant == "acme"

    load_example(client, "acme")
    load_example(client, "other")
    app.state.toggles = OnlyFor()

    assert ask(client, "acme", QUESTION)["answered_by"] == "temporal_analysis"
    assert ask(client, "other", QUESTION)["fallback"]["from"] == "temporal_analysis"


def test_an_installed_semantic_answerer_serves_the_fallback_and_semantic_questions(
    app: FastAPI, client: TestClient
) -> None:
    from flagstage_app.semantic import SemanticAnswer, SemanticQuery, install_semantic_answerer

    seen: list[SemanticQuery] = []

    def answerer(question: SemanticQuery) -> SemanticAnswer:
        seen.append(question)
        return SemanticAnswer(answer="from the knowledge base", data={"documents": []})

    install_semantic_answerer(app, answerer)
    app.state.toggles = toggles_with(temporal_analysis=False)

    fallback = ask(client, "acme", QUESTION)
    semantic = client.post(
        "/api/rag-qdrant/query",
        json={"query": "what did Northwind say?", "query_type": "semantic"},
        headers=tenant("acme"),
    ).json()

    assert fallback["answered_by"] == "semantic"
    assert fallback["fallback"]["available"] is True
    assert semantic["answer"] == "from the knowledge base"
    assert [(q.tenant, q.fallback_from) for q in seen] == [
        ("acme", "temporal_analysis"),
        ("acme", None),
    ]


def test_semantic_questions_without_a_knowledge_base_are_refused_with_503(
    app: FastAPI, client: TestClient
) -> None:
    app.state.semantic_answerer = None
    response = client.post(
        "/api/rag-qdrant/query",
        json={"query": "anything", "query_type": "semantic"},
        headers=tenant("acme"),
    )

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "semantic_search_unavailable"
