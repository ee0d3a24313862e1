"""Every rule a FeatureRollout must satisfy, checked at once.

The CRD schema and its CEL rules catch what they can at `kubectl apply`; the rules that need
the whole dependency graph or a walk through the stages live here and nowhere else. The
admission webhook, the operator and `flagstage validate` all call `parse_rollout` or
`validate_spec`, so they refuse the same rollouts with the same words.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from flagstage.durations import load_zone, parse_duration, parse_time
from flagstage.errors import DurationError, Problem, SpecError, TimeError
from flagstage.graph import find_cycles
from flagstage.model import API_GROUP, KIND, FeatureRollout, RolloutSpec
from flagstage.state import apply_overrides, planned_states, requirement_gaps

FEATURE_NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
STAGE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?$")
TENANT_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._:-]{0,126}[A-Za-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?$")


def parse_rollout(manifest: Mapping[str, Any]) -> FeatureRollout:
    """A FeatureRollout from its manifest, or a `SpecError` listing every problem."""
    problems: list[Problem] = []
    kind = manifest.get("kind", KIND)
    if kind != KIND:
        problems.append(Problem("kind", str(kind), f"kind is {kind!r}, expected {KIND!r}"))
    api_version = str(manifest.get("apiVersion", f"{API_GROUP}/"))
    if not api_version.startswith(f"{API_GROUP}/"):
        problems.append(
            Problem("apiVersion", api_version, f"apiVersion {api_version!r} is not {API_GROUP}")
        )
    metadata = manifest.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        metadata = {}
    # An object created with generateName has no name until the API server gives it one.
    name = metadata.get("name") or metadata.get("generateName")
    if not name:
        problems.append(
            Problem("metadata.name", "metadata", "metadata.name (or generateName) is missing")
        )

    try:
        rollout = FeatureRollout.model_validate(
            {
                "name": name or "unnamed",
                "namespace": metadata.get("namespace") or "default",
                "generation": int(metadata.get("generation") or 0),
                "spec": manifest.get("spec"),
            }
        )
    except ValidationError as err:
        problems.extend(_problems_from_pydantic(err))
        raise SpecError(problems) from err

    problems.extend(validate_spec(rollout.spec))
    if problems:
        raise SpecError(problems)
    return rollout


def parse_spec(spec: Mapping[str, Any]) -> RolloutSpec:
    """A spec alone (as the admission webhook and the operator receive it), or a SpecError."""
    try:
        parsed = RolloutSpec.model_validate(spec)
    except ValidationError as err:
        raise SpecError(_problems_from_pydantic(err, prefix="spec")) from err
    problems = validate_spec(parsed)
    if problems:
        raise SpecError(problems)
    return parsed


def _problems_from_pydantic(err: ValidationError, prefix: str = "") -> list[Problem]:
    problems = []
    for item in err.errors():
        location = [str(part) for part in item["loc"]]
        path = prefix
        for part in location:
            path = f"{path}[{part}]" if part.isdigit() else (f"{path}.{part}" if path else part)
        subject = location[-1] if location else "spec"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = f"unknown field {subject!r}; check its spelling against the CRD"
        elif item["type"] == "missing":
            message = f"{subject!r} is required"
        problems.append(Problem(path or "spec", subject, message))
    return problems


def validate_spec(spec: RolloutSpec) -> list[Problem]:
    """Every problem with a parsed spec, in the order a person would fix them."""
    problems: list[Problem] = []
    problems += _check_features(spec)
    problems += _check_cycles(spec)
    problems += _check_stages(spec)
    problems += _check_schedule(spec)
    problems += _check_target(spec)
    # The walk through the plan skips unknown names and checks direct requirements only, so it
    # is safe, and still worth reporting, when the checks above found problems.
    problems += _check_plan_states(spec)
    problems += _check_overrides(spec)
    return problems


def _check_features(spec: RolloutSpec) -> list[Problem]:
    problems = []
    declared = set(spec.feature_names())
    counts = Counter(spec.feature_names())
    for i, feature in enumerate(spec.features):
        path = f"spec.features[{i}]"
        if not FEATURE_NAME.match(feature.name):
            problems.append(
                Problem(
                    f"{path}.name",
                    feature.name,
                    f"feature name {feature.name!r} is not lower_snake_case (letters, digits "
                    "and single underscores, starting with a letter), e.g. 'format_detection'",
                )
            )
        if counts[feature.name] > 1 and spec.feature_names().index(feature.name) != i:
            problems.append(
                Problem(
                    f"{path}.name",
                    feature.name,
                    f"feature {feature.name!r} is declared more than once; keep one declaration",
                )
            )
        for j, req in enumerate(feature.requires):
            if req not in declared:
                problems.append(
                    Problem(
                        f"{path}.requires[{j}]",
                        feature.name,
                        f"feature {feature.name!r} requires unknown feature {req!r}; declare "
                        "it under spec.features or fix the name",
                    )
                )
    return problems


def _check_cycles(spec: RolloutSpec) -> list[Problem]:
    requires = {feature.name: feature.requires for feature in spec.features}
    index = {name: i for i, name in reversed(list(enumerate(spec.feature_names())))}
    problems = []
    for cycle in find_cycles(requires):
        problems.append(
            Problem(
                f"spec.features[{index[cycle[0]]}].requires",
                cycle[0],
                f"dependency cycle {' -> '.join(cycle)}: a feature cannot require itself, "
                "directly or through others; remove one of these requirements",
            )
        )
    return problems


def _check_stages(spec: RolloutSpec) -> list[Problem]:
    problems = []
    declared = set(spec.feature_names())
    names = [stage.name for stage in spec.stages]
    seen: set[str] = set()
    for i, stage in enumerate(spec.stages):
        path = f"spec.stages[{i}]"
        label = f"stage {stage.name!r}"
        if not STAGE_NAME.match(stage.name):
            problems.append(
                Problem(
                    f"{path}.name",
                    stage.name,
                    f"stage name {stage.name!r} must be lower case letters, digits, '-', '_' "
                    "or '.', starting and ending with a letter or digit, e.g. 'week-2'",
                )
            )
        if stage.name in seen:
            problems.append(
                Problem(
                    f"{path}.name",
                    stage.name,
                    f"{label} is declared more than once (stages {names.index(stage.name)} and "
                    f"{i}); give each stage its own name",
                )
            )
        seen.add(stage.name)
        for field in ("enable", "disable"):
            listed: Sequence[str] = getattr(stage, field)
            for j, name in enumerate(listed):
                if name not in declared:
                    problems.append(
                        Problem(
                            f"{path}.{field}[{j}]",
                            stage.name,
                            f"{label} {field}s unknown feature {name!r}; declare it under "
                            "spec.features or fix the name",
                        )
                    )
            for name, count in Counter(listed).items():
                if count > 1:
                    problems.append(
                        Problem(
                            f"{path}.{field}",
                            stage.name,
                            f"{label} lists {name!r} {count} times under {field}; list it once",
                        )
                    )
        for name in sorted(set(stage.enable) & set(stage.disable)):
            problems.append(
                Problem(
                    path,
                    stage.name,
                    f"{label} both enables and disables {name!r}; keep one of the two",
                )
            )
        if stage.duration is not None:
            problems += _duration_problem(f"{path}.duration", stage.name, stage.duration)
        problems += _check_tenants(spec, i)
    return problems


def _check_tenants(spec: RolloutSpec, i: int) -> list[Problem]:
    stage = spec.stages[i]
    tenants = stage.tenants
    if tenants is None:
        return []
    path = f"spec.stages[{i}].tenants"
    label = f"stage {stage.name!r}"
    problems = []
    if not stage.enable:
        problems.append(
            Problem(
                path,
                stage.name,
                f"{label} names tenants but enables nothing; tenants choose who gets the "
                "features listed under enable",
            )
        )
    if (tenants.percentage is None or tenants.percentage == 0) and not tenants.ids:
        problems.append(
            Problem(
                path,
                stage.name,
                f"{label} selects no tenant; give a percentage above 0 or a list of ids, or "
                "drop tenants to enable for everyone",
            )
        )
    if tenants.percentage is not None and round(tenants.percentage, 2) != tenants.percentage:
        problems.append(
            Problem(
                f"{path}.percentage",
                stage.name,
                f"{label} percentage {tenants.percentage:g} has more than two decimals",
            )
        )
    for j, tenant in enumerate(tenants.ids):
        if not TENANT_ID.match(tenant):
            problems.append(
                Problem(
                    f"{path}.ids[{j}]",
                    stage.name,
                    f"{label} tenant id {tenant!r} is not valid: use 1-128 letters, digits, "
                    "'.', '_', ':' or '-'",
                )
            )
    return problems


def _duration_problem(path: str, subject: str, text: str) -> list[Problem]:
    try:
        parse_duration(text)
    except DurationError as err:
        return [Problem(path, subject, f"{subject}: {err}")]
    return []


def _check_schedule(spec: RolloutSpec) -> list[Problem]:
    schedule = spec.schedule
    problems = _duration_problem(
        "spec.schedule.stageDuration", "stageDuration", schedule.stage_duration
    )
    zone = None
    try:
        zone = load_zone(schedule.time_zone)
    except TimeError as err:
        problems.append(Problem("spec.schedule.timeZone", "timeZone", str(err)))
    if schedule.start is not None:
        try:
            start = parse_time(schedule.start, zone)
        except TimeError as err:
            problems.append(Problem("spec.schedule.start", "start", f"start: {err}"))
        else:
            if not 2000 <= start.year <= 2200:
                problems.append(
                    Problem(
                        "spec.schedule.start",
                        "start",
                        f"start {schedule.start!r} is outside the years 2000-2200; check the year",
                    )
                )
    return problems


def _check_target(spec: RolloutSpec) -> list[Problem]:
    target = spec.target
    problems = []
    if target.config_map is not None and not DNS_SUBDOMAIN.match(target.config_map):
        problems.append(
            Problem(
                "spec.target.configMap",
                target.config_map,
                f"configMap {target.config_map!r} is not a valid ConfigMap name (lower case "
                "letters, digits, '-' and '.')",
            )
        )
    keys = Counter((w.kind, w.name) for w in target.workloads)
    for i, workload in enumerate(target.workloads):
        if not DNS_SUBDOMAIN.match(workload.name):
            problems.append(
                Problem(
                    f"spec.target.workloads[{i}].name",
                    workload.name,
                    f"workload name {workload.name!r} is not a valid Kubernetes name",
                )
            )
        if keys[(workload.kind, workload.name)] > 1:
            problems.append(
                Problem(
                    f"spec.target.workloads[{i}]",
                    workload.name,
                    f"{workload.kind} {workload.name!r} is listed more than once",
                )
            )
    if target.reload_strategy == "Rolling" and not target.workloads:
        problems.append(
            Problem(
                "spec.target.reloadStrategy",
                "reloadStrategy",
                "reloadStrategy Rolling restarts the listed workloads, but none are listed; "
                "add them under spec.target.workloads or use Live",
            )
        )
    if spec.health_gate is not None:
        problems += _duration_problem(
            "spec.healthGate.window", "healthGate.window", spec.health_gate.window
        )
        if not target.workloads:
            problems.append(
                Problem(
                    "spec.healthGate",
                    "healthGate",
                    "healthGate watches the target workloads, but none are listed; add them "
                    "under spec.target.workloads",
                )
            )
    return problems


def _requires(spec: RolloutSpec) -> dict[str, list[str]]:
    return {feature.name: feature.requires for feature in spec.features}


def _check_plan_states(spec: RolloutSpec) -> list[Problem]:
    """Each state the plan passes through must give every feature what it requires."""
    requires = _requires(spec)
    problems = []
    reported: set[tuple[str, str]] = set()
    for i, (stage_name, state) in enumerate(planned_states(spec)):
        for feature, req, why in requirement_gaps(requires, state):
            # The first stage with a gap is the one to fix; later stages only inherit it.
            if (feature, req) in reported:
                continue
            reported.add((feature, req))
            if i == 0:
                problems.append(
                    Problem(
                        "spec.features",
                        feature,
                        f"feature {feature!r} is on by default but requires {req!r}, which is "
                        f"{why} by default; make {req!r} default on too, or {feature!r} "
                        "default off",
                    )
                )
                continue
            problems.append(
                Problem(
                    f"spec.stages[{i - 1}]",
                    stage_name,
                    f"stage {stage_name!r} leaves {feature!r} {state[feature].reach.describe()}"
                    f" but it requires {req!r}, which is {why} at that stage; enable {req!r} "
                    f"for at least the same tenants in this or an earlier stage",
                )
            )
    return problems


def _check_override_names(spec: RolloutSpec) -> list[Problem]:
    declared = set(spec.feature_names())
    problems = []
    for i, override in enumerate(spec.overrides):
        if override.feature not in declared:
            problems.append(
                Problem(
                    f"spec.overrides[{i}].feature",
                    override.feature,
                    f"override names unknown feature {override.feature!r}; declare it under "
                    "spec.features or fix the name",
                )
            )
    for name, count in Counter(o.feature for o in spec.overrides).items():
        if count > 1:
            problems.append(
                Problem(
                    "spec.overrides",
                    name,
                    f"feature {name!r} has {count} overrides; keep one",
                )
            )
    return problems


def _check_overrides(spec: RolloutSpec) -> list[Problem]:
    """A force-on must have its requirements on at every stage; a force-off is never refused."""
    problems = _check_override_names(spec)
    if problems:
        return problems
    requires = _requires(spec)
    forced_on = {o.feature: i for i, o in enumerate(spec.overrides) if o.force == "Enabled"}
    reported: set[tuple[str, str]] = set()
    for stage_name, planned in planned_states(spec):
        state = apply_overrides(spec, planned)
        for feature, req, why in requirement_gaps(requires, state):
            if feature not in forced_on or (feature, req) in reported:
                continue
            reported.add((feature, req))
            when = "by default" if stage_name == "defaults" else f"at stage {stage_name!r}"
            problems.append(
                Problem(
                    f"spec.overrides[{forced_on[feature]}]",
                    feature,
                    f"override forces {feature!r} on, but it requires {req!r}, which is {why} "
                    f"{when}; force {req!r} on as well or drop the override",
                )
            )
    return problems
