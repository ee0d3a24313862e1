"""Fixtures of the app tests: each test runs once on SQLite and once on PostgreSQL.

PostgreSQL comes from `FLAGSTAGE_TEST_POSTGRES_URL` (`make test` starts the local cluster and
sets it); the session creates a fresh database there and drops it at the end. Without a
reachable server the PostgreSQL variants are skipped, except in CI (`CI=true`), where they
fail, so a broken database setup can never pass unnoticed.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flagstage_app.db import make_engine, normalize_url
from flagstage_app.gating import APP_FEATURES
from flagstage_app.main import create_app
from flagstage_app.migrating import upgrade_database
from flagstage_app.models import (
    Account,
    AccountMetric,
    AnswerCitation,
    AnswerFeedback,
    AnswerRecord,
    HealthScore,
    KnowledgeDocument,
    MonthlyRevenue,
    RefreshJob,
    RevenueTotal,
    Tenant,
    UploadReceipt,
)
from flagstage_app.settings import Settings
from sqlalchemy import Engine, delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from flagstage.snapshot import Snapshot
from flagstage.state import EVERYONE, NOBODY, FeatureState

ADMIN_TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
POSTGRES_ENV = "FLAGSTAGE_TEST_POSTGRES_URL"
TABLES_CHILD_FIRST = (
    AnswerFeedback,
    AnswerCitation,
    AnswerRecord,
    UploadReceipt,
    RevenueTotal,
    MonthlyRevenue,
    HealthScore,
    AccountMetric,
    Account,
    KnowledgeDocument,
    RefreshJob,
    Tenant,
)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this session, dropped afterwards."""
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        _unavailable(f"{POSTGRES_ENV} is not set; run `make test` or scripts/postgres.sh")
    assert server is not None
    admin = make_engine(server).execution_options(isolation_level="AUTOCOMMIT")
    name = f"flagstage_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError as err:
        admin.dispose()
        _unavailable(f"cannot create a database at {make_url(server)!r}: {err}")

    yield normalize_url(server).set(database=name).render_as_string(hide_password=False)

    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(
    scope="session",
    params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'flagstage.db'}"


@pytest.fixture(scope="session")
def migrated_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade_database(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(migrated_engine: Engine) -> Engine:
    """The session's database, emptied before the test."""
    with migrated_engine.begin() as connection:
        for table in TABLES_CHILD_FIRST:
            connection.execute(delete(table))
    return migrated_engine


@pytest.fixture
def settings(engine: Engine, database_url: str) -> Settings:
    return Settings(database_url=database_url, admin_token=ADMIN_TOKEN, run_migrations=True)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    application = create_app(settings)
    application.state.toggles = toggles_with(temporal_analysis=True, real_time_ingestion=True)
    return application


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def toggles_with(**features: bool) -> Snapshot:
    """A snapshot with the named features on or off for everyone, the rest off."""
    states = {
        name: FeatureState(name, EVERYONE if features.get(name) else NOBODY, "test")
        for name in APP_FEATURES
    }
    return Snapshot(states, APP_FEATURES)


def tenant(name: str) -> dict[str, str]:
    return {"X-Customer-ID": name}


def csv_body(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def upload(client: TestClient, customer: str, dataset: str, body: str) -> Any:
    response = client.post(
        f"/api/ingest/{dataset}",
        content=body,
        headers={**tenant(customer), "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def ask(client: TestClient, customer: str, query: str, **extra: Any) -> Any:
    body = {"query": query, "query_type": "temporal_analysis", **extra}
    response = client.post("/api/rag-qdrant/query", json=body, headers=tenant(customer))
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_job(client: TestClient, job_id: str, timeout_seconds: float = 20) -> Any:
    deadline = time.monotonic() + timeout_seconds
    while True:
        job = client.get(f"/api/refresh-data/jobs/{job_id}", headers=ADMIN).json()
        if job["status"] != "running" or time.monotonic() > deadline:
            return job
        time.sleep(0.02)
