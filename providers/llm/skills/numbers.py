"""Numbers as people say them, both ways: "twenty three" → 23, and 391 → "391"; times and dates too."""

from __future__ import annotations

import math
import re
from datetime import datetime

UNITS = {
    "zero": 0,
    "oh": 0,
    "one": 1,
    "a": 1,
    "an": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_NUMBER_WORDS = set(UNITS) | set(TENS) | set(SCALES) | {"and", "point"}
DIGITS = re.compile(r"^-?\d+(?:\.\d+)?$")
#: Longest run of words read as one number ("nine hundred and ninety nine thousand ..."); bounds the work.
_MAX_NUMBER_WORDS = 24


def words_to_number(words: list[str]) -> float | None:
    """ "twenty three" → 23, "one hundred and five" → 105, "two point five" → 2.5.

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
            if w not in UNITS or UNITS[w] >= 10 or w in ("a", "an"):
                return None
            decimals.append(str(UNITS[w]))
        elif w == "point" and last != "start":
            in_decimals = True
        elif w == "and" and last == "scale":
            last = "and"
        elif w in UNITS and w not in ("a", "an"):
            if last not in ("start", "tens", "scale", "and") or (last == "tens" and UNITS[w] >= 10):
                return None
            current += UNITS[w]
            last = "unit" if UNITS[w] < 10 else "teen"
        elif w in TENS:
            if last not in ("start", "scale", "and"):
                return None
            current += TENS[w]
            last = "tens"
        elif w in SCALES:
            if last not in ("unit", "teen", "tens"):
                return None
            current = current * SCALES[w]
            if SCALES[w] >= 1000:
                total, current = total + current, 0
            last = "scale"
        else:
            return None
    value = total + current
    if decimals:
        value += float("0." + "".join(decimals))
    return value


_ONES_RE = "one|two|three|four|five|six|seven|eight|nine"
_NUMBER_WORD_RE = "|".join(sorted({*UNITS, *TENS} - {"a", "an", "oh"}, key=len, reverse=True))
# "twenty-one" and "two-hundred" are one number, not a subtraction; "5-minute" is "5 minute".
_HYPHENATED = re.compile(
    rf"\b(?P<tens>{'|'.join(TENS)})-(?=(?:{_ONES_RE})\b)"
    rf"|\b(?P<word>{_NUMBER_WORD_RE})-(?=(?:{'|'.join(SCALES)})\b)"
    r"|(?<=\d)-(?=[a-z])"
)


def _join_hyphens(text: str) -> str:
    return _HYPHENATED.sub(lambda m: f"{m.group('tens') or m.group('word') or ''} ", text)


def tokenize(text: str) -> list[str]:
    """Lower-case words and symbols; thousands separators removed ("1,000" → "1000")."""
    text = _join_hyphens(text.lower().replace("−", "-"))
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = re.sub(r"(?<=\d)\s*%", " percent", text)
    return re.findall(r"\d+(?:\.\d+)?|[a-z]+(?:'[a-z]+)?|[-+*/×÷^()=]", text)


def read_number(tokens: list[str], i: int) -> tuple[float, int] | None:
    """A number at tokens[i] (digits or words); returns (value, next index)."""
    negative = False
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    if (
        i < len(tokens)
        and tokens[i] in ("minus", "negative", "-")
        and (DIGITS.match(nxt) or nxt in UNITS or nxt in TENS)
    ):
        negative, i = True, i + 1
    if i >= len(tokens):
        return None
    if DIGITS.match(tokens[i]):
        value, j = float(tokens[i]), i + 1
        if j < len(tokens) and tokens[j] in SCALES:  # "2 thousand"
            value, j = value * SCALES[tokens[j]], j + 1
    else:
        start = i
        if tokens[i] in ("a", "an") and i + 1 < len(tokens) and tokens[i + 1] in SCALES:
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


# ------------------------------------------------------------------------- time/date


def say_time(moment: datetime, *, twenty_four_hour: bool) -> str:
    """'4:05 PM' or '16:05' — digits a TTS voice reads naturally."""
    if twenty_four_hour:
        return f"{moment.hour}:{moment.minute:02d}"
    hour = moment.hour % 12 or 12
    return f"{hour}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


def say_date(moment: datetime) -> str:
    return f"{moment:%A}, {moment:%B} {moment.day}, {moment.year}"
