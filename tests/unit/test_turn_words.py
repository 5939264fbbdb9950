"""Which transcripts stop mid-sentence (the turn then waits for more words)."""

from __future__ import annotations

import pytest

from app.engine.turn_words import Ending, ending, ends_with_full_stop, sounds_unfinished


@pytest.mark.parametrize(
    "text",
    ["Set a timer for", "What's the weather in?", "Add milk and...", "Remind me to", "um", "Call my mum,",
     "Set a timer for it.", "What is the capital of?", "Tell me about the"],
)  # fmt: skip
def test_phrases_that_stop_on_a_word_that_cannot_end_a_sentence_are_unfinished(text: str) -> None:
    assert sounds_unfinished(text) is True


@pytest.mark.parametrize(
    "text",
    [
        "What time is it?",
        "Who are you?",
        "Turn it on.",
        "Set a timer for five minutes.",
        "Tell me a joke",
        "What is 17 times 23?",
        "What is 15% of 200?",
        "Set a timer for 5 minutes",
    ],
)
def test_sentences_that_may_end_there_are_not(text: str) -> None:  # numbers are words too
    assert sounds_unfinished(text) is False


def test_no_words_or_another_language_cannot_tell() -> None:
    assert sounds_unfinished("") is None
    assert sounds_unfinished("...") is True  # a trailing ellipsis alone still says "more to come"
    assert sounds_unfinished("quelle heure est-il", "fr") is None


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("What time is it?", "en", Ending.QUESTION),
        ("What is the capital of?", "en", Ending.UNFINISHED),  # the last word wins over the mark
        ("Quelle heure est-il ?", "fr", Ending.QUESTION),
        ("Set a timer for five minutes.", "en", Ending.OPEN),
        ("Add milk and", "en", Ending.UNFINISHED),
        ("Bonjour,", "fr", Ending.UNFINISHED),
        ("Bonjour", "fr", None),
        ("?", "en", None),
    ],
)
def test_how_a_transcript_ends(text: str, language: str, expected: Ending | None) -> None:
    assert ending(text, language) is expected


def test_a_full_stop_is_not_an_ellipsis() -> None:
    assert ends_with_full_stop("Open the calendar.") and ends_with_full_stop("Stop!")
    assert not ends_with_full_stop("Add milk and...") and not ends_with_full_stop("What time is it?")
