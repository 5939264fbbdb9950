"""How does a transcript end: mid-sentence, on a finished question, or open?

"Set a timer for", "What's the weather in", "Add milk and" — an article, a
preposition, a conjunction or a filler at the end means the user is still speaking,
whatever the intonation sounded like (English words only). And a question mark is
Whisper hearing a finished question (in any language it writes one). The turn model
hears *how* it was said; this reads *what* was said, and the endpointer weighs both.
"""

from __future__ import annotations

import re
from enum import Enum


class Ending(Enum):
    UNFINISHED = "unfinished"  # stops on a word a sentence cannot end on
    QUESTION = "question"  # a finished question ("What time is it?")
    OPEN = "open"  # may end there, or go on


_CONTINUES = """a an the my your his her its our their some every
    for to of in at with about from into onto by than as via per
    and or but because if while until unless whether nor plus minus times divided multiplied
    um uh er erm hmm uhm
    what's where's who's how's it's there's i'm you're we're they're let's"""
#: Words after which an English sentence goes on.
CONTINUES = frozenset(_CONTINUES.split())

#: Whisper tends to finish a phrase cut short with "it" ("set a timer for" → "set a
#: timer for it"); after these words a final "it" is taken as that, not as speech.
_BEFORE_GUESSED_IT = frozenset(["for", "to", "of", "in", "at", "with", "about", "from", "into", "by"])
_WORD = re.compile(r"[a-z0-9']+")


def ending(text: str, language: str = "en") -> Ending | None:
    """How `text` ends; None when it cannot tell (no words, or another language's open end)."""
    stripped = text.strip()
    if stripped.endswith((",", "...", "…", "-", "—")):
        return Ending.UNFINISHED
    unfinished = sounds_unfinished(stripped, language)
    if unfinished:
        return Ending.UNFINISHED
    if stripped.endswith(("?", "？", "¿")) and any(ch.isalnum() for ch in stripped):
        return Ending.QUESTION
    return None if unfinished is None else Ending.OPEN


def ends_with_full_stop(text: str) -> bool:
    """A statement Whisper closed with a full stop or an exclamation mark (not an ellipsis)."""
    stripped = text.strip()
    return stripped.endswith((".", "!", "。", "！")) and not stripped.endswith(("...", "…"))


def sounds_unfinished(text: str, language: str = "en") -> bool | None:
    """True when `text` ends mid-sentence, False when it may end there, None when it
    cannot tell (another language, or no words)."""
    stripped = text.strip()
    if stripped.endswith((",", "...", "…", "-", "—")):
        return True
    if not language.lower().startswith("en"):
        return None
    words = _WORD.findall(stripped.lower().replace("’", "'"))
    if not words:
        return None
    if len(words) >= 2 and words[-1] == "it" and words[-2] in _BEFORE_GUESSED_IT:
        return True  # at worst a finished "go for it" waits the patience, never a cut-off
    return words[-1] in CONTINUES
