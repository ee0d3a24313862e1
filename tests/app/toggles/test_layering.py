"""Defaults, then FEATURE_* variables, then the mounted file: each overrides the one before."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flagstage_app.toggles import (
    FEATURE_NAMES,
    build_snapshot,
    explain,
    read_env_overrides,
)

from flagstage.errors import ConfigError
from flagstage.rendering import parse_features_document

Render = Callable[..., dict[str, str]]


def document(data: dict[str, str]) -> dict[str, Any]:
    return parse_features_document(data["features.json"])


def test_without_any_rollout_every_feature_is_at_its_default() -> None:
    snapshot = build_snapshot()
    assert sorted(snapshot.features) == sorted(FEATURE_NAMES)
    assert not any(snapshot.is_enabled(name, "acme") for name in FEATURE_NAMES)
    assert {view.source for view in snapshot.features.values()} == {"default"}
    assert snapshot.config_hash is None


def test_environment_variables_override_the_defaults() -> None:
    env = read_env_overrides({"FEATURE_TEMPORAL_ANALYSIS": "true", "FEATURE_FORMAT_DETECTION": "1"})
    snapshot = build_snapshot(env=env)
    assert snapshot.is_enabled("temporal_analysis", "acme")
    assert snapshot.is_enabled("format_detection")
    assert snapshot.features["temporal_analysis"].source == "env FEATURE_TEMPORAL_ANALYSIS"
    assert snapshot.features["enhanced_upload"].source == "default"


def test_an_unreadable_environment_value_is_ignored_and_reported() -> None:
    env = read_env_overrides({"FEATURE_TEMPORAL_ANALYSIS": "maybe"})
    assert env.values == {}
    assert env.problems == ("FEATURE_TEMPORAL_ANALYSIS='maybe' ignored: use true or false",)


def test_the_file_overrides_the_environment(render: Render) -> None:
    env = read_env_overrides({"FEATURE_TEMPORAL_ANALYSIS": "false", "FEATURE_ENHANCED_UPLOAD": "1"})
    week_3 = document(render(2))
    snapshot = build_snapshot(env=env, document=week_3)
    assert snapshot.is_enabled("temporal_analysis")
    assert snapshot.features["temporal_analysis"].source == "file: stage week-2"
    # The file says enhanced_upload is off (week-4 has not come yet), whatever the env says.
    assert not snapshot.is_enabled("enhanced_upload")
    assert snapshot.config_hash == week_3["hash"]
    assert snapshot.stage == "week-3"


def test_a_feature_whose_requirement_is_off_is_off_and_says_why() -> None:
    env = read_env_overrides({"FEATURE_MULTI_FORMAT_SUPPORT": "true"})
    snapshot = build_snapshot(env=env)
    assert not snapshot.is_enabled("multi_format_support", "acme")
    why = explain(snapshot, "multi_format_support", "acme")
    assert not why.enabled
    assert why.reason == "off: requires format_detection, which is off"


def test_the_explanation_follows_a_chain_of_requirements() -> None:
    env = read_env_overrides(
        {"FEATURE_CONTINUOUS_LEARNING": "true", "FEATURE_EVENT_DRIVEN_RAG": "true"}
    )
    why = explain(build_snapshot(env=env), "continuous_learning", "acme")
    assert why.reason == (
        "off: requires event_driven_rag, which requires enhanced_upload, which is off"
    )


def test_the_codes_requirements_hold_even_when_the_file_drops_them(render: Render) -> None:
    def drop_requirement(manifest: dict[str, Any]) -> None:
        for feature in manifest["spec"]["features"]:
            if feature["name"] == "multi_format_support":
                feature.pop("requires")
        manifest["spec"]["stages"][1]["enable"].append("multi_format_support")

    snapshot = build_snapshot(document=document(render(1, drop_requirement)))
    assert snapshot.features["multi_format_support"].reach.everyone
    assert not snapshot.is_enabled("multi_format_support", "acme")
    assert snapshot.features["multi_format_support"].requires == ("format_detection",)


def test_a_partial_rollout_is_explained_per_tenant(render: Render) -> None:
    def canary(manifest: dict[str, Any]) -> None:
        manifest["spec"]["stages"][1]["tenants"] = {"ids": ["acme"]}

    snapshot = build_snapshot(document=document(render(1, canary)))
    assert explain(snapshot, "temporal_analysis", "acme").reason == (
        "on for this tenant (tenants acme), from file: stage week-2"
    )
    assert explain(snapshot, "temporal_analysis", "globex").reason == (
        "off for this tenant: on for tenants acme only, from file: stage week-2"
    )
    assert explain(snapshot, "temporal_analysis", None).reason == (
        "off: on for tenants acme only, and the request names no tenant"
    )


def test_a_cycle_between_the_file_and_the_code_is_refused(render: Render) -> None:
    text = json.loads(render(-1)["features.json"])
    text["features"]["format_detection"]["requires"] = ["multi_format_support"]
    # Bypass the hash check: this is about the merge, which the parser cannot see.
    with pytest.raises(ConfigError, match="cycle"):
        build_snapshot(document=text)


def test_an_unknown_feature_is_off_with_a_reason() -> None:
    why = explain(build_snapshot(), "teleportation", "acme")
    assert (why.enabled, why.reason) == (False, "off: no such feature")
