"""The features this app's code knows, with their declared defaults and requirements.

The requirements are what the code needs, not a rollout's opinion: a mounted configuration may
add requirements but cannot drop these. They match the example rollout
(`manifests/examples/six-week-rollout.yaml`), whose features all default to off, so an app
started without any rollout serves its baseline paths.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureSpec:
    """One feature as the app declares it."""

    name: str
    default: bool
    requires: tuple[str, ...]
    description: str


FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec(
        "temporal_analysis",
        False,
        (),
        "Revenue-over-time answers computed from account revenue and monthly growth.",
    ),
    FeatureSpec(
        "format_detection",
        False,
        (),
        "Detect an upload's file format and dataset from its content.",
    ),
    FeatureSpec(
        "multi_format_support",
        False,
        ("format_detection",),
        "Accept JSON, NDJSON and XLSX uploads besides CSV.",
    ),
    FeatureSpec(
        "enhanced_upload",
        False,
        ("format_detection",),
        "Row-level validation reports, partial loads and idempotent re-uploads.",
    ),
    FeatureSpec(
        "real_time_ingestion",
        False,
        (),
        "Uploads refresh monthly revenue and health scores of affected accounts at once.",
    ),
    FeatureSpec(
        "event_driven_rag",
        False,
        ("enhanced_upload",),
        "Data changes re-index only the affected knowledge-base documents.",
    ),
    FeatureSpec(
        "continuous_learning",
        False,
        ("event_driven_rag",),
        "Answer feedback re-ranks the tenant's retrieval.",
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(feature.name for feature in FEATURES)
