"""What the skills recognise: each request's phrasings, matched against the whole utterance.

``hear()`` takes the polite filler off an utterance ("hey VoxDesk, could you please
tell me ...", "..., thanks"); a skill answers only when what is left is one of its
phrasings, so "what time is it" is answered and "what time is sunset" is passed on.
``small_talk()`` answers greetings, thanks and "repeat after me" itself; the other
patterns are answered by the provider, which owns the clock, timers and last answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from providers.llm.skills.timers import DURATION

_TIMER_NOUN = r"(?:timers?|reminders?|alarms?)"


def _whole(*patterns: str) -> re.Pattern[str]:
    """One pattern that must match the whole (normalised) utterance, any case."""
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


# Each must match the whole utterance; the named groups hold the duration and the label.
REMINDS = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"remind\s+me\s+(?:(?:to|about|that)\s+)?(?:(?P<what1>.+?)\s+)?in\s+(?P<dur>{DURATION})"
        r"(?:\s+(?:to|that|about)\s+(?P<what2>.+))?",
        rf"in\s+(?P<dur>{DURATION})\s+remind\s+me\s+(?:to|that|about)\s+(?P<what2>.+)",
        rf"(?:set|create|make|add)(?:\s+me)?\s+(?:a\s+|one\s+)?reminder\s+(?:for|in)\s+(?P<dur>{DURATION})"
        r"(?:\s+(?:to|that|about)\s+(?P<what2>.+))?",
    )
)
TIMERS = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"(?:set|start|create|make|put\s+on)(?:\s+me)?(?:\s+(?:a|an|one|the))?(?:\s+(?P<dur>{DURATION}))?"
        rf"\s+timer(?:(?:\s+(?:for|of|to))?\s+(?P<dur2>{DURATION}))?",
        rf"(?:(?:a|an|one)\s+)?timer\s+(?:for\s+)?(?P<dur>{DURATION})",
        rf"(?:(?:a|an|one)\s+)?(?P<dur>{DURATION})\s+timer",
        rf"count\s*down\s+(?:from\s+|for\s+)?(?P<dur>{DURATION})",
    )
)
LIST_TIMERS = _whole(
    rf"(?:list|show(?:\s+me)?|read(?:\s+out)?|check|tell\s+me)(?:\s+all)?(?:\s+(?:of\s+)?(?:my|the))?\s+{_TIMER_NOUN}",
    rf"(?:what|which)\s+{_TIMER_NOUN}\s+(?:do\s+i\s+have|are\s+(?:there|running|set|pending|active|on))"
    r"(?:\s+(?:running|set|now|right\s+now))?",
    rf"(?:(?:do\s+i\s+have|are\s+there|is\s+there|have\s+i\s+got)\s+)?any\s+{_TIMER_NOUN}"
    r"(?:\s+(?:running|set|left|pending|active|on))?",
    r"(?:do\s+i\s+have|is\s+there)\s+(?:a|one)\s+(?:timer|reminder)(?:\s+(?:running|set|pending|active|on))?",
    rf"how\s+many\s+{_TIMER_NOUN}(?:\s+(?:do\s+i\s+have|are\s+(?:there|running|set|left)))?(?:\s+(?:running|set))?",
    r"how\s+(?:much\s+(?:more\s+)?time|long)(?:\s+(?:is|do\s+i\s+have|have\s+i\s+got))?\s+(?:left|remaining)"
    rf"(?:\s+on\s+(?:my|the)\s+{_TIMER_NOUN})?",
    rf"(?:what(?:'s|s|\s+is)\s+)?(?:the\s+)?time\s+(?:left|remaining)\s+on\s+(?:my|the)\s+{_TIMER_NOUN}",
    r"my\s+(?:timers?|reminders?)",
)
CANCEL_TIMERS = _whole(
    r"(?:cancel|stop|delete|remove|clear|turn\s+off|switch\s+off|end|kill|dismiss)(?:\s+(?:all|every|both))?"
    rf"(?:\s+of)?(?:\s+(?:my|the|those|these|that|this|a))?(?:\s+{DURATION})?\s+{_TIMER_NOUN}"
    rf"(?:\s+and\s+(?:(?:all|my|the)\s+)*{_TIMER_NOUN})?",
)

# --------------------------------------------------------------------- small talk

_WHATS = r"what(?:'s|s|\s+is)"
_NOW = r"(?:\s+(?:now|right\s+now|at\s+the\s+moment|currently|here|please))?"
_TODAY = r"(?:\s+(?:today|now|right\s+now|please))?"
TIME_Q = _whole(
    rf"(?:{_WHATS}\s+)?(?:the\s+)?(?:current\s+|exact\s+)?time(?:\s+(?:is\s+it|it\s+is))?{_NOW}",
    rf"what\s+time\s+(?:is\s+it|it\s+is){_NOW}",
    r"(?:do\s+you\s+have|have\s+you\s+got|got)\s+the\s+time",
)
DATE_Q = _whole(
    rf"(?:{_WHATS}\s+)?(?:the\s+)?(?:current\s+)?date{_TODAY}",
    rf"(?:{_WHATS}\s+)?today's\s+date",
    rf"(?:what|which)\s+(?:date|day)\s+(?:is\s+(?:it|today)|it\s+is){_TODAY}",
    rf"what\s+day\s+of\s+the\s+(?:week|month)(?:\s+(?:is\s+(?:it|today)|it\s+is))?{_TODAY}",
    rf"{_WHATS}\s+(?:the\s+day\s+)?today",
)
TOMORROW_Q = _whole(
    r"(?:what|which)\s+(?:date|day)\s+(?:is\s+(?:it\s+)?|will\s+it\s+be\s+|is\s+it\s+going\s+to\s+be\s+)?tomorrow",
    rf"{_WHATS}\s+(?:the\s+date\s+)?tomorrow",
    r"(?:the\s+)?date\s+tomorrow",
    rf"(?:{_WHATS}\s+)?tomorrow's\s+date",
)
YEAR_Q = _whole(
    rf"what\s+year\s+(?:is\s+(?:it|this)|it\s+is){_NOW}",
    rf"(?:{_WHATS}\s+)?(?:the\s+)?current\s+year",
)
MONTH_Q = _whole(
    rf"what\s+month\s+(?:is\s+(?:it|this)|it\s+is){_NOW}",
    rf"(?:{_WHATS}\s+)?(?:the\s+)?current\s+month",
)
_REPEAT_AFTER = re.compile(
    r"^(?:please\s+)?(?:repeat|say)\s+after\s+me\b[\s,:.;-]*(?P<what>.*)$", re.IGNORECASE | re.DOTALL
)
REPEAT_LAST = _whole(
    r"(?:please\s+)?(?:repeat(?:\s+(?:that|it|yourself))?|say\s+(?:that|it)(?:\s+one\s+more\s+time)?)"
    r"(?:\s+again)?",
    r"what\s+did\s+you\s+(?:just\s+)?say|come\s+again|pardon(?:\s+me)?|i\s+didn't\s+(?:catch|hear)\s+that",
)
CAPABILITIES_Q = _whole(
    r"what\s+(?:else\s+)?(?:can|do|could)\s+you\s+do(?:\s+for\s+me)?",
    r"what\s+(?:else\s+)?you\s+can\s+do",
    r"what\s+are\s+you\s+(?:able\s+to\s+do|capable\s+of|good\s+for)",
    r"what\s+are\s+your\s+(?:skills|capabilities|features|abilities)",
    r"what\s+(?:else\s+)?can\s+i\s+(?:ask|say)(?:\s+you)?",
    r"how\s+(?:can|do)\s+you\s+help(?:\s+me)?",
    r"what\s+can\s+you\s+help(?:\s+me)?\s+with",
    r"help(?:\s+me)?",
)
WHO_Q = _whole(
    r"who\s+are\s+you",
    rf"{_WHATS}\s+your\s+name",
    r"what\s+are\s+you",
    r"who\s+(?:am\s+i\s+(?:talking|speaking)\s+(?:to|with)|is\s+this)",
)
_GREETING = re.compile(
    r"^\W*(?:hi|hello|hey|hiya|howdy|greetings|good\s+(?:morning|afternoon|evening))"
    r"(?:\s+(?:there|voxdesk|assistant))?\W*$",
    re.IGNORECASE,
)
_HOW_ARE_YOU = re.compile(r"^\W*(?:(?:hi|hello|hey)\W+)?how\s+are\s+you(?:\s+doing)?(?:\s+today)?\W*$", re.IGNORECASE)
_THANKS = re.compile(
    r"^\W*(?:(?:thanks|thank\s+you|thank\s+u|cheers|ta)(?:\s+(?:so|very)\s+much)?"
    r"(?:\s+(?:a\s+lot|voxdesk))?|much\s+appreciated)\W*$",
    re.IGNORECASE,
)
_BYE = re.compile(r"^\W*(?:bye|goodbye|good\s+night|see\s+you(?:\s+later)?)\W*$", re.IGNORECASE)


# ----------------------------------------------------------------- normalising

# Polite filler said before a request: "hey VoxDesk, could you please tell me ...".
_LEAD_FILLER = re.compile(
    r"(?:[\s,.!?:;…-]*(?:"
    r"(?:hey|hi|hello|ok|okay|so|um+|uh+|erm?|well|yo|excuse\s+me|sorry)(?:\s+there)?"
    r"|good\s+(?:morning|afternoon|evening)"
    r"|vox\s*desk|please|quick\s+question|just"
    r"|(?:can|could|would|will)\s+you(?:\s+please)?(?:\s+(?:tell|give|show)\s+me)?"
    r"|(?:do|would)\s+you\s+(?:happen\s+to\s+)?know"
    r"|i\s+(?:want|wanted|would\s+like|'d\s+like|need)\s+to\s+know"
    r"|tell\s+me"
    r")(?![\w']))+[\s,.!?:;…-]*",
    re.IGNORECASE,
)
# ... and after it: "..., please", "... for me, thanks VoxDesk".
_TRAIL_FILLER = re.compile(
    r"(?:^|(?<=[\s,.!?:;…-]))(?:please|thanks|thank\s+you|vox\s*desk|for\s+me|ok|okay)$", re.IGNORECASE
)
_TRAIL_PUNCTUATION = " ,.!?:;…"
#: Longer text is no request a skill answers (repeat after me aside); pass it on without parsing it.
MAX_REQUEST_CHARS = 400
_WORD = re.compile(r"\d+(?:[.,]\d+)*|[^\W_]+(?:'[^\W_]+)*")


@dataclass(frozen=True)
class Heard:
    """One utterance, as said and with the filler taken off."""

    raw: str  # whitespace-normalised text as said
    lead: str  # raw without leading filler; case and punctuation kept
    plain: str  # lead without trailing filler and punctuation; symbols kept for sums
    core: str  # plain as single-spaced words only: what the skill grammars must match whole


def hear(text: str) -> Heard:
    raw = " ".join(text.replace("’", "'").replace("‘", "'").split())
    lead_match = _LEAD_FILLER.match(raw)
    lead = raw[lead_match.end() :] if lead_match else raw
    plain = lead.rstrip(_TRAIL_PUNCTUATION)
    while (trail := _TRAIL_FILLER.search(plain)) is not None:
        plain = plain[: trail.start()].rstrip(_TRAIL_PUNCTUATION + "-")
    core = " ".join(_WORD.findall(plain))
    return Heard(raw, lead, plain, core)


def group(match: re.Match[str], *names: str) -> str | None:
    groups = match.groupdict()
    return next((groups[n] for n in names if groups.get(n)), None)


def clean_label(what: str | None) -> str | None:
    if not what:
        return None
    what = what.strip().rstrip(".!?")
    what = re.sub(r"^(?:to|that\s+i\s+(?:need\s+to|should|have\s+to|must))\s+", "", what, flags=re.I)
    what = re.sub(r"\bmy\b", "your", what, flags=re.I)
    return what or None


def small_talk(heard: Heard) -> str | None:
    """Greetings, thanks, goodbyes and "repeat after me": answered the same whoever asks."""
    # Whole-utterance small talk, checked as said and without leading filler ("ok, thanks").
    if _HOW_ARE_YOU.search(heard.raw):
        return "I'm doing well, thanks for asking. How can I help?"
    if _GREETING.search(heard.raw):
        return "Hello! How can I help?"
    if _THANKS.search(heard.raw) or _THANKS.search(heard.lead):
        return "You're welcome."
    if _BYE.search(heard.raw) or _BYE.search(heard.lead):
        return "Goodbye!"
    repeat = _REPEAT_AFTER.match(heard.lead)
    if repeat:
        what = repeat.group("what").strip()
        return what if what else "Sure, say something and I'll repeat it. Start with: repeat after me."
    return None
