"""The status endpoints and the config-hash header, against the real app: toggles flip live."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flagstage_app.main import create_app
from flagstage_app.settings import Settings
from flagstage_app.toggles import LiveToggles
from flagstage_app.toggles.kubelet import publish
from flagstage_app.toggles.serving import CONFIG_HASH_HEADER

Render = Callable[..., dict[str, str]]
ACME = {"X-Customer-ID": "acme"}


def hash_of(data: dict[str, str]) -> str:
    return str(json.loads(data["features.json"])["hash"])


@pytest.fixture
def make_app(
    tmp_path: Path, mount: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., FastAPI]:
    def _make(**env: str) -> FastAPI:
        for key in [key for key in os.environ if key.startswith("FEATURE_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'app.db'}", features_config_dir=mount
        )
        return create_app(settings)

    return _make


@pytest.fixture
def client(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    with TestClient(make_app()) as test_client:
        yield test_client


def live(client: TestClient) -> LiveToggles:
    toggles = client.app.state.live_toggles  # type: ignore[attr-defined]
    assert isinstance(toggles, LiveToggles)
    return toggles


def test_a_toggle_flips_between_two_requests_without_a_restart(
    mount: Path, render: Render, make_app: Callable[..., FastAPI]
) -> None:
    publish(mount, render(0))
    with TestClient(make_app()) as client:
        before = client.get("/api/feature-status", headers=ACME)
        assert before.headers[CONFIG_HASH_HEADER] == hash_of(render(0))
        assert before.json()["features"]["temporal_analysis"]["enabled"] is False

        publish(mount, render(1))
        assert live(client).wait_for(lambda s: s.config_hash == hash_of(render(1)), 5.0)

        after = client.get("/api/feature-status", headers=ACME)
        assert after.headers[CONFIG_HASH_HEADER] == hash_of(render(1))
        temporal = after.json()["features"]["temporal_analysis"]
        assert temporal["enabled"] is True
        assert temporal["source"] == "file: stage week-2"
        assert after.json()["stage"] == "week-2"


def test_feature_status_says_why_a_feature_is_off(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(FEATURE_MULTI_FORMAT_SUPPORT="true")
    with TestClient(app) as client:
        body = client.get("/api/feature-status", headers=ACME).json()
    multi = body["features"]["multi_format_support"]
    assert multi == {
        "enabled": False,
        "reach": "on",
        "source": "env FEATURE_MULTI_FORMAT_SUPPORT",
        "requires": ["format_detection"],
        "reason": "off: requires format_detection, which is off",
        "description": "Accept JSON, NDJSON and XLSX uploads besides CSV.",
    }
    assert body["tenant"] == "acme"
    assert body["config_hash"] is None


def test_feature_status_refuses_a_malformed_tenant(client: TestClient) -> None:
    response = client.get("/api/feature-status", headers={"X-Customer-ID": "no spaces!"})
    assert response.status_code == 400


def test_every_response_carries_the_config_hash(
    mount: Path, render: Render, client: TestClient
) -> None:
    assert client.get("/healthz").headers[CONFIG_HASH_HEADER] == "none"
    publish(mount, render(2))
    assert live(client).wait_for(lambda s: s.config_hash == hash_of(render(2)), 5.0)
    for path in ("/healthz", "/api/hot-reload-status", "/no/such/route"):
        assert client.get(path).headers[CONFIG_HASH_HEADER] == hash_of(render(2)), path


def test_hot_reload_status_shows_a_refused_config_and_keeps_the_good_one(
    mount: Path, render: Render, client: TestClient
) -> None:
    good = render(1)
    publish(mount, good)
    assert live(client).wait_for(lambda s: s.config_hash == hash_of(good), 5.0)
    bad = dict(render(2))
    bad["features.json"] = bad["features.json"].replace('"schemaVersion": 1', '"schemaVersion": 2')
    publish(mount, bad)
    assert live(client).wait_for(lambda _: live(client).status().refused_count == 1, 5.0)

    response = client.get("/api/hot-reload-status")
    status = response.json()
    assert response.headers[CONFIG_HASH_HEADER] == hash_of(good)
    assert status["directory"] == str(mount)
    assert status["mode"] == "inotify"
    assert status["config_hash"] == hash_of(good)
    assert status["stage"] == "week-2"
    assert status["reload_count"] == 1
    assert status["refused_count"] == 1
    assert status["last_reload_at"] is not None
    refused = status["last_refused"]
    assert refused["claimed_hash"] == hash_of(render(2))
    assert "schemaVersion 2" in refused["reason"]
    assert refused["version"].startswith("..data -> ..")

    metrics = client.get("/metrics").text
    assert "flagstage_app_config_reloads_total 1.0" in metrics
    assert "flagstage_app_config_refused_total 1.0" in metrics


def test_a_question_whose_feature_is_off_counts_a_fallback(client: TestClient) -> None:
    body = {"query": "Which accounts have the highest revenue?", "query_type": "temporal_analysis"}
    response = client.post("/api/rag-qdrant/query", json=body, headers=ACME)
    assert response.json()["fallback"]["from"] == "temporal_analysis"
    metrics = client.get("/metrics").text
    assert (
        'flagstage_app_feature_fallbacks_total{feature="temporal_analysis",reason="off"} 1.0'
        in metrics
    )
