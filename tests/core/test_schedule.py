"""The schedule puts the right stage live at the right time, and keeps to its calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flagstage.durations import parse_duration
from flagstage.schedule import (
    Progress,
    advance,
    initial_progress,
    next_transition,
    pause,
    promote,
    resume,
    rollback,
    start_of,
    timeline,
)

from .builders import feature, rollout

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def three_stages(**extra: Any) -> dict[str, Any]:
    return {
        "features": [feature("a"), feature("b"), feature("c")],
        "stages": [
            {"name": "one", "enable": ["a"]},
            {"name": "two", "enable": ["b"], "duration": "2d"},
            {"name": "three", "enable": ["c"]},
        ],
        "schedule": {"start": "2026-03-02T09:00:00Z", "stageDuration": "1w"},
        **extra,
    }


def test_before_the_start_no_stage_is_live_and_the_next_transition_is_the_start() -> None:
    spec = rollout(three_stages()).spec
    progress = initial_progress(spec, start=T0, now=T0 - timedelta(hours=1))
    assert progress.stage_index == -1
    assert next_transition(spec, progress, start=T0) == T0


def test_a_rollout_first_seen_mid_plan_lands_on_the_stage_its_calendar_says() -> None:
    spec = rollout(three_stages()).spec
    now = T0 + timedelta(days=8)
    progress = initial_progress(spec, start=T0, now=now)
    assert progress.stage_index == 1
    assert progress.stage_started_at == T0 + timedelta(days=7)
    assert next_transition(spec, progress, start=T0) == T0 + timedelta(days=9)


def test_stages_use_their_own_duration_before_the_default() -> None:
    spec = rollout(three_stages()).spec
    windows = timeline(spec, T0)
    assert [w.start - T0 for w in windows] == [timedelta(0), timedelta(days=7), timedelta(days=9)]
    assert windows[-1].end is None


def test_advance_catches_up_from_planned_ends_not_from_when_it_was_noticed() -> None:
    spec = rollout(three_stages()).spec
    progress = Progress(0, T0)
    late = T0 + timedelta(days=30)
    caught_up = advance(spec, progress, start=T0, now=late)
    assert caught_up.stage_index == 2
    assert caught_up.stage_started_at == T0 + timedelta(days=9)


def test_the_last_stage_holds() -> None:
    spec = rollout(three_stages()).spec
    progress = Progress(2, T0)
    assert next_transition(spec, progress, start=T0) is None
    assert advance(spec, progress, start=T0, now=T0 + timedelta(days=999)) == progress


def test_a_paused_rollout_does_not_advance_and_resumes_with_the_time_it_had_left() -> None:
    spec = rollout(three_stages()).spec
    progress = Progress(0, T0)
    paused = pause(progress, now=T0 + timedelta(days=5))
    assert advance(spec, paused, start=T0, now=T0 + timedelta(days=20)) == paused
    resumed = resume(paused, now=T0 + timedelta(days=20))
    # Two days were left when paused, so the stage ends two days after resuming.
    assert next_transition(spec, resumed, start=T0) == T0 + timedelta(days=22)


def test_a_rollout_paused_in_its_spec_starts_paused() -> None:
    spec = rollout(three_stages(paused=True)).spec
    progress = initial_progress(spec, start=T0, now=T0 + timedelta(days=8))
    assert progress.paused
    assert next_transition(spec, progress, start=T0) is None


def test_manual_promotion_waits_on_the_first_stage_until_promoted() -> None:
    spec = rollout(three_stages(promotion="Manual")).spec
    progress = advance(spec, Progress(-1, None), start=T0, now=T0 + timedelta(days=60))
    assert progress.stage_index == 0
    assert next_transition(spec, progress, start=T0) is None
    promoted = promote(spec, progress, now=T0 + timedelta(days=61))
    assert promoted.stage_index == 1
    assert promoted.stage_started_at == T0 + timedelta(days=61)


def test_promoting_the_last_stage_changes_nothing() -> None:
    spec = rollout(three_stages()).spec
    assert promote(spec, Progress(2, T0), now=T0).stage_index == 2


def test_rollback_returns_one_stage_and_stops_the_clock() -> None:
    spec = rollout(three_stages()).spec
    now = T0 + timedelta(days=8)
    back = rollback(Progress(1, T0 + timedelta(days=7)), now=now)
    assert back.stage_index == 0
    assert back.paused
    assert advance(spec, back, start=T0, now=now + timedelta(days=30)) == back


def test_weekly_stages_keep_local_wall_clock_time_across_daylight_saving() -> None:
    spec = rollout(
        {
            "features": [feature("a")],
            "stages": [{"name": "one"}, {"name": "two"}, {"name": "three"}],
            # Clocks in Berlin go forward on 2026-03-29.
            "schedule": {"start": "2026-03-23T09:00:00", "timeZone": "Europe/Berlin"},
        }
    ).spec
    start = start_of(spec, T0)
    windows = timeline(spec, start)
    assert start == datetime(2026, 3, 23, 8, 0, tzinfo=UTC)
    assert windows[1].start == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert windows[1].start - windows[0].start == timedelta(days=7, hours=-1)


def test_hour_durations_are_elapsed_time_across_daylight_saving() -> None:
    zone_start = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    from zoneinfo import ZoneInfo

    ends = parse_duration("24h").after(zone_start, ZoneInfo("Europe/Berlin"))
    assert ends - zone_start == timedelta(hours=24)


def test_a_rollout_without_a_start_starts_when_first_applied() -> None:
    spec = rollout({"features": [feature("a")], "stages": [{"name": "one"}]}).spec
    assert start_of(spec, T0) == T0
