"""The health gate against a real API server, with the test acting as the Deployment controller.

No controller-manager runs here, so nothing ever writes a Deployment's status by itself: each
test writes it through the `/status` subresource, the way the Deployment controller does, and
watches the operator react on its next tick.
"""

from __future__ import annotations

import time
from typing import Any

from flagstage.cli import main as flagstage
from tests.controlplane.launcher import ControlPlane
from tests.operator.conftest import (
    Cluster,
    OperatorProcess,
    deployment,
    fast_copy,
    load_example,
    wait_for,
)

NAME = "insights-api"
CONFIG_MAP = "insights-api-features"
MERGE_PATCH = "application/merge-patch+json"


def _gated_rollout(*, stage_seconds: int, window: str) -> dict[str, Any]:
    rollout = fast_copy(load_example("six-week-rollout.yaml"), stage_seconds=stage_seconds)
    rollout["spec"]["healthGate"] = {"window": window}
    return rollout


def _create_deployment(cluster: Cluster) -> None:
    cluster.apps.create_namespaced_deployment(cluster.namespace, deployment(NAME))


def _report_available(cluster: Cluster, available: int) -> None:
    """Write the Deployment's status as its controller would: one replica, `available` up."""
    status = {
        "observedGeneration": 1,
        "replicas": 1,
        "updatedReplicas": 1,
        "readyReplicas": available,
        "availableReplicas": available,
    }
    cluster.apps.patch_namespaced_deployment_status(
        NAME, cluster.namespace, {"status": status}, _content_type=MERGE_PATCH
    )


def _condition_is(cluster: Cluster, kind: str, reason: str) -> dict[str, Any] | None:
    condition = cluster.condition(NAME, kind)
    return condition if condition.get("reason") == reason else None


def test_a_due_stage_waits_while_a_workload_is_unavailable(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    _create_deployment(cluster)
    _report_available(cluster, 0)
    cluster.create(_gated_rollout(stage_seconds=2, window="1s"))
    cluster.wait_stage(NAME, "week-1", timeout=10)

    waiting = wait_for(
        "Progressing=WaitingForHealthyWorkloads",
        lambda: _condition_is(cluster, "Progressing", "WaitingForHealthyWorkloads"),
        timeout=10,
    )
    assert "Deployment insights-api has 0 of 1 replicas available" in waiting["message"]
    time.sleep(1)
    assert cluster.status(NAME)["stage"]["name"] == "week-1"
    assert cluster.condition(NAME, "Degraded")["status"] == "False", "a wait is no failure"

    _report_available(cluster, 1)
    cluster.wait_stage(NAME, "week-2", timeout=10)
    assert "WaitingForHealthyWorkloads" in cluster.reasons(NAME)


def test_a_change_that_breaks_a_workload_is_rolled_back_and_held(
    cluster: Cluster, operator: OperatorProcess, control_plane: ControlPlane
) -> None:
    _create_deployment(cluster)
    _report_available(cluster, 1)
    cluster.create(_gated_rollout(stage_seconds=2, window="4s"))
    cluster.wait_stage(NAME, "week-1", timeout=10)
    good = wait_for(
        "the ConfigMap at week-1",
        lambda: (found := cluster.config_map(CONFIG_MAP)) is not None and found,
    )
    good_data = dict(good.data)

    # week-2 goes live once week-1's watch is over; then the workload falls over.
    cluster.wait_stage(NAME, "week-2", timeout=10)
    _report_available(cluster, 0)
    degraded = wait_for(
        "Degraded=WorkloadUnavailable",
        lambda: _condition_is(cluster, "Degraded", "WorkloadUnavailable"),
        timeout=5,
    )
    assert degraded["status"] == "True"
    assert "Deployment insights-api has 0 of 1 replicas available" in degraded["message"]
    assert "rolled back to stage 'week-1'" in degraded["message"]

    status = cluster.status(NAME)
    assert status["stage"]["name"] == "week-1"
    assert status["history"][-1]["reason"] == "RolledBackUnhealthy"
    wait_for("week-1's exact config back", lambda: cluster.config_map(CONFIG_MAP).data == good_data)
    events = [event for event in cluster.events(NAME) if event.reason == "WorkloadUnavailable"]
    assert len(events) == 1 and events[0].type == "Warning"
    assert "Deployment insights-api" in events[0].message

    table = control_plane.kubectl("get", "fr", NAME, "-n", cluster.namespace).stdout
    header, row = table.splitlines()[:2]
    # NEXT is blank while held, so read the column at its header's offset.
    column = header.index("DEGRADED")
    assert row[column:].split()[0] == "True"

    # Healthy again and past due, it holds until someone resumes it.
    _report_available(cluster, 1)
    time.sleep(2.5)
    assert cluster.status(NAME)["stage"]["name"] == "week-1"
    assert flagstage(["resume", NAME, "-n", cluster.namespace]) == 0
    wait_for(
        "Degraded cleared by the resume",
        lambda: cluster.condition(NAME, "Degraded").get("status") == "False",
    )
    assert cluster.condition(NAME, "Paused")["status"] == "False"
