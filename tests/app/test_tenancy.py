"""Every endpoint that reads or writes customer data needs a valid tenant and sees only its own."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import ADMIN, ask, csv_body, tenant, upload, wait_for_job

ACCOUNTS_HEADER = "account_id,name,industry,revenue,revenue_month"
METRICS_HEADER = "account_id,month,revenue_growth_pct,active_users,support_tickets,nps"
QUESTION = "Which accounts have the highest revenue across last 4 months?"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/rag-qdrant/query", {"query": QUESTION, "query_type": "temporal_analysis"}),
        ("/api/ingest/accounts", []),
        ("/api/ingest/metrics", []),
    ],
)
def test_a_request_without_the_customer_header_is_refused_naming_the_header(
    client: TestClient, path: str, body: object
) -> None:
    response = client.post(path, json=body)

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_tenant"
    assert "X-Customer-ID" in error["message"]


@pytest.mark.parametrize("value", ["-acme", "acme corp", "a" * 129, "acme/../x", "x'; --"])
def test_a_malformed_customer_id_is_refused_with_400(client: TestClient, value: str) -> None:
    response = client.post(
        "/api/rag-qdrant/query",
        json={"query": QUESTION, "query_type": "temporal_analysis"},
        headers=tenant(value),
    )

    assert response.status_code == 400
    assert "X-Customer-ID" in response.json()["error"]["message"]


def test_customers_with_the_same_account_ids_never_see_each_others_data(
    client: TestClient,
) -> None:
    upload(client, "acme", "accounts", csv_body(ACCOUNTS_HEADER, "A1,Acme One,retail,100,2024-01"))
    upload(client, "acme", "metrics", csv_body(METRICS_HEADER, "A1,2024-02,10,5,1,10"))
    upload(client, "rival", "accounts", csv_body(ACCOUNTS_HEADER, "A1,Rival One,tech,999,2024-06"))
    upload(client, "rival", "accounts", csv_body(ACCOUNTS_HEADER, "R2,Rival Two,tech,5,2024-06"))

    acme = ask(client, "acme", QUESTION)
    rival = ask(client, "rival", QUESTION)

    # acme: window ends at its own latest month 2024-02; 100.00 + 110.00 = 210.00
    assert acme["data"]["window"][-1] == "2024-02"
    assert [(a["account_id"], a["name"], a["total_revenue"]) for a in acme["data"]["accounts"]] == [
        ("A1", "Acme One", "210.00")
    ]
    assert [a["name"] for a in rival["data"]["accounts"]] == ["Rival One", "Rival Two"]
    assert "Acme" not in str(rival)


def test_metrics_cannot_attach_to_another_customers_account(client: TestClient) -> None:
    upload(client, "acme", "accounts", csv_body(ACCOUNTS_HEADER, "A1,Acme One,retail,100,2024-01"))

    response = client.post(
        "/api/ingest/metrics",
        content=csv_body(METRICS_HEADER, "A1,2024-02,10,5,1,10"),
        headers={**tenant("rival"), "Content-Type": "text/csv"},
    )

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["column"] == "account_id"


def test_a_refresh_rebuilds_each_customer_from_its_own_rows_only(client: TestClient) -> None:
    upload(client, "acme", "accounts", csv_body(ACCOUNTS_HEADER, "A1,Acme One,retail,100,2024-01"))
    upload(client, "rival", "accounts", csv_body(ACCOUNTS_HEADER, "A1,Rival One,tech,999,2024-01"))

    job = client.post("/api/refresh-data/customer_data", headers=ADMIN).json()["job"]
    assert wait_for_job(client, job["id"])["status"] == "succeeded"

    assert ask(client, "acme", QUESTION)["data"]["accounts"][0]["total_revenue"] == "100.00"
    assert ask(client, "rival", QUESTION)["data"]["accounts"][0]["total_revenue"] == "999.00"
