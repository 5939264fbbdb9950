"""Numbers, units, years and abbreviations written the way a person says them.

Why: the voices (Piper and others, espeak-ng's rules underneath) read "5 km" as
"five K M", "20 °C" as "twenty degrees C", "1603" as "one thousand six hundred
three", "i.e." as "I E" and "5-10" as "five dash ten". Language models write all
of those. Plain numbers, decimals, money and percentages are left alone: the
voices say them well already ("$5", "3.5", "384,400", "12%").

`say_naturally` works on one clean sentence (markdown already gone, see
`speech_text`); it only rewrites what it recognises, so running it twice is
harmless.
"""

from __future__ import annotations

import re

_NUM = r"\d+(?:[.,]\d+)*"

#: unit as written → (singular, plural). Only after a number, so "in", "m" and "s"
#: in ordinary words are never touched.
_UNITS: dict[str, tuple[str, str]] = {
    "km/h": ("kilometre per hour", "kilometres per hour"),
    "kph": ("kilometre per hour", "kilometres per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "m/s": ("metre per second", "metres per second"),
    "km²": ("square kilometre", "square kilometres"),
    "km2": ("square kilometre", "square kilometres"),
    "m²": ("square metre", "square metres"),
    "m2": ("square metre", "square metres"),
    "sq ft": ("square foot", "square feet"),
    "°C": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "ºC": ("degree Celsius", "degrees Celsius"),
    "ºF": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
    "km": ("kilometre", "kilometres"),
    "cm": ("centimetre", "centimetres"),
    "mm": ("millimetre", "millimetres"),
    "µm": ("micrometre", "micrometres"),
    "μm": ("micrometre", "micrometres"),
    "nm": ("nanometre", "nanometres"),
    "m": ("metre", "metres"),
    "mi": ("mile", "miles"),
    "ft": ("foot", "feet"),
    "yd": ("yard", "yards"),
    "kg": ("kilogram", "kilograms"),
    "mg": ("milligram", "milligrams"),
    "g": ("gram", "grams"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "ml": ("millilitre", "millilitres"),
    "mL": ("millilitre", "millilitres"),
    "l": ("litre", "litres"),
    "L": ("litre", "litres"),
    "kWh": ("kilowatt hour", "kilowatt hours"),
    "kW": ("kilowatt", "kilowatts"),
    "MW": ("megawatt", "megawatts"),
    "W": ("watt", "watts"),
    "V": ("volt", "volts"),
    "mAh": ("milliamp hour", "milliamp hours"),
    "Hz": ("hertz", "hertz"),
    "kHz": ("kilohertz", "kilohertz"),
    "MHz": ("megahertz", "megahertz"),
    "GHz": ("gigahertz", "gigahertz"),
    "KB": ("kilobyte", "kilobytes"),
    "kB": ("kilobyte", "kilobytes"),
    "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "TB": ("terabyte", "terabytes"),
    "ms": ("millisecond", "milliseconds"),
    "sec": ("second", "seconds"),
    "secs": ("second", "seconds"),
    "s": ("second", "seconds"),
    "min": ("minute", "minutes"),
    "mins": ("minute", "minutes"),
    "hr": ("hour", "hours"),
    "hrs": ("hour", "hours"),
    "h": ("hour", "hours"),
    "yr": ("year", "years"),
    "yrs": ("year", "years"),
}
_UNIT = re.compile(
    rf"(?P<num>{_NUM})\s?(?P<unit>{'|'.join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))})"
    r"(?![\w/²])"
)

#: Abbreviations the voices spell out or misread, with what to say instead.
_ABBREVIATIONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, flags), said)
    for pattern, said, flags in (
        (r"\be\.\s?g\.(?=\s|,|$)", "for example", re.IGNORECASE),
        (r"\bi\.\s?e\.(?=\s|,|$)", "that is", re.IGNORECASE),
        (r"\bvs\.?(?=\s|$)", "versus", 0),
        (r"\bapprox\.?(?=\s|$)", "approximately", re.IGNORECASE),
        (r"\b[Cc]a\.(?=\s\d)", "about", 0),
        (r"\bc\.(?=\s?\d{3,4}\b)", "around", 0),
        (r"\b[Nn]o\.(?=\s?\d)", "number", 0),
        (r"\bMt\.(?=\s[A-Z]|$)", "Mount", 0),
        (r"\betc\.(?=\s|,|$)", "et cetera", 0),
        (r"\s&\s", " and ", 0),
        (r"(?<!\w)[~≈](?=\s?\d)", "about ", 0),
        (r"±", " plus or minus ", 0),
        (r"\b24/7\b", "all day, every day", 0),
        (r"(?<!\d)1/2(?!\d)|½", "one half", 0),
        (r"(?<!\d)1/4(?!\d)|¼", "one quarter", 0),
        (r"(?<!\d)3/4(?!\d)|¾", "three quarters", 0),
        (r"(?<!\d)1/3(?!\d)|⅓", "one third", 0),
    )
)

