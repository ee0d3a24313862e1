"""Prometheus counters of the live toggles, registered once in the default registry.

They are process-wide on purpose: a process serves one app, and tests that build several
watchers compare differences, not absolute values.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONFIG_RELOADS = Counter(
    "flagstage_app_config_reloads",
    "Configurations read from the mounted directory, checked and swapped in.",
)
CONFIG_REFUSED = Counter(
    "flagstage_app_config_refused",
    "Configurations found in the mounted directory and refused; the last good one stayed.",
)
FEATURE_FALLBACKS = Counter(
    "flagstage_app_feature_fallbacks",
    "Requests that took the baseline path instead of a feature's, by feature and reason "
    "(off: the toggle is off; error: the feature failed at runtime).",
    ["feature", "reason"],
)
CONFIG_LOADED_TIMESTAMP = Gauge(
    "flagstage_app_config_loaded_timestamp_seconds",
    "When the configuration in use was swapped in (Unix time).",
)
WATCHER_ERRORS = Counter(
    "flagstage_app_config_watcher_errors",
    "Unexpected errors in the config watcher thread; it logs them and carries on.",
)


def record_fallback(feature: str, reason: str) -> None:
    """Count a request that fell back from `feature` (`reason`: `off` or `error`)."""
    FEATURE_FALLBACKS.labels(feature=feature, reason=reason).inc()
