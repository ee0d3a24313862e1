"""Two operator replicas with leader election: one acts, the other takes over when it dies.

Both run with `--leader-election` on one Lease while a rollout of short stages walks with a
Rolling Deployment. The holder is killed outright in the middle of the walk; the standby must
hold the Lease within the lease time and finish the walk, with each stage once in the history
at its planned time, the pod template changed once per stage, and no moment at which both
replicas wrote: every Event names the replica that posted it, and the dead holder's Events
all come before the standby's first.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from flagstage.durations import parse_time
from tests.controlplane.launcher import ControlPlane
from tests.operator.conftest import Cluster, wait_for
from tests.reliability.operators import (
    NAME,
    KillableOperator,
    TemplateRecorder,
    history_without_reasons,
    live_rollout,
    planned_history,
    walking_rollout,
)

pytestmark = [pytest.mark.kube, pytest.mark.slow]

STAGES = 8
STAGE_SECONDS = 4
LEASE = "flagstage-operator"
LEASE_SECONDS = 3
# A standby notices the silence within one retry (a fifth of the lease here) after the lease
# time; the rest is room for a machine busy with other work.
TAKEOVER_SLACK_SECONDS = 3
WRITES = re.compile(r"wrote ConfigMap|rolls to config|moved from")
IDENTITY = re.compile(r"(\S+) stands for leader on Lease")


@pytest.fixture
def replicas(
    control_plane: ControlPlane, kube_namespace: str, tmp_path: Path
) -> Iterator[list[KillableOperator]]:
    election = [
        "--leader-election",
        f"--lease-name={LEASE}",
        f"--lease-namespace={kube_namespace}",
        f"--lease-seconds={LEASE_SECONDS}",
    ]
    started = [
        KillableOperator(
            kube_namespace, control_plane.kubeconfig, tmp_path / f"replica-{index}.log", election
        )
        for index in range(2)
    ]
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def identity_of(replica: KillableOperator) -> str:
    found = IDENTITY.search(replica.log())
    assert found, f"the replica did not stand for leader; its log:\n{replica.log()}"
    return found.group(1)


def holder(cluster: Cluster) -> str | None:
    leases = client.CoordinationV1Api(cluster.core.api_client)
    try:
        lease = leases.read_namespaced_lease(LEASE, cluster.namespace)
    except ApiException as err:
        if err.status == 404:
            return None
        raise
    return str(lease.spec.holder_identity or "") or None


def writes_in(log: str) -> list[str]:
    return [line for line in log.splitlines() if WRITES.search(line)]


def test_the_standby_takes_over_a_killed_leader_and_nothing_is_lost_or_done_twice(
    cluster: Cluster, recorder: TemplateRecorder, replicas: list[KillableOperator]
) -> None:
    first, second = replicas
    first.start()
    wait_for("the first replica to hold the Lease", lambda: holder(cluster) == identity_of(first))
    second.start()
    standby = identity_of(second)
    initial_generation = wait_for("the recorder's first sight", lambda: recorder.generations)[0]

    manifest = walking_rollout(stages=STAGES, stage_seconds=STAGE_SECONDS)
    cluster.create(manifest)
    cluster.wait_stage(NAME, "step-3", timeout=STAGE_SECONDS * 3 + 10)
    assert holder(cluster) == identity_of(first)
    assert not writes_in(second.log()), "the standby wrote while the leader held the Lease"

    first.kill()
    killed_at = time.time()
    wait_for(
        "the standby to take the Lease over",
        lambda: holder(cluster) == standby,
        timeout=LEASE_SECONDS + TAKEOVER_SLACK_SECONDS,
        interval=0.1,
    )
    took_over = time.time() - killed_at

    plan = planned_history(manifest, live_rollout(cluster))
    last = plan[-1]
    status = wait_for(
        "the standby to finish the walk",
        lambda: len((found := cluster.status(NAME)).get("history") or []) >= len(plan) and found,
        timeout=max(parse_time(last["time"]).timestamp() - time.time(), 0) + 20,
    )
    assert history_without_reasons(status) == plan
    assert status["stage"]["index"] == last["index"]
    wait_for("the last hash on the pod template", lambda: recorder.hashes[-1] == last["hash"])
    assert recorder.hashes == [None, *(entry["hash"] for entry in plan)]
    assert recorder.generations == list(
        range(initial_generation, initial_generation + len(plan) + 1)
    ), "one pod-template change per stage"

    # Who wrote when: the dead leader's Events all come before the standby's first.
    events = cluster.events(NAME)
    by = {str(event.reporting_instance) for event in events}
    assert by == {identity_of(first), standby}, by
    leader_times = [e.first_timestamp for e in events if e.reporting_instance != standby]
    standby_times = [e.first_timestamp for e in events if e.reporting_instance == standby]
    assert max(leader_times) <= min(standby_times), "both replicas wrote in the same period"
    assert max(leader_times).timestamp() <= killed_at + 1
    assert writes_in(second.log()), "the standby took over but wrote nothing"
    assert took_over <= LEASE_SECONDS + TAKEOVER_SLACK_SECONDS
