"""Budgets and servers shared by the reliability tests.

Every test here is bounded: loop counts and hypothesis example counts come from `budget`, which
gives the small figure in `make test` and the large one when `FLAGSTAGE_SOAK=1` (`make soak`,
`make fuzz`). The app runs for real: uvicorn in a thread on loopback, a SQLite database in the
test's temporary directory, and the live-toggle watcher on a directory the kubelet sequence
publishes into.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from flagstage_app.main import create_app
from flagstage_app.settings import Settings
from flagstage_operator.crd import CRD_NAME, CRD_PATH
from hypothesis import HealthCheck, settings

from tests.app.knowledge.conftest import fake_openai  # noqa: F401 (a fixture used here too)
from tests.controlplane.launcher import ControlPlane
from tests.operator.conftest import Cluster, deployment
from tests.reliability.operators import WORKLOAD, TemplateRecorder

SOAK = os.environ.get("FLAGSTAGE_SOAK", "") == "1"
SERVER_START_TIMEOUT_SECONDS = 30.0

settings.register_profile(
    "reliability",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=False,
    print_blob=True,
)


def budget(normal: int, soak: int) -> int:
    """`normal` in `make test`, `soak` under FLAGSTAGE_SOAK=1."""
    return soak if SOAK else normal


def examples(normal: int, soak: int) -> settings:
    """Hypothesis settings for a fuzzing test: `budget(normal, soak)` examples, no deadline."""
    return settings(settings.get_profile("reliability"), max_examples=budget(normal, soak))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningApp:
    """An app served by uvicorn in a thread of this process, and a client for it."""

    app: FastAPI
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0, **kwargs)


def serve_in_thread(app: FastAPI) -> RunningApp:
    """Serve `app` on a free loopback port until `stop_serving` is called."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail(f"uvicorn did not start on port {port}")
        time.sleep(0.02)
    return RunningApp(app, f"http://127.0.0.1:{port}", server, thread)


def stop_serving(running: RunningApp) -> None:
    running.server.should_exit = True
    running.thread.join(SERVER_START_TIMEOUT_SECONDS)


def app_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'app.db'}",
        "qdrant_path": ":memory:",
        "run_migrations": True,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def clean_feature_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No `FEATURE_*` variable of the developer's shell leaks into the app under test."""
    for key in [key for key in os.environ if key.startswith("FEATURE_")]:
        monkeypatch.delenv(key)


@pytest.fixture
def make_running_app(clean_feature_env: None) -> Iterator[Any]:
    """Build and serve apps for a test; every one is stopped at teardown."""
    started: list[RunningApp] = []

    def _make(settings: Settings) -> RunningApp:
        running = serve_in_thread(create_app(settings))
        started.append(running)
        return running

    yield _make
    for running in started:
        stop_serving(running)


@pytest.fixture
def cluster(control_plane: ControlPlane, kube_namespace: str) -> Iterator[Cluster]:
    """The test's namespace on the shared control plane, with the FeatureRollout CRD served."""
    control_plane.kubectl("apply", "--server-side", "-f", str(CRD_PATH))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=30s", f"crd/{CRD_NAME}")
    with control_plane.api_client() as api:
        yield Cluster(api, kube_namespace)


@pytest.fixture
def recorder(control_plane: ControlPlane, cluster: Cluster) -> Iterator[TemplateRecorder]:
    """The Rolling workload, and a watch that records every config hash its pod template had."""
    cluster.apps.create_namespaced_deployment(cluster.namespace, deployment(WORKLOAD))
    with control_plane.api_client() as api:
        watching = TemplateRecorder(api, cluster.namespace).start()
        try:
            yield watching
        finally:
            watching.stop()