#: "6:00 AM-7:00 PM": a range of times.
_TIME_RANGE = re.compile(r"(?<=\d)(\s?[AaPp]\.?[Mm]\b\.?)\s?[-–]\s?(?=\d)")
_NEGATIVE = re.compile(r"(?:(?<=\s)|^)[-−](?=\d)")
# "5-10", "1564–1616": a range of exactly two numbers (a date or a phone number has more).
_RANGE = re.compile(rf"(?<![\d\-–/.])({_NUM})\s?[-–]\s?({_NUM})(?![\d\-–/])")
_DECADE = re.compile(r"\b(1[1-9]|20)(\d)0s\b")
_YEAR_AFTER = re.compile(
    r"\b(?P<lead>(?:in|since|from|until|till|by|around|circa|year|born|died|of|between|before|after)"
    r"\s(?:the\s(?:year\s)?)?|\()(?P<year>1[1-9]\d\d|20\d\d)\b(?![.,]\d|\s?%|\s?(?:people|dollars|euros))",
    re.IGNORECASE,
)
_YEAR_BEFORE_ERA = re.compile(r"\b(?P<year>\d{1,4})\s?(?P<era>AD|BC|BCE|CE)\b")

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_TEENS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _two_digits(n: int) -> str:
    if n < 10:
        return _ONES[n]
    if n < 20:
        return _TEENS[n - 10]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


def year_words(year: int) -> str:
    """1564 → "fifteen sixty-four", 1603 → "sixteen oh three", 2005 → "two thousand five"."""
    if not 1000 <= year <= 2099:
        return str(year)
    high, low = divmod(year, 100)
    if 2000 <= year <= 2009:
        return "two thousand" + (f" {_ONES[low]}" if low else "")
    if low == 0:
        return f"{_two_digits(high)} hundred"
    if low < 10:
        return f"{_two_digits(high)} oh {_ONES[low]}"
    return f"{_two_digits(high)} {_two_digits(low)}"


def _decade(m: re.Match[str]) -> str:
    words = year_words(int(f"{m.group(1)}{m.group(2)}0"))
    head, _, last = words.rpartition(" ")
    plural = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return f"{head} {plural}".strip()


#: One-letter units are only units after a space: "80s" is a decade, "5G" a network.
_NEEDS_SPACE = frozenset({"s", "h", "g", "l", "L", "V", "W"})


def _unit(m: re.Match[str]) -> str:
    unit, num = m.group("unit"), m.group("num")
    if unit in _NEEDS_SPACE and m.group(0) == num + unit:
        return m.group(0)
    singular, plural = _UNITS[unit]
    return f"{num} {singular if num == '1' else plural}"


def _year(m: re.Match[str]) -> str:
    return m.group("lead") + year_words(int(m.group("year")))


def _era(m: re.Match[str]) -> str:
    year = int(m.group("year"))
    era = {"AD": "A D", "CE": "C E", "BC": "B C", "BCE": "B C E"}[m.group("era")]
    return f"{year_words(year) if year >= 1000 else year} {era}"


def say_naturally(text: str) -> str:
    """Rewrite what a voice would misread; everything else is returned unchanged."""
    for pattern, said in _ABBREVIATIONS:
        text = pattern.sub(said, text)
    text = _DECADE.sub(_decade, text)
    text = _YEAR_BEFORE_ERA.sub(_era, text)
    text = _RANGE.sub(_range, text)
    text = _TIME_RANGE.sub(r"\1 to ", text)
    text = _UNIT.sub(_unit, text)
    text = _NEGATIVE.sub("minus ", text)
    text = _YEAR_AFTER.sub(_year, text)
    return re.sub(r"[ \t]{2,}", " ", text)


def _range(m: re.Match[str]) -> str:
    low, high = m.group(1), m.group(2)
    both_years = all(re.fullmatch(r"1[1-9]\d\d|20\d\d", n) for n in (low, high))
    if both_years:
        return f"{year_words(int(low))} to {year_words(int(high))}"
    return f"{low} to {high}"
