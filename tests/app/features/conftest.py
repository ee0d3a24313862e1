"""Fixtures of the feature tests: uploads in every format, apps whose toggles come from the
environment or a mounted directory, and the fallback counters the app exports."""

from __future__ import annotations

import copy
import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flagstage_app.main import create_app
from flagstage_app.settings import Settings
from flagstage_app.toggles import LiveToggles
from flagstage_app.toggles.kubelet import publish
from openpyxl import Workbook

from flagstage.rendering import render_config
from flagstage.validation import parse_rollout
from tests.app.conftest import ADMIN_TOKEN, tenant, toggles_with

EXAMPLE = Path(__file__).parents[3] / "manifests" / "examples" / "six-week-rollout.yaml"
ACCOUNTS_HEADER = ("account_id", "name", "industry", "revenue", "revenue_month")
METRICS_HEADER = (
    "account_id",
    "month",
    "revenue_growth_pct",
    "active_users",
    "support_tickets",
    "nps",
)
ACCOUNT_ROWS = (
    ("A1", "Acme Retail", "retail", "1000.00", "2024-01"),
    ("A2", "Bolt Media", "media", "2000.00", "2024-01"),
)
METRIC_ROWS = (
    ("A1", "2024-02", "10", "50", "2", "40"),
    ("A2", "2024-02", "-5", "80", "1", "10"),
)


def csv_bytes(header: tuple[str, ...], rows: Any, delimiter: str = ",") -> bytes:
    lines = [delimiter.join(header), *(delimiter.join(row) for row in rows)]
    return ("\n".join(lines) + "\n").encode()


def json_bytes(header: tuple[str, ...], rows: Any) -> bytes:
    return json.dumps([dict(zip(header, row, strict=True)) for row in rows]).encode()


def ndjson_bytes(header: tuple[str, ...], rows: Any) -> bytes:
    lines = [json.dumps(dict(zip(header, row, strict=True))) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def xlsx_bytes(header: tuple[str, ...], rows: Any) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def post_upload(client: TestClient, customer: str, content: bytes, **params: str) -> Any:
    return client.post(
        "/api/uploads",
        content=content,
        params=params,
        headers={**tenant(customer), "Content-Type": "application/octet-stream"},
    )


def uploaded(client: TestClient, customer: str, content: bytes, **params: str) -> Any:
    response = post_upload(client, customer, content, **params)
    assert response.status_code == 200, response.text
    return response.json()


def use_toggles(app: FastAPI, **features: bool) -> None:
    """Serve `app` with the named features on for everyone (temporal_analysis on unless named)."""
    features.setdefault("temporal_analysis", True)
    app.state.toggles = toggles_with(**features)


def fallback_count(app: FastAPI, feature: str, reason: str) -> float:
    live: LiveToggles = app.state.live_toggles
    value = live.metrics.registry.get_sample_value(
        "flagstage_app_feature_fallbacks_total", {"feature": feature, "reason": reason}
    )
    return value or 0.0


def top_accounts(client: TestClient, customer: str, months: int = 4) -> list[tuple[str, str]]:
    response = client.post(
        "/api/rag-qdrant/query",
        json={"query": "top accounts", "query_type": "temporal_analysis", "months": months},
        headers=tenant(customer),
    )
    assert response.status_code == 200, response.text
    accounts = response.json()["data"]["accounts"]
    return [(item["account_id"], item["total_revenue"]) for item in accounts]


@pytest.fixture
def qdrant_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"qdrant_path": ":memory:"})


@pytest.fixture
def app(qdrant_settings: Settings) -> FastAPI:
    application = create_app(qdrant_settings)
    use_toggles(application)
    return application


@pytest.fixture(scope="session")
def example_manifest() -> dict[str, Any]:
    return dict(yaml.safe_load(EXAMPLE.read_text()))


Render = Callable[..., dict[str, str]]


@pytest.fixture(scope="session")
def render(example_manifest: dict[str, Any]) -> Render:
    """ConfigMap data of the example rollout at `stage`, after `edit` changed the manifest."""

    def _render(stage: int, edit: Callable[[dict[str, Any]], None] | None = None) -> dict[str, str]:
        manifest = copy.deepcopy(example_manifest)
        if edit is not None:
            edit(manifest)
        return dict(render_config(parse_rollout(manifest), stage).data)

    return _render


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    return tmp_path / "features"


@pytest.fixture
def live_app(
    qdrant_settings: Settings, mount: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., FastAPI]:
    """An app whose toggles are live: `FEATURE_*` variables from `env`, then `mount`."""

    def _make(**env: str) -> FastAPI:
        for key in [key for key in os.environ if key.startswith("FEATURE_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = qdrant_settings.model_copy(
            update={"features_config_dir": mount, "admin_token": ADMIN_TOKEN}
        )
        return create_app(settings)

    return _make


def publish_and_wait(client: TestClient, mount: Path, data: dict[str, str]) -> None:
    """Publish `data` the way the kubelet does and wait until the app serves it."""
    wanted = json.loads(data["features.json"])["hash"]
    publish(mount, data)
    live: LiveToggles = client.app.state.live_toggles  # type: ignore[attr-defined]
    assert live.wait_for(lambda snapshot: snapshot.config_hash == wanted, 5.0)


@pytest.fixture
def live_client(live_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    with TestClient(live_app()) as client:
        yield client
