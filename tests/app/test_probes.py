"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi.testclient import TestClient
from flagstage_app.main import create_app
from flagstage_app.settings import Settings

from tests.app.conftest import ADMIN, ask, wait_for_job


def test_health_and_readiness_answer_when_the_database_is_up(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "database": "ok"}


def test_readiness_fails_when_the_database_is_unreachable() -> None:
    settings = Settings(database_url="postgresql://nobody:x@127.0.0.1:9/none", run_migrations=False)
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


def test_metrics_count_requests_by_route_template_and_refresh_jobs(client: TestClient) -> None:
    ask(client, "acme", "last 4 months")
    job = client.post("/api/refresh-data/health_scores", headers=ADMIN).json()["job"]
    wait_for_job(client, job["id"])

    text = client.get("/metrics").text

    assert (
        'flagstage_app_http_requests_total{method="POST",route="/api/rag-qdrant/query",'
        'status="200"} 1.0' in text
    )
    assert 'route="/api/refresh-data/jobs/{job_id}"' in text
    assert (
        'flagstage_app_refresh_jobs_total{dataset="health_scores",status="succeeded"} 1.0' in text
    )
