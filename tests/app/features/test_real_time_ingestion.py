"""real_time_ingestion: an upload rewrites the affected accounts' revenue and health at once."""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flagstage_app.models import HealthScore
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tests.app.conftest import ADMIN, csv_body, tenant, wait_for_job
from tests.app.features.conftest import (
    ACCOUNT_ROWS,
    ACCOUNTS_HEADER,
    METRIC_ROWS,
    METRICS_HEADER,
    csv_bytes,
    fallback_count,
    top_accounts,
    uploaded,
    use_toggles,
)

ON = {"format_detection": True, "real_time_ingestion": True}


def load(client: TestClient) -> None:
    uploaded(client, "acme", csv_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS))
    uploaded(client, "acme", csv_bytes(METRICS_HEADER, METRIC_ROWS))


def health(engine: Engine) -> dict[str, tuple[int, datetime]]:
    with Session(engine) as session:
        rows = session.scalars(select(HealthScore).where(HealthScore.tenant_id == "acme"))
        return {row.account_id: (row.score, row.computed_at) for row in rows}


def test_revenue_and_health_scores_are_current_right_after_the_upload(
    app: FastAPI, client: TestClient, engine: Engine
) -> None:
    use_toggles(app, **ON)

    load(client)

    # A2: 2000.00 then -5% -> 1900.00; A1: 1000.00 then +10% -> 1100.00 (one-month window).
    assert top_accounts(client, "acme", months=1) == [("A2", "1900.00"), ("A1", "1100.00")]
    assert set(health(engine)) == {"A1", "A2"}


def test_only_the_accounts_an_upload_names_are_rewritten(
    app: FastAPI, client: TestClient, engine: Engine
) -> None:
    use_toggles(app, **ON)
    load(client)
    before = health(engine)

    report = uploaded(
        client, "acme", csv_bytes(METRICS_HEADER, [("A1", "2024-02", "20", "50", "0", "90")])
    )

    after = health(engine)
    assert report["derived_data"]["monthly_revenue"]["scope"] == "accounts"
    assert report["derived_data"]["health_scores"]["scope"] == "accounts"
    assert after["A2"] == before["A2"]
    assert after["A1"][0] > before["A1"][0]
    assert top_accounts(client, "acme", months=1) == [("A2", "1900.00"), ("A1", "1200.00")]


def test_a_new_latest_month_rebuilds_the_whole_tenant(app: FastAPI, client: TestClient) -> None:
    use_toggles(app, **ON)
    load(client)

    report = uploaded(
        client, "acme", csv_bytes(METRICS_HEADER, [("A1", "2024-03", "0", "50", "0", "90")])
    )

    assert report["derived_data"]["monthly_revenue"]["scope"] == "tenant"
    # A2 has no March record: its February revenue is carried forward.
    assert top_accounts(client, "acme", months=1) == [("A2", "1900.00"), ("A1", "1100.00")]


def test_when_off_new_data_shows_after_the_next_customer_data_refresh(
    app: FastAPI, client: TestClient, engine: Engine
) -> None:
    use_toggles(app, format_detection=True, real_time_ingestion=False)

    load(client)
    assert top_accounts(client, "acme") == []
    assert health(engine) == {}

    job = client.post("/api/refresh-data/customer_data", headers=ADMIN).json()["job"]
    assert wait_for_job(client, job["id"])["status"] == "succeeded"
    assert top_accounts(client, "acme", months=1) == [("A2", "1900.00"), ("A1", "1100.00")]
    assert fallback_count(app, "real_time_ingestion", "off") == 2


def test_the_ingest_endpoint_defers_too_when_off(app: FastAPI, client: TestClient) -> None:
    use_toggles(app, real_time_ingestion=False)

    response = client.post(
        "/api/ingest/accounts",
        content=csv_body(",".join(ACCOUNTS_HEADER), "A1,N,retail,10,2024-01"),
        headers={**tenant("acme"), "Content-Type": "text/csv"},
    )

    assert response.json()["monthly_revenue_rows"] == 0
    assert top_accounts(client, "acme") == []


def test_when_the_refresh_raises_the_load_stays_and_the_fallback_is_counted(
    app: FastAPI, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_toggles(app, **ON)

    def broken(*_args: object) -> None:
        raise RuntimeError("recompute crashed")

    monkeypatch.setattr("flagstage_app.uploading.refresh_accounts", broken)

    report = uploaded(client, "acme", csv_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS))

    assert report["loaded"] == 2
    assert report["derived_data"]["status"] == "deferred"
    assert fallback_count(app, "real_time_ingestion", "error") == 1
    assert top_accounts(client, "acme") == []
