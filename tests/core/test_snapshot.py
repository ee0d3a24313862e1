"""A snapshot answers is_enabled per tenant, counting what each feature requires."""

from __future__ import annotations

from typing import Any

from flagstage.bucketing import in_rollout
from flagstage.rendering import FEATURES_KEY, render_config
from flagstage.snapshot import Snapshot
from flagstage.state import EVERYONE, NOBODY, FeatureState, Reach
from flagstage.validation import parse_rollout


def snapshot_of(reaches: dict[str, Reach], requires: dict[str, list[str]]) -> Snapshot:
    states = {name: FeatureState(name, reach, "test") for name, reach in reaches.items()}
    return Snapshot(states, requires)


def test_features_on_or_off_for_everyone_answer_without_a_tenant() -> None:
    snapshot = snapshot_of({"a": EVERYONE, "b": NOBODY}, {})
    assert snapshot.is_enabled("a")
    assert not snapshot.is_enabled("b", "acme")


def test_an_unknown_feature_is_off() -> None:
    assert not snapshot_of({"a": EVERYONE}, {}).is_enabled("nope", "acme")


def test_a_feature_whose_requirement_is_off_is_off_and_says_which() -> None:
    snapshot = snapshot_of({"parent": NOBODY, "child": EVERYONE}, {"child": ["parent"]})
    assert not snapshot.is_enabled("child", "acme")
    assert snapshot.blocking_requirement("child", "acme") == "parent"


def test_a_partial_feature_is_on_for_named_tenants_and_its_bucket_only() -> None:
    snapshot = snapshot_of({"a": Reach(10, ("acme",))}, {})
    assert snapshot.is_enabled("a", "acme")
    assert not snapshot.is_enabled("a")
    tenants = [f"t{i}" for i in range(500)]
    assert [snapshot.is_enabled("a", t) for t in tenants] == [
        in_rollout("a", t, 10) for t in tenants
    ]


def test_a_child_is_on_only_where_its_partial_parent_is_on() -> None:
    snapshot = snapshot_of(
        {"parent": Reach(0, ("acme", "globex")), "child": Reach(0, ("acme", "initech"))},
        {"child": ["parent"]},
    )
    assert snapshot.is_enabled("child", "acme")
    assert not snapshot.is_enabled("child", "initech")


def test_the_same_tenant_gets_the_same_answer_from_every_snapshot_of_a_config(
    canary: dict[str, Any],
) -> None:
    text = render_config(parse_rollout(canary), 2).data[FEATURES_KEY]
    first, second = Snapshot.from_json(text), Snapshot.from_json(text)
    tenants = [f"tenant-{i}" for i in range(300)]
    answers = [first.is_enabled("temporal_analysis", t) for t in tenants]
    assert answers == [second.is_enabled("temporal_analysis", t) for t in tenants]
    assert 100 <= sum(answers) <= 200
