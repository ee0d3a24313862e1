"""The tenant-scoped vector index in Qdrant: one collection per tenant, behind an alias.

Why a collection per tenant rather than one shared collection with a tenant payload filter:
Qdrant's local mode (the embedded default) evaluates a payload filter by scanning every point
in Python, which costs tens to hundreds of milliseconds at 10,000 points, while an unfiltered
search of one tenant's collection is a single matrix product. A tenant's searches therefore
never see another tenant's points at all; each point still carries its tenant, and hits are
checked against it before they leave this module. Against a Qdrant server the same layout is
used and the tenant filter is added too, since the server answers it from a payload index.

Vectors are unit length (see `flagstage_app.knowledge.embedding`) and scored with the dot
product: local mode re-normalises every stored vector on each cosine search, which costs more
than the search itself.

Rebuilds never touch what is being served: new collections are filled first, then every alias
is switched in one `update_collection_aliases` call, then the old collections are dropped. A
rebuild that fails removes what it built and leaves the aliases as they were. `reindex` swaps
the same way for one tenant, but embeds only the documents that changed: the others are copied
with their stored vectors from the collection being served. Rebuilds and re-indexes take turns,
so neither switches an alias away from what the other just built.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qdrant_client import QdrantClient, models

from flagstage_app.knowledge.embedding import Embedder

logger = logging.getLogger(__name__)

ALIAS_PREFIX = "kb"
UPSERT_BATCH_SIZE = 500
POINT_NAMESPACE = uuid.UUID("5f0c7a52-61d3-4f0e-9d5c-0d0bb1a7e5a1")


@dataclass(frozen=True)
class Document:
    """One knowledge-base document of one tenant."""

    tenant: str
    doc_id: str
    kind: str
    text: str


@dataclass(frozen=True)
class Hit:
    """A retrieved document and its similarity to the question (higher is closer)."""

    doc_id: str
    kind: str
    text: str
    score: float


class TenantLeakError(RuntimeError):
    """A search returned a point of another tenant; the index is inconsistent."""


class KnowledgeIndex:
    """Per-tenant collections behind aliases, searched and rebuilt without downtime.

    `local` must be true for Qdrant's embedded mode, which is not safe for concurrent use: its
    calls are then serialised here, in batches short enough not to stall searches for long.
    """

    def __init__(
        self,
        client: QdrantClient,
        embedder: Embedder,
        *,
        local: bool,
        prefix: str = ALIAS_PREFIX,
    ) -> None:
        self.client = client
        self.embedder = embedder
        self.local = local
        self._prefix = prefix
        self._lock = threading.RLock()
        self._writing = threading.Lock()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        with self._lock if self.local else nullcontext():
            yield

    # -- names -----------------------------------------------------------------------------

    def alias_of(self, tenant: str) -> str:
        """`kb_<embedder>_<tenant>_<hash>`: readable, valid for Qdrant, one per embedder."""
        readable = re.sub(r"[^a-z0-9]+", "_", tenant.lower()).strip("_")[:40]
        digest = hashlib.sha256(f"{self.embedder.name}\0{tenant}".encode()).hexdigest()[:10]
        model = re.sub(r"[^a-z0-9]+", "_", self.embedder.name.lower())
        return f"{self._prefix}_{model}_{readable}_{digest}"

    def _aliases(self) -> dict[str, str]:
        with self._guard():
            listed = self.client.get_aliases().aliases
        return {alias.alias_name: alias.collection_name for alias in listed}

    def collection_of(self, tenant: str) -> str | None:
        """The collection serving `tenant` now, or None when it has no index yet."""
        return self._aliases().get(self.alias_of(tenant))

    # -- searching -------------------------------------------------------------------------

    def search(
        self, tenant: str, question: str, *, top_k: int, score_threshold: float
    ) -> list[Hit]:
        """The `top_k` documents of `tenant` at least `score_threshold` similar to `question`."""
        alias = self.alias_of(tenant)
        vector = self.embedder.embed([question])[0]
        query_filter = None if self.local else _tenant_filter(tenant)
        try:
            with self._guard():
                result = self.client.query_points(
                    alias,
                    query=vector,
                    limit=top_k,
                    score_threshold=score_threshold,
                    query_filter=query_filter,
                    with_payload=True,
                )
        except ValueError:
            # Local mode raises ValueError for an unknown collection: nothing indexed yet.
            if self.collection_of(tenant) is None:
                return []
            raise
        hits = []
        for point in result.points:
            payload = point.payload or {}
            if payload.get("tenant") != tenant:
                raise TenantLeakError(
                    f"the index of tenant {tenant!r} returned a document of "
                    f"{payload.get('tenant')!r}; rebuild the knowledge base"
                )
            hits.append(
                Hit(str(payload["doc_id"]), str(payload["kind"]), str(payload["text"]), point.score)
            )
        return hits

    # -- writing ---------------------------------------------------------------------------

    def rebuild(self, documents: Mapping[str, Sequence[Document]]) -> dict[str, int]:
        """Replace the index of every tenant in `documents` at once; returns counts per tenant.

        Queries are served from the old collections until the single alias switch.
        """
        with self._writing:
            return self._rebuild(documents)

    def reindex(
        self, tenant: str, documents: Sequence[Document], removed: Iterable[str] = ()
    ) -> int:
        """Re-embed `documents` and drop the `removed` doc ids in `tenant`'s index, atomically.

        The rest of the tenant's documents keep their vectors. Does nothing (and returns 0)
        while the tenant has no index: its first question builds it whole from SQL.
        Returns the number of documents re-embedded.
        """
        with self._writing:
            current = self.collection_of(tenant)
            if current is None:
                return 0
            alias = self.alias_of(tenant)
            target = f"{alias}__{_build_name()}"
            changed = {doc.doc_id for doc in documents}
            dropped = set(removed) - changed
            skipped = changed | dropped
            try:
                self._fill(target, tenant, documents)
                self._copy_points(current, target, skipped)
                with self._guard():
                    self.client.update_collection_aliases(
                        change_aliases_operations=[
                            models.DeleteAliasOperation(
                                delete_alias=models.DeleteAlias(alias_name=alias)
                            ),
                            models.CreateAliasOperation(
                                create_alias=models.CreateAlias(
                                    collection_name=target, alias_name=alias
                                )
                            ),
                        ]
                    )
            except BaseException:
                self._drop([target])
                raise
            self._drop([current])
        logger.info(
            "knowledge base of %s re-indexed: %d documents re-embedded, %d removed",
            tenant,
            len(documents),
            len(dropped),
        )
        return len(documents)

    def _copy_points(self, source: str, target: str, skipped: set[str]) -> None:
        offset: Any = None
        while True:
            with self._guard():
                records, offset = self.client.scroll(
                    source,
                    limit=UPSERT_BATCH_SIZE,
                    offset=offset,
                    with_payload=True,
                    with_vectors=True,
                )
            points = [
                models.PointStruct(id=record.id, vector=record.vector, payload=record.payload)
                for record in records
                if (record.payload or {}).get("doc_id") not in skipped
            ]
            if points:
                with self._guard():
                    self.client.upsert(target, points=points, wait=True)
            if offset is None:
                return

    def _rebuild(self, documents: Mapping[str, Sequence[Document]]) -> dict[str, int]:
        build = _build_name()
        built: dict[str, str] = {}
        try:
            for tenant, docs in documents.items():
                built[tenant] = f"{self.alias_of(tenant)}__{build}"
                self._fill(built[tenant], tenant, docs)
        except BaseException:
            self._drop(built.values())
            raise

        current = self._aliases()
        operations: list[Any] = []
        for tenant, collection in built.items():
            alias = self.alias_of(tenant)
            if alias in current:
                operations.append(
                    models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
                )
            operations.append(
                models.CreateAliasOperation(
                    create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)
                )
            )
        try:
            with self._guard():
                self.client.update_collection_aliases(change_aliases_operations=operations)
        except BaseException:
            self._drop(built.values())
            raise
        replaced = [current[a] for a in map(self.alias_of, built) if a in current]
        self._drop(replaced)
        logger.info("knowledge base rebuilt for %d tenants (build %s)", len(built), build)
        return {tenant: len(docs) for tenant, docs in documents.items()}

    def upsert(self, tenant: str, documents: Sequence[Document]) -> None:
        """Add or replace documents in `tenant`'s live index (building it when it has none)."""
        collection = self.collection_of(tenant)
        if collection is None:
            self.rebuild({tenant: documents})
            return
        self._write(collection, tenant, documents)

    def _fill(self, collection: str, tenant: str, documents: Sequence[Document]) -> None:
        params = models.VectorParams(size=self.embedder.dimension, distance=models.Distance.DOT)
        with self._guard():
            self.client.create_collection(collection, vectors_config=params)
            if not self.local:
                self.client.create_payload_index(
                    collection, "tenant", field_schema=models.PayloadSchemaType.KEYWORD
                )
        self._write(collection, tenant, documents)

    def _write(self, collection: str, tenant: str, documents: Sequence[Document]) -> None:
        for start in range(0, len(documents), UPSERT_BATCH_SIZE):
            batch = documents[start : start + UPSERT_BATCH_SIZE]
            for doc in batch:
                if doc.tenant != tenant:
                    raise ValueError(f"document {doc.doc_id!r} of {doc.tenant!r} is not {tenant!r}")
            vectors = self.embedder.embed([doc.text for doc in batch])
            points = [
                models.PointStruct(
                    id=str(uuid.uuid5(POINT_NAMESPACE, f"{tenant}\0{doc.doc_id}")),
                    vector=vector,
                    payload={
                        "tenant": tenant,
                        "doc_id": doc.doc_id,
                        "kind": doc.kind,
                        "text": doc.text,
                    },
                )
                for doc, vector in zip(batch, vectors, strict=True)
            ]
            with self._guard():
                self.client.upsert(collection, points=points, wait=True)

    def _drop(self, collections: Iterable[str]) -> None:
        for collection in collections:
            try:
                with self._guard():
                    self.client.delete_collection(collection)
            except Exception:
                logger.warning("could not drop collection %s; it is left behind", collection)


def _build_name() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "_" + uuid.uuid4().hex[:6]


def _tenant_filter(tenant: str) -> models.Filter:
    return models.Filter(
        must=[models.FieldCondition(key="tenant", match=models.MatchValue(value=tenant))]
    )
