"""The stage schedule: which stage is live at an instant, and when the next one starts.

Progress through a rollout is a small value (`Progress`) that the operator keeps in the
resource's status, so it survives operator restarts; every function here takes the current
progress and returns the next one without side effects. With `promotion: Automatic` a stage
ends when its duration is up, and a stage that ended while nobody was watching is caught up
from its planned end, not from the moment someone noticed, so the timeline never drifts.
Pausing stops the clock; resuming gives the stage back the time it had left.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from flagstage.durations import Duration, load_zone, parse_duration, parse_time
from flagstage.model import RolloutSpec

NOT_STARTED = -1


@dataclass(frozen=True)
class Progress:
    """Where a rollout is: the live stage, when it started, and whether the clock is stopped.

    `stage_index` is -1 before the first stage (every feature at its default).
    `stage_started_at` is the instant the live stage began, shifted forward by any time spent
    paused, so `stage_started_at + duration` is always when it ends.
    """

    stage_index: int
    stage_started_at: datetime | None
    paused_at: datetime | None = None

    @property
    def started(self) -> bool:
        return self.stage_index > NOT_STARTED

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


@dataclass(frozen=True)
class StageWindow:
    """A stage as the plan schedules it, from `start` until `end` (None: until changed)."""

    index: int
    name: str
    duration: Duration
    start: datetime
    end: datetime | None


def zone_of(spec: RolloutSpec) -> ZoneInfo:
    return load_zone(spec.schedule.time_zone)


def start_of(spec: RolloutSpec, fallback: datetime) -> datetime:
    """When the first stage starts: `schedule.start`, or `fallback` (when first applied)."""
    if spec.schedule.start is None:
        return fallback
    return parse_time(spec.schedule.start, zone_of(spec))


def stage_duration(spec: RolloutSpec, index: int) -> Duration:
    """How long stage `index` lasts: its own duration or the schedule's default."""
    text = spec.stages[index].duration or spec.schedule.stage_duration
    return parse_duration(text)


def timeline(spec: RolloutSpec, start: datetime) -> list[StageWindow]:
    """The planned calendar from `start`, assuming no pause and automatic promotion.

    The last stage has no end: it holds until the rollout is changed.
    """
    zone = zone_of(spec)
    windows = []
    begins = start
    for index, stage in enumerate(spec.stages):
        duration = stage_duration(spec, index)
        last = index == len(spec.stages) - 1
        ends = None if last else duration.after(begins, zone)
        windows.append(StageWindow(index, stage.name, duration, begins, ends))
        if ends is not None:
            begins = ends
    return windows


def initial_progress(spec: RolloutSpec, *, start: datetime, now: datetime) -> Progress:
    """Progress of a rollout seen for the first time at `now`.

    A rollout whose start is in the past lands on the stage its calendar says (automatic
    promotion) or on the first stage (manual promotion), never replaying earlier stages.
    """
    progress = Progress(NOT_STARTED, None)
    if spec.paused:
        progress = replace(progress, paused_at=now)
    if not spec.stages or now < start:
        return progress
    if spec.promotion == "Manual":
        return replace(progress, stage_index=0, stage_started_at=start)
    for window in reversed(timeline(spec, start)):
        if window.start <= now:
            return replace(progress, stage_index=window.index, stage_started_at=window.start)
    return progress


def next_transition(spec: RolloutSpec, progress: Progress, *, start: datetime) -> datetime | None:
    """When the live stage ends by itself, or None (paused, manual, or the last stage)."""
    if progress.paused or not spec.stages:
        return None
    if not progress.started:
        return start
    if spec.promotion == "Manual" or progress.stage_index >= len(spec.stages) - 1:
        return None
    assert progress.stage_started_at is not None
    duration = stage_duration(spec, progress.stage_index)
    return duration.after(progress.stage_started_at, zone_of(spec))


def advance(spec: RolloutSpec, progress: Progress, *, start: datetime, now: datetime) -> Progress:
    """Progress at `now`, moving through every stage whose time is up (none when paused).

    A manual rollout only moves from "not started" to its first stage by itself.
    """
    current = progress
    while True:
        due = next_transition(spec, current, start=start)
        if due is None or due > now:
            return current
        current = replace(current, stage_index=current.stage_index + 1, stage_started_at=due)


def promote(spec: RolloutSpec, progress: Progress, *, now: datetime) -> Progress:
    """Move to the next stage now, on request; the last stage stays where it is."""
    if progress.stage_index >= len(spec.stages) - 1:
        return progress
    return replace(progress, stage_index=progress.stage_index + 1, stage_started_at=now)


def rollback(progress: Progress, *, now: datetime) -> Progress:
    """Go back one stage and stop the clock there, so the schedule does not undo it."""
    if not progress.started:
        return progress
    return Progress(progress.stage_index - 1, now, paused_at=now)


def pause(progress: Progress, *, now: datetime) -> Progress:
    if progress.paused:
        return progress
    return replace(progress, paused_at=now)


def resume(progress: Progress, *, now: datetime) -> Progress:
    """Restart the clock; the live stage keeps the time it had left when paused."""
    if progress.paused_at is None:
        return progress
    started = progress.stage_started_at
    if started is not None:
        started = started + (now - progress.paused_at)
    return Progress(progress.stage_index, started, paused_at=None)
