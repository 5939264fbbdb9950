"""Sentence chunker: turns a streamed LLM reply into pieces TTS can speak early.

Why it exists: TTS needs whole phrases to sound natural, but waiting for the whole
reply would add the full generation time to the voice-to-voice latency. The chunker
emits each sentence as soon as it is provably complete, and cuts a long *first*
sentence at a clause boundary so the first audio starts sooner. Later sentences
are allowed to be longer (short ones are merged) because by then audio is already
playing and fewer TTS calls sound smoother.

Guarantees the engine relies on:
- the chunks depend only on the text, never on how it was split into deltas: text
  is processed one character at a time internally, so `push("3.")` followed by
  `push("14")` is the same as `push("3.14")`;
- nothing is lost or reordered: the chunks joined together equal the input, apart
  from whitespace at the cut points;
- no cut inside numbers (3.14, 1,000, 4:05), abbreviations (Dr., e.g., U.S.),
  initials (J. R. R.), URLs, e-mail addresses, file names or versions (v1.2.3);
- a fenced code block (```) is held until it closes and comes out as one chunk
  (see `is_code_block`), so the engine can decide not to read code aloud.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Characters that end a sentence when followed by whitespace.
_TERMINALS = frozenset(".!?…")
#: Full-width terminals (CJK) end a sentence on their own: no space follows them.
_WIDE_TERMINALS = frozenset("。！？")
#: Closing quotes/brackets/emphasis that belong to the sentence they follow.
_CLOSERS = frozenset("\"'”’)]}*_`»")
#: Where a long first sentence may be cut (the character ends the clause).
_CLAUSE_ENDS = frozenset(",;:—–")  # comma, semicolon, colon, em and en dash

#: Abbreviations after which a period never ends a sentence.
_NEVER_END = frozenset(
    {
        "mr", "mrs", "ms", "mx", "dr", "prof", "sr", "jr", "st", "mt", "ft", "rev", "hon",
        "gen", "col", "capt", "lt", "sgt", "gov", "sen", "rep", "pres", "messrs",
        "e.g", "i.e", "vs", "cf", "approx", "ca", "dept", "est", "incl", "resp",
        "u.s", "u.k", "u.n", "u.s.a", "e.u", "a.k.a", "ph.d", "b.sc", "m.sc",
        "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
        "mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun",
    }
)  # fmt: skip
#: Abbreviations that often *do* end a sentence: they end it when a capital follows.
_END_IF_CAPITAL = frozenset({"etc", "a.m", "p.m", "inc", "ltd", "co", "corp", "llc", "al"})
#: Abbreviations that are a word on their own unless a number follows ("No. 5" vs "No. I can't").
_END_UNLESS_DIGIT = frozenset({"no", "nos", "fig", "figs", "vol", "p", "pp", "ch", "sec", "art", "op", "nr"})

_DOTTED_ABBREVIATION = re.compile(r"(?:[a-z]\.)+[a-z]")
_LIST_NUMBER = re.compile(r"\d{1,3}|[a-zA-Z]")
_TOKEN_LEAD = "\"'“‘([{*_«"


def is_code_block(chunk: str) -> bool:
    """True for a chunk that is a fenced code block (the engine may skip speaking it)."""
    return chunk.lstrip().startswith("```")


@dataclass(frozen=True, slots=True)
class ChunkerConfig:
    """Tuning knobs; the defaults suit a ~20 token/s LLM feeding a local TTS."""

    #: A first sentence longer than this (chars or words) is cut at a clause boundary.
    first_clause_chars: int = 60
    first_clause_words: int = 10
    #: A clause shorter than this is never cut off on its own ("Yes," "Well,").
    min_clause_chars: int = 15
    #: The first chunk without any usable boundary is cut at a word boundary here.
    first_max_chars: int = 100
    #: After the first chunk, sentences shorter than this are merged with the next one.
    merge_below_chars: int = 40
    #: No chunk after the first grows past this: merging stops, unpunctuated text is cut.
    max_chars: int = 200


class SentenceChunker:
    """Feed LLM deltas with `push`, end the reply with `flush`; both return ready chunks.

    One instance serves one reply at a time; `flush` (or `reset` after a barge-in)
    makes it ready for the next. Not thread-safe: use it from the task that reads the
    LLM stream.
    """

    def __init__(self, config: ChunkerConfig | None = None) -> None:
        self.config = config or ChunkerConfig()
        self.reset()

    def reset(self) -> None:
        """Forget everything (e.g. the reply was interrupted)."""
        self._buf = ""  # text of the current, undecided piece
        self._held = ""  # complete short sentences waiting to be merged with the next
        self._emitted = 0  # chunks emitted for this reply
        self._at_line_start = True  # `_buf` begins at the start of a line
        self._in_fence = False
        self._fence_start = 0  # index in `_buf` where the open fence's line starts
        self._out: list[str] = []

    # ------------------------------------------------------------------ public API

    def push(self, delta: str) -> list[str]:
        """Add streamed text; return the chunks that became complete."""
        for ch in delta:
            self._feed(ch)
        return self._take()

    def end_sentence(self) -> list[str]:
        """The caller knows the text so far ends a sentence (the spoken-reply filter has
        ruled out abbreviations and numbers): decide it now rather than wait for the next
        word's first character, which a slow model may be seconds away from. Returns the
        chunks that became complete."""
        if not self._in_fence and _ends_sentence(self._buf.strip()):
            piece, self._buf = self._buf, ""
            self._at_line_start = piece.endswith("\n")
            self._complete(piece)
        return self._take()

    def flush(self) -> list[str]:
        """End of the reply: return everything left, then reset for the next reply."""
        if self._buf:
            self._complete(self._buf, code=self._in_fence)
            self._buf = ""
        if self._held.strip():
            self._emit(self._held)
        out = self._take()
        self.reset()
        return out

    # ------------------------------------------------------------------ internals

    def _take(self) -> list[str]:
        out, self._out = self._out, []
        return out

    def _feed(self, ch: str) -> None:
        self._buf += ch
        if self._in_fence:
            if ch == "\n" and self._closes_fence():
                self._complete(self._buf, code=True)
                self._buf = ""
                self._in_fence = False
                self._at_line_start = True
            return
        if ch == "`" and self._opens_fence():
            return
        # A decision can only change when whitespace arrives (a boundary completes),
        # when the first character after whitespace arrives (the look-ahead a period
        # needs), after a wide terminal, or when the piece grows past a length limit.
        prev = self._buf[-2] if len(self._buf) >= 2 else ""
        if ch.isspace() or prev.isspace() or prev in _WIDE_TERMINALS or len(self._buf) > self._limit_floor():
            self._cut_all()

    def _limit_floor(self) -> int:
        cfg = self.config
        if self._emitted == 0 and not self._held:
            return min(cfg.first_clause_chars, cfg.first_max_chars)
        return cfg.max_chars

    def _cut_all(self) -> None:
        while self._buf:
            end = self._sentence_end(self._buf)
            if end is None:
                end = self._forced_cut(self._buf)
            if end is None:
                return
            piece, self._buf = self._buf[:end], self._buf[end:]
            self._at_line_start = piece.endswith("\n")
            self._complete(piece)

    # --- fences

    def _opens_fence(self) -> bool:
        """On a third backtick at a line start: cut the text before it, hold the fence."""
        line_start = self._buf.rfind("\n") + 1
        if line_start == 0 and not self._at_line_start:
            return False
        if self._buf[line_start:].lstrip(" \t") != "```":
            return False
        before, self._buf = self._buf[:line_start], self._buf[line_start:]
        if before.strip():
            self._complete(before)
        self._in_fence = True
        return True

    def _closes_fence(self) -> bool:
        body = self._buf[:-1]
        line_start = body.rfind("\n") + 1
        return line_start > 0 and body[line_start:].strip().startswith("```")

    # --- boundaries

    def _sentence_end(self, buf: str) -> int | None:
        """Index just after the first sentence that is certainly complete, else None."""
        n = len(buf)
        i = 0
        while i < n:
            ch = buf[i]
            if ch == "\n":
                return i + 1
            if ch in _WIDE_TERMINALS:
                return _wide_end(buf, i)
            if ch not in _TERMINALS:
                i += 1
                continue
            j = i
            while j < n and buf[j] in _TERMINALS:
                j += 1
            k = j
            while k < n and buf[k] in _CLOSERS:
                k += 1
            if k == n:
                return None  # "3." might become "3.14": wait for the next character
            if not buf[k].isspace():
                i = k  # 3.14, example.com, v1.2.3, "?)x" — not an end
                continue
            m = k
            while m < n and buf[m].isspace():
                m += 1
            if "\n" in buf[k:m]:
                return k
            run = buf[i:j]
            if "!" in run or "?" in run:
                return k
            if m == n:
                return None  # need the first character of the next word
            if self._period_ends_sentence(buf, i, run, m):
                return k
            i = m
        return None

    def _period_ends_sentence(self, buf: str, dot: int, run: str, m: int) -> bool:
        nxt = buf[m]
        if nxt.islower():
            return False  # "e.g. this", "Well... maybe", unknown abbreviations
        if len(run) > 1 or "…" in run:
            # An ellipsis followed by a capital starts a new sentence — except "I",
            # which is capitalised mid-sentence too ("Well... I think so").
            return not (nxt == "I" and buf[m + 1 : m + 2] in ("", " ", "'", "’"))
        start = dot
        while start > 0 and not buf[start - 1].isspace():
            start -= 1
        token = buf[start:dot].lstrip(_TOKEN_LEAD)
        low = token.lower()
        if low in _NEVER_END:
            return False
        if low in _END_IF_CAPITAL:
            return nxt.isupper()
        if low in _END_UNLESS_DIGIT:
            return not nxt.isdigit()
        if len(token) == 1 and token.isupper() and token != "I":
            return False  # an initial: "J. R. R. Tolkien", "John F. Kennedy"
        if _DOTTED_ABBREVIATION.fullmatch(low):
            return False  # "U.S.A.", "Ph.D." and the like
        line_start = buf.rfind("\n", 0, start) + 1
        return not (
            _LIST_NUMBER.fullmatch(token)
            and not buf[line_start:start].strip()
            and (line_start > 0 or self._at_line_start)
        )  # "1. Eggs" is a list marker, not a sentence

    def _forced_cut(self, buf: str) -> int | None:
        """Cut a long first sentence at a clause, or any overlong text at a word boundary."""
        cfg = self.config
        first = self._emitted == 0 and not self._held
        text = buf.strip()
        if first and (len(text) > cfg.first_clause_chars or len(text.split()) > cfg.first_clause_words):
            cut = self._first_clause_end(buf)
            if cut is not None:
                return cut
        limit = cfg.first_max_chars if first else cfg.max_chars
        if len(buf) <= limit:
            return None
        if not first:
            cut = self._last_clause_end(buf, limit)
            if cut is not None:
                return cut
        return self._last_word_end(buf, limit)

    def _clause_ends(self, buf: str, limit: int) -> list[int]:
        """Cut positions after a clause mark that is followed by whitespace, up to `limit`."""
        ends = []
        for i in range(min(len(buf), limit + 1) - 1):
            ch = buf[i]
            is_mark = ch in _CLAUSE_ENDS or (ch == "-" and i > 0 and buf[i - 1] == " ")
            # Dashes may touch the next word; the others need a space ("1,000", "4:05").
            if not is_mark or not (buf[i + 1].isspace() or ch in "—–"):
                continue
            if len(buf[: i + 1].strip()) >= self.config.min_clause_chars:
                ends.append(i + 1)
        return ends

    def _first_clause_end(self, buf: str) -> int | None:
        ends = self._clause_ends(buf, len(buf))
        # A clause end is only usable once something follows it, so the cut never
        # lands on the dash of "word—" while "—" could still be one of several.
        ends = [e for e in ends if e < len(buf) and buf[e:].strip()]
        return ends[0] if ends else None

    def _last_clause_end(self, buf: str, limit: int) -> int | None:
        ends = [e for e in self._clause_ends(buf, limit) if buf[e:].strip()]
        return ends[-1] if ends else None

    @staticmethod
    def _last_word_end(buf: str, limit: int) -> int | None:
        """Just after the last whitespace before `limit` that has a word after it."""
        for i in range(min(limit, len(buf) - 1), 0, -1):
            if buf[i].isspace() and not buf[i - 1].isspace() and not buf[i + 1 :].isspace():
                return i + 1
        return None  # one enormous token (a URL): never split it

    # --- emitting

    def _complete(self, piece: str, *, code: bool = False) -> None:
        """A piece is decided: emit it now or hold it to merge with the next one."""
        if not piece.strip():
            if self._held:
                self._held += piece
            return
        if code:
            if self._held.strip():
                self._emit(self._held)
            self._held = ""
            self._emit(piece)
            return
        if self._emitted == 0 and not self._held:
            self._emit(piece)  # the first chunk is never held back
            return
        combined = self._held + piece
        if self._held and len(combined.strip()) > self.config.max_chars:
            self._emit(self._held)
            self._held = ""
            combined = piece
        text = combined.strip()
        if len(text) < self.config.merge_below_chars and _ends_sentence(text):
            self._held = combined
        else:
            self._held = ""
            self._emit(combined)

    def _emit(self, piece: str) -> None:
        text = piece.strip()
        if text:
            self._out.append(text)
            self._emitted += 1


def _ends_sentence(text: str) -> bool:
    """Only punctuated sentences are merged; a list item or heading keeps its own chunk."""
    stripped = text.rstrip("".join(_CLOSERS))
    return bool(stripped) and (stripped[-1] in _TERMINALS or stripped[-1] in _WIDE_TERMINALS)


def _wide_end(buf: str, i: int) -> int | None:
    """After a full-width terminal (。！？) and what closes it; None until more text follows."""
    n, j = len(buf), i + 1
    while j < n and (buf[j] in _WIDE_TERMINALS or buf[j] in _CLOSERS or buf[j] in "」』"):
        j += 1
    return None if j == n else j
