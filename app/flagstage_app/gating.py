"""Which feature toggles the API consults, and the seam through which it reads them.

Handlers ask `get_toggles()` for an object with `is_enabled(feature, tenant)`; they never build
one. Until the live store is installed on `app.state.toggles`, the answer is a snapshot with
every feature at the rollout's declared defaults (all off), so the app works with no rollout.
"""

from __future__ import annotations

from typing import Protocol, cast

from fastapi import Request

from flagstage.snapshot import Snapshot
from flagstage.state import NOBODY, FeatureState
from flagstage_app.toggles.serving import request_toggles

TEMPORAL_ANALYSIS = "temporal_analysis"

# The features this workload knows and what each needs first; mirrors the example rollout.
APP_FEATURES: dict[str, tuple[str, ...]] = {
    "temporal_analysis": (),
    "format_detection": (),
    "multi_format_support": ("format_detection",),
    "enhanced_upload": ("format_detection",),
    "real_time_ingestion": (),
    "event_driven_rag": ("enhanced_upload",),
    "continuous_learning": ("event_driven_rag",),
}


class ToggleProvider(Protocol):
    """Anything that answers whether a feature is on for a tenant, cheaply and thread-safely."""

    def is_enabled(self, feature: str, tenant: str | None = None) -> bool: ...


def default_toggles() -> Snapshot:
    """Every known feature at its default: off for everyone."""
    states = {name: FeatureState(name, NOBODY, "default") for name in APP_FEATURES}
    return Snapshot(states, APP_FEATURES, stage="defaults")


def get_toggles(request: Request) -> ToggleProvider:
    """FastAPI dependency: the toggles installed on the app (`app.state.toggles`).

    With the live store installed, this is the one snapshot the request was pinned to, so a
    config swap in the middle of a request never mixes two configurations.
    """
    return cast(ToggleProvider, request_toggles(request))
