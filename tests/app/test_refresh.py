"""Admin-only background refreshes: one at a time per dataset, switched in one transaction."""

from __future__ import annotations

import threading

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flagstage_app.models import HealthScore, MonthlyRevenue
from flagstage_app.refreshing import (
    RAG_KNOWLEDGE_BASE,
    RefreshContext,
    refresh_customer_data,
    refresh_knowledge_base_unavailable,
    register_refresher,
)
from sqlalchemy import delete, select

from tests.app.conftest import ADMIN, ask, csv_body, upload, wait_for_job

ACCOUNTS_HEADER = "account_id,name,industry,revenue,revenue_month"
METRICS_HEADER = "account_id,month,revenue_growth_pct,active_users,support_tickets,nps"
QUESTION = "Which accounts have the highest revenue across last 4 months?"


def load(client: TestClient) -> None:
    upload(client, "acme", "accounts", csv_body(ACCOUNTS_HEADER, "A1,One,retail,100,2024-01"))
    upload(
        client,
        "acme",
        "metrics",
        csv_body(METRICS_HEADER, "A1,2024-02,10,100,2,50", "A1,2024-03,10,110,1,50"),
    )


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 403), ({"Authorization": "Basic x"}, 401)],
)
def test_a_refresh_without_the_admin_token_is_refused(
    client: TestClient, headers: dict[str, str], status: int
) -> None:
    response = client.post("/api/refresh-data/customer_data", headers=headers)

    assert response.status_code == status
    assert response.json()["error"]["code"] == "unauthorized"


def test_without_a_configured_token_refresh_is_refused_and_says_to_set_it(
    app: FastAPI, client: TestClient
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"admin_token": None})

    response = client.post("/api/refresh-data/customer_data", headers=ADMIN)

    assert response.status_code == 403
    assert "ADMIN_TOKEN" in response.json()["error"]["hint"]


def test_a_refresh_answers_202_with_a_job_that_can_be_polled(client: TestClient) -> None:
    load(client)

    response = client.post("/api/refresh-data/customer_data", headers=ADMIN)

    assert response.status_code == 202
    job = response.json()["job"]
    assert response.headers["Location"] == f"/api/refresh-data/jobs/{job['id']}"
    finished = wait_for_job(client, job["id"])
    assert finished["status"] == "succeeded"
    assert "1 customers" in finished["summary"]


def test_a_customer_data_refresh_rebuilds_revenue_that_was_lost(
    client: TestClient, app: FastAPI
) -> None:
    load(client)
    with app.state.session_factory.begin() as session:
        session.execute(delete(MonthlyRevenue))
    assert ask(client, "acme", QUESTION)["data"]["accounts"] == []

    job = client.post("/api/refresh-data/customer_data", headers=ADMIN).json()["job"]
    wait_for_job(client, job["id"])

    # 100.00 + 110.00 + 121.00 = 331.00
    assert ask(client, "acme", QUESTION)["data"]["accounts"][0]["total_revenue"] == "331.00"


def test_a_second_refresh_of_a_running_dataset_is_refused_while_queries_keep_answering(
    client: TestClient, app: FastAPI
) -> None:
    load(client)
    release = threading.Event()
    started = threading.Event()

    def slow_rebuild(context: RefreshContext) -> str:
        context.session.execute(delete(MonthlyRevenue))
        started.set()
        release.wait(10)
        return refresh_customer_data(context)

    register_refresher(app, "customer_data", slow_rebuild)
    first = client.post("/api/refresh-data/customer_data", headers=ADMIN).json()["job"]
    try:
        assert started.wait(10)
        second = client.post("/api/refresh-data/customer_data", headers=ADMIN)
        during = ask(client, "acme", QUESTION)
    finally:
        release.set()

    assert second.status_code == 409
    assert second.json()["error"]["details"] == {"running_job": first["id"]}
    # The rebuild has deleted the rows in its uncommitted transaction; readers still see them.
    assert during["data"]["accounts"][0]["total_revenue"] == "331.00"
    assert wait_for_job(client, first["id"])["status"] == "succeeded"
    assert client.post("/api/refresh-data/customer_data", headers=ADMIN).status_code == 202


def test_a_failed_refresh_changes_nothing_and_reports_why(client: TestClient, app: FastAPI) -> None:
    load(client)

    def broken(context: RefreshContext) -> str:
        context.session.execute(delete(MonthlyRevenue))
        raise RuntimeError("source unreadable")

    register_refresher(app, "customer_data", broken)
    job = client.post("/api/refresh-data/customer_data", headers=ADMIN).json()["job"]
    finished = wait_for_job(client, job["id"])

    assert finished["status"] == "failed"
    assert finished["error"] == "RuntimeError: source unreadable"
    assert ask(client, "acme", QUESTION)["data"]["accounts"][0]["total_revenue"] == "331.00"


def test_health_scores_follow_the_documented_formula(client: TestClient, app: FastAPI) -> None:
    load(client)

    job = client.post("/api/refresh-data/health_scores", headers=ADMIN).json()["job"]
    assert wait_for_job(client, job["id"])["status"] == "succeeded"

    with app.state.session_factory() as session:
        score = session.scalars(select(HealthScore)).one()
    # Window 2024-01..03 has the records of 02 and 03:
    # growth: mean 10% -> full 30; users 100 -> 110 = +10% -> (0.1 + 0.2) / 0.4 * 25 = 18.75;
    # tickets: 1 per 110 users = 0.909 per 100 -> (10 - 0.909) / 10 * 20 = 18.18;
    # nps: 50 -> 150 / 200 * 25 = 18.75. Total 85.68 -> 86.
    assert (score.account_id, score.score, score.as_of_month) == ("A1", 86, "2024-03")


def test_the_knowledge_base_refresh_fails_clearly_until_one_is_installed(
    app: FastAPI, client: TestClient
) -> None:
    app.state.refreshers[RAG_KNOWLEDGE_BASE] = refresh_knowledge_base_unavailable
    job = client.post("/api/refresh-data/rag_knowledge_base", headers=ADMIN).json()["job"]

    finished = wait_for_job(client, job["id"])

    assert finished["status"] == "failed"
    assert "knowledge base is not part of this deployment" in finished["error"]


def test_unknown_datasets_and_jobs_are_not_found(client: TestClient) -> None:
    assert client.post("/api/refresh-data/invoices", headers=ADMIN).status_code == 404
    assert client.get("/api/refresh-data/jobs/nope", headers=ADMIN).status_code == 404
