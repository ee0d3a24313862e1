"""enhanced_upload: row-level reports, partial loads, idempotent re-uploads and limits."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flagstage_app.main import create_app
from flagstage_app.settings import Settings

from tests.app.conftest import tenant
from tests.app.features.conftest import (
    ACCOUNT_ROWS,
    ACCOUNTS_HEADER,
    csv_bytes,
    fallback_count,
    post_upload,
    top_accounts,
    uploaded,
    use_toggles,
)

MIXED = csv_bytes(
    ACCOUNTS_HEADER,
    [
        ("A1", "Acme", "retail", "1000.00", "2024-01"),
        ("A2", "Bolt", "media", "12O", "2024-01"),
        ("A3", "Cora", "energy", "300.00", "2024-13"),
        ("A1", "Acme again", "retail", "5.00", "2024-01"),
    ],
)
ON = {"format_detection": True, "enhanced_upload": True, "real_time_ingestion": True}


def test_a_strict_upload_with_bad_rows_reports_each_and_loads_nothing(
    app: FastAPI, client: TestClient
) -> None:
    use_toggles(app, **ON)

    response = post_upload(client, "acme", MIXED)

    assert response.status_code == 422
    error = response.json()["error"]
    assert [(p["row"], p["column"], p["value"]) for p in error["details"]] == [
        (2, "revenue", "12O"),
        (3, "revenue_month", "2024-13"),
        (4, "account_id", "A1"),
    ]
    assert all(problem["reason"] for problem in error["details"])
    assert "mode=partial" in error["message"]
    assert top_accounts(client, "acme") == []


def test_a_partial_upload_loads_the_good_rows_and_reports_the_rest(
    app: FastAPI, client: TestClient
) -> None:
    use_toggles(app, **ON)

    report = uploaded(client, "acme", MIXED, mode="partial")

    assert (report["rows"], report["loaded"], report["rejected_count"]) == (4, 1, 3)
    assert [problem["row"] for problem in report["rejected"]] == [2, 3, 4]
    assert top_accounts(client, "acme") == [("A1", "1000.00")]


def test_the_same_file_twice_loads_once_per_tenant(app: FastAPI, client: TestClient) -> None:
    use_toggles(app, **ON)
    body = csv_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS)

    first = uploaded(client, "acme", body)
    second = uploaded(client, "acme", body)
    other = uploaded(client, "other", body)

    assert (first["duplicate"], first["inserted"]) == (False, 2)
    assert (second["duplicate"], second["loaded"]) == (True, 0)
    assert second["content_hash"] == first["content_hash"]
    assert (other["duplicate"], other["inserted"]) == (False, 2)


@pytest.fixture
def limited_client(settings: Settings) -> Callable[[], TestClient]:
    def _make() -> TestClient:
        app = create_app(
            settings.model_copy(
                update={"qdrant_path": ":memory:", "upload_max_bytes": 200, "upload_max_rows": 2}
            )
        )
        use_toggles(app, **ON)
        return TestClient(app)

    return _make


def test_files_over_the_size_or_row_limit_are_refused_clearly(
    limited_client: Callable[[], TestClient],
) -> None:
    with limited_client() as client:
        too_big = post_upload(client, "acme", b"x" * 201)
        three_rows = csv_bytes(ACCOUNTS_HEADER, [("A1", "A", "r", "1", "2024-01")] * 3)
        too_long = post_upload(client, "acme", three_rows)

    assert too_big.status_code == 413
    assert "over the limit of 200" in too_big.json()["error"]["message"]
    assert too_long.status_code == 422
    assert "3 rows, over the limit of 2" in too_long.json()["error"]["message"]


def test_when_off_uploads_are_all_or_nothing_and_repeatable(
    app: FastAPI, client: TestClient
) -> None:
    use_toggles(app, format_detection=True, enhanced_upload=False, real_time_ingestion=True)
    body = csv_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS)

    assert post_upload(client, "acme", MIXED, mode="partial").status_code == 400
    assert post_upload(client, "acme", MIXED).status_code == 422
    uploaded(client, "acme", body)
    again = uploaded(client, "acme", body)

    assert (again["duplicate"], again["updated"]) == (False, 2)
    assert fallback_count(app, "enhanced_upload", "off") == 4


def test_forced_on_without_format_detection_it_behaves_off_and_status_says_why(
    live_app: Callable[..., FastAPI],
) -> None:
    with TestClient(live_app(FEATURE_ENHANCED_UPLOAD="true")) as client:
        partial = post_upload(
            client,
            "acme",
            csv_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS),
            format="csv",
            dataset="accounts",
            mode="partial",
        )
        status = client.get("/api/feature-status", headers=tenant("acme")).json()

    assert partial.status_code == 400
    assert "enhanced_upload" in partial.json()["error"]["message"]
    enhanced = status["features"]["enhanced_upload"]
    assert enhanced["enabled"] is False
    assert enhanced["reason"] == "off: requires format_detection, which is off"


def test_when_validation_raises_the_plain_load_runs_and_the_fallback_is_counted(
    app: FastAPI, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_toggles(app, **ON)

    def broken(*_args: object) -> None:
        raise RuntimeError("validator crashed")

    monkeypatch.setattr("flagstage_app.uploading.validate_rows", broken)

    report = uploaded(client, "acme", csv_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS))

    assert (report["loaded"], report["duplicate"]) == (2, False)
    assert report["fallbacks"] == [
        {
            "feature": "enhanced_upload",
            "reason": "error",
            "detail": "RuntimeError: validator crashed",
        }
    ]
    assert fallback_count(app, "enhanced_upload", "error") == 1
    assert top_accounts(client, "acme") == [("A2", "2000.00"), ("A1", "1000.00")]


def test_a_file_without_rows_is_the_callers_error_not_a_feature_failure(
    app: FastAPI, client: TestClient
) -> None:
    use_toggles(app, **ON)

    response = post_upload(client, "acme", csv_bytes(ACCOUNTS_HEADER, []))

    assert response.status_code == 422
    assert "has no accounts rows" in response.json()["error"]["message"]
    assert fallback_count(app, "enhanced_upload", "error") == 0
