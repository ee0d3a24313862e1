"""Data-change events that re-index a tenant's affected knowledge-base documents in the background.

An upload that changed accounts calls `ReindexQueue.emit(tenant, accounts)` after its commit.
One worker thread takes the events in order, tenant by tenant, merging the events of a tenant
that piled up while it was busy, reads those accounts' summaries from SQL and hands them to
`KnowledgeIndex.reindex`, which swaps the tenant's alias in one step. An account that is gone
from SQL loses its document. A failed event is logged, counted as an `event_driven_rag`
fallback, and leaves the index as it was: the next `rag_knowledge_base` refresh repairs it.
Whether a change emits an event at all is the caller's decision (the `event_driven_rag` toggle).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from flagstage_app.knowledge.documents import account_doc_id, account_summaries
from flagstage_app.knowledge.index import KnowledgeIndex

logger = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 10.0


@dataclass
class QueueStats:
    processed: int = 0
    failed: int = 0
    last_error: str | None = None


class ReindexQueue:
    """A small in-process queue of re-index events and the worker thread that drains it."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        index: Callable[[], KnowledgeIndex],
        *,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self._factory = factory
        self._index = index
        self._on_failure = on_failure
        self._pending: dict[str, set[str]] = {}
        self._busy = False
        self._stopping = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self.stats = QueueStats()

    def emit(self, tenant: str, accounts: Collection[str]) -> None:
        """Queue the re-index of `accounts` of `tenant`; returns at once."""
        with self._changed:
            self._pending.setdefault(tenant, set()).update(accounts)
            self._changed.notify_all()

    def start(self) -> None:
        with self._changed:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="kb-reindex", daemon=True)
        self._thread.start()

    def stop(self, timeout_seconds: float = STOP_TIMEOUT_SECONDS) -> None:
        """Finish the event in progress, drop the rest (a full refresh catches them up)."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_seconds)

    def wait_until_idle(self, timeout_seconds: float) -> bool:
        """Wait until no event is queued or running; False when `timeout_seconds` ran out."""
        deadline = time.monotonic() + timeout_seconds
        with self._changed:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._pending and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    return
                tenant = next(iter(self._pending))
                accounts = self._pending.pop(tenant)
                self._busy = True
            try:
                self._reindex(tenant, accounts)
                self.stats.processed += 1
            except Exception as err:
                self.stats.failed += 1
                self.stats.last_error = f"{type(err).__name__}: {err}"
                logger.exception(
                    "re-index of %d accounts of %s failed; the index stays as it was",
                    len(accounts),
                    tenant,
                )
                if self._on_failure is not None:
                    self._on_failure(tenant)
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()

    def _reindex(self, tenant: str, accounts: set[str]) -> None:
        with self._factory() as session:
            documents = account_summaries(session, tenant, accounts)
        present = {doc.doc_id for doc in documents}
        removed = [doc_id for doc_id in map(account_doc_id, accounts) if doc_id not in present]
        self._index().reindex(tenant, documents, removed)
