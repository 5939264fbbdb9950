"""What of a streamed model reply is spoken: markdown, emoji and URLs gone, units said,
loops and long answers cut — whatever way the reply was split into deltas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.engine.spoken_reply import BRIEF, CODE_SAID, DETAILED, SpokenLimits, SpokenReply, ends_sentence, spoken_only


def speak(text: str, *, step: int = 3, limits: SpokenLimits = BRIEF) -> SpokenReply:
    """Feed `text` in `step`-character deltas (as a model streams it); the reply after it."""
    reply = SpokenReply(limits)
    pieces: list[str] = []
    for i in range(0, len(text), step):
        pieces.append(reply.push(text[i : i + step]))
        if reply.stopped:
            break
    pieces.append(reply.flush())
    assert "".join(pieces).strip() == reply.text  # what was handed out is what it says was said
    return reply


@pytest.mark.parametrize("step", [1, 2, 5, 1000])
def test_markdown_emphasis_inline_code_and_emoji_are_not_read_out(step: int) -> None:
    reply = speak("The capital of France is **Paris**. It has the `Eiffel Tower` 🗼 and *great* food!", step=step)
    assert reply.text == "The capital of France is Paris. It has the Eiffel Tower and great food!"


def test_headings_and_list_items_become_sentences() -> None:
    reply = speak("## Tips\n- Drink water\n- Sleep well\n", limits=DETAILED)
    assert reply.text == "Tips. Drink water. Sleep well."


def test_a_code_block_is_left_out_with_one_sentence_saying_so() -> None:
    reply = speak("Like this:\n```python\nprint('hi')\nx = [1, 2]\n```\nThat prints hi.", step=4)
    assert reply.text == f"Like this: {CODE_SAID} That prints hi."
    assert "print(" not in reply.text and "`" not in reply.text


def test_urls_are_said_as_their_domain_and_links_as_their_text() -> None:
    reply = speak("See https://www.example.com/a/b?c=1 or [the docs](https://docs.python.org/3/).")
    assert reply.text == "See example.com or the docs."


def test_units_years_and_abbreviations_are_written_as_said() -> None:
    reply = speak("The moon is about 384,400 km away, e.g. far. Hamlet dates from 1603.")
    assert reply.text == (
        "The moon is about 384,400 kilometres away, for example far. Hamlet dates from sixteen oh three."
    )


def test_a_repeated_sentence_ends_the_reply_and_is_said_once() -> None:
    reply = speak("I am fine. How are you? I am fine. I am fine.", limits=DETAILED)
    assert reply.text == "I am fine. How are you?"
    assert reply.stopped == "repetition"


def test_a_phrase_repeated_back_to_back_ends_the_reply_after_its_first_time() -> None:
    reply = speak("Sure. " + "the cat sat on the mat " * 6, limits=DETAILED)
    assert reply.text == "Sure. the cat sat on the mat."
    assert reply.stopped == "repetition"


def test_ordinary_repetition_is_not_a_loop() -> None:
    text = "Ha ha, very funny. I said it is very, very cold. Yes. Yes."
    assert speak(text, limits=DETAILED).stopped is None


def test_the_reply_ends_after_the_sentence_cap() -> None:
    reply = speak("One is here. Two is here. Three is here. Four is here. Five is here.")
    assert reply.text == "One is here. Two is here. Three is here."
    assert (reply.stopped, reply.sentences) == ("length", BRIEF.max_sentences)


def test_abbreviations_do_not_count_as_sentence_ends() -> None:
    reply = speak("Dr. Smith met Mr. Jones on Mt. Fuji. They talked. They left. They came back.")
    assert reply.text == "Dr. Smith met Mr. Jones on Mount Fuji. They talked. They left."


def test_past_the_character_cap_the_sentence_being_said_is_finished_and_is_the_last() -> None:
    first = "A sentence of about fifty characters goes here. "
    second = "Then a second one, which starts before the cap and ends after it. "
    reply = speak(first + second + "A third is never said.", limits=SpokenLimits(max_sentences=5, max_chars=60))
    assert reply.text == (first + second).strip()
    assert reply.stopped == "length"


def test_a_run_on_sentence_is_cut_soon_after_the_character_cap_and_ended_cleanly() -> None:
    for filler in ("and", "and the"):  # wherever the cut lands, it ends on a word that ends a sentence
        text = "So " + " ".join(f"we walked {n} miles {filler}" for n in range(60))
        reply = speak(text, limits=SpokenLimits(max_sentences=3, max_chars=100))
        assert reply.stopped == "length"
        assert 100 < len(reply.text) <= 100 + 160 and reply.text.endswith(".")
        assert reply.text.split()[-1] not in ("and.", "the.")


def test_asking_for_more_lets_a_longer_answer_through() -> None:
    text = " ".join(f"Fact number {n} is true." for n in range(1, 8))
    assert speak(text).sentences == BRIEF.max_sentences
    assert speak(text, limits=DETAILED).sentences == 7


def test_nothing_is_held_back_past_a_clause_so_the_first_audio_is_not_delayed() -> None:
    reply = SpokenReply()
    assert reply.push("Paris is the capital") == ""
    assert reply.push(", and it is big") == "Paris is the capital, "
    assert reply.flush() == "and it is big."


def test_an_open_bold_is_held_until_it_closes() -> None:
    reply = SpokenReply()
    assert reply.push("It is **very, ") == ""
    assert reply.push("very** cold. ") == "It is very, very cold. "


async def _deltas(parts: list[str], log: list[str]) -> AsyncIterator[str]:
    try:
        for p in parts:
            log.append(p)
            yield p
            await asyncio.sleep(0)
    finally:
        log.append("closed")


async def test_spoken_only_closes_the_model_stream_as_soon_as_the_reply_is_cut() -> None:
    sent: list[str] = []
    parts = ["Go. ", "Go. ", "Go on. ", "Yes. ", "More. ", "Even more. ", "And more. "]
    got = [p async for p in spoken_only(_deltas(parts, sent), SpokenLimits(max_sentences=2, max_chars=300))]
    assert "".join(got).strip() == "Go. Go."
    assert sent == ["Go. ", "Go. ", "closed"]  # the model was stopped, not drained


async def test_spoken_only_ends_a_reply_that_stopped_mid_sentence_cleanly() -> None:
    sent: list[str] = []
    got = [p async for p in spoken_only(_deltas(["It is ", "**sunny**"], sent))]
    assert "".join(got) == "It is sunny."
    assert sent[-1] == "closed"
    # Out of tokens after "and the": the voice does not end on a dangling word.
    assert speak("Paris is big and the").text == "Paris is big."


@pytest.mark.parametrize(
    ("piece", "ends"),
    [
        ("Here is the first part. ", True),
        ("Is it? ", True),
        ("Paris, ", False),
        ("It costs about 5 ", False),
        ("Ask Dr. ", False),
        ("The end.", False),  # no space yet: the filter has not decided it
    ],
)
def test_a_piece_says_whether_it_ends_a_sentence(piece: str, ends: bool) -> None:
    assert ends_sentence(piece) is ends


async def test_what_came_before_a_failure_is_still_said() -> None:
    async def cut() -> AsyncIterator[str]:
        yield "The Roman Republic"
        yield " began in 509 BC."
        raise RuntimeError("stream cut off")

    got: list[str] = []
    with pytest.raises(RuntimeError):
        async for piece in spoken_only(cut()):
            got.append(piece)
    assert "".join(got).startswith("The Roman Republic began in 509 ")  # "BC" is said "B C"
