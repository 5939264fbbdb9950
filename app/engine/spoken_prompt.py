"""The messages a spoken conversation sends to the language model.

What the model is told, and why it is laid out this way:
- the system prompt says what it is (VoxDesk, a voice assistant on this computer,
  replies read aloud), the spoken style (one or two short sentences, no markdown,
  lists, code, emoji or web addresses) and today's date, then the user's own
  instructions from Settings;
- the date and the hour come last in the system prompt, at hour resolution:
  llama.cpp reuses its KV cache for the unchanged start of the prompt, and a clock
  to the minute would change that start every minute and make each turn re-read
  the whole conversation. (A time note on the newest message keeps the cache too,
  but the small models then talk about "local time" in their answers.);
- "tell me more", "go on" and the like get a note asking to continue with more
  detail (and `spoken_reply.DETAILED` lets a longer answer through);
- the conversation's language (Settings): English says nothing (the prompt is as it
  always was); another language asks for answers in it; `auto` asks to answer in the
  user's language, and when the speech recognizer said which language it heard, the new
  message gets a note naming it (small models answer a French question in English
  now and then without one). The language line sits right after the identity, so it
  is cached with it.

The notes are never stored: history holds what the user said.
"""

from __future__ import annotations

import re
from datetime import datetime

from app.engine.spoken_reply import BRIEF, DETAILED, SpokenLimits
from app.plugin import languages
from app.plugin.provider_api import ChatMessage

IDENTITY = (
    "You are VoxDesk, a voice assistant running on the user's computer. Your replies are spoken aloud, "
    "so answer in one or two short sentences unless the user asks for more. "
    "Use plain spoken words: no markdown, lists, code, emoji or web addresses."
)
AUTO_LANGUAGE = "Answer in the language the user speaks to you."


def language_line(language: str | None) -> str:
    """What the system prompt says about the conversation's language ("" for English)."""
    if not language or languages.is_english(language):
        return ""
    if language == languages.AUTO:
        return AUTO_LANGUAGE
    said = languages.name(language)
    return f"The user speaks {said}: always answer in {said}."


def heard_note(language: str | None, heard: str | None) -> str:
    """The new message's note on the language it was spoken in ("" when not needed)."""
    if language != languages.AUTO or not heard:
        return ""
    said = languages.name(heard)
    return f"(Spoken in {said}: answer in {said}.)"


MORE_NOTE = (
    "The user wants more: continue your previous answer with new details, in up to six sentences, "
    "without repeating what you already said."
)

_MORE = re.compile(
    r"^(?:ok(?:ay)?,?\s+|yes,?\s+|please,?\s+|and\s+)*"
    r"(?:tell me more|more(?: details?| please)?|go on|keep going|carry on|continue|say more|elaborate|"
    r"(?:can you |could you )?(?:explain|tell me) (?:that |it |this )?(?:in )?(?:more )?(?:detail|more)|"
    r"what else|anything else|and then(?: what)?)\b",
    re.IGNORECASE,
)


def wants_more(text: str) -> bool:
    """True for "tell me more", "go on", "explain in more detail" and the like."""
    return bool(_MORE.match(text.strip()))


def limits_for(text: str) -> SpokenLimits:
    """How much of the answer to `text` is spoken."""
    return DETAILED if wants_more(text) else BRIEF


def _hour(hour: int) -> str:
    return f"{(hour - 1) % 12 + 1} {'am' if hour < 12 else 'pm'}"


def clock_line(now: datetime) -> str:
    """Date and the hour the local time is in ("between 2 pm and 3 pm"): true all hour long,
    so it changes the prompt (and the model's cache) at most once an hour."""
    return (
        f"For reference, today is {now:%A}, {now.day} {now:%B %Y}, "
        f"and the local time is between {_hour(now.hour)} and {_hour((now.hour + 1) % 24)}."
    )


def system_prompt(user_prompt: str, now: datetime, language: str | None = None) -> str:
    """Identity and spoken style, the language to answer in, the user's own instructions,
    then the date and hour last (when the hour changes, the cached identity and style still
    serve). `language` is the conversation's (`auto` or a code; None or English: no line)."""
    head = " ".join(part for part in (IDENTITY, language_line(language)) if part)
    extra = user_prompt.strip()
    return head + (f"\n\n{extra}" if extra else "") + f"\n\n{clock_line(now)}"


def context_messages(  # noqa: PLR0913 - the prompt's inputs, the last two keyword-only
    user_prompt: str,
    history: list[ChatMessage],
    text: str,
    now: datetime | None = None,
    *,
    language: str | None = None,
    heard: str | None = None,
) -> list[ChatMessage]:
    """System prompt, the conversation so far, and the new user message with its notes.

    `now` is the local time (a test passes one); the window trimming is the
    provider's (it counts with the model's own tokenizer, oldest turns first).
    `language` is the conversation's setting, `heard` the language the speech recognizer
    detected in `text` (with `auto`), when it said.
    """
    now = now or datetime.now().astimezone()
    notes = [f"({MORE_NOTE})"] if wants_more(text) and any(m.role == "assistant" for m in history) else []
    if note := heard_note(language, heard):
        notes.append(note)
    latest = "\n\n".join([text, *notes])
    return [ChatMessage("system", system_prompt(user_prompt, now, language)), *history, ChatMessage("user", latest)]
