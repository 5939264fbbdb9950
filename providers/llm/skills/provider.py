"""LLM `skills`: instant offline answers for what people ask a voice assistant most.

Time and date, simple sums, timers and reminders, "repeat after me", "what can you
do", greetings and thanks — answered by pattern matching in pure Python, in well
under a millisecond, with no model at all. That makes it the default that works the
moment VoxDesk is installed, and a fast front for a real language model: the engine
calls `try_answer(text)` first and passes the turn on only when it returns None.
A skill answers only when the whole request, less polite filler, is one of its
phrasings, so "what time is sunset" or "who are you voting for" go to the model.

Timers are asyncio tasks on the running loop. When one fires, the provider awaits
`on_timer(message)` (the engine sets it and speaks the message); without a hook the
message is kept in `fired` so nothing is lost. `aclose()` cancels what is pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, tzinfo
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.plugin import field_hints
from app.plugin.provider_api import ChatMessage, Health, HealthStatus, LLMProvider, StageKind
from app.plugin.registry import ProviderInfo, ProviderSpec
from providers.llm.skills.arithmetic import answer_arithmetic
from providers.llm.skills.intents import (
    CANCEL_TIMERS,
    CAPABILITIES_Q,
    DATE_Q,
    LIST_TIMERS,
    MAX_REQUEST_CHARS,
    MONTH_Q,
    REMINDS,
    REPEAT_LAST,
    TIME_Q,
    TIMERS,
    TOMORROW_Q,
    WHO_Q,
    YEAR_Q,
    Heard,
    clean_label,
    group,
    hear,
    small_talk,
)
from providers.llm.skills.numbers import say_date, say_time
from providers.llm.skills.timers import MAX_TIMER_S, Timer, parse_duration, say_duration

log = logging.getLogger(__name__)

TimerHook = Callable[[str], Awaitable[None]]
Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[object]]

NEEDS_MODEL = (
    "I can tell the time and date, do simple sums, set timers and reminders, and repeat what you say. "
    "For anything else I need a language model: open Settings, then Assistant, and choose llama.cpp "
    "with an instruct model, such as Qwen 2.5 half a billion, or a server you use."
)
#: Said for a question the skills cannot answer when they stand in for a model that failed.
MODEL_UNAVAILABLE = (
    "My language model isn't answering right now, so I can only do the basics: the time and date, "
    "sums, timers and reminders. If this keeps happening, look at Settings, then Assistant."
)
CAPABILITIES = (
    "I can tell you the time and the date, work out sums like 17 times 23 or 15 percent of 80, "
    "set timers and reminders, like: remind me in 10 minutes to stretch, and repeat after you. "
    "With a language model, I can answer almost anything else."
)


class SkillsConfig(BaseModel):
    """Options of the skills responder."""

    model_config = ConfigDict(extra="forbid")

    timezone: str | None = Field(
        None,
        description="IANA time zone such as Europe/Berlin; empty uses this computer's",
        json_schema_extra=field_hints.choices(field_hints.TIMEZONE),
    )
    twenty_four_hour: bool = Field(False, description="Say times as 16:05 instead of 4:05 PM")
    unanswered: Literal["explain", "model_unavailable"] = Field(
        "explain",
        description="For other questions: explain how to get a language model, or (as the fallback "
        "behind one) say that the model is not answering",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if not value:
            return None
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use a name like Europe/Berlin") from None
        return value


class SkillsLLM(LLMProvider):
    """Answers what it recognises instantly; says how to get a language model otherwise."""

    kind: ClassVar[StageKind] = "llm"
    name: ClassVar[str] = "skills"

    def __init__(
        self,
        config: SkillsConfig | None = None,
        *,
        now: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.config = config or SkillsConfig.model_validate({})
        self._tz: tzinfo | None = None
        if self.config.timezone:
            from zoneinfo import ZoneInfo

            self._tz = ZoneInfo(self.config.timezone)
        self._now = now
        self._sleep: Sleep = sleep or asyncio.sleep
        #: Awaited with the spoken message when a timer or reminder fires.
        self.on_timer: TimerHook | None = None
        #: Messages of timers that fired while no hook was set, oldest first.
        self.fired: list[str] = []
        self._timers: dict[int, Timer] = {}
        self._ids = itertools.count(1)
        self._last_answer: str | None = None
        self._closed = False

    # -- clock --------------------------------------------------------------
    def now(self) -> datetime:
        moment = self._now() if self._now else datetime.now(self._tz).astimezone(self._tz)
        if self._tz is not None and moment.tzinfo is not None:
            moment = moment.astimezone(self._tz)
        return moment

    # -- the skills ---------------------------------------------------------
    def try_answer(self, text: str) -> str | None:
        """The spoken answer if a skill recognises `text`, else None (pass it on).

        A skill answers only when the whole request, less polite filler ("hey",
        "please", "can you tell me"), is one of its phrasings: "what time is it"
        is answered, "what time is sunset" or "current time in London" are passed
        on. Timer requests start the timer as a side effect, so call this from code
        running on the event loop that should own the timers.
        """
        heard = hear(text)
        if not heard.raw:
            return None
        answer = self._match(heard)
        if answer is not None and not REPEAT_LAST.fullmatch(heard.core):
            self._last_answer = answer
        return answer

    def _match(self, heard: Heard) -> str | None:
        said = small_talk(heard)
        if said is not None:
            return said
        core = heard.core
        if not core or len(heard.plain) > MAX_REQUEST_CHARS:
            return None
        for pattern, answer in self._answers():
            if match := pattern.fullmatch(core):
                return answer(match)
        return answer_arithmetic(heard.plain)

    def _answers(self) -> tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...]:
        """Each request the skills recognise and its answer, in the order they are tried."""
        now, hours24 = self.now, self.config.twenty_four_hour
        return (
            (REPEAT_LAST, lambda _: self._last_answer or "I haven't said anything yet."),
            (CANCEL_TIMERS, lambda _: self._cancel_all()),
            (LIST_TIMERS, lambda _: self._list_timers()),
            *((pattern, self._remind) for pattern in REMINDS),
            *((pattern, self._timer) for pattern in TIMERS),
            (TIME_Q, lambda _: f"It's {say_time(now(), twenty_four_hour=hours24)}."),
            (DATE_Q, lambda _: f"Today is {say_date(now())}."),
            (TOMORROW_Q, lambda _: f"Tomorrow is {say_date(now() + timedelta(days=1))}."),
            (YEAR_Q, lambda _: f"It's {now().year}."),
            (MONTH_Q, lambda _: f"It's {now():%B}."),
            (CAPABILITIES_Q, lambda _: CAPABILITIES),
            (WHO_Q, lambda _: "I'm VoxDesk, your desktop voice assistant."),
        )

    def _remind(self, match: re.Match[str]) -> str:
        label = clean_label(group(match, "what1", "what2"))
        return self._start_timer(match.group("dur"), label=label)

    def _timer(self, match: re.Match[str]) -> str:
        return self._start_timer(group(match, "dur", "dur2") or "", label=None)

    # -- timers -------------------------------------------------------------
    def timers(self) -> list[Timer]:
        """Pending timers, soonest first."""
        return sorted(self._timers.values(), key=lambda t: t.due_monotonic)

    def cancel_timer(self, timer_id: int) -> bool:
        timer = self._timers.pop(timer_id, None)
        if timer is None:
            return False
        if timer.task is not None:
            timer.task.cancel()
        return True

    def _start_timer(self, duration_text: str, *, label: str | None) -> str:
        seconds = parse_duration(duration_text)
        if seconds is None or seconds <= 0:
            return "For how long? Say for example: set a timer for 5 minutes."
        if seconds > MAX_TIMER_S:
            return "I can only set timers for up to a week."
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return "I can only set timers while VoxDesk is running."
        if self._closed:
            return "I can't set timers while shutting down."
        timer_id = next(self._ids)
        spoken = say_duration(seconds)
        message = f"Reminder: {label}." if label else f"Your timer for {spoken} is done."
        timer = Timer(timer_id, seconds, time.monotonic() + seconds, message, label)
        timer.task = loop.create_task(self._run_timer(timer), name=f"voxdesk-timer-{timer_id}")
        self._timers[timer_id] = timer
        if label:
            return f"OK, I'll remind you in {spoken} to {label}."
        return f"OK, timer set for {spoken}."

    async def _run_timer(self, timer: Timer) -> None:
        await self._sleep(timer.duration_s)
        self._timers.pop(timer.id, None)
        hook = self.on_timer
        if hook is None:
            self.fired.append(timer.message)
            log.info("timer fired with no listener: %s", timer.message)
            return
        try:
            await hook(timer.message)
        except Exception:  # a failing listener must not kill other timers
            log.exception("timer listener failed; keeping the message")
            self.fired.append(timer.message)

    def _list_timers(self) -> str:
        pending = self.timers()
        if not pending:
            return "You have no timers running."
        if len(pending) == 1:
            return f"You have {pending[0].describe()}."
        listed = "; ".join(t.describe() for t in pending)
        return f"You have {len(pending)} timers: {listed}."

    def _cancel_all(self) -> str:
        count = len(self._timers)
        for timer_id in list(self._timers):
            self.cancel_timer(timer_id)
        if count == 0:
            return "There are no timers to cancel."
        return "Timer cancelled." if count == 1 else f"All {count} timers cancelled."

    # -- provider contract --------------------------------------------------
    async def chat(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        """Answer the last user message; unknown requests get the 'needs a model' note."""
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        answer = self.try_answer(question)
        if answer is None:
            answer = NEEDS_MODEL if self.config.unanswered == "explain" else MODEL_UNAVAILABLE
        yield answer

    async def health(self) -> Health:
        return Health(HealthStatus.OK, "built-in skills: time, date, sums, timers")

    async def aclose(self) -> None:
        """Cancel pending timers and wait for them, so no task outlives the provider."""
        self._closed = True
        tasks = [t.task for t in self._timers.values() if t.task is not None]
        self._timers.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


SPEC = ProviderSpec(
    kind="llm",
    name="skills",
    factory=lambda cfg: SkillsLLM(cfg),
    config_model=SkillsConfig,
    info=ProviderInfo(
        display_name="Built-in skills",
        description="Instant offline answers: time, date, sums, timers and reminders. "
        "Needs no model; put a language model behind it for everything else.",
        local=True,
        streaming=True,
        languages=("en",),
        extra={"instant": True, "timers": True, "quick_answers": True},
    ),
)
