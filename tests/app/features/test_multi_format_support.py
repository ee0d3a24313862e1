"""multi_format_support: JSON, NDJSON and XLSX uploads besides CSV."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.app.features.conftest import (
    ACCOUNT_ROWS,
    ACCOUNTS_HEADER,
    METRIC_ROWS,
    METRICS_HEADER,
    csv_bytes,
    fallback_count,
    json_bytes,
    ndjson_bytes,
    post_upload,
    uploaded,
    use_toggles,
    xlsx_bytes,
)

Writer = Callable[[tuple[str, ...], Any], bytes]
WRITERS: dict[str, Writer] = {"json": json_bytes, "ndjson": ndjson_bytes, "xlsx": xlsx_bytes}


@pytest.mark.parametrize("file_format", sorted(WRITERS))
def test_every_supported_format_loads_both_datasets(
    app: FastAPI, client: TestClient, file_format: str
) -> None:
    use_toggles(app, format_detection=True, multi_format_support=True)
    write = WRITERS[file_format]

    accounts = uploaded(client, "acme", write(ACCOUNTS_HEADER, ACCOUNT_ROWS))
    metrics = uploaded(client, "acme", write(METRICS_HEADER, METRIC_ROWS))

    assert (accounts["format"], accounts["dataset"], accounts["loaded"]) == (
        file_format,
        "accounts",
        2,
    )
    assert (metrics["format"], metrics["dataset"], metrics["loaded"]) == (file_format, "metrics", 2)


def test_spreadsheet_dates_in_month_columns_load_as_months(
    app: FastAPI, client: TestClient
) -> None:
    from datetime import datetime

    use_toggles(app, format_detection=True, multi_format_support=True)
    rows = [("A1", "Acme", "retail", 1000.5, datetime(2024, 3, 1))]

    report = uploaded(client, "acme", xlsx_bytes(ACCOUNTS_HEADER, rows))

    assert report["loaded"] == 1


@pytest.mark.parametrize("file_format", sorted(WRITERS))
def test_when_off_only_csv_is_accepted_and_the_refusal_names_the_feature(
    app: FastAPI, client: TestClient, file_format: str
) -> None:
    use_toggles(app, format_detection=True, multi_format_support=False)

    refused = post_upload(client, "acme", WRITERS[file_format](ACCOUNTS_HEADER, ACCOUNT_ROWS))

    assert refused.status_code == 415
    assert "multi_format_support" in refused.json()["error"]["message"]
    assert uploaded(client, "acme", csv_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS))["loaded"] == 2


def test_it_stays_off_while_format_detection_is_off(app: FastAPI, client: TestClient) -> None:
    use_toggles(app, format_detection=False, multi_format_support=True)

    refused = post_upload(
        client, "acme", json_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS), format="json", dataset="accounts"
    )

    assert refused.status_code == 415
    assert fallback_count(app, "format_detection", "off") == 1


def test_when_a_format_reader_raises_the_caller_is_told_to_send_csv_and_it_is_counted(
    app: FastAPI, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_toggles(app, format_detection=True, multi_format_support=True)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("reader crashed")

    monkeypatch.setattr("flagstage_app.formats._read_json_array", broken)

    response = post_upload(client, "acme", json_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS))
    assert response.status_code == 422
    assert "send the data as CSV" in response.json()["error"]["message"]
    assert fallback_count(app, "multi_format_support", "error") == 1

    # The baseline path still loads the same rows.
    assert uploaded(client, "acme", csv_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS))["loaded"] == 2
