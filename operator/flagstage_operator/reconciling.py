"""What one reconcile of a FeatureRollout decides, without talking to Kubernetes.

`reconcile(body, now=...)` takes the object as the API server returned it and the current time,
and returns an `Outcome`: the status to write, the ConfigMap to apply, whether target workloads
need a reload, and the Events to post. The caller (`handling`) does the I/O. Keeping the
decision pure makes it testable without a cluster and makes every reconcile idempotent: the
same object at the same time gives the same outcome, so replaying an event, a timer tick or a
restart changes nothing.

Progress lives in the status (`stage.index`, `stageStartedAt`, `pausedAt`, `scheduleStart`),
so the stage a rollout is in survives operator restarts; the schedule itself is the core's.
Promote, rollback and resume requests are annotations whose value is remembered in
`status.handledRequests` once acted on, so each request is acted on exactly once.

With `spec.healthGate`, the health of the target workloads is one more input: `reconcile` is
handed a reader and calls it only when the answer matters (a stage is due, or a change is
being watched), so a tick on a quiet rollout still reads nothing. Each stage change the
operator makes while every workload is available records the stage it left as the last good
one and opens a watch window; a workload that turns unavailable inside the window sends the
rollout back to the last good stage and holds it there (`status.healthGate`). The schedule
advances only once the window is over and every workload is available.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from flagstage.durations import format_time, parse_duration, parse_time
from flagstage.errors import FlagstageError, Problem, SpecError
from flagstage.model import API_GROUP, API_VERSION, KIND, FeatureRollout, RolloutSpec, Workload
from flagstage.rendering import RenderedConfig, render_config, render_config_map
from flagstage.schedule import (
    NOT_STARTED,
    Progress,
    advance,
    initial_progress,
    next_transition,
    pause,
    promote,
    resume,
    rollback,
    start_of,
    zone_of,
)
from flagstage.validation import parse_rollout
from flagstage_operator import conditions as cond

PROMOTE_ANNOTATION = f"{API_GROUP}/promote"
ROLLBACK_ANNOTATION = f"{API_GROUP}/rollback"
RESUME_ANNOTATION = f"{API_GROUP}/resume"
REQUEST_ANNOTATIONS = {
    "promote": PROMOTE_ANNOTATION,
    "rollback": ROLLBACK_ANNOTATION,
    "resume": RESUME_ANNOTATION,
}
HISTORY_LIMIT = 20
# A stage change noticed this late was missed (the operator was down), not merely ticked over.
CATCH_UP_AFTER_SECONDS = 60

NORMAL = "Normal"
WARNING = "Warning"

# Event reasons.
STAGE_CHANGED = "StageChanged"
SPEC_REFUSED = "SpecRefused"
PAUSED = "Paused"
RESUMED = "Resumed"
PROMOTE_REFUSED = "PromoteRefused"
ROLLBACK_REFUSED = "RollbackRefused"
RESUME_REFUSED = "ResumeRefused"
WAITING_FOR_HEALTH = cond.WAITING_FOR_HEALTHY_WORKLOADS
WORKLOAD_UNAVAILABLE = cond.WORKLOAD_UNAVAILABLE

# Why a stage changed (history and Events).
BY_SCHEDULE = "Scheduled"
BY_PROMOTION = "Promoted"
BY_ROLLBACK = "RolledBack"
BY_CATCH_UP = "CaughtUp"
BY_HEALTH_GATE = "RolledBackUnhealthy"

# How a target workload is doing (`assess_workload`).
AVAILABLE = "Available"
UPDATING = "Updating"
UNAVAILABLE = "Unavailable"
UNKNOWN = "Unknown"


@dataclass(frozen=True)
class Notice:
    """A Kubernetes Event to post about the rollout."""

    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Step:
    """One stage change: where to, why, and when the new stage began."""

    index: int
    name: str | None
    reason: str
    at: datetime
    config_hash: str


@dataclass
class Outcome:
    """Everything one reconcile decided; `handling` carries it out."""

    status: dict[str, Any]
    notices: list[Notice] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    rollout: FeatureRollout | None = None
    rendered: RenderedConfig | None = None
    config_map: dict[str, Any] | None = None
    reload: bool = False
    next_at: datetime | None = None
    # Until when the same object decides nothing new (None: until it changes). It is the
    # decision's own instant while the health gate is waiting or watching, since workload
    # health changes without any change to the rollout.
    quiet_until: datetime | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.rollout is not None


@dataclass(frozen=True)
class WorkloadHealth:
    """One target workload as the health gate sees it: a state and the words that explain it."""

    kind: str
    name: str
    state: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name} {self.detail}"


HealthReader = Callable[[Sequence[Workload]], Sequence[WorkloadHealth]]


def assess_workload(kind: str, name: str, manifest: Mapping[str, Any] | None) -> WorkloadHealth:
    """How a Deployment or StatefulSet is doing, from the object as the API server returns it.

    - Available: its controller has observed the latest generation, every replica runs the
      latest pod template (no old replica is left) and `availableReplicas` reaches
      `spec.replicas`; this is what `kubectl rollout status` waits for.
    - Updating: the controller has not observed the latest generation yet, or a rollout of
      the pod template is under way. It blocks advancing but is not a failure, so the
      `Rolling` reload the operator itself starts does not count against a change.
    - Unavailable: the workload does not exist, its rollout exceeded its progress deadline,
      or it runs the latest template with fewer available replicas than it wants.
    """
    if manifest is None:
        return WorkloadHealth(kind, name, UNAVAILABLE, "does not exist")
    metadata = manifest.get("metadata") or {}
    spec = manifest.get("spec") or {}
    status = manifest.get("status") or {}
    wanted = spec.get("replicas")
    wanted = 1 if wanted is None else int(wanted)
    generation = int(metadata.get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    total = int(status.get("replicas") or 0)

    if observed < generation:
        return WorkloadHealth(
            kind, name, UPDATING, f"has generation {generation} not yet observed by its controller"
        )
    for condition in status.get("conditions") or []:
        if condition.get("reason") == "ProgressDeadlineExceeded":
            return WorkloadHealth(kind, name, UNAVAILABLE, "exceeded its progress deadline")
    if updated < wanted or total > updated:
        return WorkloadHealth(
            kind, name, UPDATING, f"is updating ({updated} of {wanted} replicas updated)"
        )
    if available < wanted:
        return WorkloadHealth(
            kind, name, UNAVAILABLE, f"has {available} of {wanted} replicas available"
        )
    return WorkloadHealth(kind, name, AVAILABLE, f"has {available} of {wanted} replicas available")


def _listing(health: Sequence[WorkloadHealth]) -> str:
    return "; ".join(str(item) for item in health)


def plain(value: Any) -> Any:
    """A deep copy made of dicts, lists and scalars (kopf hands out read-only views)."""
    return json.loads(json.dumps(value, default=dict))


def manifest_of(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a FeatureRollout the core parses."""
    metadata = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion", f"{API_GROUP}/{API_VERSION}"),
        "kind": body.get("kind", KIND),
        "metadata": {
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "generation": metadata.get("generation"),
        },
        "spec": plain(body.get("spec") or {}),
    }


