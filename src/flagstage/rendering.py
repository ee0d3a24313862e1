"""Rendering a rollout at a stage into the data of its ConfigMap, and reading it back.

One ConfigMap carries three views of the same state:
- `features.json`, the file the reference app reads: schema version, the rollout's name and
  generation, the live stage, each feature's state and tenant rule, and a content hash;
- `FEATURE_<NAME>=true|false` keys for workloads that use `envFrom` (a feature on for only
  some tenants is `false` there, since an environment variable cannot name tenants);
- `flags.flagd.json` in flagd's flag-definition format, so OpenFeature flagd providers can read
  the same mount.

Rendering is deterministic: the same rollout at the same stage gives byte-identical data. The
hash covers only what changes behaviour (each feature's reach and requirements), so editing a
description, or moving to a stage that changes nothing, does not restart a Rolling workload.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flagstage.errors import ConfigError
from flagstage.graph import find_cycles
from flagstage.model import FeatureRollout
from flagstage.state import FeatureState, Reach, requirement_gaps, state_at
from flagstage.validation import FEATURE_NAME

SCHEMA_VERSION = 1
FEATURES_KEY = "features.json"
FLAGD_KEY = "flags.flagd.json"
ENV_PREFIX = "FEATURE_"
FLAGD_SCHEMA = "https://flagd.dev/schema/v0/flags.json"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
ROLLOUT_LABEL = "flagstage.io/rollout"
HASH_ANNOTATION = "flagstage.io/config-hash"
STAGE_ANNOTATION = "flagstage.io/stage"


@dataclass(frozen=True)
class RenderedConfig:
    """The ConfigMap data for one rollout at one stage, with its hash."""

    data: dict[str, str]
    config_hash: str
    stage_index: int
    stage_name: str | None
    state: dict[str, FeatureState]

    @property
    def enabled(self) -> list[str]:
        """Features on for every tenant, sorted."""
        return sorted(name for name, item in self.state.items() if item.reach.everyone)

    @property
    def partial(self) -> list[str]:
        """Features on for some tenants only, sorted."""
        return sorted(name for name, item in self.state.items() if item.reach.partial)


def env_key(feature: str) -> str:
    """`format_detection` -> `FEATURE_FORMAT_DETECTION`."""
    return ENV_PREFIX + feature.upper()


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 2)


def _hashed_view(features: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {
        name: {key: item[key] for key in ("percentage", "tenants", "requires")}
        for name, item in features.items()
    }


def content_hash(features: Mapping[str, Mapping[str, Any]]) -> str:
    """`sha256:<hex>` over what changes behaviour: each feature's reach and requirements."""
    canonical = json.dumps(_hashed_view(features), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _state_word(reach: Reach) -> str:
    return "on" if reach.everyone else "off" if reach.nobody else "partial"


def _to_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def render_config(rollout: FeatureRollout, stage_index: int) -> RenderedConfig:
    """The ConfigMap data of `rollout` with stages up to `stage_index` applied (-1: none).

    The rollout must have passed validation; rendering does not check it again.
    """
    spec = rollout.spec
    state = state_at(spec, stage_index)
    features: dict[str, dict[str, Any]] = {}
    for feature in spec.features:
        reach = state[feature.name].reach
        features[feature.name] = {
            "state": _state_word(reach),
            "percentage": _number(reach.percentage),
            "tenants": list(reach.ids),
            "requires": sorted(feature.requires),
            "source": state[feature.name].source,
            "description": feature.description,
            "owner": feature.owner,
        }
    config_hash = content_hash(features)
    stage_name = spec.stages[stage_index].name if stage_index >= 0 else None
    document = {
        "schemaVersion": SCHEMA_VERSION,
        "rollout": {
            "name": rollout.name,
            "namespace": rollout.namespace,
            "generation": rollout.generation,
        },
        "stage": {"index": stage_index, "name": stage_name},
        "features": features,
        "hash": config_hash,
    }
    data = {FEATURES_KEY: _to_json(document), FLAGD_KEY: _to_json(_flagd_document(state))}
    for name, item in state.items():
        data[env_key(name)] = "true" if item.reach.everyone else "false"
    return RenderedConfig(
        data=dict(sorted(data.items())),
        config_hash=config_hash,
        stage_index=stage_index,
        stage_name=stage_name,
        state=state,
    )


def _flagd_document(state: Mapping[str, FeatureState]) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    for name in sorted(state):
        reach = state[name].reach
        flag: dict[str, Any] = {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "on" if reach.everyone else "off",
        }
        if reach.partial:
            flag["targeting"] = _flagd_targeting(reach)
        flags[name] = flag
    return {"$schema": FLAGD_SCHEMA, "flags": flags}


def _flagd_targeting(reach: Reach) -> dict[str, Any]:
    # Weights in basis points keep two-decimal percentages exact with flagd's integer weights.
    on_weight = round(reach.percentage * 100)
    by_percentage: Any = (
        {"fractional": [["on", on_weight], ["off", 10000 - on_weight]]} if on_weight else "off"
    )
    if not reach.ids:
        return dict(by_percentage)
    return {"if": [{"in": [{"var": "targetingKey"}, list(reach.ids)]}, "on", by_percentage]}


def render_config_map(rollout: FeatureRollout, rendered: RenderedConfig) -> dict[str, Any]:
    """The ConfigMap object as `kubectl apply` or server-side apply takes it."""
    annotations = {HASH_ANNOTATION: rendered.config_hash}
    if rendered.stage_name is not None:
        annotations[STAGE_ANNOTATION] = rendered.stage_name
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": rollout.config_map_name,
            "namespace": rollout.namespace,
            "labels": {MANAGED_BY_LABEL: "flagstage", ROLLOUT_LABEL: rollout.name},
            "annotations": annotations,
        },
        "data": rendered.data,
    }


