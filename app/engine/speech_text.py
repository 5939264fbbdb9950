"""Turn assistant text (often markdown) into plain sentences a voice can read.

Language models answer in markdown with links, code, tables and emoji. A TTS voice
would read those symbols aloud ("asterisk asterisk", "h t t p s colon slash slash"),
so every TTS provider passes its text through `clean_for_speech` first. What is kept
on purpose: numbers, decimals, times, currency, percentages and abbreviations — the
voice (espeak-based phonemisers included) reads those well.

Replies are streamed sentence by sentence, so a code fence may open in one chunk
and close in a later one; `SpeechTextCleaner` remembers that state across chunks.
An empty result means "nothing worth saying": callers skip it rather than speak.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

CodeStyle = Literal["omit", "skip"]
UrlStyle = Literal["domain", "a link"]

CODE_OMITTED = "(code omitted)"

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_SETEXT_UNDERLINE = re.compile(r"^\s*(=+|-+)\s*$")
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")
_BLOCKQUOTE = re.compile(r"^\s*(>\s?)+")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•‣◦▪]|\d{1,3}[.)])\s+(.*)$")
_TASK_BOX = re.compile(r"^\[[ xX]\]\s+")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_REF_DEFINITION = re.compile(r"^\s*\[[^\]]+\]:\s*\S+.*$")

_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\((?:[^()]|\([^)]*\))*\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_AUTOLINK = re.compile(r"<((?:https?|ftp)://[^>\s]+|mailto:[^>\s]+)>")
_URL = re.compile(r"\b(?:(?:https?|ftp)://|www\.)[^\s<>\"')\]]+", re.IGNORECASE)
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_HTML_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9-]*(?:\s[^<>]*)?/?>")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC_STAR = re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])")
_ITALIC_UNDERSCORE = re.compile(r"(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")

# Arithmetic written with symbols the voice would misread or skip.
_TIMES = re.compile(r"(?<=\d)\s*[*×]\s*(?=\d)")
_DIVIDED = re.compile(r"(?<=\d)\s*÷\s*(?=\d)")
_MINUS = re.compile(r"(?<=\d)\s+[-−]\s+(?=\d)")
_DASH = re.compile(r"\s+[-–—]+\s+|—|–(?!\d)")
_ARROW = re.compile(r"\s*(?:->|=>|→|⇒|⟶)\s*")
_ELLIPSIS = re.compile(r"\.{3,}|…")

#: Symbols that carry no meaning once markdown is gone; read aloud they are noise.
_STRAY = re.compile(r"[*_#~^`|<>{}\[\]\\]+")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?%)])")
_REPEATED_PUNCT = re.compile(r"([,;:])(?:\s*[,;:])+")
_PUNCT_BEFORE_STOP = re.compile(r"[,;:]+\s*([.!?])")
_DOUBLE_STOP = re.compile(r"([.!?])(?:\s*\.)+(?!\d)")
_EMPTY_PARENS = re.compile(r"\(\s*[,.;:]*\s*\)")
_LEADING_PUNCT = re.compile(r"^[\s,.;:!?)]+")
_TERMINAL = re.compile(r"[.!?:;,]$")

_EMOJI_EXTRAS = frozenset({0x200D, 0xFE0E, 0xFE0F, 0x20E3})


def _is_pictograph(ch: str) -> bool:
    """Emoji, pictographs and their joiners/modifiers: nothing a voice can say."""
    cp = ord(ch)
    if cp in _EMOJI_EXTRAS or 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F:
        return True
    if ch in "°©®™":
        return False  # symbols with a spoken name, handled by the voice
    return unicodedata.category(ch) in ("So", "Cs", "Co")


def _strip_pictographs(text: str) -> str:
    if text.isascii():
        return text
    return "".join(" " if _is_pictograph(ch) else ch for ch in text)


def _say_url(url: str, style: UrlStyle) -> str:
    if style == "a link":
        return "a link"
    raw = url if "://" in url else f"http://{url}"
    try:
        host = urlsplit(raw).hostname or ""
    except ValueError:
        host = ""
    host = host.removeprefix("www.")
    return host or "a link"


def _say_url_keeping_punctuation(url: str, style: UrlStyle) -> str:
    """A URL at the end of a sentence swallows its full stop; give it back."""
    bare = url.rstrip(".,;:!?")
    return _say_url(bare, style) + url[len(bare) :]


def _end_sentence(text: str) -> str:
    """Give a line that stands alone (heading, list item, table row) a full stop."""
    text = text.strip()
    if not text or _TERMINAL.search(text):
        return text
    return f"{text}."


def _table_row(line: str) -> str:
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return _end_sentence(", ".join(c for c in cells if c))


def _inline(text: str, urls: UrlStyle) -> str:
    """Inline markdown → words. Order matters: links before URLs before emphasis."""
    text = _IMAGE.sub(lambda m: f" {m.group(1)} ", text)
    text = _LINK.sub(lambda m: m.group(1), text)
    text = _REF_LINK.sub(lambda m: m.group(1), text)
    text = _AUTOLINK.sub(lambda m: m.group(1), text)
    text = _URL.sub(lambda m: _say_url_keeping_punctuation(m.group(0), urls), text)
    text = _INLINE_CODE.sub(lambda m: m.group(2).strip(), text)
    text = _HTML_TAG.sub(" ", text)
    for _ in range(2):  # nested emphasis: ***bold italic***
        text = _BOLD.sub(lambda m: m.group(2), text)
        text = _ITALIC_STAR.sub(lambda m: m.group(1), text)
        text = _ITALIC_UNDERSCORE.sub(lambda m: m.group(1), text)
        text = _STRIKE.sub(lambda m: m.group(1), text)
    text = _TIMES.sub(" times ", text)
    text = _DIVIDED.sub(" divided by ", text)
    text = _MINUS.sub(" minus ", text)
    text = _ARROW.sub(" to ", text)
    text = _ELLIPSIS.sub("...", text)
    text = _DASH.sub(", ", text)
    text = _strip_pictographs(text)
    return _STRAY.sub(" ", text)


def _tidy(text: str) -> str:
    """Whitespace and punctuation left over after removals."""
    text = _SPACES.sub(" ", text)
    text = _EMPTY_PARENS.sub(" ", text)
    text = _SPACES.sub(" ", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _REPEATED_PUNCT.sub(r"\1", text)
    text = _PUNCT_BEFORE_STOP.sub(r"\1", text)
    text = _DOUBLE_STOP.sub(r"\1", text)
    text = _LEADING_PUNCT.sub("", text).strip()
    if not any(ch.isalnum() for ch in text):
        return ""
    return text


@dataclass
class SpeechTextCleaner:
    """Stateful cleaner for one streamed reply (remembers an open code fence).

    `code="omit"` says "(code omitted)" once per code block so the listener knows
    something was left out; `code="skip"` drops it silently. `urls="domain"` reads
    `https://docs.python.org/3/` as "docs.python.org"; `"a link"` says just that.
    """

    code: CodeStyle = "omit"
    urls: UrlStyle = "domain"
    in_code: bool = False

    def feed(self, text: str) -> str:
        """Clean one chunk of a reply; "" when nothing in it should be spoken."""
        lines: list[str] = []
        paragraph: list[str] = []

        def flush() -> None:
            if paragraph:
                lines.append(" ".join(paragraph))
                paragraph.clear()

        def standalone(sentence: str) -> None:
            flush()
            if sentence:
                lines.append(_end_sentence(sentence))

        for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            if _FENCE.match(line):
                if not self.in_code and self.code == "omit":
                    standalone(CODE_OMITTED)
                self.in_code = not self.in_code
                continue
            if self.in_code:
                continue
            if not line.strip():
                flush()
                continue
            if paragraph and _SETEXT_UNDERLINE.match(line):
                title = " ".join(paragraph)
                paragraph.clear()
                standalone(title)  # "Title\n=====" is a heading
                continue
            if _REF_DEFINITION.match(line) or _RULE.match(line) or _TABLE_SEPARATOR.match(line):
                continue
            if _TABLE_ROW.match(line):
                standalone(_inline(_table_row(line), self.urls))
                continue
            line = _BLOCKQUOTE.sub("", line)
            block = _block_sentence(line, self.urls)
            if block is not None:
                standalone(block)
                continue
            # A line of a paragraph: a soft line break inside a sentence is a space.
            cleaned = _inline(line, self.urls).strip()
            if cleaned:
                paragraph.append(cleaned)
        flush()
        sentences = [_end_sentence(s) if len(lines) > 1 else s.strip() for s in lines]
        return _tidy(" ".join(s for s in sentences if s))


def _block_sentence(line: str, urls: UrlStyle) -> str | None:
    """A heading or list item is a sentence of its own; None for other lines."""
    heading = _HEADING.match(line)
    if heading:
        return _inline(heading.group(1), urls)
    item = _LIST_ITEM.match(line)
    if item:
        return _inline(_TASK_BOX.sub("", item.group(1)), urls)
    return None


def is_block_line(line: str) -> bool:
    """A heading, list item or table row: a line that stands as a sentence of its own."""
    return bool(_HEADING.match(line) or _LIST_ITEM.match(line) or _TABLE_ROW.match(line))


def end_sentence(text: str) -> str:
    """`text` with a full stop unless it already ends in punctuation."""
    return _end_sentence(text)


def clean_for_speech(text: str, *, code: CodeStyle = "omit", urls: UrlStyle = "domain") -> str:
    """Plain spoken sentences for a whole text; "" if nothing is worth saying."""
    return SpeechTextCleaner(code=code, urls=urls).feed(text)


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREVIATION = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|Mt|vs|etc|approx|No|Fig|Inc|Ltd|Co|Jan|Feb|Mar|Apr|Jun|Jul|Aug|"
    r"Sep|Sept|Oct|Nov|Dec)|\b[a-zA-Z]\.[a-zA-Z]|\b[A-Z])\.$"
)
_CLAUSE_BREAK = re.compile(r"(?<=[,;:])\s+")


def split_for_speech(text: str, *, max_chars: int = 300, first_max_chars: int | None = None) -> list[str]:
    """Sentences no longer than `max_chars`, for synthesis one piece at a time.

    Sentence ends are not split after abbreviations ("Dr.", "e.g.") or inside
    decimals. Over-long sentences break at clause punctuation, then between words.
    `first_max_chars` makes the first piece end at an earlier clause (comma, semicolon)
    so the first audio is ready sooner.
    """
    text = text.strip()
    if not text:
        return []
    sentences: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        candidate = text[start : m.start()].rstrip()
        if _ABBREVIATION.search(candidate):
            continue
        sentences.append(candidate)
        start = m.end()
    sentences.append(text[start:].strip())

    pieces: list[str] = []
    for sentence in sentences:
        limit = first_max_chars if (first_max_chars and not pieces) else max_chars
        pieces.extend(_break_long(sentence, limit, max_chars))
    return [p for p in pieces if p]


def _break_long(sentence: str, first_limit: int, limit: int) -> list[str]:
    if len(sentence) <= first_limit:
        return [sentence]
    out: list[str] = []
    current = ""
    for clause in _CLAUSE_BREAK.split(sentence):
        cap = first_limit if not out else limit
        if current and len(current) + 1 + len(clause) > cap:
            out.append(current)
            current = ""
        current = f"{current} {clause}".strip()
        # Cutting between words hurts the melody of a sentence: only beyond the hard limit.
        while len(current) > limit:
            cut = current.rfind(" ", 0, limit)
            if cut <= 0:
                cut = limit
            out.append(current[:cut].strip())
            current = current[cut:].strip()
    if current:
        out.append(current)
    return out
