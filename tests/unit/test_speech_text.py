"""What the voice would say: markdown, code, links and emoji never reach it as symbols."""

from __future__ import annotations

import pytest

from app.engine.speech_text import SpeechTextCleaner, clean_for_speech, split_for_speech

CASES: list[tuple[str, str, str]] = [
    # (case id, assistant text, what the voice is given)
    ("plain", "The meeting is at noon.", "The meeting is at noon."),
    ("heading", "# Weather today\nSunny and warm.", "Weather today. Sunny and warm."),
    ("setext heading", "Summary\n=======\nAll good.", "Summary. All good."),
    ("bold and italics", "This is **very** *important* and __also__ _this_.", "This is very important and also this."),
    ("nested emphasis", "***Really*** ~~not~~ sure.", "Really not sure."),
    ("link keeps its text", "Read [the guide](https://example.com/guide) first.", "Read the guide first."),
    ("image keeps alt text", "![A cat](cat.png) sat here.", "A cat sat here."),
    ("bare url says domain", "See https://www.python.org/downloads/ for more.", "See python.org for more."),
    ("url at sentence end keeps stop", "Docs: https://docs.python.org/3/.", "Docs: docs.python.org."),
    ("autolink", "Visit <https://example.org/a?b=1> today.", "Visit example.org today."),
    ("bullet list becomes sentences", "You need:\n- flour\n- two eggs\n* milk", "You need: flour. two eggs. milk."),
    ("numbered list", "1. Open Settings\n2. Pick a voice!", "Open Settings. Pick a voice!"),
    ("task list", "- [x] done\n- [ ] todo", "done. todo."),
    (
        "table rows become sentences",
        "| City | Temp |\n|------|-----:|\n| Oslo | 3 |\n| Rome | 18 |",
        "City, Temp. Oslo, 3. Rome, 18.",
    ),
    (
        "code fence omitted",
        "Run this:\n```bash\nrm -rf build/\n```\nThen restart.",
        "Run this: (code omitted). Then restart.",
    ),
    ("inline code keeps words", "Type `voxdesk doctor` to check.", "Type voxdesk doctor to check."),
    ("blockquote", "> Be kind.\nAlways.", "Be kind. Always."),
    ("horizontal rule", "One.\n\n---\n\nTwo.", "One. Two."),
    ("html tags", "Line<br>break <b>bold</b>.", "Line break bold."),
    ("emoji removed", "Great job! 🎉🎉 Well done 👍🏽", "Great job! Well done"),
    ("flags and zwj sequences", "Family 👨‍👩‍👧 from 🇺🇸 ok.", "Family from ok."),
    ("keycap keeps digit", "Step 1️⃣ first.", "Step 1 first."),
    (
        "decimals and abbreviations kept",
        "Pi is 3.14, e.g. roughly. Dr. Lee paid $5.99 at 4:05 PM.",
        "Pi is 3.14, e.g. roughly. Dr. Lee paid $5.99 at 4:05 PM.",
    ),
    ("percent and degrees kept", "It is 25°C with 40% rain.", "It is 25°C with 40% rain."),
    (
        "arithmetic symbols read as words",
        "17 * 23 = 391 and 10 ÷ 2 = 5, 9 - 4 = 5.",
        "17 times 23 = 391 and 10 divided by 2 = 5, 9 minus 4 = 5.",
    ),
    ("ranges and hyphens kept", "Open 9-5, well-known.", "Open 9-5, well-known."),
    ("dashes and arrows", "Fast — really -> done", "Fast, really to done"),
    ("stray symbols", "Item #3 ~ {x} | y \\ z", "Item 3 x y z"),
    ("snake case spoken as words", "Set max_tokens now.", "Set max tokens now."),
    ("whitespace normalised", "  lots   of\tspace\n\n\nand   lines  ", "lots of space. and lines."),
    ("soft line break joins sentence", "this sentence\ncontinues here.", "this sentence continues here."),
]


@pytest.mark.parametrize(("text", "spoken"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_clean_for_speech(text: str, spoken: str) -> None:
    assert clean_for_speech(text) == spoken


@pytest.mark.parametrize(
    "text",
    ["", "   \n\t ", "🎉🎉👍", "🇺🇸 ❤️", "```\nprint(1)\n```", "---", "**  **", "| | |"],
    ids=["empty", "whitespace", "emoji only", "flag and heart", "code only", "rule only", "empty bold", "empty table"],
)
def test_nothing_to_say_gives_empty_string(text: str) -> None:
    assert clean_for_speech(text, code="skip") == ""


def test_code_only_announces_omission_by_default() -> None:
    assert clean_for_speech("```py\nx = 1\n```") == "(code omitted)."


@pytest.mark.parametrize(
    ("urls", "spoken"),
    [("domain", "Go to example.com now."), ("a link", "Go to a link now.")],
)
def test_url_style(urls: str, spoken: str) -> None:
    assert clean_for_speech("Go to https://example.com/x/y now.", urls=urls) == spoken  # type: ignore[arg-type]


def test_streamed_chunks_remember_an_open_code_fence() -> None:
    cleaner = SpeechTextCleaner()
    spoken = [
        cleaner.feed("Here is the script:\n```python"),
        cleaner.feed("import os\nprint(os.getcwd())"),
        cleaner.feed("```\nIt prints the folder."),
    ]
    assert spoken == ["Here is the script: (code omitted).", "", "It prints the folder."]


def test_unclosed_fence_in_one_text_drops_the_rest() -> None:
    assert clean_for_speech("Try:\n```\nwhile True: pass", code="skip") == "Try:"


SPLITS: list[tuple[str, str, list[str]]] = [
    ("sentences", "It is late. Go to bed! Why? Because.", ["It is late.", "Go to bed!", "Why?", "Because."]),
    (
        "abbreviations do not split",
        "Dr. Smith met Mr. Jones, e.g. at 3.5 p.m. on Jan. 4.",
        ["Dr. Smith met Mr. Jones, e.g. at 3.5 p.m. on Jan. 4."],
    ),
    ("decimals do not split", "It costs 3.50 today. Tomorrow 4.", ["It costs 3.50 today.", "Tomorrow 4."]),
    ("empty", "   ", []),
]


@pytest.mark.parametrize(("text", "pieces"), [c[1:] for c in SPLITS], ids=[c[0] for c in SPLITS])
def test_split_for_speech(text: str, pieces: list[str]) -> None:
    assert split_for_speech(text) == pieces


def test_long_sentence_is_broken_at_clauses_then_words() -> None:
    clause = "and then the river kept on flowing past the old mill"
    text = ", ".join([clause] * 20) + "."
    pieces = split_for_speech(text, max_chars=120, first_max_chars=60)
    assert len(pieces[0]) <= 60
    assert all(len(p) <= 120 for p in pieces)
    assert " ".join(pieces).split() == text.split()  # nothing lost, nothing reordered


def test_first_piece_ends_at_a_clause_not_between_words() -> None:
    text = "Tomorrow will be sunny in the morning, with clouds later in the afternoon and a light wind."
    assert split_for_speech(text, first_max_chars=40) == [
        "Tomorrow will be sunny in the morning,",
        "with clouds later in the afternoon and a light wind.",
    ]
    no_commas = "one two three four five six seven eight nine ten eleven twelve"
    assert split_for_speech(no_commas, first_max_chars=20) == [no_commas]


def test_word_longer_than_limit_is_cut_not_lost() -> None:
    word = "x" * 250
    pieces = split_for_speech(word, max_chars=100)
    assert all(len(p) <= 100 for p in pieces)
    assert "".join(pieces) == word
