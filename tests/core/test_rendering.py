"""Rendering gives the workload exactly the plan's state, byte for byte the same every time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flagstage.errors import ConfigError
from flagstage.rendering import (
    FEATURES_KEY,
    FLAGD_KEY,
    parse_features_document,
    render_config,
    render_config_map,
)
from flagstage.snapshot import Snapshot
from flagstage.validation import parse_rollout

from .builders import feature, rollout


def test_each_week_of_the_six_week_plan_turns_on_one_more_feature(
    six_week: dict[str, Any],
) -> None:
    plan = parse_rollout(six_week)
    enabled = [render_config(plan, index).enabled for index in range(6)]
    assert enabled[0] == []
    assert enabled[1] == ["temporal_analysis"]
    assert enabled[2] == ["format_detection", "temporal_analysis"]
    assert "enhanced_upload" in enabled[3]
    assert "event_driven_rag" in enabled[4]
    assert enabled[5] == sorted(
        [
            "temporal_analysis",
            "format_detection",
            "enhanced_upload",
            "event_driven_rag",
            "continuous_learning",
        ]
    )


def test_environment_keys_say_true_only_for_features_on_for_everyone(
    canary: dict[str, Any],
) -> None:
    plan = parse_rollout(canary)
    assert render_config(plan, 1).data["FEATURE_TEMPORAL_ANALYSIS"] == "false"
    assert render_config(plan, 3).data["FEATURE_TEMPORAL_ANALYSIS"] == "true"


def test_the_features_file_carries_name_generation_stage_rules_and_hash(
    canary: dict[str, Any],
) -> None:
    canary["metadata"]["generation"] = 7
    rendered = render_config(parse_rollout(canary), 1)
    document = json.loads(rendered.data[FEATURES_KEY])
    assert document["schemaVersion"] == 1
    assert document["rollout"] == {
        "name": "insights-temporal-canary",
        "namespace": "default",
        "generation": 7,
    }
    assert document["stage"] == {"index": 1, "name": "ten-percent"}
    entry = document["features"]["temporal_analysis"]
    assert entry["state"] == "partial"
    assert entry["percentage"] == 10
    assert entry["tenants"] == ["acme", "globex"]
    assert document["hash"] == rendered.config_hash


def test_rendering_twice_gives_identical_bytes(six_week: dict[str, Any]) -> None:
    first = render_config(parse_rollout(six_week), 3)
    second = render_config(parse_rollout(six_week), 3)
    assert first.data == second.data
    assert first.config_hash == second.config_hash


def test_a_description_change_keeps_the_hash_but_a_new_stage_changes_it(
    six_week: dict[str, Any],
) -> None:
    before = render_config(parse_rollout(six_week), 2)
    six_week["spec"]["features"][0]["description"] = "reworded"
    after = render_config(parse_rollout(six_week), 2)
    assert after.data[FEATURES_KEY] != before.data[FEATURES_KEY]
    assert after.config_hash == before.config_hash
    assert render_config(parse_rollout(six_week), 3).config_hash != before.config_hash


def test_a_kill_switch_turns_off_the_feature_and_everything_that_requires_it(
    six_week: dict[str, Any],
) -> None:
    six_week["spec"]["overrides"] = [{"feature": "format_detection", "force": "Disabled"}]
    rendered = render_config(parse_rollout(six_week), 5)
    assert rendered.enabled == ["temporal_analysis"]
    document = json.loads(rendered.data[FEATURES_KEY])
    assert document["features"]["format_detection"]["source"] == "override"
    assert document["features"]["continuous_learning"]["source"] == (
        "kill switch on format_detection"
    )


def test_flagd_gets_fractional_targeting_for_percentages_and_lists_for_named_tenants(
    canary: dict[str, Any],
) -> None:
    plan = parse_rollout(canary)
    pilots = json.loads(render_config(plan, 0).data[FLAGD_KEY])["flags"]["temporal_analysis"]
    assert pilots["defaultVariant"] == "off"
    assert pilots["targeting"] == {
        "if": [{"in": [{"var": "targetingKey"}, ["acme", "globex"]]}, "on", "off"]
    }
    half = json.loads(render_config(plan, 2).data[FLAGD_KEY])["flags"]["temporal_analysis"]
    assert half["targeting"]["if"][2] == {"fractional": [["on", 5000], ["off", 5000]]}
    everyone = json.loads(render_config(plan, 3).data[FLAGD_KEY])["flags"]["temporal_analysis"]
    assert everyone == {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "on",
    }


def test_the_config_map_is_named_labelled_and_annotated_with_the_hash(
    six_week: dict[str, Any],
) -> None:
    plan = parse_rollout(six_week)
    rendered = render_config(plan, 1)
    config_map = render_config_map(plan, rendered)
    assert config_map["metadata"]["name"] == "insights-api-features"
    assert config_map["metadata"]["labels"]["flagstage.io/rollout"] == "insights-api"
    assert config_map["metadata"]["annotations"]["flagstage.io/config-hash"] == (
        rendered.config_hash
    )


def test_a_rendered_file_reads_back_into_the_same_state(canary: dict[str, Any]) -> None:
    rendered = render_config(parse_rollout(canary), 1)
    snapshot = Snapshot.from_json(rendered.data[FEATURES_KEY])
    assert snapshot.config_hash == rendered.config_hash
    assert snapshot.stage == "ten-percent"
    assert snapshot.is_enabled("temporal_analysis", "acme")


@pytest.fixture
def good_file(six_week: dict[str, Any]) -> str:
    return render_config(parse_rollout(six_week), 3).data[FEATURES_KEY]


def test_a_truncated_file_is_refused(good_file: str) -> None:
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_features_document(good_file[: len(good_file) // 2])


def test_a_hand_edited_file_is_refused_by_its_hash(good_file: str) -> None:
    document = json.loads(good_file)
    document["features"]["real_time_ingestion"]["percentage"] = 100
    with pytest.raises(ConfigError, match="does not match its content"):
        parse_features_document(json.dumps(document))


def test_an_unknown_schema_version_is_refused_with_what_to_do(good_file: str) -> None:
    document = json.loads(good_file)
    document["schemaVersion"] = 2
    with pytest.raises(ConfigError, match="schemaVersion 2; this build reads version 1"):
        parse_features_document(json.dumps(document))


def test_a_file_whose_feature_outreaches_its_requirement_is_refused() -> None:
    plan = rollout({"features": [feature("parent"), feature("child", "parent")]})
    document = json.loads(render_config(plan, -1).data[FEATURES_KEY])
    document["features"]["child"]["percentage"] = 100
    with pytest.raises(ConfigError, match="'child' is on but requires 'parent'"):
        parse_features_document(json.dumps(document))


@pytest.mark.parametrize("text", ["", "[]", "null", '{"schemaVersion": 1}'])
def test_empty_and_shapeless_files_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_features_document(text)
