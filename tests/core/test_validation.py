"""Every validation rule refuses what it should, with a message naming the culprit."""

from __future__ import annotations

from typing import Any

import pytest

from flagstage.errors import SpecError
from flagstage.validation import parse_rollout, parse_spec

from .builders import feature, manifest


def problems_of(spec: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_rollout(manifest(spec))
    return [f"{p.path}: {p.message}" for p in caught.value.problems]


def only_problem(spec: dict[str, Any]) -> str:
    found = problems_of(spec)
    assert len(found) == 1, found
    return found[0]


def test_the_shipped_examples_are_valid(six_week: dict[str, Any], canary: dict[str, Any]) -> None:
    assert parse_rollout(six_week).spec.stages[-1].name == "week-6"
    assert parse_rollout(canary).name == "insights-temporal-canary"


def test_a_feature_requiring_an_unknown_feature_is_named() -> None:
    message = only_problem({"features": [feature("a", "ghost")]})
    assert "spec.features[0].requires[0]" in message
    assert "'a' requires unknown feature 'ghost'" in message


def test_duplicate_feature_names_are_refused_once() -> None:
    message = only_problem({"features": [feature("a"), feature("a")]})
    assert message.startswith("spec.features[1].name")
    assert "'a' is declared more than once" in message


@pytest.mark.parametrize("name", ["FormatDetection", "format-detection", "_a", "a__b", "1a"])
def test_feature_names_must_be_lower_snake_case(name: str) -> None:
    message = only_problem({"features": [feature(name)]})
    assert f"feature name {name!r} is not lower_snake_case" in message


def test_a_cycle_is_printed_as_a_chain_that_returns_to_its_start() -> None:
    spec = {"features": [feature("a", "b"), feature("b", "c"), feature("c", "a"), feature("d")]}
    message = only_problem(spec)
    assert "dependency cycle a -> b -> c -> a" in message


def test_a_feature_requiring_itself_is_a_cycle() -> None:
    assert "dependency cycle a -> a" in only_problem({"features": [feature("a", "a")]})


def test_two_separate_cycles_are_both_reported() -> None:
    spec = {
        "features": [feature("a", "b"), feature("b", "a"), feature("x", "y"), feature("y", "x")]
    }
    found = problems_of(spec)
    assert any("a -> b -> a" in p for p in found)
    assert any("x -> y -> x" in p for p in found)


def test_a_stage_naming_an_unknown_feature_is_named() -> None:
    spec = {"features": [feature("a")], "stages": [{"name": "one", "enable": ["b"]}]}
    message = only_problem(spec)
    assert message.startswith("spec.stages[0].enable[0]")
    assert "stage 'one' enables unknown feature 'b'" in message


def test_duplicate_stage_names_are_refused() -> None:
    spec = {"features": [feature("a")], "stages": [{"name": "one"}, {"name": "one"}]}
    assert "stage 'one' is declared more than once" in only_problem(spec)


def test_a_stage_that_enables_and_disables_the_same_feature_is_refused() -> None:
    spec = {
        "features": [feature("a")],
        "stages": [{"name": "s", "enable": ["a"], "disable": ["a"]}],
    }
    assert "both enables and disables 'a'" in only_problem(spec)


def test_a_stage_turning_on_a_feature_before_its_requirement_is_refused() -> None:
    spec = {
        "features": [feature("parent"), feature("child", "parent")],
        "stages": [
            {"name": "first", "enable": ["child"]},
            {"name": "second", "enable": ["parent"]},
        ],
    }
    message = only_problem(spec)
    assert message.startswith("spec.stages[0]")
    assert "stage 'first' leaves 'child' on but it requires 'parent', which is off" in message


def test_a_transitive_requirement_that_is_off_is_refused() -> None:
    spec = {
        "features": [feature("a"), feature("b", "a"), feature("c", "b")],
        "stages": [{"name": "s", "enable": ["b", "c"]}],
    }
    assert "leaves 'b' on but it requires 'a', which is off" in only_problem(spec)


def test_disabling_a_requirement_while_its_dependent_stays_on_is_refused() -> None:
    spec = {
        "features": [feature("parent"), feature("child", "parent")],
        "stages": [
            {"name": "on", "enable": ["parent", "child"]},
            {"name": "off", "disable": ["parent"]},
        ],
    }
    assert "stage 'off' leaves 'child' on but it requires 'parent'" in only_problem(spec)


def test_a_default_on_feature_needs_its_requirement_on_by_default() -> None:
    spec = {"features": [feature("parent"), feature("child", "parent", default=True)]}
    assert "'child' is on by default but requires 'parent'" in only_problem(spec)


def test_a_child_may_not_reach_a_tenant_its_parent_does_not_reach() -> None:
    spec = {
        "features": [feature("parent"), feature("child", "parent")],
        "stages": [
            {"name": "pilot", "enable": ["parent"], "tenants": {"ids": ["acme"]}},
            {"name": "wider", "enable": ["child"], "tenants": {"ids": ["acme", "globex"]}},
        ],
    }
    message = only_problem(spec)
    assert "stage 'wider'" in message
    assert "not on for tenant globex" in message


def test_a_child_named_for_tenants_its_parent_reaches_is_accepted() -> None:
    spec = {
        "features": [feature("parent"), feature("child", "parent")],
        "stages": [
            {"name": "pilot", "enable": ["parent"], "tenants": {"ids": ["acme", "globex"]}},
            {"name": "child", "enable": ["child"], "tenants": {"ids": ["acme"]}},
        ],
    }
    assert parse_rollout(manifest(spec)).spec.stages[1].name == "child"


def test_a_percentage_child_under_a_percentage_parent_is_refused() -> None:
    spec = {
        "features": [feature("parent"), feature("child", "parent")],
        "stages": [{"name": "both", "enable": ["parent", "child"], "tenants": {"percentage": 10}}],
    }
    assert "percentages pick different tenants for each feature" in only_problem(spec)


def test_a_child_on_for_everyone_under_a_partial_parent_is_refused() -> None:
    spec = {
        "features": [feature("parent"), feature("child", "parent")],
        "stages": [
            {"name": "canary", "enable": ["parent"], "tenants": {"percentage": 10}},
            {"name": "all", "enable": ["child"]},
        ],
    }
    assert "which is only on for 10% at that stage" in only_problem(spec)


def test_a_force_on_override_whose_requirement_is_off_is_refused() -> None:
    spec = {
        "features": [feature("parent"), feature("child", "parent")],
        "overrides": [{"feature": "child", "force": "Enabled"}],
    }
    message = only_problem(spec)
    assert message.startswith("spec.overrides[0]")
    assert "forces 'child' on, but it requires 'parent', which is off by default" in message


def test_a_force_on_override_with_its_requirement_forced_on_too_is_accepted() -> None:
    spec = {
        "features": [feature("parent"), feature("child", "parent")],
        "overrides": [
            {"feature": "parent", "force": "Enabled"},
            {"feature": "child", "force": "Enabled"},
        ],
    }
    assert len(parse_rollout(manifest(spec)).spec.overrides) == 2


def test_a_kill_switch_is_never_refused_even_under_dependents_that_are_on() -> None:
    spec = {
        "features": [feature("parent"), feature("child", "parent")],
        "stages": [{"name": "all", "enable": ["parent", "child"]}],
        "overrides": [{"feature": "parent", "force": "Disabled", "reason": "incident"}],
    }
    assert parse_rollout(manifest(spec)).spec.overrides[0].force == "Disabled"


def test_an_override_of_an_unknown_feature_is_named() -> None:
    spec = {"features": [feature("a")], "overrides": [{"feature": "b", "force": "Disabled"}]}
    assert "override names unknown feature 'b'" in only_problem(spec)


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        ("10 days", "'10 days' is not a duration"),
        ("0s", "'0s' is zero"),
        ("400d", "longer than 366 days"),
        ("", "'' is not a duration"),
    ],
)
def test_bad_stage_durations_are_named(duration: str, expected: str) -> None:
    spec = {"features": [feature("a")], "stages": [{"name": "s", "duration": duration}]}
    message = only_problem(spec)
    assert message.startswith("spec.stages[0].duration")
    assert expected in message


