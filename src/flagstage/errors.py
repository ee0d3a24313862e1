"""Errors raised by the core.

Every error says what was wrong and what the user can do about it. Validation never stops at
the first problem: `SpecError` carries all of them so a user can fix a rollout in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a rollout.

    `path` points into the manifest (`spec.stages[2].enable[0]`), `subject` names the feature,
    stage or field at fault, and `message` is a full sentence a person can act on.
    """

    path: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class FlagstageError(Exception):
    """Base class of every error the core raises."""


class SpecError(FlagstageError):
    """A rollout was refused; `problems` lists every reason at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"rollout refused, {len(problems)} {noun}:\n{lines}")


class DurationError(FlagstageError, ValueError):
    """A duration string could not be read."""


class TimeError(FlagstageError, ValueError):
    """A point in time or a time zone could not be read."""


class ConfigError(FlagstageError):
    """A rendered configuration (`features.json`) is unreadable, inconsistent or unsupported."""
