"""Calendar months as `YYYY-MM` text, and the arithmetic on them.

Months are stored and exchanged as `YYYY-MM` because that text sorts in calendar order on
every database; arithmetic converts to a month count and back.
"""

from __future__ import annotations

import re

MONTH_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_month(text: str) -> int:
    """`YYYY-MM` as a count of months since year 0; raises `ValueError` on anything else."""
    match = MONTH_PATTERN.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a month; write it as YYYY-MM, e.g. 2024-03")
    return int(match.group(1)) * 12 + int(match.group(2)) - 1


def format_month(index: int) -> str:
    year, month = divmod(index, 12)
    return f"{year:04d}-{month + 1:02d}"


def shift_month(month: str, delta: int) -> str:
    """The month `delta` months after `month` (before it when negative)."""
    return format_month(parse_month(month) + delta)


def month_range(first: str, last: str) -> list[str]:
    """Every month from `first` to `last`, both included (empty when `last` is earlier)."""
    return [format_month(i) for i in range(parse_month(first), parse_month(last) + 1)]
