"""Durations read and print the way rollouts write them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagstage.durations import Duration, format_duration, parse_duration, parse_time
from flagstage.errors import DurationError, TimeError


@pytest.mark.parametrize(
    ("text", "days", "seconds"),
    [("1w", 7, 0), ("7d", 7, 0), ("36h", 0, 129600), ("1w2d3h4m5s", 9, 11_045), ("90s", 0, 90)],
)
def test_durations_read_as_calendar_days_plus_seconds(text: str, days: int, seconds: int) -> None:
    assert parse_duration(text) == Duration(days, seconds)


@given(
    days=st.integers(min_value=0, max_value=366),
    seconds=st.integers(min_value=0, max_value=86399),
)
def test_a_printed_duration_reads_back_to_the_same_value(days: int, seconds: int) -> None:
    if days == 0 and seconds == 0:
        return
    if days == 366 and seconds > 0:
        return
    duration = Duration(days, seconds)
    assert parse_duration(format_duration(duration)) == duration


@pytest.mark.parametrize("text", ["1 week", "1.5d", "-1d", "d", "1h1d", "P1W"])
def test_unreadable_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(DurationError, match="write it like '7d'"):
        parse_duration(text)


def test_times_without_an_offset_are_read_in_the_given_zone() -> None:
    from zoneinfo import ZoneInfo

    instant = parse_time("2026-07-01T09:00:00", ZoneInfo("Europe/Berlin"))
    assert instant.isoformat() == "2026-07-01T07:00:00+00:00"


def test_a_time_that_is_not_rfc3339_is_refused_with_an_example() -> None:
    with pytest.raises(TimeError, match="2026-01-05T09:00:00Z"):
        parse_time("tomorrow")
