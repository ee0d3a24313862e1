"""Hypothesis strategies for FeatureRollouts: valid ones, and ones with one generated flaw.

A valid rollout has features whose requirements form a DAG and stages that turn each feature on
no earlier than what it requires. A flawed rollout is a valid one with exactly one thing
broken: a dependency cycle of any length, a reference to an undeclared feature, a stage that
turns a feature on before (or for more tenants than) what it requires, a broken override, an
absurd duration or time, a spec beyond the size bounds, or a field of the wrong type. Each
flawed rollout names its culprits: the feature or stage names and field paths of which at
least one must appear in a problem the core reports.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from flagstage.model import (
    MAX_FEATURES,
    MAX_OVERRIDES,
    MAX_REFERENCES,
    MAX_STAGES,
    MAX_TENANT_IDS,
    NAME_MAX_LENGTH,
    TEXT_MAX_LENGTH,
)

WORDS = (
    "search", "upload", "export", "billing", "alerts", "reports", "sync", "audit",
    "charts", "import", "themes", "sharing",
)  # fmt: skip
START = "2026-01-05T09:00:00Z"


@dataclass(frozen=True)
class FlawedRollout:
    """A manifest with one flaw, what kind it is, and the names that must be blamed."""

    manifest: dict[str, Any]
    kind: str
    culprits: frozenset[str]

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.manifest["spec"])


def wrap(spec: dict[str, Any], name: str = "fuzzed") -> dict[str, Any]:
    return {
        "apiVersion": "flagstage.io/v1alpha1",
        "kind": "FeatureRollout",
        "metadata": {"name": name},
        "spec": spec,
    }


@st.composite
def valid_specs(draw: st.DrawFn, min_features: int = 1, min_stages: int = 1) -> dict[str, Any]:
    """A spec the core accepts: a requirement DAG, enabled stage by stage in order."""
    count = draw(st.integers(min_features, 8))
    names = draw(st.permutations(WORDS))[:count]
    features = []
    enabled_at: dict[str, int | None] = {}
    stage_count = draw(st.integers(min_stages, 5))
    for i, name in enumerate(names):
        requires = draw(st.lists(st.sampled_from(names[:i]), unique=True, max_size=2)) if i else []
        features.append({"name": name, "requires": requires, "owner": "team"})
        required_at = [enabled_at[r] for r in requires]
        if None in required_at or draw(st.integers(0, 4)) == 0:
            enabled_at[name] = None
        else:
            earliest = max((at for at in required_at if at is not None), default=0)
            enabled_at[name] = draw(st.integers(earliest, stage_count - 1))
    stages = [
        {"name": f"step-{j + 1}", "enable": [n for n in names if enabled_at[n] == j]}
        for j in range(stage_count)
    ]
    return {
        "features": features,
        "stages": stages,
        "schedule": {"start": START, "stageDuration": "1w"},
    }


def _names(spec: dict[str, Any]) -> list[str]:
    return [feature["name"] for feature in spec["features"]]


def _feature(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in spec["features"] if f["name"] == name)


# -- the flaws, one function each: (spec, draw) -> culprits ---------------------------------


def cycle(spec: dict[str, Any], draw: st.DrawFn) -> set[str]:
    names = _names(spec)
    members = draw(st.lists(st.sampled_from(names), min_size=1, max_size=6, unique=True))
    for i, name in enumerate(members):
        nxt = members[(i + 1) % len(members)]
        requires = _feature(spec, name)["requires"]
        if nxt not in requires:
            requires.append(nxt)
    return set(members)


def unknown_reference(spec: dict[str, Any], draw: st.DrawFn) -> set[str]:
    ghost = draw(st.from_regex(r"ghost_[a-z]{1,10}", fullmatch=True))
    where = draw(st.sampled_from(["requires", "enable", "disable", "override"]))
    if where == "requires":
        _feature(spec, draw(st.sampled_from(_names(spec))))["requires"].append(ghost)
    elif where == "override":
        spec["overrides"] = [{"feature": ghost, "force": draw(st.sampled_from(FORCES))}]
    else:
        stage = draw(st.sampled_from(spec["stages"]))
        stage.setdefault(where, []).append(ghost)
    return {ghost}


FORCES = ["Enabled", "Disabled"]


def stage_order(spec: dict[str, Any], draw: st.DrawFn) -> set[str]:
    """A feature turned on a stage before what it requires, or what it requires turned off."""
    first, second = draw(st.permutations(_names(spec)))[:2]
    _feature(spec, first)["requires"] = [second]
    _feature(spec, second)["requires"] = []
    for stage in spec["stages"]:
        stage["enable"] = [n for n in stage["enable"] if n not in (first, second)]
    stages = spec["stages"]
    if draw(st.booleans()):
        stages.insert(0, {"name": "too-early", "enable": [first]})
        stages.append({"name": "too-late", "enable": [second]})
        return {first, second, "too-early"}
    stages.insert(0, {"name": "both-on", "enable": [second, first]})
    stages.append({"name": "pulls-the-rug", "disable": [second]})
    return {first, second, "pulls-the-rug"}


def tenant_scope(spec: dict[str, Any], draw: st.DrawFn) -> set[str]:
    """A feature reaching more tenants than what it requires, or a tenant rule that is wrong."""
    first, second = draw(st.permutations(_names(spec)))[:2]
    variant = draw(st.sampled_from(["wider", "other-ids", "no-enable", "nobody", "bad-rule"]))
    if variant in ("wider", "other-ids"):
        _feature(spec, first)["requires"] = [second]
        _feature(spec, second)["requires"] = []
        for stage in spec["stages"]:
            stage["enable"] = [n for n in stage["enable"] if n not in (first, second)]
        if variant == "wider":
            narrow = draw(st.integers(1, 49))
            rules = ({"percentage": narrow}, {"percentage": draw(st.integers(narrow + 1, 100))})
        else:
            rules = ({"ids": ["tenant-a"]}, {"ids": ["tenant-b"]})
        spec["stages"] += [
            {"name": "canary", "enable": [second], "tenants": rules[0]},
            {"name": "too-wide", "enable": [first], "tenants": rules[1]},
        ]
        return {first, second, "too-wide"}
    index = draw(st.integers(0, len(spec["stages"]) - 1))
    stage = spec["stages"][index]
    if variant == "no-enable":
        stage.update(enable=[], disable=[], tenants={"percentage": 10})
    elif variant == "nobody":
        stage["tenants"] = draw(st.sampled_from([{"percentage": 0}, {"ids": []}, {}]))
        stage["enable"] = stage["enable"] or [_names(spec)[0]]
        _feature(spec, stage["enable"][0])["requires"] = []
    else:
        stage["tenants"] = draw(
            st.sampled_from(
                [
                    {"percentage": 12.345},
                    {"percentage": 150},
                    {"percentage": -5},
                    {"ids": ["not a tenant!"]},
                    {"ids": ["-leading-dash"]},
                    {"ids": ["x" * 129]},
                ]
            )
        )
    return {stage["name"], f"spec.stages[{index}].tenants"}


def broken_override(spec: dict[str, Any], draw: st.DrawFn) -> set[str]:
    first, second = draw(st.permutations(_names(spec)))[:2]
    variant = draw(st.sampled_from(["requirement-off", "twice", "bad-force", "no-force"]))
    if variant == "requirement-off":
        _feature(spec, first)["requires"] = [second]
        _feature(spec, second)["requires"] = []
        for stage in spec["stages"]:
            stage["enable"] = [n for n in stage["enable"] if n not in (first, second)]
        spec["overrides"] = [{"feature": first, "force": "Enabled", "reason": "hotfix"}]
        return {first, second}
    if variant == "twice":
        spec["overrides"] = [{"feature": first, "force": force} for force in ("Disabled",) * 2]
        return {first}
    if variant == "bad-force":
        force = draw(st.sampled_from(["On", "enabled", "", "true", "Off"]))
        spec["overrides"] = [{"feature": first, "force": force}]
        return {"spec.overrides[0].force"}
    spec["overrides"] = [{"feature": first}]
    return {"spec.overrides[0].force"}


ABSURD_DURATIONS = [
    "0s", "0w0d", "367d", "53w", "8784h1s", "99999999999999999999w", "1x", "-1d", "", " ",
    "1.5h", "1h1w", "1w2w", "P1D", "1 week", "forever",
]  # fmt: skip


def absurd_duration(spec: dict[str, Any], draw: st.DrawFn) -> set[str]:
    text = draw(st.sampled_from(ABSURD_DURATIONS))
    where = draw(st.sampled_from(["stage", "schedule", "healthGate"]))
    if where == "stage":
        stage = draw(st.sampled_from(spec["stages"]))
        stage["duration"] = text
        return {stage["name"], "duration"}
    if where == "schedule":
        spec["schedule"]["stageDuration"] = text
        return {"stageDuration"}
    spec["healthGate"] = {"window": text}
    spec["target"] = {"workloads": [{"kind": "Deployment", "name": "web"}]}
    return {"healthGate.window"}


ABSURD_TIMES = [
    "2026-13-01T00:00:00Z", "2026-02-30T09:00:00Z", "1999-12-31T23:59:59Z",
    "2201-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "yesterday",
    "", "2026-01-05T25:00:00Z", "2026-01-05 09:00 CET", "1735689600",
]  # fmt: skip
ABSURD_ZONES = ["Mars/Olympus_Mons", "", "UTC+25", "../etc/passwd", "Europe/Berlin ", "CEST"]


def absurd_time(spec: dict[str, Any], draw: st.DrawFn) -> set[str]:
    if draw(st.booleans()):
        spec["schedule"]["start"] = draw(st.sampled_from(ABSURD_TIMES))
        return {"spec.schedule.start"}
    spec["schedule"]["timeZone"] = draw(st.sampled_from(ABSURD_ZONES))
    return {"spec.schedule.timeZone"}


def oversized(spec: dict[str, Any], draw: st.DrawFn) -> set[str]:
    first = spec["features"][0]
    variant = draw(
        st.sampled_from(
            ["features", "stages", "name", "description", "requires", "tenants", "overrides"]
        )
    )
    if variant == "features":
        spec["features"] = [{"name": f"f{i}"} for i in range(MAX_FEATURES + 1)]
        spec["stages"] = []
        return {"spec.features"}
    if variant == "stages":
        spec["stages"] = [{"name": f"s{i}"} for i in range(MAX_STAGES + 1)]
        return {"spec.stages"}
    if variant == "name":
        first["name"] = "a" * (NAME_MAX_LENGTH + 1)
        return {"spec.features[0].name"}
    if variant == "description":
        first["description"] = "x" * (TEXT_MAX_LENGTH + 1)
        return {"spec.features[0].description"}
    if variant == "requires":
        first["requires"] = [f"r{i}" for i in range(MAX_REFERENCES + 1)]
        return {"spec.features[0].requires"}
    if variant == "tenants":
        spec["stages"][0]["tenants"] = {"ids": [f"t{i}" for i in range(MAX_TENANT_IDS + 1)]}
        spec["stages"][0]["enable"] = [first["name"]]
        return {"spec.stages[0].tenants.ids"}
    spec["overrides"] = [{"feature": first["name"], "force": "Disabled"}] * (MAX_OVERRIDES + 1)
    return {"spec.overrides"}


WRONG_TYPES: list[tuple[str, Any]] = [
    ("features", "search"),
    ("features", {"search": {}}),
    ("features", []),
    ("features.0.default", "maybe"),
    ("features.0.default", [True]),
    ("features.0.default", "true"),
    ("features.0.default", 1),
    ("paused", "no"),
    ("stages.0.tenants", {"percentage": "50"}),
    ("features.0.requires", "search"),
    ("features.0.requires", [1, 2]),
    ("features.0.name", 42),
    ("features.0", "search"),
    ("stages", {"step-1": {}}),
    ("stages.0.enable", "search"),
    ("stages.0.tenants", 50),
    ("stages.0.tenants", {"percentage": "fifty"}),
    ("promotion", "Sometimes"),
    ("paused", "perhaps"),
    ("schedule", "weekly"),
    ("schedule.stageDuration", 7),
    ("target", ["web"]),
    ("target.reloadStrategy", "Now"),
    ("target.workloads", [{"kind": "Pod", "name": "web"}]),
    ("overrides", {"search": "Enabled"}),
    ("features.0.colour", "blue"),
    ("stages.0.enabled", ["search"]),
]


def _path_text(parts: list[str]) -> str:
    text = "spec"
    for part in parts:
        text += f"[{part}]" if part.isdigit() else f".{part}"
    return text


def wrong_type(spec: dict[str, Any], draw: st.DrawFn) -> set[str]:
    where, value = draw(st.sampled_from(WRONG_TYPES))
    parts = where.split(".")
    holder: Any = spec
    for part in parts[:-1]:
        holder = holder[int(part)] if part.isdigit() else holder.setdefault(part, {})
    last = parts[-1]
    holder[int(last) if last.isdigit() else last] = value
    # The core names the deepest field it could not read, which may sit under the one changed.
    return {_path_text(parts)}


FLAWS = {
    "cycle": cycle,
    "unknown-reference": unknown_reference,
    "stage-order": stage_order,
    "tenant-scope": tenant_scope,
    "broken-override": broken_override,
    "absurd-duration": absurd_duration,
    "absurd-time": absurd_time,
    "oversized": oversized,
    "wrong-type": wrong_type,
}


@st.composite
def flawed_rollouts(draw: st.DrawFn, kinds: tuple[str, ...] = tuple(FLAWS)) -> FlawedRollout:
    """A valid rollout with one flaw of one of `kinds` put in."""
    kind = draw(st.sampled_from(kinds))
    spec = copy.deepcopy(draw(valid_specs(min_features=2)))
    culprits = FLAWS[kind](spec, draw)
    return FlawedRollout(wrap(spec), kind, frozenset(culprits))
