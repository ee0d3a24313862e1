"""Percentage rollouts: each tenant gets what the core's bucketing decides, the same every time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from flagstage_app.toggles import LiveToggles

from tests.app.conftest import tenant
from tests.app.features.conftest import (
    ACCOUNT_ROWS,
    ACCOUNTS_HEADER,
    Render,
    csv_bytes,
    post_upload,
    publish_and_wait,
)

TENANTS = [f"customer-{number}" for number in range(16)]
ACCOUNTS = csv_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS)
HALF = ("format_detection", "real_time_ingestion")


def half_of_the_independent_features(manifest: dict[str, Any]) -> None:
    """Week 3, the last stage, turns the features that need nothing on for half of the tenants."""
    del manifest["spec"]["stages"][3:]
    stage = manifest["spec"]["stages"][2]
    stage["enable"] = list(HALF)
    stage["tenants"] = {"percentage": 50}


def behaviour(client: TestClient, customer: str) -> dict[str, bool]:
    response = post_upload(client, customer, ACCOUNTS, format="csv", dataset="accounts")
    assert response.status_code == 200, response.text
    report = response.json()
    return {
        "format_detection": bool(report["detected"]),
        "real_time_ingestion": report["derived_data"]["status"] == "updated",
    }


def test_each_tenant_gets_what_the_cores_bucketing_decides_every_time(
    live_client: TestClient, mount: Path, render: Render
) -> None:
    publish_and_wait(live_client, mount, render(2, half_of_the_independent_features))
    live: LiveToggles = live_client.app.state.live_toggles  # type: ignore[attr-defined]
    snapshot = live.current

    seen: dict[str, dict[str, bool]] = {}
    for customer in TENANTS:
        status = live_client.get("/api/feature-status", headers=tenant(customer)).json()
        for name, feature in status["features"].items():
            assert feature["enabled"] is snapshot.is_enabled(name, customer), (name, customer)
        seen[customer] = behaviour(live_client, customer)
        assert seen[customer] == {name: snapshot.is_enabled(name, customer) for name in HALF}

    for name in HALF:
        assert len({seen[customer][name] for customer in TENANTS}) == 2, name
    # The same tenant gets the same answer again for the same configuration.
    for customer in TENANTS[:4]:
        assert behaviour(live_client, customer) == seen[customer]
