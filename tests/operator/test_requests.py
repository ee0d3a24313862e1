"""People steer a rollout: pause and resume, manual promotion, rollback, the kill switch."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from flagstage.cli import main as flagstage
from tests.controlplane.assets import find_binary
from tests.controlplane.launcher import ControlPlane
from tests.operator.conftest import Cluster, OperatorProcess, fast_copy, load_example, wait_for

SIX_WEEKS = load_example("six-week-rollout.yaml")
NAME = "insights-api"
CONFIG_MAP = "insights-api-features"


def _ask(cluster: Cluster, command: str) -> None:
    assert flagstage([command, NAME, "-n", cluster.namespace]) == 0


def test_a_paused_rollout_holds_its_stage_until_resumed(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.create(fast_copy(SIX_WEEKS, stage_seconds=3))
    cluster.wait_stage(NAME, "week-1", timeout=10)
    _ask(cluster, "pause")
    wait_for("Paused=True", lambda: cluster.condition(NAME, "Paused").get("status") == "True")
    assert cluster.condition(NAME, "Paused")["reason"] == "PausedBySpec"

    time.sleep(4)
    status = cluster.status(NAME)
    assert status["stage"]["name"] == "week-1"
    assert "nextStageAt" not in status

    _ask(cluster, "resume")
    cluster.wait_stage(NAME, "week-2", timeout=8)
    assert cluster.condition(NAME, "Paused")["status"] == "False"
    assert {"Paused", "Resumed"} <= set(cluster.reasons(NAME))


def test_manual_promotion_waits_for_kubectl_flagstage_promote(
    cluster: Cluster,
    operator: OperatorProcess,
    control_plane: ControlPlane,
) -> None:
    cluster.create(fast_copy(SIX_WEEKS, stage_seconds=1, promotion="Manual"))
    cluster.wait_stage(NAME, "week-1", timeout=10)
    time.sleep(2.5)
    assert cluster.status(NAME)["stage"]["name"] == "week-1"
    assert cluster.condition(NAME, "Progressing")["reason"] == "AwaitingPromotion"

    # Through kubectl's plugin mechanism, as a person would type it (kubectl refuses flags
    # before a plugin's name, so the kubeconfig comes from the environment).
    kubectl = find_binary("kubectl")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "KUBECONFIG": str(control_plane.kubeconfig),
    }
    result = subprocess.run(
        [str(kubectl), "flagstage", "promote", NAME, "-n", cluster.namespace],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "promotion requested" in result.stdout

    status = cluster.wait_stage(NAME, "week-2", timeout=8)
    assert status["history"][-1]["reason"] == "Promoted"
    time.sleep(1.5)
    assert cluster.status(NAME)["stage"]["name"] == "week-2", "one request, one promotion"


def test_rollback_returns_to_the_previous_stage_and_its_exact_config(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.create(fast_copy(SIX_WEEKS, promotion="Manual"))
    cluster.wait_stage(NAME, "week-1", timeout=10)
    _ask(cluster, "promote")
    cluster.wait_stage(NAME, "week-2")
    week_2 = wait_for(
        "the week-2 ConfigMap",
        lambda: (
            (found := cluster.config_map(CONFIG_MAP))
            and found.metadata.annotations["flagstage.io/stage"] == "week-2"
            and found
        ),
    )
    _ask(cluster, "promote")
    cluster.wait_stage(NAME, "week-3")

    _ask(cluster, "rollback")
    status = cluster.wait_stage(NAME, "week-2")
    assert status["history"][-1]["reason"] == "RolledBack"
    back = wait_for(
        "the ConfigMap back at week-2",
        lambda: (
            (found := cluster.config_map(CONFIG_MAP))
            and found.metadata.annotations["flagstage.io/stage"] == "week-2"
            and found
        ),
    )
    assert back.data == week_2.data
    assert cluster.condition(NAME, "Paused")["reason"] == "RolledBack"

    _ask(cluster, "rollback")
    cluster.wait_stage(NAME, "week-1")
    assert flagstage(["rollback", "nobody-here", "-n", cluster.namespace]) == 1


def test_the_kill_switch_turns_a_feature_and_its_dependents_off(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    rollout = fast_copy(SIX_WEEKS, stage_seconds=3600)
    rollout["spec"]["schedule"]["start"] = "2026-01-05T09:00:00Z"  # long past: the last stage
    cluster.create(rollout)
    cluster.wait_stage(NAME, "week-6", timeout=10)

    cluster.patch(
        NAME,
        {
            "spec": {
                "overrides": [
                    {"feature": "format_detection", "force": "Disabled", "reason": "bad parses"}
                ]
            }
        },
    )
    status = wait_for(
        "the kill switch",
        lambda: (found := cluster.status(NAME))["observedGeneration"] == 2 and found,
    )
    assert status["enabled"] == ["temporal_analysis"]
    config_map = wait_for(
        "the ConfigMap without format_detection",
        lambda: (
            (found := cluster.config_map(CONFIG_MAP))
            and found.data["FEATURE_FORMAT_DETECTION"] == "false"
            and found
        ),
    )
    for dependent in ("enhanced_upload", "event_driven_rag", "continuous_learning"):
        assert config_map.data[f"FEATURE_{dependent.upper()}"] == "false"
    assert config_map.data["FEATURE_TEMPORAL_ANALYSIS"] == "true"


def test_an_invalid_update_keeps_the_config_map_and_says_why(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.create(fast_copy(SIX_WEEKS, stage_seconds=3600))
    cluster.wait_stage(NAME, "week-1", timeout=10)
    before = wait_for("the ConfigMap", lambda: cluster.config_map(CONFIG_MAP))

    # A cycle passes the schema (CEL cannot walk the graph) and is the core's to refuse.
    features = cluster.rollout(NAME)["spec"]["features"]
    features[1]["requires"] = ["multi_format_support"]
    cluster.patch(NAME, {"spec": {"features": features}})

    valid = wait_for(
        "Valid=False",
        lambda: (found := cluster.condition(NAME, "Valid"))["status"] == "False" and found,
    )
    assert valid["reason"] == "InvalidSpec"
    assert (
        "dependency cycle format_detection -> multi_format_support -> format_detection"
        in (valid["message"])
    )
    assert cluster.condition(NAME, "Ready")["status"] == "False"
    assert cluster.status(NAME)["observedGeneration"] == 2
    wait_for("a SpecRefused Event", lambda: "SpecRefused" in cluster.reasons(NAME))

    time.sleep(1.5)
    after = cluster.config_map(CONFIG_MAP)
    assert after is not None
    assert after.metadata.resource_version == before.metadata.resource_version
    assert cluster.reasons(NAME).count("SpecRefused") == 1, "one Event per refused generation"
