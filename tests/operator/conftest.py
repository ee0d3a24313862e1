"""Fixtures for the operator tests: the CRD installed once, and operators run as processes.

The operator runs as `python -m flagstage_operator` against the test control plane, so a test
can stop it and start another (a restart) or run it under a less privileged identity, exactly
as it runs in a cluster. Each test gets its own namespace and its own operator watching only
that namespace, so tests never see each other's rollouts.
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from flagstage_operator.crd import CRD_NAME, CRD_PATH, PLURAL
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from flagstage.model import API_GROUP, API_VERSION
from tests.controlplane.assets import AssetsMissingError
from tests.controlplane.launcher import ControlPlane, ControlPlaneError

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"
TICK_SECONDS = 0.5
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_example(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8")))


def fast_copy(manifest: dict[str, Any], *, stage_seconds: int = 3, **spec: Any) -> dict[str, Any]:
    """`manifest` with stages of a few seconds starting now, and `spec` fields replaced."""
    fast = copy.deepcopy(manifest)
    fast["spec"]["schedule"] = {
        "start": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "stageDuration": f"{stage_seconds}s",
    }
    for stage in fast["spec"].get("stages", []):
        stage.pop("duration", None)
    fast["spec"].update(spec)
    return fast


def wait_for(
    what: str, check: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.2
) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except ApiException as err:
            last = err
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what}; last seen: {last!r}")


@pytest.fixture(scope="session")
def crd(control_plane: ControlPlane) -> str:
    """The committed CRD, installed and established."""
    control_plane.kubectl("apply", "--server-side", "-f", str(CRD_PATH))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=30s", f"crd/{CRD_NAME}")
    return CRD_NAME


@pytest.fixture
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    with control_plane.api_client() as admin:
        yield admin


class Cluster:
    """Small helpers over the admin client for one test namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(manifest)
        body["metadata"].pop("namespace", None)
        return dict(
            self.custom.create_namespaced_custom_object(
                API_GROUP, API_VERSION, self.namespace, PLURAL, body
            )
        )

    def rollout(self, name: str) -> dict[str, Any]:
        return dict(
            self.custom.get_namespaced_custom_object(
                API_GROUP, API_VERSION, self.namespace, PLURAL, name
            )
        )

    def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return dict(
            self.custom.patch_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                self.namespace,
                PLURAL,
                name,
                patch,
                _content_type="application/merge-patch+json",
            )
        )

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(
            API_GROUP, API_VERSION, self.namespace, PLURAL, name
        )

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.rollout(name).get("status") or {})

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        for condition in self.status(name).get("conditions") or []:
            if condition["type"] == kind:
                return dict(condition)
        return {}

    def config_map(self, name: str) -> client.V1ConfigMap | None:
        try:
            return self.core.read_namespaced_config_map(name, self.namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def events(self, name: str) -> list[client.CoreV1Event]:
        items = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        ).items
        return sorted(items, key=lambda event: event.metadata.creation_timestamp)

    def reasons(self, name: str) -> list[str]:
        return [event.reason for event in self.events(name)]

    def wait_stage(self, name: str, stage: str, *, timeout: float = 20.0) -> dict[str, Any]:
        return dict(
            wait_for(
                f"rollout {name} at stage {stage}",
                lambda: (
                    (status := self.status(name)).get("stage", {}).get("name") == stage and status
                ),
                timeout=timeout,
            )
        )


@pytest.fixture
def cluster(api: client.ApiClient, kube_namespace: str, crd: str) -> Cluster:
    return Cluster(api, kube_namespace)


class OperatorProcess:
    """`python -m flagstage_operator` watching one namespace, with its own ports and log."""

    def __init__(
        self, namespace: str, kubeconfig: Path, log_path: Path, extra_args: Sequence[str] = ()
    ) -> None:
        self.namespace = namespace
        self.extra_args = list(extra_args)
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.health_port = free_port()
        self.metrics_port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        command = [
            sys.executable,
            "-m",
            "flagstage_operator",
            "--namespace",
            self.namespace,
            "--bind-address",
            "127.0.0.1",
            "--health-port",
            str(self.health_port),
            "--metrics-port",
            str(self.metrics_port),
            "--tick-seconds",
            str(TICK_SECONDS),
            *self.extra_args,
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO
            )
        wait_for("the operator's liveness probe", self.alive, timeout=STARTUP_TIMEOUT_SECONDS)
        return self

    def alive(self) -> bool:
        if self._process is None or self._process.poll() is not None:
            pytest.fail(f"the operator exited; its log:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1):
                return True
        except OSError:
            return False

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


@pytest.fixture
def start_operator(
    control_plane: ControlPlane, kube_namespace: str, tmp_path: Path, crd: str
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start operators for the test namespace (admin by default); all stop at teardown."""
    started: list[OperatorProcess] = []

    def start(kubeconfig: Path | None = None, extra_args: Sequence[str] = ()) -> OperatorProcess:
        log_path = tmp_path / f"operator-{len(started)}.log"
        process = OperatorProcess(
            kube_namespace, kubeconfig or control_plane.kubeconfig, log_path, extra_args
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def operator(start_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    return start_operator()


@contextmanager
def dedicated_control_plane(
    request: pytest.FixtureRequest, namespace: str
) -> Iterator[ControlPlane]:
    """A control plane of the caller's own, with the CRD served and `namespace` created.

    For tests that stop or restart the API server, which must not take the shared one down.
    """
    plane = ControlPlane()
    try:
        plane.start()
    except (AssetsMissingError, ControlPlaneError) as err:
        pytest.fail(f"a dedicated control plane did not start: {err}", pytrace=False)
    try:
        plane.kubectl("apply", "--server-side", "-f", str(CRD_PATH))
        plane.kubectl("wait", "--for=condition=Established", "--timeout=30s", f"crd/{CRD_NAME}")
        plane.kubectl("create", "namespace", namespace)
        yield plane
    finally:
        plane.stop(keep_files=request.session.testsfailed > 0)


def deployment(name: str) -> dict[str, Any]:
    """A one-replica Deployment to reload; no kubelet runs, so only its pod template matters."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "api", "image": "registry.invalid/api:1"}]},
            },
        },
    }
