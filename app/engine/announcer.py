"""The skills that answer first (time, arithmetic, timers) and the timers they set.

The session owns one skills responder whatever LLM is chosen, so a timer set before a
switch of the LLM in Settings still fires; when it does, its message is shown and, if
nothing else is being said, spoken."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from app.engine.context import EngineContext
from app.engine.events import Notice, State
from app.engine.reply import speak_text
from app.engine.speaker import Speaker
from app.engine.stages import StageSet
from app.plugin.errors import VoiceError
from app.plugin.provider_api import Provider, QuickAnswers
from app.plugin.registry import Registry
from app.store.settings import Settings

#: The capability (ProviderInfo.extra) of an LLM provider that answers what it knows before the model.
QUICK_ANSWERS = "quick_answers"


class Announcer:
    def __init__(self, ctx: EngineContext, speaker: Speaker, timeout_s: float = 10.0) -> None:
        self.ctx = ctx
        self.speaker = speaker
        self.timeout_s = timeout_s
        self.skills: QuickAnswers | None = None
        self.provider: Provider | None = None
        #: Set by the session: the state, stages and settings of the moment.
        self.now: Callable[[], tuple[State, StageSet, Settings]] = lambda: (State.IDLE, StageSet(), Settings())

    def make_skills(self, registry: Registry, settings: Settings) -> None:
        """The first provider that declares quick answers runs in front of the chosen LLM."""
        names = registry.find("llm", **{QUICK_ANSWERS: True})
        if not names:
            return
        name = names[0]
        llm = settings.llm  # the chosen LLM's options are its own when it is the same provider
        opts = llm.options if llm.provider == name else {}
        with contextlib.suppress(VoiceError):
            self.provider = registry.create("llm", name, opts)
        self.skills = self.provider if isinstance(self.provider, QuickAnswers) else None

    def wire(self, stages: StageSet) -> None:
        """Timers set by the skills (ours, or the chosen LLM's) speak when they fire."""
        llm = stages.slots.get("llm")
        for prov in (self.skills, llm.provider if llm else None):
            if isinstance(prov, QuickAnswers):
                prov.on_timer = self.announce

    async def announce(self, text: str) -> None:
        self.ctx.emit(Notice(message=text, alert=True))
        state, stages, settings = self.now()
        slot = stages.slots.get("tts")
        if state not in (State.IDLE, State.LISTENING) or slot is None:
            return
        await self.speaker.ensure_open()
        limit = settings.conversation.first_output_deadline_s
        with contextlib.suppress(Exception):
            await asyncio.wait_for(speak_text(self.speaker, slot, text, limit), self.timeout_s)

    async def aclose(self) -> Any:
        if self.provider is not None:
            await self.provider.aclose()
