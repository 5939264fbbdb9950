"""Sentence chunker: what TTS gets to speak, and when, for tricky replies."""

from __future__ import annotations

import random
import re

import pytest

from app.engine.chunking import ChunkerConfig, SentenceChunker, is_code_block


def chunk_whole(text: str, config: ChunkerConfig | None = None) -> list[str]:
    c = SentenceChunker(config)
    return c.push(text) + c.flush()


def chunk_chars(text: str, config: ChunkerConfig | None = None) -> list[str]:
    c = SentenceChunker(config)
    out: list[str] = []
    for ch in text:
        out += c.push(ch)
    return out + c.flush()


def chunk_random(text: str, seed: int, config: ChunkerConfig | None = None) -> list[str]:
    rng = random.Random(seed)
    c = SentenceChunker(config)
    out: list[str] = []
    i = 0
    while i < len(text):
        n = rng.randint(1, 12)
        out += c.push(text[i : i + n])
        i += n
    return out + c.flush()


CASES: list[tuple[str, str, list[str]]] = [
    (
        "short first sentence comes out alone, later short ones are merged",
        "Sure. It is 4:05 PM right now. Anything else?",
        ["Sure.", "It is 4:05 PM right now. Anything else?"],
    ),
    (
        "decimals and thousands",
        "Pi is about 3.14 and e is 2.718. The population is 1,000,000 people, roughly speaking.",
        ["Pi is about 3.14 and e is 2.718.", "The population is 1,000,000 people, roughly speaking."],
    ),
    (
        "times are not clause boundaries",
        "The train leaves at 4:05 and arrives at 6:30. Be on time, please, because it will not wait.",
        ["The train leaves at 4:05 and arrives at 6:30.", "Be on time, please, because it will not wait."],
    ),
    (
        "titles and Latin abbreviations",
        "Dr. Smith met Mrs. Jones. They spoke about cats vs. dogs, e.g. which is better, i.e. friendlier.",
        [
            "Dr. Smith met Mrs. Jones.",
            "They spoke about cats vs. dogs, e.g. which is better, i.e. friendlier.",
        ],
    ),
    (
        "etc. mid-sentence and at a sentence end",
        "Bring apples, pears, etc. to the party. We have cups, plates, etc. The music is sorted out.",
        ["Bring apples, pears, etc. to the party.", "We have cups, plates, etc. The music is sorted out."],
    ),
    (
        "U.S., St. and initials",
        "J. R. R. Tolkien lived in England. He never moved to the U.S. for work. St. Louis is far.",
        ["J. R. R. Tolkien lived in England.", "He never moved to the U.S. for work. St. Louis is far."],
    ),
    (
        "No. as a word and as an abbreviation",
        "No. That one is No. 5 on the list, and it is sold out.",
        ["No.", "That one is No. 5 on the list, and it is sold out."],
    ),
    (
        "the pronoun I ends a sentence",
        "So do I. Let us go.",
        ["So do I.", "Let us go."],
    ),
    (
        "URLs, e-mail addresses, file names and versions",
        "Visit example.com/path.html for details. Mail bob.smith@example.com today. v1.2.3 is out.",
        [
            "Visit example.com/path.html for details.",
            "Mail bob.smith@example.com today. v1.2.3 is out.",
        ],
    ),
    (
        "a URL at the end of a sentence",
        "The docs are at https://docs.example.org/a/b.html. Read them.",
        ["The docs are at https://docs.example.org/a/b.html.", "Read them."],
    ),
    (
        "ellipsis mid-sentence vs before a new sentence",
        "Well... I think so. Hmm... maybe not. Wait… What was that?",
        ["Well... I think so.", "Hmm... maybe not. Wait… What was that?"],
    ),
    (
        "question and exclamation marks, with quotes",
        'Really?! He said "stop." and left. Great! "Why?" she asked.',
        ["Really?!", 'He said "stop." and left. Great! "Why?" she asked.'],
    ),
    (
        "long first sentence is cut at its first clause",
        "The capital of France, which is also its largest city by far, is Paris. It has museums.",
        ["The capital of France,", "which is also its largest city by far, is Paris.", "It has museums."],
    ),
    (
        "a clause too short to stand alone is not cut off",
        "Yes, the meeting with the whole marketing team moved to Thursday afternoon at three.",
        ["Yes, the meeting with the whole marketing team moved to Thursday afternoon at three."],
    ),
    (
        "long first sentence cut at a dash",
        "The weather tomorrow looks great — sunny skies all day with a light breeze in the afternoon.",
        ["The weather tomorrow looks great —", "sunny skies all day with a light breeze in the afternoon."],
    ),
    (
        "only the first sentence is cut early",
        "Okay. The second sentence is rather long, but it is not cut at its comma because audio is playing.",
        [
            "Okay.",
            "The second sentence is rather long, but it is not cut at its comma because audio is playing.",
        ],
    ),
    (
        "numbered list",
        "Here is a list:\n1. Eggs\n2. Milk\n3. Bread\nThat's all.",
        ["Here is a list:", "1. Eggs", "2. Milk", "3. Bread", "That's all."],
    ),
    (
        "bulleted list with full sentences merges short items",
        "You need:\n- Flour.\n- Sugar.\n- Two eggs.\nMix well.",
        ["You need:", "- Flour.\n- Sugar.\n- Two eggs.\nMix well."],
    ),
    (
        "paragraphs",
        "First paragraph without a full stop\n\nSecond paragraph here",
        ["First paragraph without a full stop", "Second paragraph here"],
    ),
    (
        "markdown heading and emphasis",
        "# Weather\n**Today:** sunny and warm. *Tomorrow* rain.",
        ["# Weather", "**Today:** sunny and warm. *Tomorrow* rain."],
    ),
    (
        "code fence held until closed, periods inside ignored",
        "Run this:\n```python\nprint('a. b. c.')\n\nx = 1\n```\nDone. It works.",
        ["Run this:", "```python\nprint('a. b. c.')\n\nx = 1\n```", "Done. It works."],
    ),
    (
        "unclosed code fence comes out at the end",
        "Try:\n```\nls -la. Then more",
        ["Try:", "```\nls -la. Then more"],
    ),
    (
        "no punctuation at all: cut at a word boundary once long",
        "this text has no punctuation at all and it just keeps going on and on without any break "
        "whatsoever so the chunker must cut it somewhere",
        [
            "this text has no punctuation at all and it just keeps going on and on without any break whatsoever",
            "so the chunker must cut it somewhere",
        ],
    ),
    ("short text without punctuation comes out at flush", "hello there", ["hello there"]),
    ("empty reply", "", []),
    ("whitespace only", "  \n\n ", []),
    ("CJK terminals", "你好。今天天气很好！", ["你好。", "今天天气很好！"]),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_chunks(text: str, expected: list[str]) -> None:
    assert chunk_whole(text) == expected


@pytest.mark.parametrize("text", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_same_chunks_however_the_text_is_streamed(text: str) -> None:
    expected = chunk_whole(text)
    assert chunk_chars(text) == expected
    for seed in range(5):
        assert chunk_random(text, seed) == expected


def test_a_period_waits_for_the_next_character() -> None:
    c = SentenceChunker()
    assert c.push("It costs 3.") == []
    assert c.push("14") == []
    assert c.push(" dollars. ") == []  # "dollars." could still be an abbreviation
    assert c.push("Next") == ["It costs 3.14 dollars."]
    assert c.flush() == ["Next"]


def test_question_mark_needs_no_look_ahead() -> None:
    c = SentenceChunker()
    assert c.push("Ready? ") == ["Ready?"]


def test_first_chunk_arrives_before_the_reply_ends() -> None:
    """The point of the chunker: audio can start while the LLM is still talking."""
    c = SentenceChunker()
    text = "Paris is the capital of France, and it is famous for the Eiffel Tower and its food"
    out: list[str] = []
    for ch in text:
        out += c.push(ch)
        if out:
            break
    assert out == ["Paris is the capital of France,"]


def test_no_punctuation_is_never_starved() -> None:
    words = " ".join(f"word{i}" for i in range(200))
    c = SentenceChunker()
    out = c.push(words)
    assert len(out) >= 5  # emitted while streaming, not only at flush
    assert all(len(x) <= 200 for x in out)
    assert re.sub(r"\s", "", "".join(out + c.flush())) == re.sub(r"\s", "", words)


def test_one_huge_token_is_not_split() -> None:
    url = "https://example.com/" + "a" * 300 + ".html"
    chunks = chunk_whole(f"See {url} now")
    assert any(url in c for c in chunks), chunks


def test_code_blocks_are_marked() -> None:
    chunks = chunk_whole("Here:\n```sh\necho hi\n```\nBye.")
    assert [is_code_block(c) for c in chunks] == [False, True, False]


def test_reset_forgets_an_interrupted_reply() -> None:
    c = SentenceChunker()
    c.push("This reply was interrupted in the mid")
    c.reset()
    assert c.push("New reply. ") == []
    assert c.flush() == ["New reply."]


def test_flush_makes_the_chunker_ready_for_the_next_reply() -> None:
    c = SentenceChunker()
    assert c.push("One. Two. Three") == ["One."]
    assert c.flush() == ["Two. Three"]
    # The next reply's first sentence is again emitted alone, without merging.
    assert c.push("Hi. There") == ["Hi."]


def test_merging_never_exceeds_max_chars() -> None:
    cfg = ChunkerConfig(merge_below_chars=40, max_chars=50)
    text = "First. " + " ".join(f"Sentence {i} is short." for i in range(20))
    chunks = chunk_whole(text, cfg)
    assert chunks[0] == "First."
    assert all(len(c) <= 50 for c in chunks)
    assert all(len(c) >= 40 for c in chunks[1:-1])


FRAGMENTS = [
    "Dr. Smith", " said", " 3.14", " is pi.", " Mr. and Mrs. Jones", " arrived at 4:05 p.m.", " Then",
    " 1,000 people", " came!", " Really?", " See example.com/a.html", " or v1.2.3.", "\n\n", "\n- item",
    "\n1. First", "\n```py\nx = 1.5\n```\n", " Well...", " maybe", " — or not", ", e.g. this", "; that",
    " U.S. troops", " J. R. R. Tolkien", " no punctuation here at all for quite a while longer",
    " etc.", " Etc.", "…", " I", " 你好。", " (quoted.)", ' "Hi."', "  ", "\t", " word",
]  # fmt: skip


@pytest.mark.parametrize("seed", range(40))
def test_property_nothing_lost_and_stream_independent(seed: int) -> None:
    rng = random.Random(seed)
    text = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 60)))
    chunks = chunk_random(text, seed)
    assert re.sub(r"\s", "", "".join(chunks)) == re.sub(r"\s", "", text)
    assert all(c and c == c.strip() for c in chunks)
    assert chunks == chunk_whole(text)
    # A code fence is never split across chunks.
    for c in chunks:
        assert c.count("```") % 2 == 0 or c is chunks[-1]


def test_a_sentence_end_the_caller_vouches_for_is_cut_without_waiting() -> None:
    # The spoken-reply filter hands over "…part. " and holds "And": the model may think
    # for seconds before its next token, and the first sentence must not wait for it.
    c = SentenceChunker()
    assert c.push("Here is the first part. ") == []
    assert c.end_sentence() == ["Here is the first part."]
    assert c.push("And the rest.") == []
    assert c.flush() == ["And the rest."]


def test_end_sentence_leaves_an_unfinished_sentence_alone() -> None:
    c = SentenceChunker()
    c.push("The answer is")
    assert c.end_sentence() == []
    c.push(" 42.")
    assert c.flush() == ["The answer is 42."]


def test_end_sentence_never_cuts_inside_a_code_block() -> None:
    c = SentenceChunker()
    c.push("```\nprint('a.') ")
    assert c.end_sentence() == []