def parse_features_document(text: str | bytes) -> dict[str, Any]:
    """Read and check a rendered `features.json`; a `ConfigError` says what is wrong with it.

    Checks the schema version, the shape of every feature, that requirements name declared
    features without cycles, that no feature reaches beyond what it requires, and that the
    hash matches the content (which catches truncated and hand-edited files).
    """
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"{FEATURES_KEY} is not valid JSON: {err}") from err
    if not isinstance(document, dict):
        raise ConfigError(f"{FEATURES_KEY} must hold a JSON object, not {type(document).__name__}")
    version = document.get("schemaVersion")
    if version != SCHEMA_VERSION:
        raise ConfigError(
            f"{FEATURES_KEY} has schemaVersion {version!r}; this build reads version "
            f"{SCHEMA_VERSION}, so keep the operator and the app at matching releases"
        )
    features = document.get("features")
    if not isinstance(features, dict):
        raise ConfigError(f"{FEATURES_KEY} has no 'features' object")
    for name, item in features.items():
        _check_feature_entry(name, item, features)
    requires = {name: item["requires"] for name, item in features.items()}
    cycles = find_cycles(requires)
    if cycles:
        raise ConfigError(f"{FEATURES_KEY} has a dependency cycle {' -> '.join(cycles[0])}")
    state = reaches_of(features)
    gaps = requirement_gaps(requires, state)
    if gaps:
        feature, req, why = gaps[0]
        raise ConfigError(f"{FEATURES_KEY}: {feature!r} is on but requires {req!r}, which is {why}")
    expected = content_hash(features)
    if document.get("hash") != expected:
        raise ConfigError(
            f"{FEATURES_KEY} hash {document.get('hash')!r} does not match its content "
            f"({expected}); the file is corrupt or was edited by hand"
        )
    return document


def _check_feature_entry(name: Any, item: Any, features: Mapping[str, Any]) -> None:
    if not isinstance(name, str) or not FEATURE_NAME.match(name):
        raise ConfigError(f"{FEATURES_KEY}: {name!r} is not a lower_snake_case feature name")
    if not isinstance(item, dict):
        raise ConfigError(f"{FEATURES_KEY}: feature {name!r} must be an object")
    percentage = item.get("percentage")
    if isinstance(percentage, bool) or not isinstance(percentage, int | float):
        raise ConfigError(f"{FEATURES_KEY}: feature {name!r} has no numeric 'percentage'")
    if not 0 <= percentage <= 100:
        raise ConfigError(f"{FEATURES_KEY}: feature {name!r} percentage {percentage} not in 0-100")
    for key in ("tenants", "requires"):
        value = item.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{FEATURES_KEY}: feature {name!r} '{key}' must be a string list")
    for req in item["requires"]:
        if req not in features:
            raise ConfigError(f"{FEATURES_KEY}: feature {name!r} requires unknown {req!r}")


def reaches_of(features: Mapping[str, Mapping[str, Any]]) -> dict[str, FeatureState]:
    """Feature states from the `features` object of a checked document."""
    return {
        name: FeatureState(
            name,
            Reach(float(item["percentage"]), tuple(item["tenants"])),
            str(item.get("source", "")),
        )
        for name, item in features.items()
    }
