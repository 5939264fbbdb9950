"""Timers: how long was asked for ("an hour and a half" → 5400 s), how to say it, and the pending timer."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from providers.llm.skills.numbers import SCALES, TENS, UNITS, read_number, tokenize

#: The longest timer or reminder the skills set.
MAX_TIMER_S = 7 * 24 * 3600


def say_duration(seconds: float) -> str:
    """'2 minutes', '1 hour and 30 minutes', '45 seconds'."""
    if 0 < seconds < 0.5:
        return "less than a second"
    seconds = max(0, round(seconds))
    parts = []
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n} {unit}{'s' if n != 1 else ''}")
    if not parts:
        return "0 seconds"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


UNIT_SECONDS = {
    "second": 1,
    "seconds": 1,
    "sec": 1,
    "secs": 1,
    "s": 1,
    "minute": 60,
    "minutes": 60,
    "min": 60,
    "mins": 60,
    "hour": 3600,
    "hours": 3600,
    "hr": 3600,
    "hrs": 3600,
    "h": 3600,
    "day": 86400,
    "days": 86400,
    "week": 604800,
    "weeks": 604800,
}


def parse_duration(text: str) -> float | None:
    """'2 minutes', 'one and a half hours', '1 hour 30 minutes', '90 s' → seconds."""
    tokens = tokenize(text)
    total, found, i = 0.0, False, 0
    while i < len(tokens):
        read = read_number(tokens, i)
        if read is None:
            # "half an hour", "a minute", "an hour and a half"
            if tokens[i] in ("a", "an") and i + 1 < len(tokens) and tokens[i + 1] in UNIT_SECONDS:
                read = (1.0, i + 1)
            elif tokens[i] == "half" and tokens[i + 1 : i + 2] in (["an"], ["a"]):
                read = (0.5, i + 2)
            else:
                i += 1
                continue
        value, j = read
        if tokens[j : j + 3] in (["and", "a", "half"], ["and", "an", "half"]):
            value, j = value + 0.5, j + 3
        if j < len(tokens) and tokens[j] in UNIT_SECONDS:
            total += value * UNIT_SECONDS[tokens[j]]
            found = True
            j += 1
            if tokens[j : j + 3] == ["and", "a", "half"]:
                total += 0.5 * UNIT_SECONDS[tokens[j - 1]]
                j += 3
        i = max(j, i + 1)
    return total if found else None


@dataclass
class Timer:
    """One pending timer or reminder."""

    id: int
    duration_s: float
    due_monotonic: float
    message: str
    label: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def remaining_s(self) -> float:
        return max(0.0, self.due_monotonic - time.monotonic())

    def describe(self) -> str:
        what = f"a reminder to {self.label}" if self.label else f"a timer for {say_duration(self.duration_s)}"
        return f"{what}, {say_duration(self.remaining_s())} left"


# Spoken durations as they appear in a normalised utterance: "5 minutes", "an hour and a half".
_DURATION_WORDS = sorted({*UNITS, *TENS, *SCALES, *UNIT_SECONDS, "and", "half", "point"}, key=len, reverse=True)
_DUR_WORD = rf"(?:\d+(?:[.,]\d+)*|(?:{'|'.join(_DURATION_WORDS)}))"
DURATION = rf"{_DUR_WORD}(?:\s+{_DUR_WORD})*"
