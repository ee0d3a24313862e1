"""Prometheus metrics of the operator, on their own registry and port.

A registry of our own keeps the exposition to what this operator means to publish, and lets
tests build as many operators as they like in one process.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    """Counters and gauges the reconciler updates; `registry` is what gets served."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconciles = Counter(
            "flagstage_reconciles",
            "Reconciles of FeatureRollouts, by result (ok, refused, failed).",
            ["result"],
            registry=self.registry,
        )
        self.failures = Counter(
            "flagstage_reconcile_failures",
            "Reconciles that could not finish a Kubernetes call, by step.",
            ["step"],
            registry=self.registry,
        )
        self.transitions = Counter(
            "flagstage_stage_transitions",
            "Stage changes, by reason (Scheduled, Promoted, RolledBack, CaughtUp).",
            ["namespace", "rollout", "reason"],
            registry=self.registry,
        )
        self.reloads = Counter(
            "flagstage_workload_reloads",
            "Pod-template hash patches made to roll a workload.",
            ["namespace", "rollout"],
            registry=self.registry,
        )
        self.stage = Gauge(
            "flagstage_rollout_stage_index",
            "Index of the live stage of each rollout (-1: not started).",
            ["namespace", "rollout"],
            registry=self.registry,
        )
        self.next_transition = Gauge(
            "flagstage_rollout_seconds_to_next_stage",
            "Seconds until the next stage starts by itself (-1: none scheduled).",
            ["namespace", "rollout"],
            registry=self.registry,
        )

    def observe_rollout(
        self, namespace: str, name: str, *, stage_index: int, seconds_to_next: float | None
    ) -> None:
        self.stage.labels(namespace, name).set(stage_index)
        self.next_transition.labels(namespace, name).set(
            -1 if seconds_to_next is None else max(seconds_to_next, 0.0)
        )

    def forget_rollout(self, namespace: str, name: str) -> None:
        for gauge in (self.stage, self.next_transition):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name)
