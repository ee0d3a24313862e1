"""What is on, for whom: the state of every feature at each stage of a plan.

A feature's reach is a percentage of tenants plus a list of tenants named outright; 100% is
"on for everyone" and 0% with no names is "off". Stages apply in order, each changing the
state the previous one left: `enable` widens a feature's reach (a partial rollout only ever
grows until a stage disables it), `disable` turns it off. Overrides are applied last. This
module computes states; whether they are acceptable is `flagstage.validation`'s business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flagstage.bucketing import in_rollout
from flagstage.graph import dependents
from flagstage.model import RolloutSpec, Stage

DEFAULTS_STAGE = "defaults"


@dataclass(frozen=True)
class Reach:
    """Which tenants have a feature: `percentage` of all tenants, plus `ids` named outright."""

    percentage: float = 0.0
    ids: tuple[str, ...] = ()

    @property
    def everyone(self) -> bool:
        return self.percentage >= 100

    @property
    def nobody(self) -> bool:
        return self.percentage <= 0 and not self.ids

    @property
    def partial(self) -> bool:
        return not self.everyone and not self.nobody

    def includes(self, feature: str, tenant: str | None) -> bool:
        """Whether this reach of `feature` covers `tenant` (no tenant: only when everyone)."""
        if self.everyone:
            return True
        if tenant is None:
            return False
        return tenant in self.ids or in_rollout(feature, tenant, self.percentage)

    def widened(self, other: Reach) -> Reach:
        """Everyone either reach covers, so a partial rollout never loses a tenant it had."""
        if self.everyone or other.everyone:
            return EVERYONE
        ids = tuple(sorted(set(self.ids) | set(other.ids)))
        return Reach(max(self.percentage, other.percentage), ids)

    def describe(self) -> str:
        if self.everyone:
            return "on"
        if self.nobody:
            return "off"
        parts = []
        if self.percentage > 0:
            parts.append(f"{self.percentage:g}%")
        if self.ids:
            shown = ", ".join(self.ids[:3]) + (", ..." if len(self.ids) > 3 else "")
            parts.append(f"tenants {shown}")
        return " + ".join(parts)


EVERYONE = Reach(100.0)
NOBODY = Reach(0.0)


@dataclass(frozen=True)
class FeatureState:
    """A feature's reach and where it came from (`default`, `stage week-2`, `override`...)."""

    name: str
    reach: Reach
    source: str


State = dict[str, FeatureState]


def reach_of_stage(stage: Stage) -> Reach:
    """The reach a stage gives the features it enables."""
    if stage.tenants is None:
        return EVERYONE
    percentage = stage.tenants.percentage or 0.0
    return Reach(percentage, tuple(sorted(set(stage.tenants.ids))))


def default_state(spec: RolloutSpec) -> State:
    """Every feature at its declared default, before any stage has run."""
    return {
        feature.name: FeatureState(feature.name, EVERYONE if feature.default else NOBODY, "default")
        for feature in spec.features
    }


def apply_stage(state: Mapping[str, FeatureState], stage: Stage) -> State:
    """The state after `stage` changes `state`; unknown names are skipped, not guessed."""
    result = dict(state)
    source = f"stage {stage.name}"
    for name in stage.disable:
        if name in result:
            result[name] = FeatureState(name, NOBODY, source)
    granted = reach_of_stage(stage)
    for name in stage.enable:
        if name in result:
            widened = result[name].reach.widened(granted)
            result[name] = FeatureState(name, widened, source)
    return result


def planned_states(spec: RolloutSpec) -> list[tuple[str, State]]:
    """The plan's state before the first stage and after each stage, without overrides."""
    state = default_state(spec)
    states = [(DEFAULTS_STAGE, state)]
    for stage in spec.stages:
        state = apply_stage(state, stage)
        states.append((stage.name, state))
    return states


def state_at(spec: RolloutSpec, stage_index: int) -> State:
    """The state with stages `0..stage_index` applied and overrides on top (-1: defaults)."""
    state = default_state(spec)
    for stage in spec.stages[: stage_index + 1]:
        state = apply_stage(state, stage)
    return apply_overrides(spec, state)


def apply_overrides(spec: RolloutSpec, state: Mapping[str, FeatureState]) -> State:
    """Overrides on top of a planned state; forcing a feature off takes its dependents along."""
    result = dict(state)
    requires = {feature.name: feature.requires for feature in spec.features}
    for override in spec.overrides:
        if override.feature in result and override.force == "Enabled":
            result[override.feature] = FeatureState(override.feature, EVERYONE, "override")

    # Kill switches last, so a force-off always wins over a force-on further down the graph.
    needed_by = dependents(requires)
    for override in spec.overrides:
        if override.feature not in result or override.force != "Disabled":
            continue
        result[override.feature] = FeatureState(override.feature, NOBODY, "override")
        for dependent in needed_by.get(override.feature, ()):
            if not result[dependent].reach.nobody:
                source = f"kill switch on {override.feature}"
                result[dependent] = FeatureState(dependent, NOBODY, source)
    return result


def enabled_names(state: Mapping[str, FeatureState]) -> list[str]:
    """Features on for everyone, sorted."""
    return sorted(name for name, item in state.items() if item.reach.everyone)


def covers(parent: str, parent_reach: Reach, child_reach: Reach) -> str | None:
    """Why `child_reach` reaches a tenant `parent_reach` may not, or None when it cannot.

    Percentages pick tenants per feature, so a partial child is only provably inside a partial
    parent when the child names its tenants and the parent reaches each of them.
    """
    if child_reach.nobody or parent_reach.everyone:
        return None
    if parent_reach.nobody:
        return "off"
    if child_reach.everyone:
        return f"only on for {parent_reach.describe()}"
    if child_reach.percentage > 0:
        return (
            f"only on for {parent_reach.describe()} (percentages pick different tenants for "
            "each feature)"
        )
    missing = [t for t in child_reach.ids if not parent_reach.includes(parent, t)]
    if missing:
        return f"not on for tenant{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    return None


def requirement_gaps(
    requires: Mapping[str, Sequence[str]], state: Mapping[str, FeatureState]
) -> list[tuple[str, str, str]]:
    """Every (feature, requirement, why) where a feature reaches beyond what it requires."""
    gaps = []
    for name in sorted(state):
        child = state[name].reach
        if child.nobody:
            continue
        for req in requires.get(name, ()):
            if req not in state:
                continue
            why = covers(req, state[req].reach, child)
            if why is not None:
                gaps.append((name, req, why))
    return gaps
