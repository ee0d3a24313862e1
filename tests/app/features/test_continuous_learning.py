"""continuous_learning: answer ratings re-rank the tenant's retrieval, boundedly and reversibly."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flagstage_app.learning import MAX_BOOST, boost_factor

from tests.app.conftest import tenant
from tests.app.features.conftest import (
    ACCOUNTS_HEADER,
    csv_bytes,
    fallback_count,
    uploaded,
    use_toggles,
)

ON = {
    "format_detection": True,
    "enhanced_upload": True,
    "event_driven_rag": True,
    "continuous_learning": True,
}
QUESTION = "Nimbus cloud account"
ACCOUNTS = csv_bytes(
    ACCOUNTS_HEADER,
    [
        ("N1", "Nimbus Cloud North", "cloud", "100.00", "2024-01"),
        ("N2", "Nimbus Cloud South", "cloud", "100.00", "2024-01"),
    ],
)


def ask(client: TestClient, customer: str = "acme") -> Any:
    response = client.post(
        "/api/rag-qdrant/query",
        json={"query": QUESTION, "query_type": "semantic"},
        headers=tenant(customer),
    )
    assert response.status_code == 200, response.text
    return response.json()


def scores(reply: Any) -> dict[str, tuple[float, float]]:
    return {s["doc_id"]: (s["score"], s["base_score"]) for s in reply["data"]["sources"]}


def rate(client: TestClient, answer_id: str, rating: int, customer: str = "acme") -> Any:
    response = client.post(
        "/api/feedback", json={"answer_id": answer_id, "rating": rating}, headers=tenant(customer)
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_every_answer_has_an_id_and_remembers_what_it_cited(
    app: FastAPI, client: TestClient
) -> None:
    use_toggles(app, **ON)
    uploaded(client, "acme", ACCOUNTS)

    reply = ask(client)
    rated = rate(client, reply["answer_id"], 1)

    assert len(reply["answer_id"]) == 32
    assert set(rated["documents"]) <= {"account:N1", "account:N2"} and rated["documents"]
    assert rated["ranking"]["applied"] is True


def test_a_rating_boosts_the_cited_documents_within_the_bound_until_it_is_deleted(
    app: FastAPI, client: TestClient
) -> None:
    use_toggles(app, **ON)
    uploaded(client, "acme", ACCOUNTS)
    first = ask(client)
    cited = rate(client, first["answer_id"], -1)["documents"]

    after = scores(ask(client))
    for doc_id, (score, base) in after.items():
        expected = base * boost_factor(-1) if doc_id in cited else base
        assert score == pytest.approx(expected, abs=1e-3)
        assert abs(score / base - 1) < MAX_BOOST
    assert scores(ask(client, "other")) == {}

    client.delete(f"/api/feedback/{first['answer_id']}", headers=tenant("acme"))
    restored = scores(ask(client))
    assert all(score == base for score, base in restored.values())


def test_no_number_of_ratings_moves_a_document_beyond_the_bound() -> None:
    assert boost_factor(1000) <= 1 + MAX_BOOST
    assert boost_factor(-1000) >= 1 - MAX_BOOST
    assert 1 < boost_factor(1) < boost_factor(3) < 1 + MAX_BOOST
    assert boost_factor(0) == 1


def test_when_off_feedback_is_stored_but_the_ranking_is_unchanged(
    app: FastAPI, client: TestClient
) -> None:
    use_toggles(app, **{**ON, "continuous_learning": False})
    uploaded(client, "acme", ACCOUNTS)
    answer_id = ask(client)["answer_id"]

    rated = rate(client, answer_id, 1)
    reply = ask(client)

    assert rated["ranking"]["applied"] is False
    assert all(score == base for score, base in scores(reply).values())
    boosts = client.get("/api/feedback/boosts", headers=tenant("acme")).json()
    assert boosts["documents"]
    assert fallback_count(app, "continuous_learning", "off") >= 2


def test_it_stays_off_while_event_driven_rag_is_off(app: FastAPI, client: TestClient) -> None:
    use_toggles(app, **{**ON, "event_driven_rag": False})
    uploaded(client, "acme", ACCOUNTS)

    assert rate(client, ask(client)["answer_id"], 1)["ranking"]["applied"] is False
    assert all(score == base for score, base in scores(ask(client)).values())


def test_rating_an_unknown_answer_is_not_found(app: FastAPI, client: TestClient) -> None:
    response = client.post(
        "/api/feedback", json={"answer_id": "nope", "rating": 1}, headers=tenant("acme")
    )

    assert response.status_code == 404


def test_when_the_boosts_raise_the_base_ranking_answers_and_the_fallback_is_counted(
    app: FastAPI, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_toggles(app, **ON)
    uploaded(client, "acme", ACCOUNTS)
    rate(client, ask(client)["answer_id"], 1)

    def broken(*_args: object) -> None:
        raise RuntimeError("ratings unreadable")

    monkeypatch.setattr("flagstage_app.routes.query.document_boosts", broken)

    reply = ask(client)

    assert all(score == base for score, base in scores(reply).values())
    assert fallback_count(app, "continuous_learning", "error") == 1
