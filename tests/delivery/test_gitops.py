"""The GitOps examples point at the overlays, and Argo CD's health check reads the conditions.

The health check runs on Lua 5.1, the language version of the interpreter inside Argo CD, with
FeatureRollouts shaped like the ones the operator writes.
"""

from __future__ import annotations

from typing import Any

import pytest
from lupa import lua51

from tests.delivery.conftest import REPO, parse_documents

GITOPS = REPO / "manifests" / "gitops"
HEALTH_KEY = "resource.customizations.health.flagstage.io_FeatureRollout"
WAVE = "argocd.argoproj.io/sync-wave"


def documents(relative: str) -> list[dict[str, Any]]:
    return parse_documents((GITOPS / relative).read_text(encoding="utf-8"))


def condition(kind: str, status: bool, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
    }


def rollout(*conditions: dict[str, Any], generation: int = 3, observed: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "flagstage.io/v1alpha1",
        "kind": "FeatureRollout",
        "metadata": {"name": "insights-api", "namespace": "insights", "generation": generation},
        "status": {
            "observedGeneration": observed,
            "stage": {"name": "week-3", "index": 2},
            "conditions": list(conditions),
        },
    }


READY = condition("Ready", True, "ConfigApplied", "ConfigMap insights-api-features holds week-3")
VALID = condition("Valid", True, "SpecValid", "the spec passed every check")
NOT_DEGRADED = condition("Degraded", False, "AsExpected", "the last change was applied")
RUNNING = condition("Paused", False, "Running", "the schedule runs")
SCHEDULED = condition("Progressing", True, "StageScheduled", "week-4 starts 2026-12-21")


def health(obj: dict[str, Any]) -> dict[str, str]:
    (config_map,) = documents("argocd/argocd-cm.yaml")
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(config_map["data"][HEALTH_KEY])
    return {"status": result["status"], "message": result["message"]}


def test_a_rollout_the_operator_has_not_seen_is_progressing() -> None:
    fresh = {"metadata": {"name": "insights-api", "generation": 1}}

    assert health(fresh)["status"] == "Progressing"


def test_a_rollout_whose_change_is_not_reconciled_yet_is_progressing() -> None:
    stale = rollout(VALID, READY, NOT_DEGRADED, RUNNING, SCHEDULED, generation=4, observed=3)

    assert health(stale) == {
        "status": "Progressing",
        "message": "waiting for the operator to see generation 4",
    }


def test_a_rollout_on_schedule_is_healthy_and_says_what_comes_next() -> None:
    result = health(rollout(VALID, READY, NOT_DEGRADED, RUNNING, SCHEDULED))

    assert result == {"status": "Healthy", "message": "stage week-3: week-4 starts 2026-12-21"}


def test_a_refused_rollout_is_degraded_with_the_reason_it_was_refused() -> None:
    refused = rollout(
        condition("Ready", False, "InvalidSpec", "the spec was refused"),
        condition("Valid", False, "InvalidSpec", "1 problem(s): dependency cycle a -> b -> a"),
        condition("Degraded", True, "InvalidSpec", "the spec was refused; see Valid"),
    )

    result = health(refused)

    assert result["status"] == "Degraded"
    assert result["message"].endswith("dependency cycle a -> b -> a")
    assert "last good configuration stays live" in result["message"]


def test_a_failed_reload_is_degraded_with_its_own_message() -> None:
    failed = rollout(
        VALID, READY, condition("Degraded", True, "ReloadFailed", "Deployment api not reloaded")
    )

    assert health(failed) == {
        "status": "Degraded",
        "message": "stage week-3: Deployment api not reloaded",
    }


@pytest.mark.parametrize(
    "held",
    [
        condition("Paused", True, "PausedBySpec", "spec.paused is true"),
        condition("Progressing", True, "AwaitingPromotion", "week-4 waits for a promotion"),
    ],
    ids=["paused", "awaiting-promotion"],
)
def test_a_held_rollout_is_suspended(held: dict[str, Any]) -> None:
    result = health(rollout(VALID, READY, NOT_DEGRADED, held))

    assert result["status"] == "Suspended"
    assert result["message"] == f"stage week-3: {held['message']}"


def test_a_rollout_not_ready_yet_is_progressing_with_readys_message() -> None:
    waiting = rollout(condition("Ready", False, "ApplyFailed", "configmaps is forbidden"))

    assert health(waiting) == {"status": "Progressing", "message": "configmaps is forbidden"}


def test_argo_cd_applications_deploy_the_prod_overlay_then_the_rollouts() -> None:
    operator, rollouts = documents("argocd/applications.yaml")

    assert operator["spec"]["source"]["path"] == "manifests/overlays/prod"
    assert (REPO / operator["spec"]["source"]["path"]).is_dir()
    assert "ServerSideApply=true" in operator["spec"]["syncPolicy"]["syncOptions"]
    sync_wave = int(operator["metadata"]["annotations"][WAVE])
    assert sync_wave < int(rollouts["metadata"].get("annotations", {}).get(WAVE, "0"))


def test_flux_applies_the_rollouts_after_the_operator_and_checks_their_health() -> None:
    objects = {
        (obj["kind"], obj["metadata"]["name"]): obj for obj in documents("flux/flagstage.yaml")
    }

    operator = objects[("Kustomization", "flagstage-operator")]
    rollouts = objects[("Kustomization", "insights-rollouts")]
    (check,) = rollouts["spec"]["healthCheckExprs"]
    assert (REPO / operator["spec"]["path"]).is_dir()
    assert rollouts["spec"]["dependsOn"] == [{"name": "flagstage-operator"}]
    assert (check["apiVersion"], check["kind"]) == ("flagstage.io/v1alpha1", "FeatureRollout")
    assert "'Ready'" in check["current"]
    assert "'Degraded'" in check["failed"]


def test_gitops_yaml_lines_stay_under_120_characters() -> None:
    for path in GITOPS.rglob("*.yaml"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert len(line) < 120, f"{path.relative_to(REPO)}:{number}"
