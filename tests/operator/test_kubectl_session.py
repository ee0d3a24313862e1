"""What people see: `kubectl get fr` columns and `kubectl describe fr` status and Events."""

from __future__ import annotations

import yaml

from tests.controlplane.launcher import ControlPlane
from tests.operator.conftest import Cluster, OperatorProcess, fast_copy, load_example


def test_kubectl_get_and_describe_show_stage_readiness_and_events(
    control_plane: ControlPlane, cluster: Cluster, operator: OperatorProcess
) -> None:
    rollout = fast_copy(load_example("six-week-rollout.yaml"), stage_seconds=3)
    namespace = ["-n", cluster.namespace]
    applied = control_plane.kubectl(
        "apply", *namespace, "-f", "-", stdin=yaml.safe_dump(rollout)
    ).stdout
    assert "featurerollout.flagstage.io/insights-api created" in applied
    cluster.wait_stage("insights-api", "week-2", timeout=10)

    table = control_plane.kubectl("get", "fr", *namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "STAGE", "ENABLED", "NEXT", "READY", "DEGRADED", "AGE"]
    assert row.split()[:3] == ["insights-api", "week-2", "1"]
    assert row.split()[3] == cluster.status("insights-api")["nextStageAt"]
    assert row.split()[4:6] == ["True", "False"]

    described = control_plane.kubectl("describe", "fr", "insights-api", *namespace).stdout
    for expected in ("Stage:", "Config Hash:", "Conditions:", "StageChanged", "week-2"):
        assert expected in described
    listed = control_plane.kubectl("get", "flagstage", *namespace).stdout
    assert "insights-api" in listed, "the category finds rollouts too"
