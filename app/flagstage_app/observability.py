"""Prometheus metrics of one app: requests by route and status, and refresh jobs.

Each app gets its own registry, so several apps in one process (tests) do not collide; the
route label is the path template (`/api/refresh-data/jobs/{job_id}`), never the raw path, to
keep the number of series bounded whatever clients send.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


class AppMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "flagstage_app_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "flagstage_app_http_request_duration_seconds",
            "Time to answer HTTP requests, by route template.",
            ["route"],
            registry=self.registry,
        )
        self.refresh_jobs = Counter(
            "flagstage_app_refresh_jobs",
            "Data refresh jobs finished, by dataset and outcome.",
            ["dataset", "status"],
            registry=self.registry,
        )
        self.refresh_running = Gauge(
            "flagstage_app_refresh_jobs_running",
            "Data refresh jobs running in this process, by dataset.",
            ["dataset"],
            registry=self.registry,
        )


def install_metrics(app: FastAPI) -> AppMetrics:
    """Count every request and serve `/metrics`; the metrics object lands on `app.state`."""
    metrics = AppMetrics()
    app.state.metrics = metrics

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = getattr(request.scope.get("route"), "path", "unmatched")
            metrics.requests.labels(route, request.method, str(status)).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - started)

    @app.get("/metrics", include_in_schema=False)
    def serve_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
