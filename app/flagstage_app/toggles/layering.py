"""Layering the app's toggles: declared defaults, then `FEATURE_*` variables, then the file.

Each layer overrides the one before it, feature by feature, and the result is one immutable
`Snapshot`. Requirements are the union of what the code declares and what the file declares,
so a feature whose requirement is off is off whichever layer turned it on. Explaining the
result for one tenant ("off: requires format_detection, which is off") lives here too; reading
the mount and swapping snapshots is `flagstage_app.toggles.watcher`'s business.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flagstage.errors import ConfigError
from flagstage.graph import find_cycles
from flagstage.rendering import env_key, reaches_of
from flagstage.snapshot import Snapshot
from flagstage.state import EVERYONE, NOBODY, FeatureState
from flagstage_app.toggles.catalog import FEATURES, FeatureSpec

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class EnvOverrides:
    """The `FEATURE_<NAME>` variables that name known features, and those that were ignored."""

    values: Mapping[str, bool]
    problems: tuple[str, ...] = ()


def read_env_overrides(
    env: Mapping[str, str], catalog: Iterable[FeatureSpec] = FEATURES
) -> EnvOverrides:
    """`FEATURE_<NAME>=true|false` for each known feature; other spellings are reported."""
    values: dict[str, bool] = {}
    problems: list[str] = []
    for feature in catalog:
        key = env_key(feature.name)
        raw = env.get(key)
        if raw is None:
            continue
        word = raw.strip().lower()
        if word in TRUE_WORDS:
            values[feature.name] = True
        elif word in FALSE_WORDS:
            values[feature.name] = False
        else:
            problems.append(f"{key}={raw!r} ignored: use true or false")
    return EnvOverrides(values, tuple(problems))


def build_snapshot(
    *,
    catalog: Iterable[FeatureSpec] = FEATURES,
    env: EnvOverrides | None = None,
    document: Mapping[str, Any] | None = None,
) -> Snapshot:
    """The effective toggles: defaults, overridden by `env`, overridden by a checked document.

    `document` must come from `flagstage.rendering.parse_features_document`. Raises
    `ConfigError` when the file's requirements and the code's together form a cycle.
    """
    specs = list(catalog)
    states: dict[str, FeatureState] = {}
    requires: dict[str, set[str]] = {}
    descriptions: dict[str, str] = {}
    for spec in specs:
        states[spec.name] = FeatureState(spec.name, EVERYONE if spec.default else NOBODY, "default")
        requires[spec.name] = set(spec.requires)
        descriptions[spec.name] = spec.description

    for name, enabled in (env.values if env else {}).items():
        states[name] = FeatureState(name, EVERYONE if enabled else NOBODY, f"env {env_key(name)}")

    if document is None:
        return Snapshot(
            states,
            {name: sorted(reqs) for name, reqs in requires.items()},
            descriptions=descriptions,
        )

    features: Mapping[str, Mapping[str, Any]] = document["features"]
    for name, state in reaches_of(features).items():
        states[name] = FeatureState(name, state.reach, f"file: {state.source or 'default'}")
        requires.setdefault(name, set()).update(features[name]["requires"])
        if features[name].get("description"):
            descriptions[name] = str(features[name]["description"])
    merged = {name: sorted(reqs) for name, reqs in requires.items()}
    cycles = find_cycles(merged)
    if cycles:
        raise ConfigError(
            "features.json and the app's own requirements together form the cycle "
            f"{' -> '.join(cycles[0])}"
        )
    return Snapshot(
        states,
        merged,
        config_hash=document.get("hash"),
        generation=(document.get("rollout") or {}).get("generation"),
        stage=(document.get("stage") or {}).get("name"),
        descriptions=descriptions,
    )


@dataclass(frozen=True)
class FeatureExplanation:
    """One feature's effective state for one tenant, and why."""

    name: str
    enabled: bool
    reach: str
    source: str
    requires: tuple[str, ...]
    reason: str
    description: str = ""


def explain(snapshot: Snapshot, feature: str, tenant: str | None) -> FeatureExplanation:
    """Why `feature` is on or off for `tenant` in `snapshot`, as a sentence a person can act on."""
    view = snapshot.features.get(feature)
    if view is None:
        return FeatureExplanation(feature, False, "off", "unknown", (), "off: no such feature")
    enabled = snapshot.is_enabled(feature, tenant)
    reach = view.reach
    if enabled:
        scope = "for everyone" if reach.everyone else f"for this tenant ({reach.describe()})"
        reason = f"on {scope}, from {view.source}"
    elif not reach.includes(feature, tenant):
        if reach.nobody:
            reason = f"off, from {view.source}"
        elif tenant is None:
            reason = f"off: on for {reach.describe()} only, and the request names no tenant"
        else:
            reason = f"off for this tenant: on for {reach.describe()} only, from {view.source}"
    else:
        reason = "off: " + _blocking_chain(snapshot, feature, tenant)
    return FeatureExplanation(
        feature, enabled, reach.describe(), view.source, view.requires, reason, view.description
    )


def _blocking_chain(snapshot: Snapshot, feature: str, tenant: str | None) -> str:
    """`requires a, which is off`, or `requires a, which requires b, which is off`."""
    path: list[str] = []
    current = feature
    while True:
        blocked = [
            req
            for req in snapshot.features[current].requires
            if req in snapshot.features and not snapshot.is_enabled(req, tenant)
        ]
        if not blocked or len(path) > len(snapshot.features):
            break
        current = blocked[0]
        path.append(current)
        if not snapshot.features[current].reach.includes(current, tenant):
            break
    if not path:
        # The core knows a blocking requirement this walk missed; name it rather than guess.
        fallback = snapshot.blocking_requirement(feature, tenant) or "an unknown requirement"
        return f"requires {fallback}, which is off"
    last = snapshot.features[path[-1]].reach
    state = "off" if last.nobody else "not on for this tenant"
    chain = ", which requires ".join(path)
    return f"requires {chain}, which is {state}"
