"""The operator killed outright again and again while a rollout walks its stages.

A rollout of eight short stages with a Rolling Deployment runs while a loop starts the operator,
lets it live a random while (seeded: FLAGSTAGE_CRASH_SEED replays a run) and SIGKILLs it. The
kills are aimed at three moments: during start-up, within the first reconcile after the initial
listing (when a stage that fell due while the operator was down is being written: the
ConfigMap, the pod template, the status, the Events, about 100 ms in all), and at any point of
the ticks that follow. Then one operator runs undisturbed, and the rollout must look as if
nothing had happened: at the stage the schedule gives, its ConfigMap equal to the core's render
of that stage, each stage once in the history at its planned time, and the Deployment's pod
template changed exactly once per stage.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from kubernetes import client

from flagstage.durations import parse_time
from flagstage.rendering import render_config
from tests.controlplane.launcher import ControlPlane
from tests.operator.conftest import Cluster, wait_for
from tests.reliability.conftest import budget
from tests.reliability.operators import (
    CONFIG_MAP,
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
KILLS = budget(20, 200)
# Where a kill lands, how likely that is, and how long after its moment it comes.
DURING_START_UP = (0.2, 1.5)  # after the process is spawned
IN_FIRST_RECONCILE = (0.0, 0.15)  # after kopf logs in, just before the initial listing
DURING_TICKS = (0.0, 1.5)  # after the liveness probe answers
AIMS = {"start-up": 0.2, "first reconcile": 0.5, "ticks": 0.3}
LOGGED_IN = "Initial authentication has finished."
# An aimed kill cycle takes about 2.5 s here; the walk lasts about as long as the kills, so
# they land all along it.
STAGE_SECONDS = max(6, math.ceil(KILLS * 2.5 / STAGES))
SEED = int(os.environ.get("FLAGSTAGE_CRASH_SEED", "20260907"))


@pytest.fixture
def operator(
    control_plane: ControlPlane, kube_namespace: str, tmp_path: Path
) -> Iterator[KillableOperator]:
    process = KillableOperator(kube_namespace, control_plane.kubeconfig, tmp_path / "operator.log")
    try:
        yield process
    finally:
        process.stop()


def logged_in(operator: KillableOperator, since: int) -> bool:
    return LOGGED_IN in operator.log()[since:]


@pytest.mark.timeout(STAGE_SECONDS * STAGES + 120)
def test_a_rollout_walks_its_stages_unharmed_through_repeated_sigkills(
    cluster: Cluster, recorder: TemplateRecorder, operator: KillableOperator
) -> None:
    manifest = walking_rollout(stages=STAGES, stage_seconds=STAGE_SECONDS)
    cluster.create(manifest)
    initial_generation = wait_for("the recorder's first sight", lambda: recorder.generations)[0]
    chance = random.Random(SEED)
    replay = f"(replay with FLAGSTAGE_CRASH_SEED={SEED})"

    aims = chance.choices(list(AIMS), weights=list(AIMS.values()), k=KILLS)
    for aim in aims:
        logged = len(operator.log()) if operator.log_path.exists() else 0
        operator.spawn()
        if aim == "start-up":
            time.sleep(chance.uniform(*DURING_START_UP))
        elif aim == "first reconcile":
            wait_for("kopf's login", partial(logged_in, operator, logged), interval=0.02)
            time.sleep(chance.uniform(*IN_FIRST_RECONCILE))
        else:
            wait_for("the liveness probe", operator.alive, timeout=30)
            time.sleep(chance.uniform(*DURING_TICKS))
        # An operator that died before its kill crashed by itself: that is a finding too.
        assert operator.running(), f"the operator exited by itself {replay}:\n{operator.log()}"
        operator.kill()

    operator.start()
    rollout = live_rollout(cluster)
    plan = planned_history(manifest, rollout)
    last = plan[-1]
    walk_ends = parse_time(last["time"]).timestamp()
    status = wait_for(
        f"the last stage with every stage in the history {replay}",
        lambda: (
            (found := cluster.status(NAME)).get("stage", {}).get("index") == last["index"]
            and len(found.get("history") or []) >= len(plan)
            and found
        ),
        timeout=max(walk_ends - time.time(), 0) + 30,
    )

    assert history_without_reasons(status) == plan, replay
    assert status["stageStartedAt"] == last["time"], replay
    rendered = render_config(rollout, last["index"])
    assert status["configHash"] == rendered.config_hash, replay
    config_map = cluster.config_map(CONFIG_MAP)
    assert isinstance(config_map, client.V1ConfigMap)
    assert config_map.data == rendered.data, replay

    wait_for("the last hash on the pod template", lambda: recorder.hashes[-1] == last["hash"])
    assert recorder.hashes == [None, *(entry["hash"] for entry in plan)], replay
    assert recorder.generations == list(
        range(initial_generation, initial_generation + len(plan) + 1)
    ), f"one pod-template change per stage {replay}"
