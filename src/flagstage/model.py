"""The FeatureRollout resource as typed models.

These models describe the shape of a rollout (the same shape the CRD's schema enforces at
`kubectl apply`); the rules that span several fields, such as dependency cycles or a stage
that leaves a feature on without what it requires, live in `flagstage.validation`.
Field names are snake_case in Python and camelCase in manifests.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

API_GROUP = "flagstage.io"
API_VERSION = "v1alpha1"
KIND = "FeatureRollout"
DEFAULT_STAGE_DURATION = "1w"

# Bounds on sizes. The CRD is generated from these models and its CEL rules iterate the
# lists, so every list and string has a bound the API server's cost estimate can work with.
NAME_MAX_LENGTH = 63
TEXT_MAX_LENGTH = 1024
TENANT_ID_MAX_LENGTH = 128
MAX_FEATURES = 256
MAX_STAGES = 64
MAX_REFERENCES = 32
MAX_OVERRIDES = 64
MAX_WORKLOADS = 32
MAX_TENANT_IDS = 1000


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        # As the CRD's schema does: "yes" is not a boolean, nor "50" a percentage.
        strict=True,
    )


class Feature(_Model):
    """A toggle the workload understands, and what it cannot work without."""

    name: str = Field(max_length=NAME_MAX_LENGTH)
    description: str = Field(default="", max_length=TEXT_MAX_LENGTH)
    default: bool = False
    requires: list[str] = Field(default_factory=list, max_length=MAX_REFERENCES)
    owner: str = Field(default="", max_length=TEXT_MAX_LENGTH)


class TenantSelector(_Model):
    """Which tenants a stage turns its features on for, before they are on for everyone."""

    percentage: float | None = Field(default=None, ge=0, le=100)
    ids: list[str] = Field(default_factory=list, max_length=MAX_TENANT_IDS)


class Stage(_Model):
    """One step of the plan: what it turns on and off, for whom, and for how long."""

    name: str = Field(max_length=NAME_MAX_LENGTH)
    enable: list[str] = Field(default_factory=list, max_length=MAX_REFERENCES)
    disable: list[str] = Field(default_factory=list, max_length=MAX_REFERENCES)
    duration: str | None = None
    tenants: TenantSelector | None = None


class Schedule(_Model):
    """When the first stage starts and how long stages last unless they say otherwise."""

    start: str | None = None
    stage_duration: str = DEFAULT_STAGE_DURATION
    time_zone: str = "UTC"


class Override(_Model):
    """A force on or off that wins over the plan; forcing off is the kill switch."""

    feature: str = Field(max_length=NAME_MAX_LENGTH)
    force: Literal["Enabled", "Disabled"]
    reason: str = Field(default="", max_length=TEXT_MAX_LENGTH)


class Workload(_Model):
    """A workload that mounts the rendered configuration."""

    kind: Literal["Deployment", "StatefulSet"] = "Deployment"
    name: str = Field(max_length=253)


class Target(_Model):
    """Where the rendered configuration goes and how workloads pick it up."""

    config_map: str | None = Field(default=None, max_length=253)
    workloads: list[Workload] = Field(default_factory=list, max_length=MAX_WORKLOADS)
    reload_strategy: Literal["Live", "Rolling"] = "Live"


class HealthGate(_Model):
    """Target workloads must stay available; a change that breaks them is rolled back."""

    window: str = "5m"


class RolloutSpec(_Model):
    """`spec` of a FeatureRollout."""

    features: list[Feature] = Field(min_length=1, max_length=MAX_FEATURES)
    stages: list[Stage] = Field(default_factory=list, max_length=MAX_STAGES)
    schedule: Schedule = Field(default_factory=Schedule)
    promotion: Literal["Automatic", "Manual"] = "Automatic"
    paused: bool = False
    overrides: list[Override] = Field(default_factory=list, max_length=MAX_OVERRIDES)
    target: Target = Field(default_factory=Target)
    health_gate: HealthGate | None = None

    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    def to_manifest(self) -> dict[str, Any]:
        """The spec as a manifest writes it: camelCase keys, defaults left out."""
        return self.model_dump(by_alias=True, exclude_defaults=True, mode="json")


class FeatureRollout(_Model):
    """A whole FeatureRollout: the identity the operator needs plus its spec."""

    name: str
    namespace: str = "default"
    generation: int = 0
    spec: RolloutSpec

    @property
    def config_map_name(self) -> str:
        return self.spec.target.config_map or f"{self.name}-features"
