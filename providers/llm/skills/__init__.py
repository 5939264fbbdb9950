"""LLM `skills`: instant offline answers (time, sums, timers, greetings) with no model.

The provider (clock, timers, last answer) is in ``provider``; what it understands is
split by subject: ``numbers`` (spoken numbers both ways, times and dates),
``arithmetic`` (simple sums), ``timers`` (durations and the pending timer) and
``intents`` (the phrasings it answers, and the filler it ignores).
"""

from providers.llm.skills.provider import MODEL_UNAVAILABLE, NEEDS_MODEL, SPEC, SkillsConfig, SkillsLLM
from providers.llm.skills.timers import parse_duration

__all__ = ["MODEL_UNAVAILABLE", "NEEDS_MODEL", "SPEC", "SkillsConfig", "SkillsLLM", "parse_duration"]
