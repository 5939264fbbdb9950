"""LLM `skills`: instant offline answers (time, sums, timers, greetings) with no model.

The provider is in ``provider``; what it understands is split by subject:
``numbers`` (spoken numbers both ways), ``arithmetic`` (simple sums),
``timers`` (durations and the timer record) and ``intents`` (the phrasings it answers).
"""

from providers.llm.skills.provider import NEEDS_MODEL, SPEC, SkillsConfig, SkillsLLM, parse_duration

__all__ = ["NEEDS_MODEL", "SPEC", "SkillsConfig", "SkillsLLM", "parse_duration"]
