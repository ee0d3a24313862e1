"""Generated bad rollouts, offline: the core, the webhook and the operator's decision refuse each.

Every flawed rollout (see `tests.reliability.rollouts`) must be refused by `parse_rollout` with
a problem that names one of its culprits, by the admission webhook with the same words, and by
the operator's reconcile, which must keep the stage it had and write no ConfigMap.
"""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flagstage_operator.reconciling import reconcile
from flagstage_operator.webhook import refusal
from hypothesis import given

from flagstage.errors import Problem, SpecError
from flagstage.validation import parse_rollout
from tests.reliability.conftest import examples
from tests.reliability.rollouts import FLAWS, FlawedRollout, flawed_rollouts, valid_specs, wrap

NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
SEEN_KINDS: Counter[str] = Counter()


def names_a_culprit(problem: Problem, culprits: frozenset[str]) -> bool:
    text = f"{problem.path}\n{problem.subject}\n{problem.message}"
    return any(culprit in text for culprit in culprits)


def refuse(flawed: FlawedRollout) -> list[Problem]:
    with pytest.raises(SpecError) as refused:
        parse_rollout(flawed.manifest)
    return refused.value.problems


@examples(normal=400, soak=20_000)
@given(valid=valid_specs())
def test_the_generated_valid_rollouts_are_accepted(valid: dict[str, Any]) -> None:
    parse_rollout(wrap(valid))


@examples(normal=1_500, soak=50_000)
@given(flawed=flawed_rollouts())
def test_every_flawed_rollout_is_refused_naming_its_culprit(flawed: FlawedRollout) -> None:
    SEEN_KINDS[flawed.kind] += 1
    problems = refuse(flawed)
    assert any(names_a_culprit(problem, flawed.culprits) for problem in problems), (
        f"{flawed.kind}: no problem names any of {sorted(flawed.culprits)}: "
        + "; ".join(map(str, problems))
    )
    for problem in problems:
        assert problem.message.strip(), f"a problem at {problem.path} has no message"


def test_every_kind_of_flaw_was_generated() -> None:
    # Runs after the fuzzing above in file order; alone, it has nothing to check.
    if not SEEN_KINDS:
        pytest.skip("run with the fuzzing test")
    assert set(SEEN_KINDS) == set(FLAWS), SEEN_KINDS


@examples(normal=200, soak=5_000)
@given(flawed=flawed_rollouts())
def test_the_webhook_refuses_every_flawed_rollout_in_the_cores_words(
    flawed: FlawedRollout,
) -> None:
    body = copy.deepcopy(flawed.manifest)
    body["metadata"].update(namespace="fuzz", uid="u-1", generation=1)
    message = refusal(body)
    assert message is not None
    problems = refuse(flawed)
    assert all(str(problem) in message for problem in problems)


@examples(normal=200, soak=5_000)
@given(flawed=flawed_rollouts(), valid=valid_specs())
def test_the_operator_keeps_its_stage_and_writes_no_config_map_for_a_flawed_update(
    flawed: FlawedRollout, valid: dict[str, Any]
) -> None:
    body = wrap(valid)
    body["metadata"].update(namespace="fuzz", uid="u-1", generation=1)
    good = reconcile(body, now=NOW)
    assert good.config_map is not None
    body["status"] = good.status

    body["spec"] = flawed.spec
    body["metadata"]["generation"] = 2
    refused = reconcile(body, now=NOW + timedelta(minutes=5))
    assert refused.config_map is None
    assert not refused.reload
    assert refused.status.get("stage") == good.status.get("stage")
    assert [notice.reason for notice in refused.notices] == ["SpecRefused"]
    valid_condition = next(c for c in refused.status["conditions"] if c["type"] == "Valid")
    assert valid_condition["status"] == "False"
