"""temporal_analysis: off or failing, a revenue question is answered by the semantic path."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.app.conftest import tenant
from tests.app.features.conftest import (
    ACCOUNT_ROWS,
    ACCOUNTS_HEADER,
    csv_bytes,
    fallback_count,
    uploaded,
    use_toggles,
)

QUESTION = "Which accounts have the highest revenue across last 4 months?"


def ask(client: TestClient) -> Any:
    response = client.post(
        "/api/rag-qdrant/query",
        json={"query": QUESTION, "query_type": "temporal_analysis"},
        headers=tenant("acme"),
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_when_on_revenue_questions_are_answered_from_monthly_revenue(
    app: FastAPI, client: TestClient
) -> None:
    use_toggles(app, format_detection=True, real_time_ingestion=True)
    uploaded(client, "acme", csv_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS))

    reply = ask(client)

    assert reply["answered_by"] == "temporal_analysis"
    assert "fallback" not in reply
    assert reply["answer_id"]


def test_when_off_the_knowledge_base_answers_and_the_response_says_so(
    app: FastAPI, client: TestClient
) -> None:
    use_toggles(app, temporal_analysis=False, format_detection=True, real_time_ingestion=True)
    uploaded(client, "acme", csv_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS))

    reply = ask(client)

    assert reply["answered_by"] == "semantic"
    assert reply["fallback"] == {
        "from": "temporal_analysis",
        "to": "semantic",
        "reason": "the temporal_analysis feature is off for this customer",
        "available": True,
    }
    assert reply["data"]["sources"]
    assert fallback_count(app, "temporal_analysis", "off") == 1


def test_when_the_revenue_path_raises_the_semantic_path_answers_and_it_is_counted(
    app: FastAPI, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_toggles(app, format_detection=True, real_time_ingestion=True)
    uploaded(client, "acme", csv_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS))

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("ranking crashed")

    monkeypatch.setattr("flagstage_app.routes.query.rank_accounts_by_revenue", broken)

    reply = ask(client)

    assert reply["answered_by"] == "semantic"
    assert reply["fallback"]["reason"] == "the temporal_analysis path failed (RuntimeError)"
    assert fallback_count(app, "temporal_analysis", "error") == 1
