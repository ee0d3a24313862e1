"""The reconcile decision on its own: no cluster, just an object and a clock."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from flagstage_operator.reconciling import PROMOTE_ANNOTATION, reconcile, status_patch

from tests.operator.conftest import load_example

START = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def _body(**spec: Any) -> dict[str, Any]:
    body = copy.deepcopy(load_example("six-week-rollout.yaml"))
    body["metadata"].update(namespace="insights", uid="u-1", generation=1)
    body["spec"]["schedule"] = {"start": "2026-11-30T08:00:00Z", "stageDuration": "1h"}
    body["spec"].update(spec)
    return body


def _after(body: dict[str, Any], at: datetime) -> dict[str, Any]:
    body["status"] = reconcile(body, now=at).status
    return body


def test_the_same_object_at_the_same_time_decides_nothing_new() -> None:
    body = _after(_body(), START + timedelta(minutes=90))
    again = reconcile(body, now=START + timedelta(minutes=91))
    assert status_patch(body["status"], again.status) == {}
    assert again.notices == [] and not again.reload


def test_a_promote_request_is_acted_on_once() -> None:
    body = _after(_body(promotion="Manual"), START)
    body["metadata"]["annotations"] = {PROMOTE_ANNOTATION: "2026-11-30T08:05:00.000000Z"}
    body = _after(body, START + timedelta(minutes=5))
    assert body["status"]["stage"]["name"] == "week-2"
    body = _after(body, START + timedelta(minutes=6))
    assert body["status"]["stage"]["name"] == "week-2"


def test_a_refused_spec_keeps_the_progress_and_writes_no_config() -> None:
    body = _after(_body(), START + timedelta(minutes=90))
    body["metadata"]["generation"] = 2
    body["spec"]["features"][0]["requires"] = ["nothing_here"]
    outcome = reconcile(body, now=START + timedelta(hours=3))
    assert outcome.config_map is None
    assert outcome.status["stage"] == body["status"]["stage"]
    assert [n.reason for n in outcome.notices] == ["SpecRefused"]


def test_a_status_patch_clears_what_the_new_status_drops() -> None:
    assert status_patch({"pausedAt": "x", "stage": 1}, {"stage": 2}) == {
        "pausedAt": None,
        "stage": 2,
    }


def test_a_settled_rollout_is_quiet_until_its_next_stage() -> None:
    body = _after(_body(), START + timedelta(minutes=90))
    again = reconcile(body, now=START + timedelta(minutes=91))
    assert again.quiet_until == START + timedelta(hours=2) == again.next_at
    manual = _after(_body(promotion="Manual"), START)
    assert reconcile(manual, now=START + timedelta(hours=5)).quiet_until is None


def test_a_reload_that_failed_is_tried_again_on_the_next_reconcile() -> None:
    body = _after(_body(), START + timedelta(minutes=90))
    body["status"]["conditions"] = [
        {**c, "status": "True", "reason": "ReloadFailed"} if c["type"] == "Degraded" else c
        for c in body["status"]["conditions"]
    ]
    assert reconcile(body, now=START + timedelta(minutes=91)).reload
