"""Per-tenant indexes: isolation, thresholds, and rebuilds that switch atomically or not at all."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from flagstage_app.knowledge.embedding import LexicalEmbedder
from flagstage_app.knowledge.index import Document, KnowledgeIndex
from qdrant_client import QdrantClient

NOTE_A = "Globex is at churn risk after the pricing change; renewal due in March."
NOTE_B = "Umbrella asked for a discount on the renewal; churn risk is high."


def docs(tenant: str, *texts: str, prefix: str = "note") -> list[Document]:
    return [Document(tenant, f"{prefix}:{i}", "note", text) for i, text in enumerate(texts)]


def test_a_tenant_never_retrieves_another_tenants_documents(index: KnowledgeIndex) -> None:
    index.rebuild({"acme": docs("acme", NOTE_A), "initech": docs("initech", NOTE_B, NOTE_A)})
    # Ask acme exactly what only initech wrote.
    hits = index.search("acme", NOTE_B, top_k=10, score_threshold=0.0)
    assert [hit.doc_id for hit in hits] == ["note:0"]
    assert all(hit.text == NOTE_A for hit in hits)
    assert index.search("nobody", NOTE_A, top_k=10, score_threshold=0.0) == []
    assert index.collection_of("acme") != index.collection_of("initech")


def test_the_threshold_keeps_unrelated_documents_out(index: KnowledgeIndex) -> None:
    index.rebuild({"acme": docs("acme", NOTE_A, "The office coffee machine is broken again.")})
    hits = index.search("acme", "Which accounts are at churn risk?", top_k=10, score_threshold=0.2)
    assert [hit.doc_id for hit in hits] == ["note:0"]
    assert hits[0].score > 0.2


def test_a_rebuild_switches_while_searches_keep_being_served(index: KnowledgeIndex) -> None:
    index.rebuild({"acme": docs("acme", *[f"{NOTE_A} old {i}" for i in range(300)])})
    old_collection = index.collection_of("acme")
    stop = threading.Event()
    failures: list[str] = []
    served: list[int] = []

    def search() -> None:
        while not stop.is_set():
            try:
                served.append(len(index.search("acme", "churn risk", top_k=5, score_threshold=0.1)))
            except Exception as err:
                failures.append(repr(err))

    searcher = threading.Thread(target=search)
    searcher.start()
    try:
        index.rebuild({"acme": docs("acme", *[f"{NOTE_B} new {i}" for i in range(300)])})
    finally:
        stop.set()
        searcher.join()

    assert failures == []
    assert served and min(served) == 5
    assert index.collection_of("acme") != old_collection
    names = {c.name for c in index.client.get_collections().collections}
    assert old_collection not in names
    assert "new" in index.search("acme", "churn", top_k=1, score_threshold=0.0)[0].text


class FailingEmbedder(LexicalEmbedder):
    def __init__(self, fail_after: int) -> None:
        super().__init__()
        self.calls = 0
        self.fail_after = fail_after

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        if self.calls > self.fail_after:
            raise RuntimeError("embedding service went away")
        return super().embed(texts)


def test_a_failed_rebuild_changes_nothing(index: KnowledgeIndex) -> None:
    index.rebuild({"acme": docs("acme", NOTE_A), "initech": docs("initech", NOTE_B)})
    before = {c.name for c in index.client.get_collections().collections}
    aliases = {t: index.collection_of(t) for t in ("acme", "initech")}

    failing = KnowledgeIndex(index.client, FailingEmbedder(fail_after=1), local=True)
    failing.alias_of = index.alias_of  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="went away"):
        failing.rebuild({"acme": docs("acme", "new acme"), "initech": docs("initech", "new")})

    assert {c.name for c in index.client.get_collections().collections} == before
    assert {t: index.collection_of(t) for t in ("acme", "initech")} == aliases
    assert index.search("acme", "churn risk", top_k=1, score_threshold=0.0)[0].text == NOTE_A


def test_local_mode_on_disk_keeps_its_aliases_across_restarts(tmp_path: Path) -> None:
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    KnowledgeIndex(client, LexicalEmbedder(), local=True).rebuild({"acme": docs("acme", NOTE_A)})
    client.close()

    reopened = KnowledgeIndex(
        QdrantClient(path=str(tmp_path / "qdrant")), LexicalEmbedder(), local=True
    )
    try:
        hits = reopened.search("acme", "renewal", top_k=3, score_threshold=0.0)
        assert [hit.doc_id for hit in hits] == ["note:0"]
    finally:
        reopened.client.close()
