"""Numbers, units, years and abbreviations written the way they are said (the voices
read "km" as "K M" and "1603" as "one thousand six hundred three")."""

from __future__ import annotations

import pytest

from app.engine.spoken_words import say_naturally, year_words


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("It is 5 km away.", "It is 5 kilometres away."),
        ("It weighs 1 kg.", "It weighs 1 kilogram."),
        ("It is 20 °C, or -5 °C at night.", "It is 20 degrees Celsius, or minus 5 degrees Celsius at night."),
        ("It is 72°F.", "It is 72 degrees Fahrenheit."),
        ("Drive at 100 km/h or 60 mph.", "Drive at 100 kilometres per hour or 60 miles per hour."),
        ("About 384,400 km.", "About 384,400 kilometres."),
        ("Wait 10 s, 2 h or 5 min.", "Wait 10 seconds, 2 hours or 5 minutes."),
        ("It has 8 GB at 2.4 GHz.", "It has 8 gigabytes at 2.4 gigahertz."),
        ("Mt. Everest is 8,849 m tall.", "Mount Everest is 8,849 metres tall."),
    ],
)
def test_units_after_a_number_are_spelled_out(written: str, said: str) -> None:
    assert say_naturally(written) == said


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("Fruit, e.g. an apple.", "Fruit, for example an apple."),
        ("Soon, i.e. today.", "Soon, that is today."),
        ("Cats vs. dogs.", "Cats versus dogs."),
        ("Approx. 5 people.", "approximately 5 people."),
        ("Salt & pepper.", "Salt and pepper."),
        ("It takes ~5 minutes.", "It takes about 5 minutes."),
        ("It takes 5-10 minutes.", "It takes 5 to 10 minutes."),
        ("Add 1/2 cup.", "Add one half cup."),
        ("Open 9 AM-5 PM, or 6:00 pm - 7:00 pm.", "Open 9 AM to 5 PM, or 6:00 pm to 7:00 pm."),
    ],
)
def test_abbreviations_and_symbols_are_said_as_words(written: str, said: str) -> None:
    assert say_naturally(written) == said


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("Hamlet was written in 1603.", "Hamlet was written in sixteen oh three."),
        ("Shakespeare (1564-1616).", "Shakespeare (fifteen sixty-four to sixteen sixteen)."),
        ("Music of the 1990s.", "Music of the nineteen nineties."),
        ("Since 2005.", "Since two thousand five."),
        ("By 2024.", "By twenty twenty-four."),
        ("Rome was founded in 753 BC.", "Rome was founded in 753 B C."),
    ],
)
def test_years_are_said_as_years(written: str, said: str) -> None:
    assert say_naturally(written) == said


@pytest.mark.parametrize(
    "text",
    [
        "It costs $5 and 12%.",  # the voices say these well
        "There are 1500 people and 2000 cars.",  # counts, not years
        "In the 80s, phones had 5G? No, they had 3 legs.",  # a decade, a network, a word after a number
        "Call 555-123-4567 on 2026-12-01.",  # phone numbers and dates are not ranges
        "It is 3.5 million.",
        "He came in 5 ways.",
        "I am - 5 years older.",  # "am" the verb
    ],
)
def test_what_the_voice_reads_well_is_left_alone(text: str) -> None:
    assert say_naturally(text) == text


def test_saying_it_twice_changes_nothing_more() -> None:
    once = say_naturally("Shakespeare (1564-1616) walked 5 km, e.g. daily, at 20 °C in 1600.")
    assert say_naturally(once) == once


@pytest.mark.parametrize(
    ("year", "said"),
    [(1564, "fifteen sixty-four"), (1603, "sixteen oh three"), (1900, "nineteen hundred"), (2000, "two thousand")],
)
def test_year_words(year: int, said: str) -> None:
    assert year_words(year) == said
