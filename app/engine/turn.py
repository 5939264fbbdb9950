"""One turn as an object: what the user said (or typed), the reply so far, what was
heard of it, timings, the providers used and its history row.

`Turn.run` hears (waits for the transcript), answers (LLM → sentence chunker → TTS →
speaker, `produce` and `speak` running side by side) and finishes (history row,
telemetry, `TurnFinished`). Cancelling the task that runs it is barge-in or stop:
the reply is stored as interrupted with what the user heard of it.

A turn started `held` is a speculative reply (app/engine/speculation.py): it runs
the same way, but its events, state changes, stage records, history row and audio
wait in a `HeldOutput` until `confirm` lets them go; only its first sentence is
synthesized before that. Cancelled while held, it leaves no trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from app.engine.chunking import SentenceChunker
from app.engine.context import EngineContext
from app.engine.echo_path import EchoStats
from app.engine.events import Event, FinalTranscript, ReplyDelta, State, TurnFinished
from app.engine.history_window import stable_window
from app.engine.plain_words import SPOKEN_DEFAULT, spoken_sentence
from app.engine.reply import gen_ai_attributes, provider_name, speak_text, spoken_llm_reply, tts_stream
from app.engine.speaker import Speaker
from app.engine.speculation import HeldOutput, SpeculationMissed, same_words
from app.engine.spoken_prompt import context_messages
from app.engine.spoken_reply import ends_sentence
from app.engine.stages import StageSet, StageSlot, missing_stage_error
from app.engine.tasks import wait_for_task
from app.plugin import languages
from app.plugin.errors import ErrorCode, VoiceError, as_voice_error
from app.plugin.provider_api import AudioChunk, ChatMessage, LLMProvider, Provider, QuickAnswers
from app.plugin.resilience import Deadline
from app.store.history import History
from app.store.settings import ConversationSettings, Settings
from app.telemetry import Telemetry

log = logging.getLogger(__name__)

APOLOGY = SPOKEN_DEFAULT  # when nothing more precise can be said
#: Earlier turns' text sent to the model at most (the model's own window trims further).
HISTORY_BUDGET_CHARS = 6000
APOLOGY_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnInput:
    """What starts a turn: typed `text`, or a spoken utterance's transcript job and times."""

    text: str | None = None
    transcript: asyncio.Task[str] | None = None
    speech_start: float | None = None
    speech_end: float | None = None
    endpoint_at: float | None = None


def context_messages_for(
    history: History, conv: ConversationSettings, text: str, heard: str | None = None
) -> list[ChatMessage]:
    """What the model is sent for `text` now: the whole conversation, windowed in steps so
    the model's prompt cache survives (blocking: it reads the history database). `heard`
    is the language the speech recognizer detected in `text`, when it said."""
    window = stable_window(history.recent_messages(), conv.history_turns, HISTORY_BUDGET_CHARS)
    return context_messages(conv.system_prompt, window, text, language=conv.language, heard=heard)


class TurnHost(Protocol):
    """What a turn asks of the session that runs it."""

    @property
    def ctx(self) -> EngineContext: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def speaker(self) -> Speaker: ...
    @property
    def history(self) -> History: ...
    @property
    def telemetry(self) -> Telemetry: ...
    @property
    def skills(self) -> QuickAnswers | None: ...

    def set_state(self, state: State, turn_id: str | None = None) -> None: ...
    def echo_stats(self) -> EchoStats | None: ...
    def reset_echo_meter(self) -> None: ...


