"""LLM `skills`: instant offline answers for what people ask a voice assistant most.

Time and date, simple sums, timers and reminders, "repeat after me", "what can you
do", greetings and thanks — answered by pattern matching in pure Python, in well
under a millisecond, with no model at all. That makes it the default that works the
moment VoxDesk is installed, and a fast front for a real language model: the engine
calls `try_answer(text)` first and passes the turn on only when it returns None.
A skill answers only when the whole request, less polite filler, is one of its
phrasings, so "what time is sunset" or "who are you voting for" go to the model.

Timers are asyncio tasks on the running loop. When one fires, the provider awaits
`on_timer(message)` (the engine sets it and speaks the message); without a hook the
message is kept in `fired` so nothing is lost. `aclose()` cancels what is pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import ChatMessage, Health, HealthStatus, LLMProvider, StageKind
from app.plugin.registry import ProviderInfo, ProviderSpec

log = logging.getLogger(__name__)

TimerHook = Callable[[str], Awaitable[None]]
Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[object]]

MAX_TIMER_S = 7 * 24 * 3600
NEEDS_MODEL = (
    "I can tell the time and date, do simple sums, set timers and reminders, and repeat what you say. "
    "For anything else I need a language model: open Settings, then Assistant, and choose llama.cpp "
    "with an instruct model, such as Qwen 2.5 half a billion, or a server you use."
)
CAPABILITIES = (
    "I can tell you the time and the date, work out sums like 17 times 23 or 15 percent of 80, "
    "set timers and reminders, like: remind me in 10 minutes to stretch, and repeat after you. "
    "With a language model chosen in Settings, I can answer almost anything else."
)


class SkillsConfig(BaseModel):
    """Options of the skills responder."""

    model_config = ConfigDict(extra="forbid")

    timezone: str | None = Field(
        None, description="IANA time zone such as Europe/Berlin; empty uses this computer's"
    )
    twenty_four_hour: bool = Field(False, description="Say times as 16:05 instead of 4:05 PM")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if not value:
            return None
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use a name like Europe/Berlin") from None
        return value


# --------------------------------------------------------------------------- numbers

_UNITS = {
    "zero": 0, "oh": 0, "one": 1, "a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_NUMBER_WORDS = set(_UNITS) | set(_TENS) | set(_SCALES) | {"and", "point"}
_DIGITS = re.compile(r"^-?\d+(?:\.\d+)?$")
#: Longest run of words read as one number ("nine hundred and ninety nine thousand ..."); bounds the work.
_MAX_NUMBER_WORDS = 24


def words_to_number(words: list[str]) -> float | None:
    """"twenty three" → 23, "one hundred and five" → 105, "two point five" → 2.5.

    Strict about order so "three four" or "three and four" are not one number.
    """
    if not words or words[-1] in ("and", "point"):
        return None
    total, current = 0.0, 0.0
    last = "start"  # start | unit | teen | tens | scale | and
    decimals: list[str] = []
    in_decimals = False
    for w in words:
        if in_decimals:
            if w not in _UNITS or _UNITS[w] >= 10 or w in ("a", "an"):
                return None
            decimals.append(str(_UNITS[w]))
        elif w == "point" and last != "start":
            in_decimals = True
        elif w == "and" and last == "scale":
            last = "and"
        elif w in _UNITS and w not in ("a", "an"):
            if last not in ("start", "tens", "scale", "and") or (last == "tens" and _UNITS[w] >= 10):
                return None
            current += _UNITS[w]
            last = "unit" if _UNITS[w] < 10 else "teen"
        elif w in _TENS:
            if last not in ("start", "scale", "and"):
                return None
            current += _TENS[w]
            last = "tens"
        elif w in _SCALES:
            if last not in ("unit", "teen", "tens"):
                return None
            current = current * _SCALES[w]
            if _SCALES[w] >= 1000:
                total, current = total + current, 0
            last = "scale"
        else:
            return None
    value = total + current
    if decimals:
        value += float("0." + "".join(decimals))
    return value


_ONES_RE = "one|two|three|four|five|six|seven|eight|nine"
_NUMBER_WORD_RE = "|".join(sorted({*_UNITS, *_TENS} - {"a", "an", "oh"}, key=len, reverse=True))
# "twenty-one" and "two-hundred" are one number, not a subtraction; "5-minute" is "5 minute".
_HYPHENATED = re.compile(
    rf"\b(?P<tens>{'|'.join(_TENS)})-(?=(?:{_ONES_RE})\b)"
    rf"|\b(?P<word>{_NUMBER_WORD_RE})-(?=(?:{'|'.join(_SCALES)})\b)"
    r"|(?<=\d)-(?=[a-z])"
)


def _join_hyphens(text: str) -> str:
    return _HYPHENATED.sub(lambda m: f"{m.group('tens') or m.group('word') or ''} ", text)


def _tokens(text: str) -> list[str]:
    """Lower-case words and symbols; thousands separators removed ("1,000" → "1000")."""
    text = _join_hyphens(text.lower().replace("−", "-"))
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = re.sub(r"(?<=\d)\s*%", " percent", text)
    return re.findall(r"\d+(?:\.\d+)?|[a-z]+(?:'[a-z]+)?|[-+*/×÷^()=]", text)


def _read_number(tokens: list[str], i: int) -> tuple[float, int] | None:
    """A number at tokens[i] (digits or words); returns (value, next index)."""
    negative = False
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    if i < len(tokens) and tokens[i] in ("minus", "negative", "-") and (
        _DIGITS.match(nxt) or nxt in _UNITS or nxt in _TENS
    ):
        negative, i = True, i + 1
    if i >= len(tokens):
        return None
    if _DIGITS.match(tokens[i]):
        value, j = float(tokens[i]), i + 1
        if j < len(tokens) and tokens[j] in _SCALES:  # "2 thousand"
            value, j = value * _SCALES[tokens[j]], j + 1
    else:
        start = i
        if tokens[i] in ("a", "an") and i + 1 < len(tokens) and tokens[i + 1] in _SCALES:
            start = i + 1  # "a hundred" is "one hundred"
            tokens = [*tokens[:start], "one", *tokens[start:]]
        end, limit = start, start + _MAX_NUMBER_WORDS
        while end < min(len(tokens), limit) and tokens[end] in _NUMBER_WORDS and tokens[end] not in ("a", "an"):
            end += 1
        # The longest run of words that is one valid number.
        while end > start and words_to_number(tokens[start:end]) is None:
            end -= 1
        if end == start:
            return None
        value = words_to_number(tokens[start:end]) or 0.0
        j = end - (1 if start != i else 0)
    return (-value if negative else value), j


def say_number(value: float) -> str:
    """Digits the voice reads well: integers plain, others to 2 decimals, big ones grouped."""
    if math.isinf(value) or math.isnan(value):
        return "too large to say"
    if value < 0:
        return f"minus {say_number(-value)}"
    rounded = round(value)
    if abs(value - rounded) < 1e-9:
        return f"{rounded:,}" if abs(rounded) >= 10_000 else str(rounded)
    text = f"{value:,.2f}" if abs(value) >= 10_000 else f"{value:.2f}"
    return text.rstrip("0").rstrip(".")


# ------------------------------------------------------------------------ arithmetic

_BINARY = [
    (("multiplied", "by"), "*"), (("divided", "by"), "/"), (("to", "the", "power", "of"), "^"),
    (("percent", "of"), "%of"), (("times",), "*"), (("x",), "*"), (("×",), "*"), (("*",), "*"),
    (("plus",), "+"), (("+",), "+"), (("minus",), "-"), (("-",), "-"),
    (("less",), "-"), (("over",), "/"), (("/",), "/"), (("÷",), "/"), (("^",), "^"),
]
_UNARY_POSTFIX = {"squared": 2, "cubed": 3}
_SAY_OP = {"+": "plus", "-": "minus", "*": "times", "/": "divided by", "^": "to the power of",
           "%of": "percent of"}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "%of": 2, "^": 3}
_FILLER = {
    "what", "what's", "whats", "is", "calculate", "compute", "how", "much", "many", "tell", "me", "please",
    "can", "you", "could", "the", "answer", "to", "of", "equals", "equal", "=", "hey", "ok", "okay",
    "voxdesk", "work", "out", "result", "so", "um", "uh", "quick", "question", "do", "does", "make",
}


class _NotArithmetic(Exception):
    pass


def _parse_expression(tokens: list[str]) -> tuple[list[float | str], str]:
    """Tokens → RPN (shunting-yard) and a spoken echo of the question."""
    out: list[float | str] = []
    ops: list[str] = []
    spoken: list[str] = []
    i, expect_number, operations = 0, True, 0
    while i < len(tokens):
        if expect_number:
            if tokens[i] in ("square", "root") and tokens[i : i + 3] == ["square", "root", "of"]:
                read = _read_number(tokens, i + 3)
                if read is None:
                    raise _NotArithmetic
                if read[0] < 0:
                    raise VoiceError("llm.skills", ErrorCode.INVALID_CONFIG, "negative square root")
                out.append(math.sqrt(read[0]))
                spoken.append(f"the square root of {say_number(read[0])}")
                i, expect_number, operations = read[1], False, operations + 1
                continue
            read = _read_number(tokens, i)
            if read is None:
                raise _NotArithmetic
            out.append(read[0])
            spoken.append(say_number(read[0]))
            i, expect_number = read[1], False
            continue
        tok = tokens[i]
        if tok in _UNARY_POSTFIX:
            out.extend([float(_UNARY_POSTFIX[tok]), "^"])
            spoken.append(tok)
            i, operations = i + 1, operations + 1
            continue
        for words, op in _BINARY:
            if tuple(tokens[i : i + len(words)]) == words:
                while ops and _PRECEDENCE[ops[-1]] >= _PRECEDENCE[op] and op != "^":
                    out.append(ops.pop())
                ops.append(op)
                spoken.append(_SAY_OP[op])
                i += len(words)
                expect_number, operations = True, operations + 1
                break
        else:
            raise _NotArithmetic
    if expect_number or operations == 0:
        raise _NotArithmetic
    while ops:
        out.append(ops.pop())
    return out, " ".join(spoken)


def _evaluate(rpn: list[float | str]) -> float:
    stack: list[float] = []
    for item in rpn:
        if isinstance(item, float):
            stack.append(item)
            continue
        b, a = stack.pop(), stack.pop()
        if item == "+":
            stack.append(a + b)
        elif item == "-":
            stack.append(a - b)
        elif item == "*":
            stack.append(a * b)
        elif item == "/":
            if b == 0:
                raise ZeroDivisionError
            stack.append(a / b)
        elif item == "%of":
            stack.append(a / 100 * b)
        elif item == "^":
            if abs(b) > 64 or abs(a) > 1e6:
                raise OverflowError
            stack.append(a**b)
    return stack[0]


def answer_arithmetic(text: str) -> str | None:
    """'what is 17 times 23' → '17 times 23 is 391.'; None if it is not a sum."""
    tokens = [t for t in _tokens(text) if t not in ("(", ")")]
    while tokens and tokens[0] in _FILLER:
        tokens.pop(0)
    while tokens and tokens[-1] in _FILLER:
        tokens.pop()
    if len(tokens) < 2 or not any(_DIGITS.match(t) or t in _UNITS or t in _TENS for t in tokens):
        return None
    if not any(t in _UNARY_POSTFIX or t in ("root",) or any(t == w[0] for w, _ in _BINARY) for t in tokens):
        return None
    try:
        rpn, spoken = _parse_expression(tokens)
    except _NotArithmetic:
        return None
    except VoiceError:
        return "I can only take square roots of positive numbers."
    if not rpn:
        return None
    try:
        value = _evaluate(rpn)
    except ZeroDivisionError:
        return "You can't divide by zero."
    except (OverflowError, IndexError):
        return "That number is too large for me to say."
    exact = abs(value - round(value, 2)) < 1e-9
    return f"{spoken} is {'' if exact else 'about '}{say_number(value)}."


# ------------------------------------------------------------------------- time/date

def say_time(moment: datetime, *, twenty_four_hour: bool) -> str:
    """'4:05 PM' or '16:05' — digits a TTS voice reads naturally."""
    if twenty_four_hour:
        return f"{moment.hour}:{moment.minute:02d}"
    hour = moment.hour % 12 or 12
    return f"{hour}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


def say_date(moment: datetime) -> str:
    return f"{moment:%A}, {moment:%B} {moment.day}, {moment.year}"


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


_UNIT_SECONDS = {
    "second": 1, "seconds": 1, "sec": 1, "secs": 1, "s": 1,
    "minute": 60, "minutes": 60, "min": 60, "mins": 60,
    "hour": 3600, "hours": 3600, "hr": 3600, "hrs": 3600, "h": 3600,
    "day": 86400, "days": 86400, "week": 604800, "weeks": 604800,
}


def parse_duration(text: str) -> float | None:
    """'2 minutes', 'one and a half hours', '1 hour 30 minutes', '90 s' → seconds."""
    tokens = _tokens(text)
    total, found, i = 0.0, False, 0
    while i < len(tokens):
        read = _read_number(tokens, i)
        if read is None:
            # "half an hour", "a minute", "an hour and a half"
            if tokens[i] in ("a", "an") and i + 1 < len(tokens) and tokens[i + 1] in _UNIT_SECONDS:
                read = (1.0, i + 1)
            elif tokens[i] == "half" and tokens[i + 1 : i + 2] in (["an"], ["a"]):
                read = (0.5, i + 2)
            else:
                i += 1
                continue
        value, j = read
        if tokens[j : j + 3] in (["and", "a", "half"], ["and", "an", "half"]):
            value, j = value + 0.5, j + 3
        if j < len(tokens) and tokens[j] in _UNIT_SECONDS:
            total += value * _UNIT_SECONDS[tokens[j]]
            found = True
            j += 1
            if tokens[j : j + 3] == ["and", "a", "half"]:
                total += 0.5 * _UNIT_SECONDS[tokens[j - 1]]
                j += 3
        i = max(j, i + 1)
    return total if found else None


# ----------------------------------------------------------------------------- timers

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
_DURATION_WORDS = sorted(
    {*_UNITS, *_TENS, *_SCALES, *_UNIT_SECONDS, "and", "half", "point"}, key=len, reverse=True
)
_DUR_WORD = rf"(?:\d+(?:[.,]\d+)*|(?:{'|'.join(_DURATION_WORDS)}))"
_DUR = rf"{_DUR_WORD}(?:\s+{_DUR_WORD})*"
_TIMER_NOUN = r"(?:timers?|reminders?|alarms?)"


def _whole(*patterns: str) -> re.Pattern[str]:
    """One pattern that must match the whole (normalised) utterance, any case."""
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


# Each must match the whole utterance; the named groups hold the duration and the label.
_REMINDS = tuple(re.compile(p, re.IGNORECASE) for p in (
    rf"remind\s+me\s+(?:(?:to|about|that)\s+)?(?:(?P<what1>.+?)\s+)?in\s+(?P<dur>{_DUR})"
    r"(?:\s+(?:to|that|about)\s+(?P<what2>.+))?",
    rf"in\s+(?P<dur>{_DUR})\s+remind\s+me\s+(?:to|that|about)\s+(?P<what2>.+)",
    rf"(?:set|create|make|add)(?:\s+me)?\s+(?:a\s+|one\s+)?reminder\s+(?:for|in)\s+(?P<dur>{_DUR})"
    r"(?:\s+(?:to|that|about)\s+(?P<what2>.+))?",
))
_TIMERS = tuple(re.compile(p, re.IGNORECASE) for p in (
    rf"(?:set|start|create|make|put\s+on)(?:\s+me)?(?:\s+(?:a|an|one|the))?(?:\s+(?P<dur>{_DUR}))?"
    rf"\s+timer(?:(?:\s+(?:for|of|to))?\s+(?P<dur2>{_DUR}))?",
    rf"(?:(?:a|an|one)\s+)?timer\s+(?:for\s+)?(?P<dur>{_DUR})",
    rf"(?:(?:a|an|one)\s+)?(?P<dur>{_DUR})\s+timer",
    rf"count\s*down\s+(?:from\s+|for\s+)?(?P<dur>{_DUR})",
))
_LIST_TIMERS = _whole(
    rf"(?:list|show(?:\s+me)?|read(?:\s+out)?|check|tell\s+me)(?:\s+all)?(?:\s+(?:of\s+)?(?:my|the))?\s+{_TIMER_NOUN}",
    rf"(?:what|which)\s+{_TIMER_NOUN}\s+(?:do\s+i\s+have|are\s+(?:there|running|set|pending|active|on))"
    r"(?:\s+(?:running|set|now|right\s+now))?",
    rf"(?:(?:do\s+i\s+have|are\s+there|is\s+there|have\s+i\s+got)\s+)?any\s+{_TIMER_NOUN}"
    r"(?:\s+(?:running|set|left|pending|active|on))?",
    r"(?:do\s+i\s+have|is\s+there)\s+(?:a|one)\s+(?:timer|reminder)(?:\s+(?:running|set|pending|active|on))?",
    rf"how\s+many\s+{_TIMER_NOUN}(?:\s+(?:do\s+i\s+have|are\s+(?:there|running|set|left)))?(?:\s+(?:running|set))?",
    r"how\s+(?:much\s+(?:more\s+)?time|long)(?:\s+(?:is|do\s+i\s+have|have\s+i\s+got))?\s+(?:left|remaining)"
    rf"(?:\s+on\s+(?:my|the)\s+{_TIMER_NOUN})?",
    rf"(?:what(?:'s|s|\s+is)\s+)?(?:the\s+)?time\s+(?:left|remaining)\s+on\s+(?:my|the)\s+{_TIMER_NOUN}",
    r"my\s+(?:timers?|reminders?)",
)
_CANCEL_TIMERS = _whole(
    r"(?:cancel|stop|delete|remove|clear|turn\s+off|switch\s+off|end|kill|dismiss)(?:\s+(?:all|every|both))?"
    rf"(?:\s+of)?(?:\s+(?:my|the|those|these|that|this|a))?(?:\s+{_DUR})?\s+{_TIMER_NOUN}"
    rf"(?:\s+and\s+(?:(?:all|my|the)\s+)*{_TIMER_NOUN})?",
)

# --------------------------------------------------------------------- small talk

_WHATS = r"what(?:'s|s|\s+is)"
_NOW = r"(?:\s+(?:now|right\s+now|at\s+the\s+moment|currently|here|please))?"
_TODAY = r"(?:\s+(?:today|now|right\s+now|please))?"
_TIME_Q = _whole(
    rf"(?:{_WHATS}\s+)?(?:the\s+)?(?:current\s+|exact\s+)?time(?:\s+(?:is\s+it|it\s+is))?{_NOW}",
    rf"what\s+time\s+(?:is\s+it|it\s+is){_NOW}",
    r"(?:do\s+you\s+have|have\s+you\s+got|got)\s+the\s+time",
)
_DATE_Q = _whole(
    rf"(?:{_WHATS}\s+)?(?:the\s+)?(?:current\s+)?date{_TODAY}",
    rf"(?:{_WHATS}\s+)?today's\s+date",
    rf"(?:what|which)\s+(?:date|day)\s+(?:is\s+(?:it|today)|it\s+is){_TODAY}",
    rf"what\s+day\s+of\s+the\s+(?:week|month)(?:\s+(?:is\s+(?:it|today)|it\s+is))?{_TODAY}",
    rf"{_WHATS}\s+(?:the\s+day\s+)?today",
)
_TOMORROW_Q = _whole(
    r"(?:what|which)\s+(?:date|day)\s+(?:is\s+(?:it\s+)?|will\s+it\s+be\s+|is\s+it\s+going\s+to\s+be\s+)?tomorrow",
    rf"{_WHATS}\s+(?:the\s+date\s+)?tomorrow",
    r"(?:the\s+)?date\s+tomorrow",
    rf"(?:{_WHATS}\s+)?tomorrow's\s+date",
)
_YEAR_Q = _whole(
    rf"what\s+year\s+(?:is\s+(?:it|this)|it\s+is){_NOW}",
    rf"(?:{_WHATS}\s+)?(?:the\s+)?current\s+year",
)
_MONTH_Q = _whole(
    rf"what\s+month\s+(?:is\s+(?:it|this)|it\s+is){_NOW}",
    rf"(?:{_WHATS}\s+)?(?:the\s+)?current\s+month",
)
_REPEAT_AFTER = re.compile(r"^(?:please\s+)?(?:repeat|say)\s+after\s+me\b[\s,:.;-]*(?P<what>.*)$",
                           re.IGNORECASE | re.DOTALL)
_REPEAT_LAST = _whole(
    r"(?:please\s+)?(?:repeat(?:\s+(?:that|it|yourself))?|say\s+(?:that|it)(?:\s+one\s+more\s+time)?)"
    r"(?:\s+again)?",
    r"what\s+did\s+you\s+(?:just\s+)?say|come\s+again|pardon(?:\s+me)?|i\s+didn't\s+(?:catch|hear)\s+that",
)
_CAPABILITIES = _whole(
    r"what\s+(?:else\s+)?(?:can|do|could)\s+you\s+do(?:\s+for\s+me)?",
    r"what\s+(?:else\s+)?you\s+can\s+do",
    r"what\s+are\s+you\s+(?:able\s+to\s+do|capable\s+of|good\s+for)",
    r"what\s+are\s+your\s+(?:skills|capabilities|features|abilities)",
    r"what\s+(?:else\s+)?can\s+i\s+(?:ask|say)(?:\s+you)?",
    r"how\s+(?:can|do)\s+you\s+help(?:\s+me)?",
    r"what\s+can\s+you\s+help(?:\s+me)?\s+with",
    r"help(?:\s+me)?",
)
_WHO = _whole(
    r"who\s+are\s+you",
    rf"{_WHATS}\s+your\s+name",
    r"what\s+are\s+you",
    r"who\s+(?:am\s+i\s+(?:talking|speaking)\s+(?:to|with)|is\s+this)",
)
_GREETING = re.compile(r"^\W*(?:hi|hello|hey|hiya|howdy|greetings|good\s+(?:morning|afternoon|evening))"
                       r"(?:\s+(?:there|voxdesk|assistant))?\W*$", re.IGNORECASE)
_HOW_ARE_YOU = re.compile(r"^\W*(?:(?:hi|hello|hey)\W+)?how\s+are\s+you(?:\s+doing)?(?:\s+today)?\W*$",
                          re.IGNORECASE)
_THANKS = re.compile(r"^\W*(?:(?:thanks|thank\s+you|thank\s+u|cheers|ta)(?:\s+(?:so|very)\s+much)?"
                     r"(?:\s+(?:a\s+lot|voxdesk))?|much\s+appreciated)\W*$", re.IGNORECASE)
_BYE = re.compile(r"^\W*(?:bye|goodbye|good\s+night|see\s+you(?:\s+later)?)\W*$", re.IGNORECASE)


# ----------------------------------------------------------------- normalising

# Polite filler said before a request: "hey VoxDesk, could you please tell me ...".
_LEAD_FILLER = re.compile(
    r"(?:[\s,.!?:;…-]*(?:"
    r"(?:hey|hi|hello|ok|okay|so|um+|uh+|erm?|well|yo|excuse\s+me|sorry)(?:\s+there)?"
    r"|good\s+(?:morning|afternoon|evening)"
    r"|vox\s*desk|please|quick\s+question|just"
    r"|(?:can|could|would|will)\s+you(?:\s+please)?(?:\s+(?:tell|give|show)\s+me)?"
    r"|(?:do|would)\s+you\s+(?:happen\s+to\s+)?know"
    r"|i\s+(?:want|wanted|would\s+like|'d\s+like|need)\s+to\s+know"
    r"|tell\s+me"
    r")(?![\w']))+[\s,.!?:;…-]*",
    re.IGNORECASE,
)
# ... and after it: "..., please", "... for me, thanks VoxDesk".
_TRAIL_FILLER = re.compile(
    r"(?:^|(?<=[\s,.!?:;…-]))(?:please|thanks|thank\s+you|vox\s*desk|for\s+me|ok|okay)$", re.IGNORECASE
)
_TRAIL_PUNCTUATION = " ,.!?:;…"
#: Longer text is no request a skill answers (repeat after me aside); pass it on without parsing it.
MAX_REQUEST_CHARS = 400
_WORD = re.compile(r"\d+(?:[.,]\d+)*|[^\W_]+(?:'[^\W_]+)*")


@dataclass(frozen=True)
class _Heard:
    """One utterance, as said and with the filler taken off."""

    raw: str  # whitespace-normalised text as said
    lead: str  # raw without leading filler; case and punctuation kept
    plain: str  # lead without trailing filler and punctuation; symbols kept for sums
    core: str  # plain as single-spaced words only: what the skill grammars must match whole


def _hear(text: str) -> _Heard:
    raw = " ".join(text.replace("’", "'").replace("‘", "'").split())
    lead_match = _LEAD_FILLER.match(raw)
    lead = raw[lead_match.end():] if lead_match else raw
    plain = lead.rstrip(_TRAIL_PUNCTUATION)
    while (trail := _TRAIL_FILLER.search(plain)) is not None:
        plain = plain[: trail.start()].rstrip(_TRAIL_PUNCTUATION + "-")
    core = " ".join(_WORD.findall(plain))
    return _Heard(raw, lead, plain, core)


def _group(match: re.Match[str], *names: str) -> str | None:
    groups = match.groupdict()
    return next((groups[n] for n in names if groups.get(n)), None)



class SkillsLLM(LLMProvider):
    """Answers what it recognises instantly; says how to get a language model otherwise."""

    kind: ClassVar[StageKind] = "llm"
    name: ClassVar[str] = "skills"

    def __init__(
        self,
        config: SkillsConfig | None = None,
        *,
        now: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.config = config or SkillsConfig.model_validate({})
        self._tz: tzinfo | None = None
        if self.config.timezone:
            from zoneinfo import ZoneInfo

            self._tz = ZoneInfo(self.config.timezone)
        self._now = now
        self._sleep: Sleep = sleep or asyncio.sleep
        #: Awaited with the spoken message when a timer or reminder fires.
        self.on_timer: TimerHook | None = None
        #: Messages of timers that fired while no hook was set, oldest first.
        self.fired: list[str] = []
        self._timers: dict[int, Timer] = {}
        self._ids = itertools.count(1)
        self._last_answer: str | None = None
        self._closed = False

    # -- clock --------------------------------------------------------------
    def now(self) -> datetime:
        moment = self._now() if self._now else datetime.now(self._tz).astimezone(self._tz)
        if self._tz is not None and moment.tzinfo is not None:
            moment = moment.astimezone(self._tz)
        return moment

    # -- the skills ---------------------------------------------------------
    def try_answer(self, text: str) -> str | None:
        """The spoken answer if a skill recognises `text`, else None (pass it on).

        A skill answers only when the whole request, less polite filler ("hey",
        "please", "can you tell me"), is one of its phrasings: "what time is it"
        is answered, "what time is sunset" or "current time in London" are passed
        on. Timer requests start the timer as a side effect, so call this from code
        running on the event loop that should own the timers.
        """
        heard = _hear(text)
        if not heard.raw:
            return None
        answer = self._match(heard)
        if answer is not None and not _REPEAT_LAST.fullmatch(heard.core):
            self._last_answer = answer
        return answer

    def _match(self, heard: _Heard) -> str | None:
        # Whole-utterance small talk, checked as said and without leading filler ("ok, thanks").
        if _HOW_ARE_YOU.search(heard.raw):
            return "I'm doing well, thanks for asking. How can I help?"
        if _GREETING.search(heard.raw):
            return "Hello! How can I help?"
        if _THANKS.search(heard.raw) or _THANKS.search(heard.lead):
            return "You're welcome."
        if _BYE.search(heard.raw) or _BYE.search(heard.lead):
            return "Goodbye!"
        repeat = _REPEAT_AFTER.match(heard.lead)
        if repeat:
            what = repeat.group("what").strip()
            return what if what else "Sure, say something and I'll repeat it. Start with: repeat after me."
        core = heard.core
        if not core or len(heard.plain) > MAX_REQUEST_CHARS:
            return None
        if _REPEAT_LAST.fullmatch(core):
            return self._last_answer or "I haven't said anything yet."
        if _CANCEL_TIMERS.fullmatch(core):
            return self._cancel_all()
        if _LIST_TIMERS.fullmatch(core):
            return self._list_timers()
        for pattern in _REMINDS:
            if remind := pattern.fullmatch(core):
                label = _clean_label(_group(remind, "what1", "what2"))
                return self._start_timer(remind.group("dur"), label=label)
        for pattern in _TIMERS:
            if timer := pattern.fullmatch(core):
                return self._start_timer(_group(timer, "dur", "dur2") or "", label=None)
        if _TIME_Q.fullmatch(core):
            return f"It's {say_time(self.now(), twenty_four_hour=self.config.twenty_four_hour)}."
        if _DATE_Q.fullmatch(core):
            return f"Today is {say_date(self.now())}."
        if _TOMORROW_Q.fullmatch(core):
            return f"Tomorrow is {say_date(self.now() + timedelta(days=1))}."
        if _YEAR_Q.fullmatch(core):
            return f"It's {self.now().year}."
        if _MONTH_Q.fullmatch(core):
            return f"It's {self.now():%B}."
        if _CAPABILITIES.fullmatch(core):
            return CAPABILITIES
        if _WHO.fullmatch(core):
            return "I'm VoxDesk, your desktop voice assistant."
        return answer_arithmetic(heard.plain)

    # -- timers -------------------------------------------------------------
    def timers(self) -> list[Timer]:
        """Pending timers, soonest first."""
        return sorted(self._timers.values(), key=lambda t: t.due_monotonic)

    def cancel_timer(self, timer_id: int) -> bool:
        timer = self._timers.pop(timer_id, None)
        if timer is None:
            return False
        if timer.task is not None:
            timer.task.cancel()
        return True

    def _start_timer(self, duration_text: str, *, label: str | None) -> str:
        seconds = parse_duration(duration_text)
        if seconds is None or seconds <= 0:
            return "For how long? Say for example: set a timer for 5 minutes."
        if seconds > MAX_TIMER_S:
            return "I can only set timers for up to a week."
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return "I can only set timers while VoxDesk is running."
        if self._closed:
            return "I can't set timers while shutting down."
        timer_id = next(self._ids)
        spoken = say_duration(seconds)
        message = f"Reminder: {label}." if label else f"Your timer for {spoken} is done."
        timer = Timer(timer_id, seconds, time.monotonic() + seconds, message, label)
        timer.task = loop.create_task(self._run_timer(timer), name=f"voxdesk-timer-{timer_id}")
        self._timers[timer_id] = timer
        if label:
            return f"OK, I'll remind you in {spoken} to {label}."
        return f"OK, timer set for {spoken}."

    async def _run_timer(self, timer: Timer) -> None:
        await self._sleep(timer.duration_s)
        self._timers.pop(timer.id, None)
        hook = self.on_timer
        if hook is None:
            self.fired.append(timer.message)
            log.info("timer fired with no listener: %s", timer.message)
            return
        try:
            await hook(timer.message)
        except Exception:  # a failing listener must not kill other timers
            log.exception("timer listener failed; keeping the message")
            self.fired.append(timer.message)

    def _list_timers(self) -> str:
        pending = self.timers()
        if not pending:
            return "You have no timers running."
        if len(pending) == 1:
            return f"You have {pending[0].describe()}."
        listed = "; ".join(t.describe() for t in pending)
        return f"You have {len(pending)} timers: {listed}."

    def _cancel_all(self) -> str:
        count = len(self._timers)
        for timer_id in list(self._timers):
            self.cancel_timer(timer_id)
        if count == 0:
            return "There are no timers to cancel."
        return "Timer cancelled." if count == 1 else f"All {count} timers cancelled."

    # -- provider contract --------------------------------------------------
    async def chat(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        """Answer the last user message; unknown requests get the 'needs a model' note."""
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        answer = self.try_answer(question)
        yield answer if answer is not None else NEEDS_MODEL

    async def health(self) -> Health:
        return Health(HealthStatus.OK, "built-in skills: time, date, sums, timers")

    async def aclose(self) -> None:
        """Cancel pending timers and wait for them, so no task outlives the provider."""
        self._closed = True
        tasks = [t.task for t in self._timers.values() if t.task is not None]
        self._timers.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _clean_label(what: str | None) -> str | None:
    if not what:
        return None
    what = what.strip().rstrip(".!?")
    what = re.sub(r"^(?:to|that\s+i\s+(?:need\s+to|should|have\s+to|must))\s+", "", what, flags=re.I)
    what = re.sub(r"\bmy\b", "your", what, flags=re.I)
    return what or None


SPEC = ProviderSpec(
    kind="llm",
    name="skills",
    factory=lambda cfg: SkillsLLM(cfg),
    config_model=SkillsConfig,
    info=ProviderInfo(
        display_name="Built-in skills",
        description="Instant offline answers: time, date, sums, timers and reminders. "
        "Needs no model; put a language model behind it for everything else.",
        local=True,
        streaming=True,
        languages=("en",),
        extra={"instant": True, "timers": True},
    ),
)
