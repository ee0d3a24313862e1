"""Status conditions as kstatus and Argo CD read them: types, reasons, and how they change.

A condition keeps its `lastTransitionTime` while its status stays the same, so rewriting an
unchanged status is a no-op and the operator can compare whole status objects to decide
whether to write at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

TRUE = "True"
FALSE = "False"

# Condition types.
READY = "Ready"
VALID = "Valid"
PROGRESSING = "Progressing"
PAUSED = "Paused"
DEGRADED = "Degraded"
CONDITION_TYPES = (READY, VALID, PROGRESSING, PAUSED, DEGRADED)

# Reasons.
SPEC_VALID = "SpecValid"
INVALID_SPEC = "InvalidSpec"
CONFIG_APPLIED = "ConfigApplied"
APPLY_FAILED = "ApplyFailed"
NOT_STARTED = "NotStarted"
STAGE_SCHEDULED = "StageScheduled"
AWAITING_PROMOTION = "AwaitingPromotion"
ROLLOUT_COMPLETE = "RolloutComplete"
PAUSED_BY_SPEC = "PausedBySpec"
ROLLED_BACK = "RolledBack"
RUNNING = "Running"
AS_EXPECTED = "AsExpected"
RELOAD_FAILED = "ReloadFailed"
WAITING_FOR_HEALTHY_WORKLOADS = "WaitingForHealthyWorkloads"
WORKLOAD_UNAVAILABLE = "WorkloadUnavailable"


def find(conditions: Sequence[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    for condition in conditions:
        if condition.get("type") == kind:
            return condition
    return None


def is_true(conditions: Sequence[Mapping[str, Any]], kind: str) -> bool:
    condition = find(conditions, kind)
    return condition is not None and condition.get("status") == TRUE


def reason_of(conditions: Sequence[Mapping[str, Any]], kind: str) -> str | None:
    condition = find(conditions, kind)
    return None if condition is None else condition.get("reason")


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    kind: str,
    *,
    status: bool,
    reason: str,
    message: str,
    now: str,
    generation: int,
) -> list[dict[str, Any]]:
    """`conditions` with `kind` set; the transition time moves only when the status flips."""
    word = TRUE if status else FALSE
    previous = find(conditions, kind)
    changed = previous is None or previous.get("status") != word
    updated = {
        "type": kind,
        "status": word,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now if changed else previous["lastTransitionTime"],  # type: ignore[index]
        "observedGeneration": generation,
    }
    others = [dict(condition) for condition in conditions if condition.get("type") != kind]
    return sorted([*others, updated], key=_order)


def _order(condition: Mapping[str, Any]) -> int:
    kind = condition.get("type")
    return CONDITION_TYPES.index(kind) if kind in CONDITION_TYPES else len(CONDITION_TYPES)
