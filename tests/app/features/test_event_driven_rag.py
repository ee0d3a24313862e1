"""event_driven_rag: data changes re-index only the affected documents, in the background."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flagstage_app.knowledge import KnowledgeIndex

from tests.app.conftest import ADMIN, tenant, wait_for_job
from tests.app.features.conftest import (
    ACCOUNT_ROWS,
    ACCOUNTS_HEADER,
    csv_bytes,
    fallback_count,
    uploaded,
    use_toggles,
)

ON = {"format_detection": True, "enhanced_upload": True, "event_driven_rag": True}
NEW_ACCOUNT = csv_bytes(
    ACCOUNTS_HEADER, [("A3", "Zephyr Robotics", "robotics", "500.00", "2024-01")]
)


def sources(client: TestClient, customer: str, query: str) -> list[str]:
    response = client.post(
        "/api/rag-qdrant/query",
        json={"query": query, "query_type": "semantic"},
        headers=tenant(customer),
    )
    assert response.status_code == 200, response.text
    return [source["doc_id"] for source in response.json()["data"]["sources"]]


def index_of(app: FastAPI) -> KnowledgeIndex:
    index: KnowledgeIndex = app.state.knowledge_base.index
    return index


def settle(app: FastAPI) -> Any:
    queue = app.state.reindex_queue
    assert queue.wait_until_idle(10.0)
    return queue.stats


def prepare(app: FastAPI, client: TestClient) -> None:
    for customer in ("acme", "other"):
        uploaded(client, customer, csv_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS))
        assert "account:A1" in sources(client, customer, "Acme Retail retail account")
    # The uploads' own events may still be running: let them finish before anything is compared.
    settle(app)


def test_an_upload_reindexes_the_tenants_changed_accounts_in_the_background(
    app: FastAPI, client: TestClient
) -> None:
    use_toggles(app, **ON)
    prepare(app, client)
    other_collection = index_of(app).collection_of("other")
    acme_collection = index_of(app).collection_of("acme")

    report = uploaded(client, "acme", NEW_ACCOUNT)
    stats = settle(app)

    assert report["knowledge_base"] == "re-index of 1 accounts queued"
    assert stats.processed >= 1 and stats.failed == 0
    assert sources(client, "acme", "Zephyr Robotics robotics")[0] == "account:A3"
    assert "account:A1" in sources(client, "acme", "Acme Retail retail account")
    # A new collection behind acme's alias; the other tenant's index was not touched.
    assert index_of(app).collection_of("acme") != acme_collection
    assert index_of(app).collection_of("other") == other_collection
    assert "account:A3" not in sources(client, "other", "Zephyr Robotics robotics")


def test_when_off_the_knowledge_base_changes_only_on_a_refresh(
    app: FastAPI, client: TestClient
) -> None:
    use_toggles(app, format_detection=True, enhanced_upload=True, event_driven_rag=False)
    prepare(app, client)

    report = uploaded(client, "acme", NEW_ACCOUNT)
    settle(app)

    assert report["knowledge_base"] == "unchanged until the next rag_knowledge_base refresh"
    assert "account:A3" not in sources(client, "acme", "Zephyr Robotics robotics")
    job = client.post("/api/refresh-data/rag_knowledge_base", headers=ADMIN).json()["job"]
    assert wait_for_job(client, job["id"])["status"] == "succeeded"
    assert sources(client, "acme", "Zephyr Robotics robotics")[0] == "account:A3"


def test_it_stays_off_while_enhanced_upload_is_off(app: FastAPI, client: TestClient) -> None:
    use_toggles(app, format_detection=True, enhanced_upload=False, event_driven_rag=True)
    prepare(app, client)

    report = uploaded(client, "acme", NEW_ACCOUNT)

    assert report["knowledge_base"] == "unchanged until the next rag_knowledge_base refresh"


def test_a_failing_reindex_leaves_the_index_as_it_was_and_is_counted(
    app: FastAPI, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_toggles(app, **ON)
    prepare(app, client)

    def broken(*_args: object) -> int:
        raise RuntimeError("qdrant went away")

    monkeypatch.setattr(KnowledgeIndex, "reindex", broken)

    report = uploaded(client, "acme", NEW_ACCOUNT)
    stats = settle(app)

    assert report["loaded"] == 1
    assert stats.failed == 1
    assert stats.last_error == "RuntimeError: qdrant went away"
    assert fallback_count(app, "event_driven_rag", "error") == 1
    assert "account:A3" not in sources(client, "acme", "Zephyr Robotics robotics")
