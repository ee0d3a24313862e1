"""The operator outlives an API server and etcd restart, and catches up without a restart.

The outage runs on a control plane of this module's own: the session's plane serves every
other test, and stopping it would fail them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from flagstage.durations import parse_time
from tests.controlplane.launcher import ControlPlane
from tests.operator.conftest import (
    Cluster,
    OperatorProcess,
    dedicated_control_plane,
    fast_copy,
    load_example,
    wait_for,
)

pytestmark = [pytest.mark.kube, pytest.mark.slow]

NAME = "insights-api"
STAGE_SECONDS = 6
NAMESPACE = "restarts"


@pytest.fixture(scope="module")
def own_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    with dedicated_control_plane(request, NAMESPACE) as plane:
        yield plane


@pytest.fixture
def own_cluster(own_plane: ControlPlane) -> Iterator[Cluster]:
    with own_plane.api_client() as api:
        yield Cluster(api, NAMESPACE)


@pytest.fixture
def own_operator(own_plane: ControlPlane, tmp_path: Path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(NAMESPACE, own_plane.kubeconfig, tmp_path / "operator.log")
    try:
        yield process.start()
    finally:
        process.stop()


def test_a_stage_due_during_an_outage_is_applied_once_the_api_server_is_back(
    own_plane: ControlPlane, own_cluster: Cluster, own_operator: OperatorProcess
) -> None:
    manifest = fast_copy(load_example("six-week-rollout.yaml"), stage_seconds=STAGE_SECONDS)
    own_cluster.create(manifest)
    own_cluster.wait_stage(NAME, "week-1", timeout=10)
    start = parse_time(manifest["spec"]["schedule"]["start"])

    # week-2 falls due while neither kube-apiserver nor etcd runs.
    with own_plane.outage(etcd=True):
        remaining = (start + timedelta(seconds=STAGE_SECONDS + 1)).timestamp() - time.time()
        time.sleep(max(remaining, 0.0))

    status = wait_for(
        "the operator to catch up with week-2",
        lambda: (found := own_cluster.status(NAME))["stage"]["index"] >= 1 and found,
        timeout=30,
    )
    week_2 = status["history"][1]
    assert week_2["stage"] == "week-2"
    assert parse_time(week_2["time"]) == start + timedelta(seconds=STAGE_SECONDS)
    wait_for(
        "the ConfigMap at week-2 or later",
        lambda: (
            (found := own_cluster.config_map("insights-api-features")) is not None
            and found.metadata.annotations["flagstage.io/stage"] != "week-1"
        ),
    )

    # Something only the watch can show: a rollout created after the restart.
    second = fast_copy(load_example("six-week-rollout.yaml"), stage_seconds=3600)
    second["metadata"]["name"] = "after-restart"
    second["spec"]["target"]["configMap"] = "after-restart-features"
    own_cluster.create(second)
    wait_for(
        "the new rollout's ConfigMap", lambda: own_cluster.config_map("after-restart-features")
    )
    assert own_operator.alive(), "the same operator process, never restarted"
