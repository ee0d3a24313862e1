"""Helpers of the operator reliability tests: a rollout of short stages, a Rolling workload,
operators that can be killed outright, and a recorder of the workload's pod-template changes.

The operator tests' own helpers (`Cluster`, `OperatorProcess`, `wait_for`) are reused; what is
here is what only crash, hand-over and liveness tests need. Fixtures stay in the test modules.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flagstage_operator.reconciling import manifest_of
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from flagstage.durations import format_time, parse_time
from flagstage.model import FeatureRollout
from flagstage.rendering import HASH_ANNOTATION, render_config
from flagstage.validation import parse_rollout
from tests.operator.conftest import Cluster, OperatorProcess

NAME = "crash-walk"
WORKLOAD = "crash-walk-api"
CONFIG_MAP = f"{NAME}-features"
WATCH_TIMEOUT_SECONDS = 5


def walking_rollout(*, stages: int, stage_seconds: int, lead_seconds: int = 0) -> dict[str, Any]:
    """A rollout whose `stages` stages each turn one more feature on, `stage_seconds` apart.

    The first stage starts `lead_seconds` from now; the target is a Rolling Deployment, so
    every stage is a real configuration change that restarts it.
    """
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead_seconds)
    features = [f"feature_{index}" for index in range(stages)]
    return {
        "apiVersion": "flagstage.io/v1alpha1",
        "kind": "FeatureRollout",
        "metadata": {"name": NAME},
        "spec": {
            "features": [
                {"name": name, "description": f"Stage {index + 1}'s feature.", "owner": "sre"}
                for index, name in enumerate(features)
            ],
            "stages": [
                {"name": f"step-{index + 1}", "enable": [name]}
                for index, name in enumerate(features)
            ],
            "schedule": {
                "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "stageDuration": f"{stage_seconds}s",
            },
            "promotion": "Automatic",
            "target": {
                "configMap": CONFIG_MAP,
                "reloadStrategy": "Rolling",
                "workloads": [{"kind": "Deployment", "name": WORKLOAD}],
            },
        },
    }


def live_rollout(cluster: Cluster) -> FeatureRollout:
    """The rollout as stored, parsed by the core (its generation is part of the render)."""
    return parse_rollout(manifest_of(cluster.rollout(NAME)))


def planned_history(manifest: dict[str, Any], rollout: FeatureRollout) -> list[dict[str, Any]]:
    """Every stage once, in order, at the instant the schedule gives it, with its hash."""
    schedule = manifest["spec"]["schedule"]
    start = parse_time(schedule["start"])
    seconds = int(schedule["stageDuration"].rstrip("s"))
    return [
        {
            "stage": stage.name,
            "index": index,
            "time": format_time(start + timedelta(seconds=index * seconds)),
            "hash": render_config(rollout, index).config_hash,
        }
        for index, stage in enumerate(rollout.spec.stages)
    ]


def history_without_reasons(status: dict[str, Any]) -> list[dict[str, Any]]:
    keys = ("stage", "index", "time", "hash")
    return [{key: entry[key] for key in keys} for entry in status.get("history") or []]


class KillableOperator(OperatorProcess):
    """An operator process that can also be killed outright, as the kernel's OOM killer does."""

    def kill(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL)
        process.wait()

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def spawn(self) -> KillableOperator:
        """Start the process without waiting for its probe, so a kill can land anywhere."""
        self._spawning = True
        try:
            self.start()
        finally:
            self._spawning = False
        return self

    def alive(self) -> bool:
        return getattr(self, "_spawning", False) or super().alive()


@dataclass
class TemplateRecorder:
    """Watches one Deployment and records each pod-template hash and generation it goes through.

    A watch delivers every change in order, so `hashes` lists each value the annotation took,
    consecutive repeats removed; `generations` counts template changes independently of it.
    """

    api: client.ApiClient
    namespace: str
    name: str = WORKLOAD
    hashes: list[str | None] = field(default_factory=list)
    generations: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TemplateRecorder:
        self._thread = threading.Thread(target=self._run, name="template-recorder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(WATCH_TIMEOUT_SECONDS * 2)

    def _run(self) -> None:
        apps = client.AppsV1Api(self.api)
        version: str | None = None
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    apps.list_namespaced_deployment,
                    self.namespace,
                    field_selector=f"metadata.name={self.name}",
                    resource_version=version,
                    timeout_seconds=WATCH_TIMEOUT_SECONDS,
                ):
                    found = event["object"]
                    version = found.metadata.resource_version
                    self._record(found)
                    if self._stop.is_set():
                        break
            except ApiException as err:
                if err.status != 410:
                    raise
                version = None
            finally:
                stream.stop()

    def _record(self, found: client.V1Deployment) -> None:
        annotations = found.spec.template.metadata.annotations or {}
        value = annotations.get(HASH_ANNOTATION)
        if not self.hashes or self.hashes[-1] != value:
            self.hashes.append(value)
        generation = int(found.metadata.generation)
        if not self.generations or self.generations[-1] != generation:
            self.generations.append(generation)
