"""Background rebuilds of derived data, one SQL transaction each, at most one per dataset.

`start_refresh` records a `running` job and hands the work to a thread; the request answers at
once with the job to poll. A partial unique index on `refresh_jobs` allows one running job per
dataset across every replica, so a second request is refused rather than queued. Each refresher
works inside a single transaction: readers keep the old rows until it commits, and a refresher
that raises leaves everything as it was. Refreshers are looked up by dataset name on
`app.state.refreshers`; `register_refresher` installs one (the knowledge base installs
`rag_knowledge_base`, whose work happens outside SQL and whose switch is its own to make).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from flagstage_app.db import transaction
from flagstage_app.errors import ConflictError, NotFoundError
from flagstage_app.health import rebuild_health_scores
from flagstage_app.models import RefreshJob, Tenant
from flagstage_app.observability import AppMetrics
from flagstage_app.revenue import materialize_monthly_revenue
from flagstage_app.settings import Settings

logger = logging.getLogger(__name__)

RAG_KNOWLEDGE_BASE = "rag_knowledge_base"
HEALTH_SCORES = "health_scores"
CUSTOMER_DATA = "customer_data"
DATASETS = (RAG_KNOWLEDGE_BASE, HEALTH_SCORES, CUSTOMER_DATA)

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
# A job still `running` after this long belongs to a process that died; it no longer blocks.
STALE_JOB_AFTER = timedelta(hours=1)

_LOCAL_GUARD = threading.Lock()


@dataclass(frozen=True)
class RefreshContext:
    """What a refresher gets: `session` is its one transaction, committed when it returns."""

    job_id: str
    dataset: str
    session: Session
    settings: Settings
    app: FastAPI


Refresher = Callable[[RefreshContext], str | None]


class RefreshNotConfiguredError(RuntimeError):
    """No refresher is installed for a dataset this deployment does not serve."""


def refresh_customer_data(context: RefreshContext) -> str:
    """Rebuild every tenant's monthly revenue from accounts and metrics."""
    tenants = context.session.scalars(select(Tenant.tenant_id).order_by(Tenant.tenant_id)).all()
    rows = materialize_monthly_revenue(context.session, tenants)
    return f"monthly revenue rebuilt for {len(tenants)} customers ({rows} account-months)"


def refresh_health_scores(context: RefreshContext) -> str:
    return f"{rebuild_health_scores(context.session)} account health scores rebuilt"


def refresh_knowledge_base_unavailable(context: RefreshContext) -> str:
    raise RefreshNotConfiguredError(
        "the knowledge base is not part of this deployment; nothing was rebuilt"
    )


def default_refreshers() -> dict[str, Refresher]:
    return {
        CUSTOMER_DATA: refresh_customer_data,
        HEALTH_SCORES: refresh_health_scores,
        RAG_KNOWLEDGE_BASE: refresh_knowledge_base_unavailable,
    }


