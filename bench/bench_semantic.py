"""How long a semantic question takes against a tenant's knowledge base of 10,000 documents.

Builds the index the app builds (Qdrant's embedded mode, one collection per tenant behind an
alias, the offline lexical embedder), for two tenants, then times `KnowledgeIndex.search`
end to end: embedding the question, the search, and the tenant check of every hit. For
comparison it also times the design the app avoids: every tenant in one collection, searched
with a payload filter on the tenant, which embedded Qdrant answers by scanning every point.

    python bench/bench_semantic.py [--documents N] [--queries N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from collections.abc import Callable

from flagstage_app.knowledge.embedding import LexicalEmbedder
from flagstage_app.knowledge.index import Document, KnowledgeIndex
from qdrant_client import QdrantClient, models

VOCABULARY = (
    "revenue growth churn renewal contract invoice discount pipeline expansion onboarding "
    "support ticket escalation outage latency integration migration pricing seat license "
    "quarter forecast upsell downgrade retention adoption dashboard report export import "
    "security audit compliance region europe america asia enterprise startup retail health"
)
QUESTIONS = [
    "which accounts had a support escalation after the outage",
    "renewal risk for enterprise contracts in europe",
    "pricing discount on license expansion",
    "adoption of the dashboard export",
]
TENANTS = ("acme", "globex")
GOAL_MS = 20.0


def documents_for(tenant: str, count: int, rng: random.Random) -> list[Document]:
    words = VOCABULARY.split()
    return [
        Document(
            tenant,
            f"{tenant}-doc-{i}",
            "account_summary",
            f"Account {tenant}-{i}: " + " ".join(rng.choice(words) for _ in range(40)),
        )
        for i in range(count)
    ]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(int(len(ordered) * 0.95) - 1, 0)]


def time_queries(run: Callable[[str], None], queries: int) -> list[float]:
    timings = []
    for i in range(queries):
        began = time.perf_counter()
        run(QUESTIONS[i % len(QUESTIONS)])
        timings.append((time.perf_counter() - began) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000, help="documents per tenant")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    rng = random.Random(7)
    embedder = LexicalEmbedder()
    corpus = {tenant: documents_for(tenant, args.documents, rng) for tenant in TENANTS}
    threshold = embedder.score_threshold(0.4)

    index = KnowledgeIndex(QdrantClient(location=":memory:"), embedder, local=True)
    began = time.perf_counter()
    index.rebuild(corpus)
    print(
        f"indexed {args.documents:,} documents for each of {len(TENANTS)} tenants "
        f"in {time.perf_counter() - began:.1f} s"
    )

    def per_tenant(question: str) -> None:
        index.search("acme", question, top_k=10, score_threshold=threshold)

    per_tenant(QUESTIONS[0])
    alias_ms = time_queries(per_tenant, args.queries)

    # The design avoided: one shared collection and a payload filter on the tenant.
    shared = QdrantClient(location=":memory:")
    shared.create_collection(
        "shared",
        vectors_config=models.VectorParams(size=embedder.dimension, distance=models.Distance.DOT),
    )
    for tenant, docs in corpus.items():
        vectors = embedder.embed([doc.text for doc in docs])
        shared.upsert(
            "shared",
            points=[
                models.PointStruct(id=str(uuid.uuid4()), vector=vector, payload={"tenant": tenant})
                for vector in vectors
            ],
        )
    only_acme = models.Filter(
        must=[models.FieldCondition(key="tenant", match=models.MatchValue(value="acme"))]
    )

    def filtered(question: str) -> None:
        vector = embedder.embed([question])[0]
        shared.query_points(
            "shared", query=vector, limit=10, score_threshold=threshold, query_filter=only_acme
        )

    filtered(QUESTIONS[0])
    filter_ms = time_queries(filtered, max(args.queries // 4, 20))

    print(f"{'semantic query, ms':<52}{'p50':>8}{'p95':>8}")
    for name, samples in (
        ("collection per tenant behind an alias (the app)", alias_ms),
        ("one shared collection + tenant payload filter", filter_ms),
    ):
        p50, p95 = percentiles(samples)
        print(f"{name:<52}{p50:>8.1f}{p95:>8.1f}")
    print(f"goal: p50 under {GOAL_MS:g} ms at {args.documents:,} documents per tenant")


if __name__ == "__main__":
    main()