def owner_reference(body: Mapping[str, Any]) -> dict[str, Any]:
    metadata = body["metadata"]
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_time(text)
    except FlagstageError:
        return None


def progress_from_status(status: Mapping[str, Any]) -> Progress | None:
    """The progress a previous reconcile stored, or None for a rollout never reconciled."""
    stage = status.get("stage")
    if not isinstance(stage, Mapping) or not isinstance(stage.get("index"), int):
        return None
    return Progress(
        stage["index"], _time(status.get("stageStartedAt")), _time(status.get("pausedAt"))
    )


def _clamp(spec: RolloutSpec, progress: Progress) -> Progress:
    """Keep the index inside the plan when stages were removed from it."""
    last = len(spec.stages) - 1
    if progress.stage_index <= last:
        return progress
    return replace(progress, stage_index=max(last, NOT_STARTED))


def _stage_name(spec: RolloutSpec, index: int) -> str | None:
    return spec.stages[index].name if 0 <= index < len(spec.stages) else None


def _label(name: str | None) -> str:
    return f"stage {name!r}" if name is not None else "the defaults (no stage yet)"


class _Decision:
    """The working state of one reconcile of a valid rollout."""

    def __init__(
        self,
        rollout: FeatureRollout,
        old: Mapping[str, Any],
        annotations: Mapping[str, str],
        read_health: HealthReader | None,
    ) -> None:
        self.rollout = rollout
        self.spec = rollout.spec
        self.old = old
        self.annotations = annotations
        self.notices: list[Notice] = []
        self.steps: list[Step] = []
        self.handled: dict[str, str] = dict(old.get("handledRequests") or {})

        # The health gate's memory; see the module docstring.
        self.gated = self.spec.health_gate is not None and read_health is not None
        self._read_health = read_health
        self._health: list[WorkloadHealth] | None = None
        gate = dict(old.get("healthGate") or {}) if self.gated else {}
        self.last_good: dict[str, Any] | None = gate.get("lastGood")
        self.watch_until = _time(gate.get("watchUntil"))
        self.failure: dict[str, Any] | None = gate.get("failure")
        self.waiting_for: str | None = None

    def step(self, progress: Progress, reason: str, at: datetime) -> None:
        index = progress.stage_index
        rendered = render_config(self.rollout, index)
        previous = self.steps[-1].name if self.steps else self.old_stage_name
        self.steps.append(Step(index, rendered.stage_name, reason, at, rendered.config_hash))
        self.notices.append(
            Notice(
                NORMAL,
                STAGE_CHANGED,
                f"{reason}: moved from {_label(previous)} to {_label(rendered.stage_name)} "
                f"(config {rendered.config_hash[:19]})",
            )
        )

    @property
    def old_stage_name(self) -> str | None:
        stage = self.old.get("stage")
        return stage.get("name") if isinstance(stage, Mapping) else None

    # -- the health gate -----------------------------------------------------------------------

    def health(self) -> list[WorkloadHealth]:
        """The target workloads' health, read at most once per reconcile."""
        if self._health is None:
            reader = self._read_health
            workloads = self.spec.target.workloads
            self._health = list(reader(workloads)) if reader is not None else []
        return self._health

    def _stage_ref(self, index: int) -> dict[str, Any]:
        rendered = render_config(self.rollout, index)
        return {"index": index, "name": rendered.stage_name or "", "hash": rendered.config_hash}

    def watch_change(self, left: Progress, now: datetime) -> None:
        """Before a stage change: remember the stage left as good, and watch the new one.

        Only a change made while every workload is available can be blamed for breaking one;
        a change made while one is already down is not watched.
        """
        if not self.gated or self.spec.health_gate is None:
            return
        if any(item.state != AVAILABLE for item in self.health()):
            self.watch_until = None
            return
        self.last_good = self._stage_ref(left.stage_index)
        window = parse_duration(self.spec.health_gate.window)
        self.watch_until = window.after(now, zone_of(self.spec))

    def guard_health(self, progress: Progress, now: datetime) -> Progress:
        """Inside a watch window, a workload that turned unavailable undoes the change."""
        if not self.gated or self.watch_until is None or now >= self.watch_until:
            return progress
        broken = [item for item in self.health() if item.state == UNAVAILABLE]
        if not broken:
            return progress

        self.watch_until = None
        changed_to = _label(_stage_name(self.spec, progress.stage_index))
        good = self.last_good
        if good is None or good["index"] == progress.stage_index:
            held = pause(progress, now=now)
            message = (
                f"{_listing(broken)} after the change to {changed_to}; no earlier stage is known "
                "to be good, so the rollout holds here; resume or promote to continue"
            )
        else:
            held = Progress(good["index"], now, paused_at=now)
            self.step(held, BY_HEALTH_GATE, now)
            back_to = _label(self.steps[-1].name)
            drift = ""
            if self.steps[-1].config_hash != good["hash"]:
                # The spec was edited since: the stage is rendered from what it says now.
                drift = f" (re-rendered from the edited spec as {self.steps[-1].config_hash[:19]})"
            message = (
                f"{_listing(broken)} after the change to {changed_to}; rolled back to {back_to}"
                f"{drift} and holding; resume or promote to continue"
            )
        self.failure = {"message": message, "at": format_time(now)}
        self.notices.append(Notice(WARNING, WORKLOAD_UNAVAILABLE, message))
        return held

    def gate_closed(self, progress: Progress, now: datetime) -> str | None:
        """Why a due stage must wait, or None when the gate lets it through."""
        if self.watch_until is not None and now < self.watch_until:
            where = _label(_stage_name(self.spec, progress.stage_index))
            return f"the watch of {where} until {format_time(self.watch_until)}"
        waiting = [item for item in self.health() if item.state != AVAILABLE]
        return _listing(waiting) if waiting else None

    def watching_workloads(self, now: datetime) -> bool:
        """Whether the next decision depends on workload health: waiting, or inside a window."""
        if not self.gated:
            return False
        return self.waiting_for is not None or (
            self.watch_until is not None and now < self.watch_until
        )

    @property
    def was_waiting(self) -> bool:
        conditions = self.old.get("conditions") or []
        return cond.reason_of(conditions, cond.PROGRESSING) == WAITING_FOR_HEALTH

    def gate_status(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        if self.last_good is not None:
            state["lastGood"] = self.last_good
        if self.watch_until is not None:
            state["watchUntil"] = format_time(self.watch_until)
        if self.failure is not None:
            state["failure"] = self.failure
        return state

    def follow_spec_pause(self, progress: Progress, now: datetime) -> Progress:
        held_by = cond.reason_of(self.old.get("conditions") or [], cond.PAUSED)
        if self.spec.paused and not progress.paused:
            self.notices.append(Notice(NORMAL, PAUSED, "spec.paused is true: the clock stopped"))
            return pause(progress, now=now)
        if not self.spec.paused and progress.paused and held_by == cond.PAUSED_BY_SPEC:
            self.notices.append(Notice(NORMAL, RESUMED, "spec.paused is false: the clock runs"))
            return resume(progress, now=now)
        return progress

    def pending_requests(self) -> list[tuple[str, str]]:
        requests = []
        for kind, annotation in REQUEST_ANNOTATIONS.items():
            value = self.annotations.get(annotation)
            if value and self.handled.get(kind) != value:
                requests.append((value, kind))
        # Request values are timestamps, so sorting by value acts on them in the order made.
        return [(kind, value) for value, kind in sorted(requests)]

    def act_on(self, kind: str, progress: Progress, now: datetime) -> Progress:
        if kind == "promote":
            if progress.stage_index >= len(self.spec.stages) - 1:
                message = "promote refused: the rollout is already at its last stage"
                self.notices.append(Notice(WARNING, PROMOTE_REFUSED, message))
                return progress
            moved = promote(self.spec, progress, now=now)
            # An explicit promotion also lifts a rollback's hold; spec.paused still wins.
            moved = Progress(moved.stage_index, now, now if self.spec.paused else None)
            self.watch_change(progress, now)
            self.step(moved, BY_PROMOTION, now)
            return moved
        if kind == "rollback":
            if not progress.started:
                message = "rollback refused: the rollout has not reached its first stage"
                self.notices.append(Notice(WARNING, ROLLBACK_REFUSED, message))
                return progress
            moved = rollback(progress, now=now)
            # Going back is not a change to watch: the stage returned to already ran.
            self.watch_until = None
            self.step(moved, BY_ROLLBACK, now)
            return moved
        if self.spec.paused:
            message = "resume refused: spec.paused is true; set it to false to resume"
            self.notices.append(Notice(WARNING, RESUME_REFUSED, message))
            return progress
        if progress.paused:
            self.notices.append(Notice(NORMAL, RESUMED, "resumed on request: the clock runs"))
            return resume(progress, now=now)
        return progress

    def follow_schedule(self, progress: Progress, start: datetime, now: datetime) -> Progress:
        # One stage at a time, so a rollout that missed several stages (the operator was down)
        # records each in its history, each at the instant the plan gave it.
        while True:
            due = next_transition(self.spec, progress, start=start)
            if due is None or due > now:
                return progress
            if self.gated:
                return self.follow_gate(progress, start, due, now)
            progress = advance(self.spec, progress, start=start, now=due)
            self.step(progress, _why(due, now), due)

    def follow_gate(
        self, progress: Progress, start: datetime, due: datetime, now: datetime
    ) -> Progress:
        # One stage per reconcile: each change must be seen by the workloads and watched
        # before the next, even when several stages fell due while the operator was down.
        blocker = self.gate_closed(progress, now)
        if blocker is not None:
            if not self.was_waiting:
                upcoming = _label(_stage_name(self.spec, progress.stage_index + 1))
                message = f"{upcoming} is due and waits for {blocker}"
                self.notices.append(Notice(NORMAL, WAITING_FOR_HEALTH, message))
            self.waiting_for = blocker
            return progress
        # A stage the gate held back starts when it goes live, so it gets its whole duration.
        if self.was_waiting:
            moved = promote(self.spec, progress, now=now)
            began = now
        else:
            moved = advance(self.spec, progress, start=start, now=due)
            began = due
        self.watch_change(progress, now)
        self.step(moved, _why(began, now), began)
        return moved


def _why(due: datetime, now: datetime) -> str:
    late = (now - due).total_seconds()
    return BY_SCHEDULE if late < CATCH_UP_AFTER_SECONDS else BY_CATCH_UP


def reconcile(
    body: Mapping[str, Any], *, now: datetime, read_health: HealthReader | None = None
) -> Outcome:
    """Decide what the rollout in `body` should look like at `now`.

    `read_health` reports the target workloads' health; without it `spec.healthGate` is not
    acted on.
    """
    now = now.replace(microsecond=0)
    old = plain(body.get("status") or {})
    annotations = dict((body.get("metadata") or {}).get("annotations") or {})
    try:
        rollout = parse_rollout(manifest_of(body))
    except SpecError as err:
        return _refuse(body, old, err.problems, now)

    decision = _Decision(rollout, old, annotations, read_health)
    spec = rollout.spec
    start = start_of(spec, _time(old.get("scheduleStart")) or now)
    stored = progress_from_status(old)
    if stored is None:
        progress = initial_progress(spec, start=start, now=now)
        if progress.started:
            began = progress.stage_started_at or now
            decision.watch_change(Progress(NOT_STARTED, None), now)
            decision.step(progress, _why(began, now), began)
    else:
        progress = _clamp(spec, stored)

    progress = decision.follow_spec_pause(progress, now)
    progress = decision.guard_health(progress, now)
    for kind, value in decision.pending_requests():
        progress = decision.act_on(kind, progress, now)
        decision.handled[kind] = value
    if not progress.paused:
        # Resuming or promoting is how people clear a health rollback's hold.
        decision.failure = None
    progress = decision.follow_schedule(progress, start, now)

    rendered = render_config(rollout, progress.stage_index)
    next_at = next_transition(spec, progress, start=start)
    status = _status(decision, progress, rendered, start=start, next_at=next_at, now=now)
    config_map = render_config_map(rollout, rendered)
    config_map["metadata"]["ownerReferences"] = [owner_reference(body)]
    return Outcome(
        status=status,
        notices=decision.notices,
        steps=decision.steps,
        rollout=rollout,
        rendered=rendered,
        config_map=config_map,
        # A reload that failed last time is tried again, though the recorded hash moved on.
        reload=rendered.config_hash != old.get("configHash")
        or cond.reason_of(old.get("conditions") or [], cond.DEGRADED) == cond.RELOAD_FAILED,
        next_at=next_at,
        quiet_until=now if decision.watching_workloads(now) else next_at,
    )


def _status(
    decision: _Decision,
    progress: Progress,
    rendered: RenderedConfig,
    *,
    start: datetime,
    next_at: datetime | None,
    now: datetime,
) -> dict[str, Any]:
    rollout, spec = decision.rollout, decision.spec
    history = list(decision.old.get("history") or [])
    for step in decision.steps:
        history.append(
            {
                "stage": step.name or "",
                "index": step.index,
                "time": format_time(step.at),
                "hash": step.config_hash,
                "reason": step.reason,
            }
        )
    status: dict[str, Any] = {
        "observedGeneration": rollout.generation,
        "stage": {"name": rendered.stage_name or "", "index": progress.stage_index},
        "scheduleStart": format_time(start),
        "enabled": rendered.enabled,
        "partial": rendered.partial,
        "enabledCount": len(rendered.enabled),
        "configMap": rollout.config_map_name,
        "configHash": rendered.config_hash,
        "handledRequests": decision.handled,
        "history": history[-HISTORY_LIMIT:],
    }
    if progress.stage_started_at is not None:
        status["stageStartedAt"] = format_time(progress.stage_started_at)
    if progress.paused_at is not None:
        status["pausedAt"] = format_time(progress.paused_at)
    if next_at is not None:
        status["nextStageAt"] = format_time(next_at)
    if decision.gated:
        status["healthGate"] = decision.gate_status()

    conditions = decision.old.get("conditions") or []
    stamp, generation = format_time(now), rollout.generation

    def put(kind: str, state: bool, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = cond.set_condition(
            conditions,
            kind,
            status=state,
            reason=reason,
            message=message,
            now=stamp,
            generation=generation,
        )

    put(cond.VALID, True, cond.SPEC_VALID, "the spec passed every check")
    where = _label(rendered.stage_name)
    put(
        cond.READY,
        True,
        cond.CONFIG_APPLIED,
        f"ConfigMap {rollout.config_map_name} holds {where} ({rendered.config_hash[:19]})",
    )
    failure = decision.failure
    if failure is not None:
        put(cond.DEGRADED, True, cond.WORKLOAD_UNAVAILABLE, failure["message"])
    else:
        put(cond.DEGRADED, False, cond.AS_EXPECTED, "the last change was applied")
    if progress.paused:
        if spec.paused:
            reason, message = cond.PAUSED_BY_SPEC, "spec.paused is true"
        elif failure is not None:
            reason, message = cond.WORKLOAD_UNAVAILABLE, failure["message"]
        else:
            reason, message = (
                cond.ROLLED_BACK,
                "held after a rollback; promote or resume to continue",
            )
        put(cond.PAUSED, True, reason, message)
        put(cond.PROGRESSING, False, reason, f"frozen at {where}")
    elif decision.waiting_for is not None:
        put(cond.PAUSED, False, cond.RUNNING, "the schedule runs")
        upcoming = _label(_stage_name(spec, progress.stage_index + 1))
        put(
            cond.PROGRESSING,
            True,
            cond.WAITING_FOR_HEALTHY_WORKLOADS,
            f"{upcoming} is due and waits for {decision.waiting_for}",
        )
    else:
        put(cond.PAUSED, False, cond.RUNNING, "the schedule runs")
        put(cond.PROGRESSING, *_progressing(spec, progress, next_at))
    status["conditions"] = conditions
    return status


def _progressing(
    spec: RolloutSpec, progress: Progress, next_at: datetime | None
) -> tuple[bool, str, str]:
    if not progress.started and next_at is not None:
        return True, cond.NOT_STARTED, f"the first stage starts at {format_time(next_at)}"
    if next_at is not None:
        upcoming = _stage_name(spec, progress.stage_index + 1)
        return True, cond.STAGE_SCHEDULED, f"stage {upcoming!r} starts at {format_time(next_at)}"
    if progress.stage_index < len(spec.stages) - 1:
        upcoming = _stage_name(spec, progress.stage_index + 1)
        return False, cond.AWAITING_PROMOTION, f"stage {upcoming!r} waits for a promote request"
    return False, cond.ROLLOUT_COMPLETE, "the last stage is live and holds"


def _refuse(
    body: Mapping[str, Any], old: dict[str, Any], problems: list[Problem], now: datetime
) -> Outcome:
    """An invalid spec: say why everywhere, and leave the last good configuration alone."""
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    listing = "; ".join(str(problem) for problem in problems)
    stamp = format_time(now)
    conditions = old.get("conditions") or []
    already_refused = (
        old.get("observedGeneration") == generation
        and cond.reason_of(conditions, cond.VALID) == cond.INVALID_SPEC
    )
    for kind, state, message in (
        (cond.VALID, False, f"{len(problems)} problem(s): {listing}"),
        (cond.READY, False, "the spec was refused; the last good configuration stays live"),
        (cond.DEGRADED, True, "the spec was refused; see the Valid condition"),
    ):
        conditions = cond.set_condition(
            conditions,
            kind,
            status=state,
            reason=cond.INVALID_SPEC,
            message=message,
            now=stamp,
            generation=generation,
        )
    status = {**old, "observedGeneration": generation, "conditions": conditions}
    notices = []
    if not already_refused:
        notices.append(Notice(WARNING, SPEC_REFUSED, f"generation {generation} refused: {listing}"))
    return Outcome(status=status, notices=notices, problems=problems)


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning `old` into `new` at the top level (removed keys become null)."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    patch.update({key: value for key, value in new.items() if old.get(key) != value})
    return patch
