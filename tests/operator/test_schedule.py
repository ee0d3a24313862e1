"""Stages advance by themselves at nextStageAt, and that survives an operator restart."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta

from flagstage.durations import parse_time
from tests.operator.conftest import Cluster, OperatorProcess, fast_copy, load_example, wait_for

SIX_WEEKS = load_example("six-week-rollout.yaml")
CONFIG_MAP = "insights-api-features"
# What each stage of the six-week example turns on, in order.
ENABLED_AT = {
    "week-1": [],
    "week-2": ["temporal_analysis"],
    "week-3": ["format_detection", "temporal_analysis"],
    "week-4": ["enhanced_upload", "format_detection", "temporal_analysis"],
    "week-5": ["enhanced_upload", "event_driven_rag", "format_detection", "temporal_analysis"],
    "week-6": [
        "continuous_learning",
        "enhanced_upload",
        "event_driven_rag",
        "format_detection",
        "temporal_analysis",
    ],
}


def _features_on(cluster: Cluster) -> list[str]:
    config_map = cluster.config_map(CONFIG_MAP)
    assert config_map is not None
    document = json.loads(config_map.data["features.json"])
    return sorted(name for name, item in document["features"].items() if item["state"] == "on")


def test_the_six_week_example_walks_all_six_stages(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.create(fast_copy(SIX_WEEKS, stage_seconds=3))

    for stage, enabled in ENABLED_AT.items():
        status = cluster.wait_stage("insights-api", stage, timeout=10)
        assert status["enabled"] == enabled
        assert status["enabledCount"] == len(enabled)
        wait_for(
            f"the ConfigMap at {stage}", lambda enabled=enabled: _features_on(cluster) == enabled
        )
        config_map = cluster.config_map(CONFIG_MAP)
        assert config_map is not None
        assert config_map.metadata.annotations["flagstage.io/stage"] == stage
        assert config_map.metadata.annotations["flagstage.io/config-hash"] == status["configHash"]
        on_everywhere = {key for key, value in config_map.data.items() if value == "true"}
        assert on_everywhere == {f"FEATURE_{name.upper()}" for name in enabled}

    status = cluster.status("insights-api")
    assert "nextStageAt" not in status, "the last stage holds"
    assert [entry["stage"] for entry in status["history"]] == list(ENABLED_AT)
    assert cluster.condition("insights-api", "Progressing")["reason"] == "RolloutComplete"
    assert cluster.condition("insights-api", "Ready")["status"] == "True"
    assert cluster.reasons("insights-api").count("StageChanged") == len(ENABLED_AT)
    assert 'flagstage_rollout_stage_index{namespace="' in operator.metrics()


def test_a_restarted_operator_catches_up_from_the_status(
    cluster: Cluster, start_operator: Callable[..., OperatorProcess]
) -> None:
    first = start_operator()
    manifest = fast_copy(SIX_WEEKS, stage_seconds=3)
    cluster.create(manifest)
    cluster.wait_stage("insights-api", "week-2", timeout=10)
    first.stop()

    # While nobody watches, two more stages fall due; the calendar, not the restart, decides.
    time.sleep(6.5)
    assert cluster.status("insights-api")["stage"]["name"] == "week-2"
    start_operator()
    status = wait_for(
        "the restarted operator to pass week-3",
        lambda: (found := cluster.status("insights-api"))["stage"]["index"] >= 3 and found,
        timeout=10,
    )

    history = status["history"]
    stages = [entry["stage"] for entry in history]
    assert stages == list(ENABLED_AT)[: len(stages)], "each stage recorded once, in order"
    start = parse_time(manifest["spec"]["schedule"]["start"])
    for index, entry in enumerate(history):
        # Each stage began when the plan said, however late the operator noticed.
        assert parse_time(entry["time"]) == start + timedelta(seconds=3 * index)
