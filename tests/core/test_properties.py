"""Properties that must hold for every rollout, not just the ones we thought of."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flagstage.errors import SpecError
from flagstage.graph import dependents, find_cycles, transitive_requirements
from flagstage.rendering import render_config
from flagstage.snapshot import Snapshot
from flagstage.state import requirement_gaps, state_at
from flagstage.validation import parse_rollout

from .builders import manifest

TENANTS = ["acme", "globex", "initech", "umbrella"]


@st.composite
def dependency_graphs(draw: st.DrawFn) -> dict[str, list[str]]:
    """Random graphs over up to 8 features, with or without cycles."""
    size = draw(st.integers(min_value=1, max_value=8))
    names = [f"f{i}" for i in range(size)]
    others = {name: [other for other in names if other != name] for name in names}
    return {
        name: sorted(draw(st.sets(st.sampled_from(others[name]), max_size=3)))
        if others[name]
        else []
        for name in names
    }


def is_acyclic(graph: dict[str, list[str]]) -> bool:
    """Kahn's algorithm, independent of the implementation under test."""
    remaining = {name: set(reqs) for name, reqs in graph.items()}
    while remaining:
        free = [name for name, reqs in remaining.items() if not reqs]
        if not free:
            return False
        for name in free:
            del remaining[name]
        for reqs in remaining.values():
            reqs.difference_update(free)
    return True


@given(graph=dependency_graphs(), self_loop=st.booleans())
def test_random_dependency_graphs_are_accepted_exactly_when_acyclic(
    graph: dict[str, list[str]], self_loop: bool
) -> None:
    if self_loop:
        graph["f0"] = sorted({*graph["f0"], "f0"})
    features = [{"name": name, "requires": reqs} for name, reqs in graph.items()]
    try:
        parse_rollout(manifest({"features": features}))
        accepted = True
    except SpecError as err:
        accepted = False
        assert all("dependency cycle" in p.message for p in err.problems)
    assert accepted == is_acyclic(graph)
    for cycle in find_cycles(graph):
        assert cycle[0] == cycle[-1]
        for here, there in pairwise(cycle):
            assert there in graph[here]


@st.composite
def valid_plans(draw: st.DrawFn) -> dict[str, Any]:
    """Plans valid by construction: acyclic features, and stages that enable a feature with
    everything it requires and disable it with everything that requires it."""
    size = draw(st.integers(min_value=1, max_value=6))
    names = [f"f{i}" for i in range(size)]
    requires: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        earlier = st.sets(st.sampled_from(names[:i]), max_size=2) if i else st.just(set())
        requires[name] = sorted(draw(earlier))
    needs = transitive_requirements(requires)
    needed_by = dependents(requires)
    stages = []
    for i in range(draw(st.integers(min_value=0, max_value=5))):
        picked = draw(st.sets(st.sampled_from(names), max_size=3))
        enable = sorted(picked.union(*(needs[name] for name in picked)))
        dropped = draw(st.sets(st.sampled_from(names), max_size=2))
        disable = sorted(dropped.union(*(needed_by[name] for name in dropped)) - set(enable))
        stage: dict[str, Any] = {"name": f"s{i}", "enable": enable, "disable": disable}
        if enable and draw(st.booleans()):
            stage["tenants"] = {"ids": sorted(draw(st.sets(st.sampled_from(TENANTS), min_size=1)))}
        stages.append(stage)
    overrides = [
        {"feature": name, "force": "Disabled"}
        for name in draw(st.sets(st.sampled_from(names), max_size=2))
    ]
    features = [{"name": name, "requires": requires[name]} for name in names]
    return {"features": features, "stages": stages, "overrides": overrides}


@settings(max_examples=300)
@given(spec=valid_plans())
def test_every_state_of_an_accepted_plan_gives_each_feature_what_it_requires(
    spec: dict[str, Any],
) -> None:
    plan = parse_rollout(manifest(spec))
    requires = {f.name: f.requires for f in plan.spec.features}
    for index in range(-1, len(plan.spec.stages)):
        assert requirement_gaps(requires, state_at(plan.spec, index)) == []


@settings(max_examples=200)
@given(spec=valid_plans(), tenant=st.sampled_from([*TENANTS, "nobody-named"]))
def test_rendering_is_deterministic_and_evaluates_closed_under_requires(
    spec: dict[str, Any], tenant: str
) -> None:
    plan = parse_rollout(manifest(spec))
    for index in range(-1, len(plan.spec.stages)):
        first, second = render_config(plan, index), render_config(plan, index)
        assert first.data == second.data
        snapshot = Snapshot.from_json(first.data["features.json"])
        for item in plan.spec.features:
            if snapshot.is_enabled(item.name, tenant):
                assert all(snapshot.is_enabled(req, tenant) for req in item.requires)
