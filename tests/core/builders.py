"""Small rollouts built in code, so each test shows exactly the spec it is about."""

from __future__ import annotations

from typing import Any

from flagstage.model import FeatureRollout
from flagstage.validation import parse_rollout


def manifest(spec: dict[str, Any], name: str = "demo", generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "flagstage.io/v1alpha1",
        "kind": "FeatureRollout",
        "metadata": {"name": name, "namespace": "default", "generation": generation},
        "spec": spec,
    }


def feature(name: str, *requires: str, default: bool = False) -> dict[str, Any]:
    return {"name": name, "requires": list(requires), "default": default}


def rollout(spec: dict[str, Any], **kwargs: Any) -> FeatureRollout:
    return parse_rollout(manifest(spec, **kwargs))