def test_a_malformed_start_time_is_named() -> None:
    spec = {"features": [feature("a")], "schedule": {"start": "next monday"}}
    assert "start: 'next monday' is not a time" in only_problem(spec)


def test_an_unknown_time_zone_is_named() -> None:
    spec = {"features": [feature("a")], "schedule": {"timeZone": "Mars/Olympus"}}
    assert "'Mars/Olympus' is not an IANA time zone" in only_problem(spec)


def test_an_absurd_start_year_is_refused() -> None:
    spec = {"features": [feature("a")], "schedule": {"start": "9999-01-01T00:00:00Z"}}
    assert "outside the years 2000-2200" in only_problem(spec)


def test_tenant_percentages_outside_zero_to_hundred_are_refused() -> None:
    spec = {
        "features": [feature("a")],
        "stages": [{"name": "s", "enable": ["a"], "tenants": {"percentage": 150}}],
    }
    message = only_problem(spec)
    assert "spec.stages[0].tenants.percentage" in message


def test_a_tenant_selector_that_selects_nobody_is_refused() -> None:
    spec = {"features": [feature("a")], "stages": [{"name": "s", "enable": ["a"], "tenants": {}}]}
    assert "selects no tenant" in only_problem(spec)


def test_a_misspelt_field_is_named_instead_of_ignored() -> None:
    spec = {"features": [feature("a")], "stages": [{"name": "s", "enabel": ["a"]}]}
    message = only_problem(spec)
    assert message.startswith("spec.stages[0].enabel")
    assert "unknown field 'enabel'" in message


def test_rolling_reload_without_workloads_is_refused() -> None:
    spec = {"features": [feature("a")], "target": {"reloadStrategy": "Rolling"}}
    assert "reloadStrategy Rolling restarts the listed workloads" in only_problem(spec)


def test_every_problem_is_reported_at_once() -> None:
    spec = {
        "features": [feature("a", "b"), feature("b", "a"), feature("Bad")],
        "stages": [{"name": "s", "enable": ["ghost"], "duration": "soon"}],
        "overrides": [{"feature": "nope", "force": "Enabled"}],
    }
    found = problems_of(spec)
    assert len(found) == 5, found


def test_a_spec_alone_is_validated_the_same_way() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"features": [feature("a", "a")]})
    assert "dependency cycle a -> a" in str(caught.value)


def test_a_missing_features_list_is_named() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"stages": []})
    assert caught.value.problems[0].path == "spec.features"


def test_a_rollout_created_with_generate_name_is_validated_too() -> None:
    document = manifest({"features": [feature("a")]})
    del document["metadata"]["name"]
    document["metadata"]["generateName"] = "canary-"
    assert parse_rollout(document).name == "canary-"


def test_lists_longer_than_the_crd_allows_are_refused_by_the_core_too() -> None:
    names = [f"f{i}" for i in range(40)]
    spec = {"features": [feature(n) for n in names], "stages": [{"name": "s", "enable": names}]}
    message = only_problem(spec)
    assert message.startswith("spec.stages[0].enable")
    assert "at most 32 items" in message
