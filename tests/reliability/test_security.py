"""What ships, checked as an attacker would poke at it: admin routes, body sizes, secrets in logs.

The operator's RBAC (least privilege, proved by running it under its own Role) and the pod
security settings of the chart are tested in tests/delivery/test_rbac.py and
tests/delivery/test_chart.py; SECURITY.md lists every check and finding.
"""

from __future__ import annotations

import logging
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from flagstage_app.limits import DEFAULT_MAX_BODY_BYTES, body_limits_of
from flagstage_app.main import create_app
from flagstage_app.routes.refresh import require_admin
from pydantic import SecretStr
from starlette.routing import BaseRoute

from tests.app.knowledge.conftest import FakeOpenAI
from tests.reliability.conftest import RunningApp, app_settings

TENANT = {"X-Customer-ID": "acme"}
ACCOUNTS_CSV = "account_id,name,industry,revenue,revenue_month\nA1,Acme One,retail,100,2024-01\n"


def _admin_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) whose route depends on the admin token check."""
    found = []
    for route in _all_routes(app):
        if not isinstance(route, APIRoute):
            continue
        if any(dep.call is require_admin for dep in route.dependant.dependencies):
            found += [(method, route.path) for method in sorted(route.methods)]
    return found


def _all_routes(app: FastAPI) -> Iterator[BaseRoute]:
    for route in app.routes:
        nested = getattr(route, "original_router", None)
        yield from nested.routes if nested is not None else (route,)


@pytest.fixture
def app(tmp_path: Path, clean_feature_env: None) -> FastAPI:
    return create_app(app_settings(tmp_path, admin_token="s3cret-admin"))


def _concrete(path: str) -> str:
    return path.replace("{dataset}", "health_scores").replace("{job_id}", "0" * 32)


def test_every_admin_route_refuses_a_missing_or_wrong_token(app: FastAPI) -> None:
    routes = _admin_routes(app)
    assert ("POST", "/api/refresh-data/{dataset}") in routes
    assert ("GET", "/api/refresh-data/jobs/{job_id}") in routes
    with TestClient(app) as client:
        for method, path in routes:
            url = _concrete(path)
            cases = {
                None: 401,
                "Bearer": 401,
                "Basic czNjcmV0LWFkbWlu": 401,
                "Bearer wrong": 403,
                "Bearer s3cret-admin-but-longer": 403,
                "Bearer S3CRET-ADMIN": 403,
            }
            for authorization, expected in cases.items():
                headers = {"Authorization": authorization} if authorization else {}
                response = client.request(method, url, headers=headers)
                assert response.status_code == expected, (method, url, authorization)
                assert response.json()["error"]["code"] == "unauthorized"
            allowed = client.request(method, url, headers={"Authorization": "Bearer s3cret-admin"})
            assert allowed.status_code not in (401, 403), (method, url)


def test_without_a_configured_token_admin_routes_refuse_everyone(
    tmp_path: Path, clean_feature_env: None
) -> None:
    app = create_app(app_settings(tmp_path))
    with TestClient(app) as client:
        for method, path in _admin_routes(app):
            for authorization in ("", "Bearer ", "Bearer None", "Bearer null"):
                response = client.request(
                    method, _concrete(path), headers={"Authorization": authorization}
                )
                assert response.status_code in (401, 403), (method, path, authorization)


# -- body sizes ------------------------------------------------------------------------------


def _raw_request(running: RunningApp, head: str, body: bytes = b"") -> tuple[int, bytes, float]:
    """Send a request by hand; the status, the answer and how long the answer took."""
    host, port = running.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(head.encode() + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        elapsed = time.monotonic() - started
    status = int(answer.split(b" ", 2)[1])
    return status, answer, elapsed


@pytest.mark.parametrize("path", ["/api/ingest/accounts", "/api/uploads", "/api/feedback"])
def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(
    tmp_path: Path, make_running_app: Callable[..., RunningApp], path: str
) -> None:
    running = make_running_app(app_settings(tmp_path))
    declared = 10 * 1024**3
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Customer-ID: acme\r\n"
        f"Content-Type: text/csv\r\nContent-Length: {declared}\r\n\r\n"
    )
    # Only the head is sent: an app that waited for 10 GiB would never answer.
    status, answer, elapsed = _raw_request(running, head)
    assert status == 413, answer
    assert b'"upload_too_large"' in answer
    assert elapsed < 5


def test_a_streamed_body_is_cut_off_once_it_passes_the_limit(
    tmp_path: Path, make_running_app: Callable[..., RunningApp]
) -> None:
    running = make_running_app(app_settings(tmp_path))
    chunk = b"x" * 65536
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(4 * DEFAULT_MAX_BODY_BYTES // len(chunk)):
            sent += len(chunk)
            yield chunk

    with running.client() as client:
        response = client.post(
            "/api/rag-qdrant/query",
            content=chunks(),
            headers={**TENANT, "Content-Type": "application/json"},
        )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "upload_too_large"


def test_bodies_within_the_limits_are_served_as_before(app: FastAPI) -> None:
    limits = body_limits_of(app)
    assert limits.for_path("/api/ingest/accounts") > 64 * 1024 * 1024
    assert limits.for_path("/api/rag-qdrant/query") == DEFAULT_MAX_BODY_BYTES
    with TestClient(app) as client:
        response = client.post(
            "/api/ingest/accounts",
            content=ACCOUNTS_CSV,
            headers={**TENANT, "Content-Type": "text/csv"},
        )
        assert response.status_code == 200, response.text


# -- secrets in logs -------------------------------------------------------------------------


def test_the_admin_token_and_the_openai_key_never_reach_the_logs(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    clean_feature_env: None,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    admin_token = f"adm-{secrets.token_hex(16)}"
    openai_key = f"sk-{secrets.token_hex(24)}"
    caplog.set_level(logging.DEBUG)
    settings = app_settings(
        tmp_path,
        admin_token=SecretStr(admin_token),
        openai_api_key=SecretStr(openai_key),
        openai_base_url=fake_openai.url,
    )
    app = create_app(settings)
    answers = []
    with TestClient(app) as client:
        client.post(
            "/api/ingest/accounts",
            content=ACCOUNTS_CSV,
            headers={**TENANT, "Content-Type": "text/csv"},
        )
        admin = {"Authorization": f"Bearer {admin_token}"}
        job = client.post("/api/refresh-data/rag_knowledge_base", headers=admin).json()["job"]
        deadline = time.monotonic() + 30
        while job["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
            job = client.get(f"/api/refresh-data/jobs/{job['id']}", headers=admin).json()
        assert job["status"] == "succeeded", job
        # A wrong token and a near miss are refused without being written down either.
        client.post("/api/refresh-data/health_scores", headers={"Authorization": "Bearer x"})
        client.post(
            "/api/refresh-data/health_scores",
            headers={"Authorization": f"Bearer {admin_token[:-1]}"},
        )
        for kind in ("semantic", "temporal_analysis"):
            answers.append(
                client.post(
                    "/api/rag-qdrant/query",
                    json={"query": "Which retail accounts do we have?", "query_type": kind},
                    headers=TENANT,
                ).text
            )
        pages = [client.get(path).text for path in ("/metrics", "/api/hot-reload-status")]
        pages.append(client.get("/openapi.json").text)

    assert any(path.endswith("/embeddings") for path, _ in fake_openai.requests), (
        "the run did not use the OpenAI key at all"
    )
    logged = caplog.text + "\n".join(
        f"{record.name} {record.getMessage()} {record.args!r}" for record in caplog.records
    )
    printed = "".join(capfd.readouterr())
    for secret in (admin_token, openai_key):
        assert secret not in logged
        assert secret not in printed
        assert not any(secret in text for text in (*answers, *pages))
    assert repr(settings).count(openai_key) == 0