class Turn:
    def __init__(self, host: TurnHost, stages: StageSet, given: TurnInput, *, held: bool = False) -> None:
        self.host = host
        self.ctx = host.ctx
        self.stages = stages  # this turn keeps these providers even if settings change
        self.input = given
        self.turn_id = uuid.uuid4().hex[:12]
        self.span: Any = host.telemetry.start_turn(self.turn_id)
        self.text: str | None = None
        self.timings: dict[str, float] = {}
        self.reply: list[str] = []
        # (when it starts playing, sentence): what the user heard if they talk over the reply
        self.heard: list[tuple[float, str]] | None = (
            [] if (host.speaker.out is not None and "tts" in stages.slots) else None
        )
        self.providers = stages.providers_used()
        self.db_turn: int | None = None
        self.interrupted = False
        self.interrupt_at: float | None = None  # set by whoever cancels the turn
        self.paused_at: float | None = None  # the speaker went silent here, before the cut
        self.error: VoiceError | None = None
        self.voice_to_voice_s: float | None = None
        self._chunks: asyncio.Queue[str | None] = asyncio.Queue()
        self._t_start = 0.0
        self._heard_at: float | None = None  # when the transcript was there
        #: Speculative: what the user would notice waits here until `confirm`.
        self.gate: HeldOutput | None = HeldOutput() if held else None
        self.speculative = held
        self._final: asyncio.Task[str] | None = None  # the endpoint's transcript job
        self._after: asyncio.Task[None] | None = None  # the turn before, to finish first
        self._row: asyncio.Task[int] | None = None  # a speculative turn's history row being written

    @property
    def answering(self) -> bool:
        """The reply (skills or LLM) has been asked for."""
        return self._t_start > 0.0

    @property
    def held(self) -> bool:
        """Speculative and not yet let go: nothing of it was shown, stored or played."""
        return self.gate is not None and not self.gate.open

    def _do(self, action: Callable[[], object]) -> None:
        """Now, or when a speculative turn is confirmed."""
        if self.gate is not None:
            self.gate.do(action)
        else:
            action()

    def _emit(self, event: Event) -> None:
        self._do(lambda: self.ctx.emit(event))

    def _state(self, state: State) -> None:
        self._do(lambda: self.host.set_state(state, self.turn_id))

    def _record(self, stage: str, start: float, end: float, attributes: dict[str, Any] | None = None) -> None:
        name = self.providers.get(stage, "sink" if stage == "playback" else "?")
        self._do(lambda: self.host.telemetry.record_stage(self.span, stage, name, start, end, attributes))

    def confirm(
        self, endpoint_at: float, transcript: asyncio.Task[str] | None, after: asyncio.Task[None] | None
    ) -> None:
        """The endpoint came: let the held reply go once the turn `after` is done, if the
        final `transcript` has the same words (another job's words are compared)."""
        self.input = dataclasses.replace(self.input, endpoint_at=endpoint_at)
        self._final, self._after = transcript, after
        if self.gate is not None:
            self.gate.confirmed.set()

    @property
    def conv(self) -> Any:
        return self.host.settings.conversation

    async def run(self) -> None:
        try:
            await self._hear()
            try:
                await self._answer()
            except SpeculationMissed as missed:
                await self._answer_instead(missed.text)
        except asyncio.CancelledError:
            self.interrupted = True
            transcript = self.input.transcript
            if transcript is not None and not transcript.done():
                transcript.cancel()
            if self.interrupt_at is not None:
                silent_at = self.paused_at if self.paused_at is not None else self.ctx.clock()
                self.timings["barge_in_stop"] = silent_at - self.interrupt_at
            raise
        except VoiceError as exc:
            self.error = exc
        except Exception as exc:  # a provider bug must not kill the session
            log.exception("turn failed")
            self.error = as_voice_error("turn", exc)
        finally:
            if self.interrupted and self.heard is not None:
                # Keep what the user heard, not what was generated and queued.
                cut = self.interrupt_at if self.interrupt_at is not None else self.ctx.clock()
                self.reply = [" ".join(text for at, text in self.heard if at <= cut)]
            gate = self.gate
            if gate is not None and not gate.open:
                if not gate.confirmed.is_set() and not self.interrupted:
                    await gate.confirmed.wait()  # failed while held: told only if the turn is confirmed
                if gate.confirmed.is_set():
                    await self._release(compare=False, sound=not self.interrupted)
            if not self.held:  # a held turn cancelled before its endpoint leaves no trace
                await self._finish()

    # -- hearing -------------------------------------------------------------------
    def _record_vad(self) -> None:
        given = self.input
        if given.speech_start is not None and given.speech_end is not None and given.endpoint_at is not None:
            self.timings["vad_endpoint"] = given.endpoint_at - given.speech_end
            self._record("vad", given.speech_start, given.endpoint_at)

    async def _hear(self) -> None:
        given = self.input
        self._record_vad()
        if given.transcript is not None:
            self.text = await self._transcript(given.transcript, given.endpoint_at)
        elif given.speech_end is not None:
            raise missing_stage_error("stt", self.host.settings)
        else:
            self.text = given.text
        assert self.text is not None
        self._emit(FinalTranscript(text=self.text, turn_id=self.turn_id))

    async def _transcript(self, transcript: asyncio.Task[str], endpoint_at: float | None) -> str:
        op = f"stt.{self.providers.get('stt')}"
        self._state(State.THINKING)
        t0 = self.ctx.clock()
        try:
            text = (await transcript).strip()
        except VoiceError as exc:
            raise VoiceError(op, exc.code, exc.message) from exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise as_voice_error(op, exc) from exc
        done = self._heard_at = self.ctx.clock()
        # Speculative decoding may have finished before the endpoint: count only the wait.
        self.timings["stt"] = max(0.0, done - max(t0, endpoint_at or t0))
        self._record("stt", t0, done)
        if not text:
            raise VoiceError(op, ErrorCode.PROVIDER_ERROR, "I didn't catch that — please say it again")
        return text

    # -- answering -----------------------------------------------------------------
    async def _answer(self) -> None:
        assert self.text is not None
        speaker = self.host.speaker
        await speaker.ensure_open()
        if self.gate is None:
            self.db_turn = await asyncio.to_thread(self.host.history.begin_turn, self.text)
        self._state(State.THINKING)
        await self._reply(self.text)
        fst = speaker.first_sample_time
        if fst is not None and self.input.speech_end is not None:
            self.voice_to_voice_s = fst - self.input.speech_end

    async def _reply(self, text: str) -> None:
        if "llm" not in self.stages.slots:
            raise missing_stage_error("llm", self.host.settings)
        self._t_start = self.ctx.clock()
        # The whole-turn deadline bounds the reply's generation; speaking a long answer
        # is not cut (each sentence has its own first-output and idle limits).
        deadline = Deadline(self.conv.turn_deadline_s, clock=self.ctx.clock)
        self._do(self.host.speaker.begin_reply)
        self._do(self.host.reset_echo_meter)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.produce(text, deadline))
                tg.create_task(self.speak())
                if self.gate is not None:
                    tg.create_task(self._release())
        except BaseExceptionGroup as group:
            # Report the stage's own error, not the group wrapper.
            errors = list(group.exceptions)
            raise next((e for e in errors if isinstance(e, VoiceError)), errors[0]) from None

    async def produce(self, text: str, deadline: Deadline) -> None:
        """LLM deltas → `ReplyDelta` events and whole sentences for `speak`."""
        chunker = SentenceChunker()
        first = True
        try:
            async for delta in self._llm_stream(text, deadline):
                if first:
                    self.timings["llm_first_token"] = self.ctx.clock() - self._t_start
                    first = False
                self.reply.append(delta)
                self._emit(ReplyDelta(text=delta, turn_id=self.turn_id))
                for c in chunker.push(delta):
                    self._chunks.put_nowait(c)
                if ends_sentence(delta):
                    for c in chunker.end_sentence():
                        self._chunks.put_nowait(c)
            for c in chunker.flush():
                self._chunks.put_nowait(c)
            if not "".join(self.reply).strip():
                raise VoiceError(
                    f"llm.{self.providers.get('llm')}",
                    ErrorCode.PROVIDER_ERROR,
                    "the assistant returned an empty reply — try again or pick another model in Settings",
                )
        finally:
            self._chunks.put_nowait(None)
            end = self.ctx.clock()
            self.timings["llm"] = end - self._t_start
            name = self.providers.get("llm", "?")
            self._record("llm", self._t_start, end, gen_ai_attributes(self.stages.slots.get("llm"), name))

    async def _llm_stream(self, text: str, deadline: Deadline) -> AsyncIterator[str]:
        skills = self.host.skills
        if skills is not None and self.conv.skills_first:
            answer = skills.try_answer(text)
            if answer:
                self.providers["llm"] = skills.name if isinstance(skills, Provider) else "quick answers"
                yield answer
                return
        messages = await self._context_messages(text)
        slot = self.stages["llm"]
        used: list[str] = []

        def chat(p: Provider) -> AsyncIterator[str]:
            used.append(provider_name(slot, p))
            assert isinstance(p, LLMProvider)
            return p.chat(messages)

        limit = self.conv.first_output_deadline_s
        try:
            async for delta in spoken_llm_reply(
                slot.runner.stream(chat, first_output_timeout=limit, idle_timeout=limit, deadline=deadline), text
            ):
                if used:
                    self.providers["llm"] = used[-1]
                yield delta
        except VoiceError as exc:
            exc.counted = True  # the stage runner counted it
            raise

    async def _context_messages(self, text: str) -> list[ChatMessage]:
        return await asyncio.to_thread(context_messages_for, self.host.history, self.conv, text, self._heard())

    def _heard(self) -> str | None:
        """The language the recognizer detected in this turn's words (spoken turns only)."""
        stt = self.stages.slots.get("stt")
        if self.input.transcript is None or stt is None or not isinstance(stt.provider, languages.ReportsLanguage):
            return None
        return stt.provider.detected_language

    async def speak(self) -> None:
        """Sentences → TTS → speaker, each as soon as it is complete; then wait it out."""
        slot = self.stages.slots.get("tts")
        tts_start: float | None = None
        used: list[str] = []
        while (sentence := await self._chunks.get()) is not None:
            if slot is None:
                continue
            if tts_start is not None and self.gate is not None:
                await self.gate.opened.wait()  # held: only the first sentence is synthesized ahead
            tts_start = tts_start or self.ctx.clock()
            await self._speak_sentence(slot, sentence, used)
        if tts_start is not None:
            end = self.ctx.clock()
            self.timings["tts"] = end - tts_start
            self._record("tts", tts_start, end)
        if slot is None and self.reply:
            raise missing_stage_error("tts", self.host.settings)
        if self.gate is not None:
            await self.gate.opened.wait()
        await self._wait_played()

    async def _speak_sentence(self, slot: StageSlot, sentence: str, used: list[str]) -> None:
        started = False
        try:
            async for audio in tts_stream(slot, sentence, used, self.conv.first_output_deadline_s):
                if "tts_first_audio" not in self.timings:
                    self.timings["tts_first_audio"] = self.ctx.clock() - self._t_start
                    self._state(State.SPEAKING)
                self._play(audio, sentence, first=not started)
                started = True
            if used:
                self.providers["tts"] = used[-1]
        except VoiceError as exc:
            err = VoiceError(f"tts.{used[-1] if used else self.providers.get('tts')}", exc.code, exc.message)
            err.counted = True  # the stage runner counted it
            raise err from exc

    def _play(self, audio: AudioChunk, sentence: str, *, first: bool) -> None:
        def play() -> None:
            at = self.host.speaker.play(audio)
            if first and self.heard is not None:
                self.heard.append((at, sentence.strip()))
                self._checkpoint(" ".join(text for _, text in self.heard))

        if self.gate is not None:
            self.gate.do(play, sound=True)
        else:
            play()

    # -- a speculative turn --------------------------------------------------------
    async def _release(self, *, compare: bool = True, sound: bool = True) -> None:
        """Once confirmed (and the turn before is done): everything held, in order, then
        the history row; a final transcript of other words raises `SpeculationMissed`."""
        gate = self.gate
        assert gate is not None
        await gate.confirmed.wait()
        if self._after is not None and self._after is not asyncio.current_task():
            await wait_for_task(self._after)
        final, endpoint_at = self._final, self.input.endpoint_at
        if compare and final is not None and final is not self.input.transcript:
            text = await self._transcript(final, endpoint_at)
            if not same_words(text, self.text or ""):
                raise SpeculationMissed(text)
        self._record_vad()
        if self._heard_at is not None and endpoint_at is not None:
            self.timings["stt"] = max(0.0, self._heard_at - endpoint_at)  # only the wait after the endpoint
        # Speculative only if the reply began before the endpoint; a transcript that came
        # later made this an ordinary turn (nothing was gained, nothing is claimed).
        self.speculative = self.answering and endpoint_at is not None and self._t_start < endpoint_at
        if self.speculative and endpoint_at is not None:
            self.timings["speculative_lead"] = endpoint_at - self._t_start
            self.host.telemetry.record_speculation("used")
        gate.release(sound=sound)  # the held audio plays now; the history row follows (a disk write is slower)
        if self.text is not None:
            # Its own job: a barge-in now must not lose the row being written (see `_store`).
            self._row = self.ctx.spawn(asyncio.to_thread(self.host.history.begin_turn, self.text), "history-begin")
            self.db_turn = await asyncio.shield(self._row)
            if self.heard:
                self._checkpoint(" ".join(text for _, text in self.heard))

    async def _answer_instead(self, text: str) -> None:
        """The endpoint's transcript had other words: throw the held reply away (never
        heard, never stored) and answer what was really said, as an ordinary turn."""
        assert self.gate is not None
        if self.answering:
            self.host.telemetry.record_speculation("discarded")
        self.gate.drop()
        self.gate, self.speculative = None, False
        self.reply, self._chunks = [], asyncio.Queue()
        self.heard = [] if self.heard is not None else None
        for key in ("llm_first_token", "llm", "tts_first_audio", "tts"):
            self.timings.pop(key, None)
        self.text = text
        self._record_vad()
        self.ctx.emit(FinalTranscript(text=text, turn_id=self.turn_id))
        await self._answer()

    async def _wait_played(self) -> None:
        out = self.host.speaker.out
        if out is None:
            return
        p0 = self.ctx.clock()
        await out.drain()
        fst = out.first_sample_time
        if fst is not None:
            self.timings["playback_start"] = fst - self._t_start
        self._record("playback", fst or p0, self.ctx.clock())

    def _checkpoint(self, spoken: str) -> None:
        """Save the reply queued for speaking so far: a crash or kill mid-reply keeps it."""
        if self.db_turn is not None:
            self.ctx.spawn(
                asyncio.to_thread(self.host.history.checkpoint_reply, self.db_turn, spoken), "history-checkpoint"
            )

    # -- finishing -----------------------------------------------------------------
    async def _finish(self) -> None:
        reply_text = "".join(self.reply).strip()
        error = self.error
        if error is not None:
            stage = error.op.split(".")[0] if error.op.split(".")[0] in self.stages.slots else "turn"
            self.ctx.report(stage, self.providers.get(stage, stage), error, self.turn_id)
            if not self.interrupted:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await self._apologise(reply_text, error)
        await self._store(reply_text)
        v2v = self.voice_to_voice_s
        echo = self.host.echo_stats()
        self.host.telemetry.end_turn(
            self.span,
            self.timings,
            v2v,
            interrupted=self.interrupted,
            error=str(error) if error else None,
            user_text=self.text,
            reply_text=reply_text,
            speculative=self.speculative,
            echo=(echo.erle_db, echo.double_talk_s) if echo is not None and echo.playing_s else None,
        )
        self.ctx.emit(
            TurnFinished(
                turn_id=self.turn_id,
                user_text=self.text or "",
                reply_text=reply_text,
                interrupted=self.interrupted,
                timings=dict(self.timings),
                voice_to_voice_s=v2v,
                providers=self.providers,
                error=str(error) if error else None,
                speculative=self.speculative,
            )
        )

    async def _store(self, reply_text: str) -> None:
        if self.db_turn is None and self._row is not None:
            with contextlib.suppress(Exception):
                self.db_turn = await asyncio.shield(self._row)
        if self.db_turn is None:
            return
        error, v2v = self.error, self.voice_to_voice_s
        cut = self.interrupted or (error is not None and bool(reply_text))  # cut mid-stream: what was said
        with contextlib.suppress(Exception):
            await asyncio.shield(
                asyncio.to_thread(
                    self.host.history.finish_turn,
                    self.db_turn,
                    reply_text,
                    cut,
                    self.timings,
                    self.providers,
                    str(error) if error else None,
                    v2v * 1000 if v2v is not None else None,
                )
            )

    async def _apologise(self, said: str, error: VoiceError) -> None:
        slot = self.stages.slots.get("tts")
        if said or slot is None or error.op.startswith("tts"):
            return  # never restart a sentence; the error event says the rest
        # One sentence that says what happened ("I can't reach the assistant server right now.").
        stage, _, provider = error.op.partition(".")
        text = spoken_sentence(stage, self.providers.get(stage, provider), error)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                speak_text(self.host.speaker, slot, text, self.conv.first_output_deadline_s), APOLOGY_TIMEOUT_S
            )
