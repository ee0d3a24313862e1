"""Uploads of accounts and metrics: CSV or JSON, all or nothing, errors named by row and column."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.app.conftest import ask, csv_body, tenant, upload

ACCOUNTS_HEADER = "account_id,name,industry,revenue,revenue_month"
METRICS_HEADER = "account_id,month,revenue_growth_pct,active_users,support_tickets,nps"


def post(client: TestClient, dataset: str, body: str, content_type: str = "text/csv") -> object:
    return client.post(
        f"/api/ingest/{dataset}",
        content=body,
        headers={**tenant("acme"), "Content-Type": content_type},
    )


def test_a_csv_upload_reports_what_it_loaded(client: TestClient) -> None:
    report = upload(client, "acme", "accounts", csv_body(ACCOUNTS_HEADER, "A1,N,retail,10,2024-01"))

    assert report == {
        "dataset": "accounts",
        "tenant": "acme",
        "rows": 1,
        "inserted": 1,
        "updated": 0,
        "monthly_revenue_rows": 1,
    }


def test_a_json_array_loads_like_a_csv(client: TestClient) -> None:
    rows = [
        {
            "account_id": "J1",
            "name": "Json Ltd",
            "industry": "media",
            "revenue": "250.50",
            "revenue_month": "2024-03",
        }
    ]
    response = client.post("/api/ingest/accounts", json=rows, headers=tenant("acme"))

    assert response.status_code == 200
    assert ask(client, "acme", "last 1 months")["data"]["accounts"][0]["total_revenue"] == "250.50"


def test_a_bad_cell_names_its_row_and_column_and_nothing_is_loaded(client: TestClient) -> None:
    body = csv_body(ACCOUNTS_HEADER, "A1,Good,retail,10,2024-01", "A2,Bad,retail,12O,2024-13")

    response = post(client, "accounts", body)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["message"].startswith("nothing was loaded: accounts row 2, column revenue")
    assert [(p["row"], p["column"], p["value"]) for p in error["details"]] == [
        (2, "revenue", "12O"),
        (2, "revenue_month", "2024-13"),
    ]
    assert "write it as YYYY-MM" in error["details"][1]["message"]
    assert ask(client, "acme", "last 4 months")["data"]["accounts"] == []


def test_a_missing_header_column_says_what_the_header_should_be(client: TestClient) -> None:
    response = post(client, "accounts", csv_body("account_id,name,revenue", "A1,N,10"))

    assert response.status_code == 422
    assert ACCOUNTS_HEADER in response.json()["error"]["message"]


def test_metrics_of_an_unknown_account_are_refused_row_by_row(client: TestClient) -> None:
    upload(client, "acme", "accounts", csv_body(ACCOUNTS_HEADER, "A1,N,retail,10,2024-01"))

    response = post(
        client,
        "metrics",
        csv_body(METRICS_HEADER, "A1,2024-02,5,1,1,1", "ZZ,2024-02,5,1,1,1"),
    )

    assert response.status_code == 422
    [problem] = response.json()["error"]["details"]
    assert (problem["row"], problem["column"], problem["value"]) == (2, "account_id", "ZZ")
    assert "load it with the accounts upload first" in problem["message"]


def test_duplicate_rows_in_one_upload_are_refused(client: TestClient) -> None:
    body = csv_body(ACCOUNTS_HEADER, "A1,N,retail,10,2024-01", "A1,N,retail,11,2024-01")

    response = post(client, "accounts", body)

    assert response.status_code == 422
    assert "duplicates row 1" in response.json()["error"]["details"][0]["message"]


def test_growth_below_minus_one_hundred_percent_is_refused(client: TestClient) -> None:
    upload(client, "acme", "accounts", csv_body(ACCOUNTS_HEADER, "A1,N,retail,10,2024-01"))

    response = post(client, "metrics", csv_body(METRICS_HEADER, "A1,2024-02,-100.5,1,1,1"))

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["column"] == "revenue_growth_pct"


def test_an_unknown_dataset_is_not_found(client: TestClient) -> None:
    response = post(client, "invoices", "x")

    assert response.status_code in (404, 422)
