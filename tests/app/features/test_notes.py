"""Notes a tenant adds to its knowledge base: stored per tenant, retrieved beside account
summaries, indexed at once under event_driven_rag and on the next refresh without it."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.app.conftest import ADMIN, tenant, wait_for_job
from tests.app.features.conftest import (
    ACCOUNT_ROWS,
    ACCOUNTS_HEADER,
    csv_bytes,
    uploaded,
    use_toggles,
)

NOTE = {"note_id": "renewal-2025", "text": "Quokka Logistics asked for a renewal discount."}
QUESTION = "Quokka Logistics renewal discount"


def sources(client: TestClient, customer: str) -> list[str]:
    response = client.post(
        "/api/rag-qdrant/query",
        json={"query": QUESTION, "query_type": "semantic"},
        headers=tenant(customer),
    )
    assert response.status_code == 200, response.text
    return [source["doc_id"] for source in response.json()["data"]["sources"]]


def put_note(client: TestClient, customer: str) -> dict[str, str]:
    response = client.put(
        f"/api/knowledge/notes/{NOTE['note_id']}", json=NOTE, headers=tenant(customer)
    )
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def with_an_index(app: FastAPI, client: TestClient, **toggles: bool) -> None:
    use_toggles(app, format_detection=True, enhanced_upload=True, **toggles)
    uploaded(client, "acme", csv_bytes(ACCOUNTS_HEADER, ACCOUNT_ROWS))
    assert "note:renewal-2025" not in sources(client, "acme")  # builds acme's index


def test_a_note_is_listed_for_its_tenant_only(app: FastAPI, client: TestClient) -> None:
    put_note(client, "acme")

    mine = client.get("/api/knowledge/notes", headers=tenant("acme")).json()["notes"]
    theirs = client.get("/api/knowledge/notes", headers=tenant("globex")).json()["notes"]
    stolen = client.delete("/api/knowledge/notes/renewal-2025", headers=tenant("globex"))

    assert [note["text"] for note in mine] == [NOTE["text"]]
    assert theirs == []
    assert stolen.status_code == 404


def test_with_event_driven_rag_a_note_is_retrieved_on_the_next_question(
    app: FastAPI, client: TestClient
) -> None:
    with_an_index(app, client, event_driven_rag=True)

    assert put_note(client, "acme")["knowledge_base"] == "re-index queued"

    assert sources(client, "acme")[0] == "note:renewal-2025"
    assert "note:renewal-2025" not in sources(client, "globex")


def test_without_event_driven_rag_a_note_waits_for_the_refresh(
    app: FastAPI, client: TestClient
) -> None:
    with_an_index(app, client, event_driven_rag=False)

    assert put_note(client, "acme")["knowledge_base"].startswith("unchanged until")
    assert "note:renewal-2025" not in sources(client, "acme")

    job = client.post("/api/refresh-data/rag_knowledge_base", headers=ADMIN).json()["job"]
    assert wait_for_job(client, job["id"])["status"] == "succeeded"
    assert sources(client, "acme")[0] == "note:renewal-2025"


def test_a_deleted_note_leaves_the_index_under_event_driven_rag(
    app: FastAPI, client: TestClient
) -> None:
    with_an_index(app, client, event_driven_rag=True)
    put_note(client, "acme")

    deleted = client.delete("/api/knowledge/notes/renewal-2025", headers=tenant("acme"))

    assert deleted.status_code == 204
    assert "note:renewal-2025" not in sources(client, "acme")


def test_a_note_whose_path_and_body_disagree_is_refused(client: TestClient) -> None:
    response = client.put("/api/knowledge/notes/other-id", json=NOTE, headers=tenant("acme"))
    assert response.status_code == 400
    assert "make them the same" in response.json()["error"]["message"]
