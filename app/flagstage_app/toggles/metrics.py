"""Prometheus metrics of the live toggles: reloads, refused configs, feature fallbacks.

They are registered in the registry they are given (the app's own, so they appear on its
`/metrics` and several apps in one process do not collide), or a private one by default.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

FALLBACK_OFF = "off"
FALLBACK_ERROR = "error"


class ToggleMetrics:
    """The counters one `LiveToggles` (and the routes that consult it) update."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.reloads = Counter(
            "flagstage_app_config_reloads",
            "Configurations read from the mounted directory, checked and swapped in.",
            registry=self.registry,
        )
        self.refused = Counter(
            "flagstage_app_config_refused",
            "Configurations found in the mounted directory and refused; the last good one stayed.",
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "flagstage_app_feature_fallbacks",
            "Requests that took the baseline path instead of a feature's, by feature and reason "
            "(off: the toggle is off; error: the feature failed at runtime).",
            ["feature", "reason"],
            registry=self.registry,
        )
        self.loaded_timestamp = Gauge(
            "flagstage_app_config_loaded_timestamp_seconds",
            "When the configuration in use was swapped in (Unix time).",
            registry=self.registry,
        )
        self.watcher_errors = Counter(
            "flagstage_app_config_watcher_errors",
            "Unexpected errors in the config watcher thread; it logs them and carries on.",
            registry=self.registry,
        )

    def record_fallback(self, feature: str, reason: str) -> None:
        """Count a request that fell back from `feature` (`FALLBACK_OFF` or `FALLBACK_ERROR`)."""
        self.fallbacks.labels(feature=feature, reason=reason).inc()