def register_refresher(app: FastAPI, dataset: str, refresher: Refresher) -> None:
    """Make `refresher` the one `POST /api/refresh-data/{dataset}` runs."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; the datasets are {', '.join(DATASETS)}")
    app.state.refreshers[dataset] = refresher


def job_to_json(job: RefreshJob) -> dict[str, Any]:
    def stamp(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "id": job.id,
        "dataset": job.dataset,
        "status": job.status,
        "started_at": stamp(job.started_at),
        "finished_at": stamp(job.finished_at),
        "summary": job.summary,
        "error": job.error,
    }


def get_job(factory: sessionmaker[Session], job_id: str) -> RefreshJob:
    with factory() as session:
        job = session.get(RefreshJob, job_id)
    if job is None:
        raise NotFoundError(f"there is no refresh job {job_id!r}")
    return job


def _release_stale_job(session: Session, dataset: str, now: datetime) -> None:
    session.execute(
        update(RefreshJob)
        .where(
            RefreshJob.dataset == dataset,
            RefreshJob.status == RUNNING,
            RefreshJob.started_at < now - STALE_JOB_AFTER,
        )
        .values(status=FAILED, finished_at=now, error="abandoned: its process stopped")
    )


def start_refresh(app: FastAPI, dataset: str) -> RefreshJob:
    """Record a running job for `dataset` and start it in a thread; 409 if one is running."""
    if dataset not in DATASETS:
        raise NotFoundError(
            f"there is no dataset {dataset!r} to refresh; use one of {', '.join(DATASETS)}"
        )
    factory = cast(sessionmaker[Session], app.state.session_factory)
    local: dict[str, str] = app.state.refreshes_running
    now = datetime.now(UTC)
    job = RefreshJob(id=uuid.uuid4().hex, dataset=dataset, status=RUNNING, started_at=now)
    # Checked in-process first: on SQLite the running job's write transaction would make the
    # insert below wait for it instead of failing.
    with _LOCAL_GUARD:
        if dataset in local:
            raise _conflict(dataset, local[dataset])
        local[dataset] = job.id
    try:
        with transaction(factory) as session:
            _release_stale_job(session, dataset, now)
            session.add(job)
    except IntegrityError as err:
        with _LOCAL_GUARD:
            local.pop(dataset, None)
        with factory() as session:
            running = session.scalars(
                select(RefreshJob.id).where(
                    RefreshJob.dataset == dataset, RefreshJob.status == RUNNING
                )
            ).first()
        raise _conflict(dataset, running) from err
    except BaseException:
        with _LOCAL_GUARD:
            local.pop(dataset, None)
        raise

    metrics = cast(AppMetrics, app.state.metrics)
    metrics.refresh_running.labels(dataset).inc()
    # TODO: refreshes run in the serving process and compete with requests; under load the
    # temporal query's p99 goes from about 0.4 s to about 3 s while every dataset is rebuilt
    # (bench/bench_load.py). Move them to a worker process when that latency matters.
    worker = threading.Thread(
        target=_run_job, args=(app, job.id, dataset), name=f"refresh-{dataset}", daemon=True
    )
    app.state.refresh_threads.append(worker)
    worker.start()
    logger.info("refresh job %s of %s started", job.id, dataset)
    return job


def _conflict(dataset: str, running: str | None) -> ConflictError:
    return ConflictError(
        f"a refresh of {dataset} is already running (job {running}); poll "
        f"/api/refresh-data/jobs/{running} and try again when it has finished",
        details={"running_job": running},
    )


def _run_job(app: FastAPI, job_id: str, dataset: str) -> None:
    factory = cast(sessionmaker[Session], app.state.session_factory)
    refresher = cast(dict[str, Refresher], app.state.refreshers)[dataset]
    summary: str | None = None
    error: str | None = None
    try:
        with transaction(factory) as session:
            context = RefreshContext(job_id, dataset, session, app.state.settings, app)
            summary = refresher(context)
    except Exception as err:  # reported on the job, which is where clients look
        error = f"{type(err).__name__}: {err}"
        logger.exception(
            "refresh job %s of %s failed; the previous data stays live", job_id, dataset
        )

    status = FAILED if error else SUCCEEDED
    try:
        with transaction(factory) as session:
            session.execute(
                update(RefreshJob)
                .where(RefreshJob.id == job_id)
                .values(status=status, finished_at=datetime.now(UTC), summary=summary, error=error)
            )
    finally:
        with _LOCAL_GUARD:
            app.state.refreshes_running.pop(dataset, None)
    metrics = cast(AppMetrics, app.state.metrics)
    metrics.refresh_running.labels(dataset).dec()
    metrics.refresh_jobs.labels(dataset, status).inc()
    logger.info("refresh job %s of %s %s: %s", job_id, dataset, status, summary or error)


def wait_for_refreshes(app: FastAPI, timeout_seconds: float) -> None:
    """Wait for this app's refresh threads to finish, at most `timeout_seconds` each."""
    for worker in list(app.state.refresh_threads):
        worker.join(timeout_seconds)
