"""format_detection: the format, delimiter and dataset of an upload come from its content."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.app.features.conftest import (
    ACCOUNT_ROWS,
    ACCOUNTS_HEADER,
    METRIC_ROWS,
    METRICS_HEADER,
    Render,
    csv_bytes,
    fallback_count,
    post_upload,
    publish_and_wait,
    top_accounts,
    uploaded,
    use_toggles,
)

SEMICOLON_ACCOUNTS = csv_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS, delimiter=";")


def test_a_semicolon_csv_is_recognised_with_its_dataset_and_loaded(
    app: FastAPI, client: TestClient
) -> None:
    use_toggles(app, format_detection=True, real_time_ingestion=True)

    report = uploaded(client, "acme", SEMICOLON_ACCOUNTS)

    assert report["detected"] == {"format": "csv", "delimiter": "semicolon", "dataset": "accounts"}
    assert (report["dataset"], report["loaded"]) == ("accounts", 2)
    assert [account for account, _ in top_accounts(client, "acme")] == ["A2", "A1"]


def test_a_tab_separated_metrics_file_is_told_apart_from_accounts(
    app: FastAPI, client: TestClient
) -> None:
    use_toggles(app, format_detection=True)
    uploaded(client, "acme", SEMICOLON_ACCOUNTS)

    report = uploaded(client, "acme", csv_bytes(METRICS_HEADER, METRIC_ROWS, delimiter="\t"))

    assert report["detected"]["delimiter"] == "tab"
    assert report["dataset"] == "metrics"


def test_columns_of_no_known_dataset_are_refused_naming_what_is_missing(
    app: FastAPI, client: TestClient
) -> None:
    use_toggles(app, format_detection=True)

    response = post_upload(client, "acme", b"account_id,name\nA1,N\n")

    assert response.status_code == 422
    assert "industry" in response.json()["error"]["message"]


def test_when_off_the_caller_must_name_format_and_dataset(app: FastAPI, client: TestClient) -> None:
    use_toggles(app, format_detection=False)
    body = csv_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS)

    refused = post_upload(client, "acme", body)
    assert refused.status_code == 400
    assert "format_detection" in refused.json()["error"]["message"]

    report = uploaded(client, "acme", body, format="csv", dataset="accounts")
    assert report["detected"] == {}
    assert report["loaded"] == 2
    assert fallback_count(app, "format_detection", "off") == 2


def test_when_off_a_named_format_the_content_contradicts_is_refused(
    app: FastAPI, client: TestClient
) -> None:
    use_toggles(app, format_detection=False)

    response = post_upload(
        client, "acme", csv_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS), format="json", dataset="accounts"
    )

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "format_mismatch"
    assert "named json but its content is csv" in error["message"]


def test_when_detection_raises_the_named_format_is_used_and_the_fallback_counted(
    app: FastAPI, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_toggles(app, format_detection=True)

    def broken(_content: bytes) -> str:
        raise RuntimeError("detector crashed")

    monkeypatch.setattr("flagstage_app.formats.detect_format", broken)

    report = uploaded(
        client, "acme", csv_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS), format="csv", dataset="accounts"
    )

    assert report["loaded"] == 2
    assert report["fallbacks"][0]["feature"] == "format_detection"
    assert report["fallbacks"][0]["reason"] == "error"
    assert fallback_count(app, "format_detection", "error") == 1


def test_turning_detection_on_live_takes_effect_on_the_next_request(
    live_client: TestClient, mount: Path, render: Render
) -> None:
    publish_and_wait(live_client, mount, render(1))
    assert post_upload(live_client, "acme", SEMICOLON_ACCOUNTS).status_code == 400

    publish_and_wait(live_client, mount, render(2))

    assert uploaded(live_client, "acme", SEMICOLON_ACCOUNTS)["detected"]["delimiter"] == "semicolon"
