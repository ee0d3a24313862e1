"""The health gate's decision on its own: workload objects and a clock, no cluster."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flagstage_operator.reconciling import (
    AVAILABLE,
    RESUME_ANNOTATION,
    UNAVAILABLE,
    UPDATING,
    HealthReader,
    WorkloadHealth,
    assess_workload,
    reconcile,
)

from flagstage.model import Workload
from tests.operator.conftest import load_example

START = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _body(window: str = "10m") -> dict[str, Any]:
    body = copy.deepcopy(load_example("six-week-rollout.yaml"))
    body["metadata"].update(namespace="insights", uid="u-1", generation=1)
    body["spec"]["schedule"] = {"start": "2026-11-30T08:00:00Z", "stageDuration": "1h"}
    body["spec"]["healthGate"] = {"window": window}
    return body


class Workloads:
    """A health reader whose answer the test sets, counting how often it is asked."""

    def __init__(self) -> None:
        self.state = AVAILABLE
        self.reads = 0

    def __call__(self, workloads: Sequence[Workload]) -> list[WorkloadHealth]:
        self.reads += 1
        return [WorkloadHealth(w.kind, w.name, self.state, f"is {self.state}") for w in workloads]


def _after(body: dict[str, Any], at: datetime, reader: HealthReader) -> dict[str, Any]:
    body["status"] = reconcile(body, now=at, read_health=reader).status
    return body


def _condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in body["status"]["conditions"] if c["type"] == kind)


def _stage(body: dict[str, Any]) -> str:
    return str(body["status"]["stage"]["name"])


def _deployment(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "api", "generation": 3},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 3, **status},
    }


@pytest.mark.parametrize(
    ("manifest", "state", "detail"),
    [
        (None, UNAVAILABLE, "does not exist"),
        (
            _deployment(replicas=2, updatedReplicas=2, availableReplicas=2),
            AVAILABLE,
            "2 of 2",
        ),
        (
            {**_deployment(), "status": {"observedGeneration": 2}},
            UPDATING,
            "generation 3 not yet observed",
        ),
        (_deployment(replicas=3, updatedReplicas=1, availableReplicas=2), UPDATING, "1 of 2"),
        (_deployment(replicas=2, updatedReplicas=2, availableReplicas=1), UNAVAILABLE, "1 of 2"),
        (
            _deployment(
                replicas=3,
                updatedReplicas=1,
                availableReplicas=2,
                conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}],
            ),
            UNAVAILABLE,
            "progress deadline",
        ),
        (
            {"metadata": {"generation": 1}, "spec": {"replicas": 0}, "status": {}},
            UPDATING,
            "generation 1 not yet observed",
        ),
        (
            {"metadata": {"generation": 1}, "spec": {}, "status": {"observedGeneration": 1}},
            UPDATING,
            "0 of 1 replicas updated",
        ),
    ],
    ids=["missing", "available", "unobserved", "rolling", "down", "stuck", "new", "default-one"],
)
def test_a_workload_is_available_only_when_its_rollout_is_done_and_every_replica_is_up(
    manifest: dict[str, Any] | None, state: str, detail: str
) -> None:
    health = assess_workload("Deployment", "api", manifest)
    assert health.state == state
    assert detail in str(health) and str(health).startswith("Deployment api ")


def test_a_due_stage_waits_for_unavailable_workloads_and_then_gets_its_whole_duration() -> None:
    workloads = Workloads()
    body = _after(_body(), START, workloads)
    assert _stage(body) == "week-1"

    workloads.state = UNAVAILABLE
    waiting = reconcile(body, now=START + HOUR, read_health=workloads)
    body["status"] = waiting.status
    assert _stage(body) == "week-1"
    progressing = _condition(body, "Progressing")
    assert progressing["reason"] == "WaitingForHealthyWorkloads"
    assert "Deployment insights-api is Unavailable" in progressing["message"]
    assert [n.reason for n in waiting.notices] == ["WaitingForHealthyWorkloads"]
    again = reconcile(body, now=START + HOUR + timedelta(minutes=1), read_health=workloads)
    assert again.notices == [], "one Event when the wait begins, not one per tick"

    workloads.state = AVAILABLE
    released = START + HOUR + timedelta(minutes=5)
    body = _after(body, released, workloads)
    assert _stage(body) == "week-2"
    assert body["status"]["stageStartedAt"] == "2026-11-30T09:05:00Z"
    assert body["status"]["nextStageAt"] == "2026-11-30T10:05:00Z"
    assert body["status"]["healthGate"]["lastGood"]["name"] == "week-1"


def test_a_due_stage_waits_until_the_watch_of_the_last_change_is_over() -> None:
    workloads = Workloads()
    body = _after(_body(window="90m"), START, workloads)
    body = _after(body, START + HOUR, workloads)
    assert _stage(body) == "week-1"
    assert (
        "the watch of stage 'week-1' until 2026-11-30T09:30:00Z"
        in (_condition(body, "Progressing")["message"])
    )
    body = _after(body, START + timedelta(minutes=90), workloads)
    assert _stage(body) == "week-2"


def test_a_workload_that_breaks_after_a_change_sends_the_rollout_back_and_holds_it() -> None:
    workloads = Workloads()
    body = _after(_body(), START, workloads)
    good_hash = body["status"]["configHash"]
    body = _after(body, START + HOUR, workloads)
    assert _stage(body) == "week-2"

    workloads.state = UNAVAILABLE
    outcome = reconcile(body, now=START + HOUR + timedelta(minutes=3), read_health=workloads)
    body["status"] = outcome.status
    assert _stage(body) == "week-1"
    assert body["status"]["configHash"] == good_hash
    assert outcome.config_map is not None
    assert outcome.config_map["metadata"]["annotations"]["flagstage.io/stage"] == "week-1"
    assert body["status"]["history"][-1]["reason"] == "RolledBackUnhealthy"
    degraded = _condition(body, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "WorkloadUnavailable")
    assert "Deployment insights-api is Unavailable" in degraded["message"]
    assert "rolled back to stage 'week-1'" in degraded["message"]
    assert _condition(body, "Paused")["reason"] == "WorkloadUnavailable"
    assert "WorkloadUnavailable" in [n.reason for n in outcome.notices]

    # Held: healthy again and long past due, it stays until someone resumes it.
    workloads.state = AVAILABLE
    body = _after(body, START + 3 * HOUR, workloads)
    assert _stage(body) == "week-1"
    assert _condition(body, "Degraded")["status"] == "True"

    body["metadata"]["annotations"] = {RESUME_ANNOTATION: "2026-11-30T11:00:00.000000Z"}
    body = _after(body, START + 3 * HOUR + timedelta(minutes=1), workloads)
    assert _condition(body, "Degraded")["status"] == "False"
    assert _condition(body, "Paused")["status"] == "False"
    assert "failure" not in body["status"]["healthGate"]


def test_a_workload_that_breaks_after_the_watch_only_holds_the_schedule() -> None:
    workloads = Workloads()
    body = _after(_body(), START, workloads)
    body = _after(body, START + HOUR, workloads)
    workloads.state = UNAVAILABLE
    body = _after(body, START + HOUR + timedelta(minutes=20), workloads)
    assert _stage(body) == "week-2"
    assert _condition(body, "Degraded")["status"] == "False"


def test_a_rolling_update_in_progress_is_not_a_failure() -> None:
    workloads = Workloads()
    body = _after(_body(), START, workloads)
    body = _after(body, START + HOUR, workloads)
    workloads.state = UPDATING
    body = _after(body, START + HOUR + timedelta(minutes=1), workloads)
    assert _stage(body) == "week-2"
    assert _condition(body, "Degraded")["status"] == "False"


def test_a_change_made_while_a_workload_was_already_down_is_not_blamed() -> None:
    workloads = Workloads()
    workloads.state = UNAVAILABLE
    body = _after(_body(), START, workloads)
    assert "watchUntil" not in body["status"]["healthGate"]
    body = _after(body, START + timedelta(minutes=1), workloads)
    assert _stage(body) == "week-1"
    assert _condition(body, "Degraded")["status"] == "False"


def test_a_quiet_tick_reads_no_workload() -> None:
    workloads = Workloads()
    body = _after(_body(), START, workloads)
    watching = reconcile(body, now=START + timedelta(minutes=5), read_health=workloads)
    assert watching.quiet_until == START + timedelta(minutes=5), "health may change any time"
    body = _after(body, START + timedelta(minutes=11), workloads)
    reads = workloads.reads
    quiet = reconcile(body, now=START + timedelta(minutes=30), read_health=workloads)
    assert workloads.reads == reads
    assert quiet.quiet_until == START + HOUR


def test_without_a_gate_the_workloads_are_never_read() -> None:
    workloads = Workloads()
    body = _body()
    del body["spec"]["healthGate"]
    body = _after(body, START + 2 * HOUR, workloads)
    assert workloads.reads == 0 and "healthGate" not in body["status"]
