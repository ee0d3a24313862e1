"""Live feature toggles for the app: layered defaults, environment and mounted config.

`LiveToggles` is what the app holds; read `toggles.current` once per request and evaluate
against that snapshot. `explain` says why a feature is on or off for a tenant, and
`kubelet.publish` writes a ConfigMap's data into a directory the way the kubelet does.
"""

from flagstage_app.toggles.catalog import FEATURE_NAMES, FEATURES, FeatureSpec
from flagstage_app.toggles.layering import (
    EnvOverrides,
    FeatureExplanation,
    build_snapshot,
    explain,
    read_env_overrides,
)
from flagstage_app.toggles.watcher import LiveToggles, RefusedConfig, ReloadStatus

__all__ = [
    "FEATURES",
    "FEATURE_NAMES",
    "EnvOverrides",
    "FeatureExplanation",
    "FeatureSpec",
    "LiveToggles",
    "RefusedConfig",
    "ReloadStatus",
    "build_snapshot",
    "explain",
    "read_env_overrides",
]
