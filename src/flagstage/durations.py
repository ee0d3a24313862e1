"""Durations and points in time as rollouts write them.

Stage durations are written like `7d`, `1w`, `36h`, `1w2d12h` or `90s`. Days and weeks are
calendar units: a weekly stage that starts Monday 09:00 in `Europe/Berlin` starts the next
stage Monday 09:00 local time, even across a daylight-saving change. Hours, minutes and seconds
are elapsed time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flagstage.errors import DurationError, TimeError

MIN_DURATION_SECONDS = 1
MAX_DURATION_DAYS = 366

_DURATION = re.compile(
    r"^(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$"
)


@dataclass(frozen=True, order=True)
class Duration:
    """A stage length: whole calendar days plus elapsed seconds."""

    days: int
    seconds: int

    @property
    def approximate(self) -> timedelta:
        """The length as elapsed time, ignoring daylight-saving shifts."""
        return timedelta(days=self.days, seconds=self.seconds)

    def after(self, instant: datetime, zone: ZoneInfo) -> datetime:
        """The instant this long after `instant`, counting days on the wall clock of `zone`."""
        local = instant.astimezone(zone)
        # Adding a timedelta to an aware datetime is wall-clock arithmetic; the offset is
        # looked up again for the new local time, which is what calendar days need.
        shifted = local + timedelta(days=self.days)
        shifted = datetime.fromtimestamp(shifted.timestamp() + self.seconds, tz=UTC)
        return shifted

    def __str__(self) -> str:
        return format_duration(self)


def parse_duration(text: str) -> Duration:
    """Read `1w2d3h4m5s` (any subset, in that order) into a `Duration`."""
    match = _DURATION.match(text.strip()) if text else None
    if not text or match is None or not any(match.groups()):
        raise DurationError(
            f"{text!r} is not a duration; write it like '7d', '1w', '36h', '1w2d' or '90s'"
        )
    parts = {key: int(value) for key, value in match.groupdict(default="0").items()}
    days = parts["w"] * 7 + parts["d"]
    seconds = parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
    total = days * 86400 + seconds
    if total < MIN_DURATION_SECONDS:
        raise DurationError(f"{text!r} is zero; a stage lasts at least 1s")
    if total > MAX_DURATION_DAYS * 86400:
        raise DurationError(
            f"{text!r} is longer than {MAX_DURATION_DAYS} days; split the stage or use "
            "promotion: Manual for stages that wait on people"
        )
    return Duration(days=days, seconds=seconds)


def format_duration(duration: Duration) -> str:
    """The shortest spelling `parse_duration` reads back to the same value."""
    weeks, days = divmod(duration.days, 7)
    hours, rest = divmod(duration.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "".join(
        f"{value}{unit}"
        for value, unit in ((weeks, "w"), (days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s"))
        if value
    )
    return text or "0s"


def load_zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`, or a `TimeError` that says how to spell one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise TimeError(
            f"{name!r} is not an IANA time zone; use a name like 'UTC' or 'Europe/Berlin'"
        ) from err


def parse_time(text: str, zone: ZoneInfo | None = None) -> datetime:
    """Read an RFC 3339 time; one without an offset is taken in `zone` (UTC by default)."""
    candidate = text.strip()
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError as err:
        raise TimeError(
            f"{text!r} is not a time; write it as RFC 3339, e.g. '2026-01-05T09:00:00Z'"
        ) from err
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone or UTC)
    return parsed.astimezone(UTC)


def format_time(instant: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, to the second, as Kubernetes writes times."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
