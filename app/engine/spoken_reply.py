"""What of a streamed LLM reply is said aloud: plain speech, cut when it loops or runs long.

Why here and not only in the voice: the voice cleans each sentence it reads, but
the reply the user sees, the history and the next turn's context should hold what
was *spoken*, and a model that loops or rambles must be stopped (its generation
too, which frees the CPU) rather than read out for a minute.

`SpokenReply` takes the model's deltas and gives back spoken text in clause-sized
pieces:
- markdown, code, emoji and URLs go (`speech_text.SpeechTextCleaner`), list items
  and headings become sentences, numbers, units and abbreviations are written as
  said (`spoken_words.say_naturally`);
- text is held only until it can be cleaned safely: up to a clause or sentence end,
  a line end, or a word boundary in a long run; never inside `**bold**`, `code` or
  a [link](...);
- a repeated sentence, or a phrase repeated back to back, ends the reply (the
  first time it was said is kept);
- the reply ends after `max_sentences` sentences, or at the first sentence end
  past `max_chars` characters (a run-on sentence is cut `_OVERRUN_CHARS` later, at
  a word, ended with a full stop).
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Literal

from app.engine.speech_text import CODE_OMITTED, SpeechTextCleaner, end_sentence, is_block_line
from app.engine.spoken_words import say_naturally

StopReason = Literal["length", "repetition"]


@dataclass(frozen=True, slots=True)
class SpokenLimits:
    """How much of one reply is spoken. Candidates for ConversationSettings."""

    max_sentences: int
    #: Past this the sentence being said is the last one.
    max_chars: int


#: An ordinary answer: the prompt asks for one or two sentences; one more is let through.
BRIEF = SpokenLimits(max_sentences=3, max_chars=320)
#: "Tell me more", "go on": a longer answer, still bounded.
DETAILED = SpokenLimits(max_sentences=8, max_chars=900)

#: What is said where a code block was.
CODE_SAID = "I've left out some code here."

#: Phrases repeated back to back this many times (and covering this many words) are a loop.
_LOOP_REPEATS = 3
_LOOP_MIN_WORDS = 8
_LOOP_MAX_PERIOD = 12
#: A repeated sentence shorter than this ("Yes.") is not taken for a loop.
_MIN_REPEATED_SENTENCE_WORDS = 3
#: A run without a clause end is cut at a word boundary after this many characters
#: (below the sentence chunker's first cut, so the first audio is never held back).
_LONG_RUN_CHARS = 80
#: How far a sentence that started before `max_chars` may run on before it is cut.
_OVERRUN_CHARS = 160
#: Past this, unbalanced markdown (a `*` that never closes) is cut through anyway.
_HARD_RUN_CHARS = 400

_CLAUSE_PUNCT = frozenset(".!?,;:")
_CLOSERS = "\"')]}»”’"
_NOT_SENTENCE_END = frozenset({"mr", "mrs", "ms", "dr", "prof", "st", "mt", "jr", "sr", "vs", "no", "approx", "ca"})
#: Words a cut-short sentence should not end on.
_DANGLING = frozenset(
    {
        "and", "or", "but", "so", "then", "because", "the", "a", "an", "of", "to", "in", "with", "for",
        "is", "are", "that", "which", "who", "if", "as", "at", "on", "by", "from",
        "your", "my", "our", "their", "its", "this", "these", "such",
    }
)  # fmt: skip
_WORD = re.compile(r"\S+")
_BULLET = re.compile(r"^\s*[*+-]\s+")
_PENDING_FENCE = re.compile(r"^\s*`{1,2}$")


def _balanced(line: str) -> bool:
    """No inline markdown left open on this line (a cut inside it would read its symbols)."""
    line = _BULLET.sub("", line)
    stars = line.count("*") - 2 * line.count("**")
    return (
        line.count("`") % 2 == 0
        and line.count("**") % 2 == 0
        and stars % 2 == 0
        and line.count("__") % 2 == 0
        and line.count("[") <= line.count("]")
        and line.count("](") <= line.count(")")
    )


def _safe_cut(buf: str) -> int:
    """Index up to which `buf` can be cleaned now (0: hold it all)."""
    line_start = buf.rfind("\n") + 1
    line = buf[line_start:]
    if _PENDING_FENCE.match(line):  # maybe the start of a ``` fence
        return line_start
    best = 0
    for i in range(len(line) - 1, 0, -1):
        if line[i].isspace() and line[i - 1] in _CLAUSE_PUNCT and not _abbreviation_before(line, i):
            best = i + 1
            break
    if not best and len(line) > _LONG_RUN_CHARS:
        best = next((i + 1 for i in range(len(line) - 1, 0, -1) if line[i] == " " and not line[i - 1].isdigit()), 0)
    if best and (_balanced(line[:best]) or len(line) > _HARD_RUN_CHARS):
        return line_start + best
    return line_start


def _abbreviation_before(line: str, i: int) -> bool:
    """The word before `line[i]` is an abbreviation ("Dr.", "No.", "e.g."): what follows
    belongs with it ("No. 5", "Mt. Fuji"), so it is no place to cut."""
    word = line[line.rfind(" ", 0, i) + 1 : i]
    if not word.endswith("."):
        return False
    stem = word[:-1].lower()
    return stem in _NOT_SENTENCE_END or stem in ("e.g", "i.e", "c") or (len(stem) == 1 and stem.isalpha())


def _drop_dangling(text: str) -> str:
    """A sentence cut short should not end on "and" or "the": drop such words at its end."""
    words = text.rstrip(",;:-–— ").split(" ")
    while len(words) > 1 and _norm(words[-1]) in _DANGLING:
        words.pop()
    return " ".join(words).rstrip(",;:-–— ")


def _norm(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum())


def _ends_sentence(word: str) -> bool:
    bare = word.rstrip(_CLOSERS)
    if not bare or bare[-1] not in ".!?":
        return False
    stem = bare.rstrip(".!?")
    abbreviation = _norm(stem) in _NOT_SENTENCE_END or (len(stem) == 1 and stem.isalpha())
    return not (bare.endswith(".") and abbreviation)


def ends_sentence(piece: str) -> bool:
    """A piece from `spoken_only` that ends a whole sentence ("…part. "): pieces are cut
    only at clause ends, never after an abbreviation, so what follows starts anew."""
    words = piece.split()
    return piece[-1:].isspace() and bool(words) and _ends_sentence(words[-1])


class SpokenReply:
    """Feed the model's deltas with `push`, end with `flush`; both return text to speak.

    One instance per reply. `stopped` says why it ended early; after that everything
    pushed is ignored and the caller should stop the model.
    """

    def __init__(self, limits: SpokenLimits = BRIEF) -> None:
        self.limits = limits
        self.stopped: StopReason | None = None
        self.sentences = 0
        self._cleaner = SpeechTextCleaner(code="omit", urls="domain")
        self._pending = ""
        self._at_line_start = True
        self._said: list[str] = []
        self._chars = 0
        self._words: list[str] = []
        self._sentence: list[str] = []  # normalised words of the sentence being said
        self._seen: set[tuple[str, ...]] = set()

    @property
    def text(self) -> str:
        """Everything said so far."""
        return "".join(self._said).strip()

    def push(self, delta: str) -> str:
        if self.stopped is not None:
            return ""
        self._pending += delta
        cut = _safe_cut(self._pending)
        if not cut:
            return ""
        segment, self._pending = self._pending[:cut], self._pending[cut:]
        return self._say(segment)

    def flush(self) -> str:
        """The end of the reply: say what is left."""
        if self.stopped is not None:
            return ""
        segment, self._pending = self._pending, ""
        tail = self._say(segment).rstrip()
        if tail and self.stopped is None and not _ends_sentence(tail.split()[-1]):
            # The model ran out of tokens mid-sentence (or left off the stop): end it cleanly.
            ended = end_sentence(_drop_dangling(tail))
            self._said[-1] = ended
            return ended
        return tail

    # -- internals -----------------------------------------------------------
    def _clean(self, segment: str) -> str:
        """Markdown → words for one segment; a heading or list item ends a sentence."""
        raw = segment
        if not self._at_line_start:
            # The rest of a line cut at a clause: "- " or "1. " here is not a list item.
            raw = ", " + raw if is_block_line(raw.split("\n", 1)[0]) else raw
        self._at_line_start = segment.endswith("\n")
        cleaned = self._cleaner.feed(raw).replace(f"{CODE_OMITTED}.", CODE_SAID).replace(CODE_OMITTED, CODE_SAID)
        if not cleaned:
            return ""
        last_line = next((ln for ln in reversed(segment.splitlines()) if ln.strip()), "")
        if segment.endswith("\n") and is_block_line(last_line):
            cleaned = end_sentence(cleaned)
        return say_naturally(cleaned)

    def _say(self, segment: str) -> str:
        spoken = self._clean(segment)
        if not spoken:
            return ""
        keep = len(spoken)
        segment_start = len(self._words)
        sentence_start = 0  # where in `spoken` the current sentence began
        for m in _WORD.finditer(spoken):
            word = m.group(0)
            if self._chars + m.end() > self.limits.max_chars + _OVERRUN_CHARS:
                self.stopped, keep = "length", m.start()
                break
            self._words.append(_norm(word))
            self._sentence.append(_norm(word))
            loop_from = self._loop_start()
            if loop_from is not None:
                self.stopped = "repetition"
                keep = self._word_end(spoken, max(0, loop_from - segment_start))
                break
            if not _ends_sentence(word):
                continue
            sentence = tuple(w for w in self._sentence if w)
            self._sentence = []
            if len(sentence) >= _MIN_REPEATED_SENTENCE_WORDS and sentence in self._seen:
                self.stopped, keep = "repetition", sentence_start
                break
            self._seen.add(sentence)
            self.sentences += 1
            sentence_start = m.end()
            if self.sentences >= self.limits.max_sentences or self._chars + m.end() >= self.limits.max_chars:
                self.stopped, keep = "length", m.end()
                break
        out = spoken[:keep].rstrip()
        if self.stopped is not None and out and not _ends_sentence(out.split()[-1]):
            out = end_sentence(_drop_dangling(out))
        elif self.stopped is None:
            out += " "
        if not out.strip():
            return ""
        self._said.append(out)
        self._chars += len(out)
        return out

    def _loop_start(self) -> int | None:
        """Index of the first repeated word when the newest words repeat a phrase back to back."""
        words = self._words
        for period in range(1, _LOOP_MAX_PERIOD + 1):
            repeats = 1
            while (repeats + 1) * period <= len(words) and words[-period:] == words[
                len(words) - (repeats + 1) * period : len(words) - repeats * period
            ]:
                repeats += 1
            if repeats >= _LOOP_REPEATS and repeats * period >= _LOOP_MIN_WORDS:
                return len(words) - (repeats - 1) * period
        return None

    @staticmethod
    def _word_end(spoken: str, words: int) -> int:
        """Character index in `spoken` just after its first `words` words."""
        if words <= 0:
            return 0
        ends = [m.end() for m in _WORD.finditer(spoken)]
        return ends[min(words, len(ends)) - 1]


async def spoken_only(deltas: AsyncIterator[str], limits: SpokenLimits = BRIEF) -> AsyncIterator[str]:
    """The spoken pieces of a streamed reply; stops (and closes) the model's stream
    as soon as the reply is cut, so the model stops generating too."""
    reply = SpokenReply(limits)
    try:
        try:
            async for delta in deltas:
                out = reply.push(delta)
                if out:
                    yield out
                if reply.stopped is not None:
                    return
        except Exception:
            # The model failed mid-reply (a cut stream): what it did send is part of the
            # reply, said and kept, before the error is told.
            tail = reply.flush()
            if tail:
                yield tail
            raise
        tail = reply.flush()
        if tail:
            yield tail
    finally:
        if isinstance(deltas, AsyncGenerator):
            await deltas.aclose()
