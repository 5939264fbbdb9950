"""The conversation engine: one object the window, the CLI and the tests all drive.

`Session` is the façade: controls (push-to-talk, hands-free, mute, stop, typed text),
settings and health, life cycle and the event stream. The work is done by:

- `Listener` (app/engine/listener.py): microphone → VAD → endpointer → an utterance,
  with partial and speculative transcripts;
- `Turn` (app/engine/turn.py): one question and its reply, LLM deltas → sentence
  chunker → TTS → speaker, each chunk as soon as it is complete;
- `Speaker` (app/engine/speaker.py): the sink, parked while idle, and the timeline of
  what was played (the echo gate's reference).

When the user pauses, a turn starts on the speculative transcript with its output held
(`Speculator`, app/engine/speculation.py); the endpoint confirms it, or speech resuming
discards it. Speech during the reply (past the echo gate) is barge-in: playback is
flushed, the turn's LLM/TTS work cancelled, the partial reply stored as interrupted. Typed text and
push-to-talk enter the same turn logic. docs/architecture.md ("How a turn flows") draws a turn.

Everything here runs on the asyncio loop; inference happens in provider workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, Unpack

from app.audio.far_end import FarEndTap
from app.audio.streams import AudioSink, AudioSource
from app.engine.activation import (
    Activation,
    phrase_title,
    play_chime,
    unavailable_notice,
    wake_detector,
    wake_unavailable_reason,
)
from app.engine.activation import rest_state as activation_rest_state
from app.engine.announcer import Announcer
from app.engine.barge_in import BargeInJudge
from app.engine.context import EngineContext
from app.engine.echo_gate import EchoGate
from app.engine.echo_path import EchoStats
from app.engine.events import (
    ErrorRaised,
    Event,
    Notice,
    ProviderSwitched,
    SpeechEnded,
    State,
    StateChanged,
    WakeWordHeard,
)
from app.engine.health import ErrorBook, ProviderHealth, TelemetryObserver, check_health
from app.engine.listener import Listener, Utterance
from app.engine.options import SessionOptions, SessionParts
from app.engine.speaker import Speaker
from app.engine.speculation import SpeculativeReply, Speculator
from app.engine.spoken_prompt import context_messages
from app.engine.stages import RunnerSetup, StageSet, StageSlot, build_all, changed_kinds, close_slot, promote
from app.engine.switching import load_models, rebuild_stage, switch_stages
from app.engine.tasks import Background, caller_cancelled, wait_for_task
from app.engine.turn import APOLOGY, Turn, TurnInput, context_messages_for
from app.plugin.errors import VoiceError
from app.plugin.provider_api import PromptPriming, QuickAnswers, WakeDetection
from app.plugin.registry import get_registry
from app.store.history import History
from app.store.paths import AppPaths
from app.store.settings import ActivationMode, Settings
from app.telemetry import Telemetry

log = logging.getLogger(__name__)
E = TypeVar("E", bound=Event)


class Session:
    def __init__(self, settings: Settings, paths: AppPaths, **parts: Unpack[SessionParts]) -> None:
        clock = parts.get("clock", time.monotonic)
        sleep = parts.get("sleep", asyncio.sleep)
        history = parts.get("history")
        self.settings = settings
        self.paths = paths.ensure()
        self.store = parts.get("store")
        self.registry = parts.get("registry") or get_registry()
        self.telemetry = parts.get("telemetry") or Telemetry(settings.telemetry)
        self.clock = clock
        self.options = parts.get("options") or SessionOptions()
        self.history = history or History(self.paths.history_db)
        # History tells us (from whichever thread wrote) when a write starts or stops
        # failing; the user hears it once per outage.
        self.background = Background(self._emit)
        self.history.on_notice = self.background.notice_from_any_thread
        self.state = State.IDLE
        self.stages = StageSet()
        self.activation = Activation(settings.activation)
        self.muted = False
        self._listeners: list[Callable[[Event], None]] = []
        self._turn: Turn | None = None
        self._turn_task: asyncio.Task[None] | None = None
        self._closed = False
        self.errors = ErrorBook(self.telemetry)
        self.ctx = EngineContext(clock=clock, sleep=sleep, spawn=self._spawn, emit=self._emit, report=self._report)
        self._runners = RunnerSetup(TelemetryObserver(self.errors, self._turn_span, self._emit), clock, sleep)
        self.speaker = Speaker(self.ctx, parts.get("sink"), self.options.speaker, busy=self._busy)
        self.listener = Listener(self.ctx, self, parts.get("source"))
        self.speculator = Speculator(self._start_held_turn, self.telemetry)
        self.barge_in = BargeInJudge(self.ctx.sleep)
        self.listener.pauses = self.speculator
        self.announcer = Announcer(self.ctx, self.speaker, self.options.announce_timeout_s)
        self.announcer.now = lambda: (self.state, self.stages, self.settings)
        self.ready = asyncio.Event()

    # -- events ------------------------------------------------------------
    def add_listener(self, cb: Callable[[Event], None]) -> Callable[[], None]:
        self._listeners.append(cb)
        return lambda: self._listeners.remove(cb) if cb in self._listeners else None

    async def events(self) -> AsyncIterator[Event]:
        """All events from now on, as an async iterator (for headless consumers)."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        remove = self.add_listener(queue.put_nowait)
        try:
            while True:
                yield await queue.get()
        finally:
            remove()

    def _emit(self, event: E) -> E:
        """Publish `event` stamped on the session's clock; returns it as published."""
        if self.clock is not time.monotonic:  # events are stamped on the session's clock
            event = dataclasses.replace(event, at=self.clock())
        for cb in list(self._listeners):
            try:
                cb(event)
            except Exception:  # a broken listener must not break the turn
                log.exception("event listener failed")
        return event

    def set_state(self, state: State, turn_id: str | None = None) -> None:
        if state != self.state:
            self.state = state
            self._emit(StateChanged(state=state, turn_id=turn_id))

    def rest_state(self) -> State:
        # LISTENING only while the microphone really runs (it may be missing or broken).
        return activation_rest_state(self.activation, self.listener.live, self.muted, self.clock())

    @property
    def hands_free(self) -> bool:
        return self.activation.opens_microphone

    @property
    def source(self) -> AudioSource | None:
        return self.listener.source

    @property
    def sink(self) -> AudioSink | None:
        return self.speaker.sink

    @property
    def microphone_live(self) -> bool:
        """The microphone stream is open and feeding the engine."""
        return self.listener.live

    @property
    def skills(self) -> QuickAnswers | None:
        """The responder that answers first (time, arithmetic, timers), if installed."""
        return self.announcer.skills

    def _turn_running(self) -> bool:
        return self._turn_task is not None and not self._turn_task.done()

    def _turn_span(self) -> Any:
        return self._turn.span if self._turn is not None else None

    def _busy(self) -> bool:
        return self._turn_task is not None or self.listener.utterance is not None

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        return self.background.spawn(coro, name)

    def _report(self, stage: str, provider: str, err: VoiceError, turn_id: str | None = None) -> None:
        """Tell the user (ErrorRaised) and count it, unless resilience already counted it."""
        if err.counted:
            self.errors.note(stage, provider, str(err))
        else:
            self.errors.count(stage, provider, err.code.value, str(err))
        self._emit(
            ErrorRaised(stage=stage, provider=provider, code=err.code.value, message=err.message, turn_id=turn_id)
        )

    # -- life cycle --------------------------------------------------------
    async def start(self) -> None:
        """Build providers now (cheap); load models in the background."""
        self.background.loop = asyncio.get_running_loop()
        self.stages, failures = build_all(self.registry, self.settings, self._runners)
        for kind, err in failures.items():
            self._report(kind, self.settings.stage(kind).provider, err)
        self.listener.reset_endpointer()
        self.announcer.make_skills(self.registry, self.settings)
        self.announcer.wire(self.stages)
        self._spawn(self._warm_all(), "warmup")
        await self.speaker.start()
        await self._sync_capture()
        if self.history.notice:
            self._emit(Notice(message=self.history.notice))
        self.set_state(self.rest_state())

    async def _warm_all(self) -> None:
        await load_models(self.ctx, self.stages, self._promote, self.telemetry)
        self.ready.set()
        self._tell_duplex()
        self._check_wake_word()
        await self._prime_llm()

    async def _prime_llm(self) -> None:
        """Let a model with a prompt cache read the system prompt now, not in the first turn
        (on 2 cores ~0.9 s less before its first word)."""
        slot = self.stages.slots.get("llm")
        if slot is None or not isinstance(slot.provider, PromptPriming):
            return
        try:
            conv = self.settings.conversation
            await slot.provider.prime(context_messages(conv.system_prompt, [], "Hello.", language=conv.language))
        except Exception as exc:  # the first turn will say what is wrong, if anything still is
            log.info("priming the language model failed: %s", exc)

    async def _prime_next_turn(self) -> None:
        """After a turn, let the model read the next turn's history while the user listens:
        every few turns the history window moves on and the prompt changes near its start,
        and reading it again in the next turn cost ~0.8 s before its first word (2 cores)."""
        slot = self.stages.slots.get("llm")
        if slot is None or not isinstance(slot.provider, PromptPriming) or self._turn_running():
            return
        try:
            messages = await asyncio.to_thread(context_messages_for, self.history, self.settings.conversation, "…")
            if not self._turn_running():  # a turn that started meanwhile reads its own prompt
                await slot.provider.prime(messages)
        except Exception as exc:  # the next turn will say what is wrong, if anything still is
            log.info("priming the language model for the next turn failed: %s", exc)

    def _promote(self, slot: StageSlot, index: int) -> None:
        """Run on `slot.chain[index]` from now on (the chosen provider cannot load here)."""
        if self.stages.slots.get(slot.kind) is slot:
            self.stages = StageSet({**self.stages.slots, slot.kind: promote(slot, index, self._runners)})

    async def _sync_capture(self) -> None:
        await self.listener.sync()
        if self._turn_task is None and self.listener.utterance is None and not self.listener.ptt_active:
            self.set_state(self.rest_state())

    async def set_audio(self, source: AudioSource | None, sink: AudioSink | None) -> None:
        """Swap devices (settings change, device recovery) without a restart."""
        await self.listener.replace(source)
        await self.speaker.replace(sink)
        await self._sync_capture()
        self.set_state(self.rest_state())

    async def aclose(self) -> None:
        """Stop audio, cancel work, close providers, flush telemetry — bounded in time.

        Providers stop and join their own threads and processes (synthesis, decoding,
        model loading) in their `aclose`, each within a bound, so nothing of ours is
        still running native code when the process exits."""
        if self._closed:
            return
        self._closed = self.speaker.closed = True
        await self.background.cancel_all(self.options.close_tasks_s)
        if self.sink is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.sink.stop(), self.options.close_device_s)
        closing: list[Awaitable[Any]] = [close_slot(s) for s in self.stages.slots.values()]
        closing.append(self.announcer.aclose())
        await self.listener.aclose(self.options.close_device_s)
        await asyncio.gather(*closing, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.history.close)
        self.telemetry.shutdown(0.5)
        self.set_state(State.IDLE)

    # -- controls ----------------------------------------------------------
    def set_hands_free(self, on: bool) -> None:
        """Always listening (on) or push-to-talk (off)."""
        self.set_activation("always" if on else "push_to_talk")

    def activation_choices(self) -> dict[ActivationMode, str | None]:
        """Each mode, with why it cannot be chosen now (None: it can)."""
        _, failed, _ = self.errors.get("wake", self.settings.wake.provider)
        wake = wake_unavailable_reason(self.stages, failed) if self.ready.is_set() else None
        return {"push_to_talk": None, "wake_word": wake, "always": None}

    def set_activation(self, mode: ActivationMode) -> str | None:
        """Switch how turns start; returns why not, when the mode is unavailable here."""
        if mode == "wake_word" and (why := self.activation_choices()["wake_word"]) is not None:
            self._emit(unavailable_notice(why))
            return why
        self.activation.set_mode(mode)
        if not self.activation.opens_microphone and not self.listener.ptt_active:
            self.listener.drop_utterance()
        self._spawn(self._sync_capture(), "sync-capture")
        self.set_state(self.rest_state() if self._turn_task is None else self.state)
        return None

    def _check_wake_word(self) -> None:
        """Models loaded: a wake-word mode without a working detector says so, once, and the
        session keeps to push-to-talk (the settings keep the user's choice)."""
        if self.activation.mode == "wake_word" and (why := self.activation_choices()["wake_word"]) is not None:
            self._emit(unavailable_notice(why))
            self.activation.set_mode("push_to_talk")
            self._spawn(self._sync_capture(), "sync-capture")
        elif self.activation.mode == "wake_word" and (detector := wake_detector(self.stages)) is not None:
            phrase = phrase_title(detector.phrases[0]) if detector.phrases else "the wake word"
            self._emit(Notice(message=f"Say “{phrase}” to talk.", transient=True))

    def on_wake(self, heard: WakeDetection, captured_at: float) -> None:
        """The wake phrase: stop a reply, chime, and listen for the question."""
        stopped = self._turn_running()
        if stopped:
            self.barge_in.take()
            self._interrupt(barge_in_at=captured_at)
        self.listener.listen_afresh()
        now = self.clock()
        self.activation.woke(now)
        event = self._emit(
            WakeWordHeard(
                phrase=heard.phrase,
                probability=heard.probability,
                phrase_end=captured_at - heard.ended_ago_s,
                stopped_reply=stopped,
            )
        )
        self.telemetry.record_wake(heard.phrase, now - event.phrase_end)
        if self.settings.activation.chime:
            self._spawn(play_chime(self.speaker, event), "wake-chime")
        else:
            self._open_speaker_soon()
        self.set_state(State.LISTENING)

    def went_to_sleep(self) -> None:
        if self._turn_task is None and self.listener.utterance is None and not self.listener.ptt_active:
            self.set_state(self.rest_state())

    def set_muted(self, on: bool) -> None:
        self.muted = on
        if on:
            self.listener.drop_utterance()
        self._spawn(self._sync_capture(), "sync-capture")
        if self._turn_task is None:
            self.set_state(self.rest_state())

    def stop_speaking(self) -> None:
        """The stop button: end the current reply now."""
        if self._turn_running():
            self._interrupt()

    def push_to_talk(self, pressed: bool) -> None:
        now, listener = self.clock(), self.listener
        if pressed and self.muted:
            return  # a muted microphone is not listened to, whoever presses talk
        if pressed and not listener.ptt_active:
            listener.ptt_active = True
            self.stop_speaking()
            self._open_speaker_soon()
            listener.begin_utterance(now, [])
            self._spawn(self._sync_capture(), "sync-capture")
        elif not pressed and listener.ptt_active:
            listener.ptt_active = False
            if listener.utterance is not None:
                listener.utterance.last_speech_at = now
                listener.end_utterance(now)
            self._spawn(self._sync_capture(), "sync-capture")

    async def new_conversation(self) -> None:
        await asyncio.to_thread(self.history.new_conversation)

    # -- what the listener asks (ListenerHost) ----------------------------------
    @property
    def echo(self) -> EchoGate:
        return self.speaker.echo

    @property
    def raw_echo(self) -> EchoGate:
        return self.speaker.raw_echo

    def echo_reference(self) -> FarEndTap | None:
        # A parked (closed) speaker plays nothing: no echo to cancel, and the canceller's
        # ~1 % of a core is saved while VoxDesk waits for the wake word.
        sink = self.speaker.out
        return sink.far_end if sink is not None else None

    def listens_while_speaking(self) -> bool:
        duplex = self.settings.conversation.duplex
        if duplex != "auto":
            return duplex == "full"
        return self.listener.echo_cancelling

    def echo_stats(self) -> EchoStats | None:
        """What the echo canceller did over the current reply (None: it is not running)."""
        return self.listener.echo_path.stats() if self.listener.echo_cancelling else None

    def reset_echo_meter(self) -> None:
        self.listener.echo_path.reset_meter()

    def _tell_duplex(self) -> None:
        """Say once, at start, when auto duplex cannot listen during replies and why."""
        if self.settings.conversation.duplex != "auto" or self.echo_reference() is None:
            return
        if self.listener.echo_cancelling:
            return
        slot = self.stages.slots.get("echo")
        why = "echo cancellation is off" if slot is None else f"the echo canceller is {slot.name}"
        self._emit(
            Notice(
                message=f"VoxDesk stops listening while it speaks ({why}): to talk over it, choose the WebRTC "
                "echo canceller in Settings → Audio, or set duplex to full with a headset."
            )
        )

    def only_chime(self, at: float) -> bool:
        return self._turn_task is None and self.speaker.only_cue(at)

    def is_speaking(self, at: float) -> bool:
        # A reply is "ours" for its whole turn (the speaker may run dry between two
        # sentences); apologies and timers count while they play, plus a short tail.
        return (self._turn_task is not None and self.state == State.SPEAKING) or self.speaker.playing_now(at)

    def on_speech_start(self, at: float) -> bool:
        if self._turn_running():
            if not self.settings.conversation.barge_in:
                return False
            if self.barge_in.pending is None:
                if self.speaker.pause():  # the words decide (app/engine/barge_in.py)
                    if self._turn is not None:
                        self._turn.paused_at = self.clock()
                    watch = self._spawn(
                        self.barge_in.watch_dropped(lambda: self.listener.utterance is not None, self.speaker.resume),
                        "barge-in-watch",
                    )
                    self.barge_in.hold(at, watch)
                else:
                    self._interrupt(barge_in_at=at)
        self._open_speaker_soon()
        return True

    def _open_speaker_soon(self) -> None:
        if not self.speaker.is_open:
            self._spawn(self.speaker.ensure_open(), "open-speaker")

    def on_utterance(self, utt: Utterance, transcript: asyncio.Task[str] | None, endpoint_at: float) -> None:
        pending = self.barge_in.take()
        if pending is not None and self._turn_running():
            self._spawn(self._settle_barge_in(utt, transcript, endpoint_at, pending.at), "barge-in")
            return
        self._take_utterance(utt, transcript, endpoint_at, endpoint_at)

    async def _settle_barge_in(
        self, utt: Utterance, transcript: asyncio.Task[str] | None, endpoint_at: float, speech_at: float
    ) -> None:
        """The reply is paused: resume it if the speech was its own echo, else cut it."""
        heard = await self.barge_in.words_of(transcript)
        turn = self._turn
        said = "".join(turn.reply) if turn is not None else ""
        if self._turn_running() and self.barge_in.judge(heard, said):
            self.speculator.discard()  # a reply to our own words: never shown
            if turn is not None:
                turn.paused_at = None
            self.speaker.resume()
            self.set_state(State.SPEAKING)
            return
        self._take_utterance(utt, transcript, endpoint_at, speech_at)

    def _take_utterance(
        self, utt: Utterance, transcript: asyncio.Task[str] | None, endpoint_at: float, barge_in_at: float
    ) -> None:
        self._emit(SpeechEnded(duration_s=max(0.0, utt.last_speech_at - utt.started_at)))
        self.activation.hold()  # awake (for the wake word) until the reply is over
        # One turn at a time: what the user just said supersedes a reply still running.
        previous = self._turn_task if self._turn_running() else None
        self._interrupt(barge_in_at=barge_in_at)
        held = self.speculator.take(transcript)
        if held is not None:
            # The reply started at the pause becomes this turn; it plays once `previous`
            # has finished, if the final transcript has the same words.
            assert isinstance(held.turn, Turn)
            self._turn, self._turn_task = held.turn, held.task
            held.turn.confirm(endpoint_at, transcript, previous)
            _note_turn_detection(held.turn, utt)
            return
        self._start_turn(
            TurnInput(
                transcript=transcript,
                speech_start=utt.started_at,
                speech_end=utt.last_speech_at,
                endpoint_at=endpoint_at,
            )
        )
        assert self._turn is not None
        _note_turn_detection(self._turn, utt)

    # -- turns -------------------------------------------------------------
    async def send_text(self, text: str) -> None:
        """A typed turn; returns when the reply has been spoken (or failed)."""
        text = text.strip()
        if not text:
            return
        self.stop_speaking()
        if not self.listener.ptt_active:
            self.listener.drop_utterance()  # typing supersedes a half-heard spoken question
        if self._turn_task is not None:
            await wait_for_task(self._turn_task)
        task = self._start_turn(TurnInput(text=text))
        try:
            await task
        except asyncio.CancelledError:
            # The turn was cut (stop button, barge-in, a newer turn): this call is done.
            # But when *our caller* is being cancelled (Ctrl+C, a timeout), the turn was
            # cancelled with it and has stored what was said; the caller must stop too.
            if caller_cancelled():
                raise

    def _start_held_turn(self, utt: Utterance, transcript: asyncio.Task[str]) -> SpeculativeReply:
        """A reply on the pause's transcript, nothing of it shown or played until confirmed."""
        given = TurnInput(transcript=transcript, speech_start=utt.started_at, speech_end=utt.last_speech_at)
        turn = Turn(self, self.stages, given, held=True)
        task: asyncio.Task[None] = self._spawn(self._run_turn(turn), "turn-speculative")
        return SpeculativeReply(turn, task, transcript)

    def _start_turn(self, given: TurnInput) -> asyncio.Task[None]:
        turn = Turn(self, self.stages, given)
        self._turn = turn
        task: asyncio.Task[None] = self._spawn(self._run_turn(turn), "turn")
        self._turn_task = task
        return task

    async def _run_turn(self, turn: Turn) -> None:
        try:
            await turn.run()
        finally:
            if not turn.held:  # a discarded speculative reply touches nothing
                self._after_turn()

    def _after_turn(self) -> None:
        if asyncio.current_task() is self._turn_task:
            self._turn_task = None
            self.activation.turn_ended(self.clock())
            self.speaker.park_later()
            if self.ready.is_set() and not self._closed:
                self._spawn(self._prime_next_turn(), "prime-next-turn")
        listener = self.listener
        if listener.utterance is None or listener.ptt_active:
            self.set_state(State.LISTENING if listener.ptt_active else self.rest_state())
        else:
            self.set_state(State.LISTENING)

    async def wait_capture_done(self) -> None:
        """Until the current source is exhausted (file sources end; devices do not).

        Cancelling the caller stops the waiting, not the capture."""
        await self.listener.wait_done()

    async def wait_idle(self) -> None:
        """Until no turn is running (headless drivers). Cancelling the caller stops the
        waiting, not the turn."""
        while self._turn_task is not None and not self._turn_task.done():
            await wait_for_task(self._turn_task)

    def _interrupt(self, barge_in_at: float | None = None) -> None:
        task = self._turn_task
        if task is None or task.done():
            return
        self.speaker.cut()
        if self._turn is not None:
            self._turn.interrupt_at = barge_in_at if barge_in_at is not None else self.clock()
        task.cancel()

    # -- settings & health ---------------------------------------------------
    async def apply_settings(self, new: Settings) -> list[ProviderSwitched]:
        """Switch changed stages for the next turn; a failing new provider keeps the old."""
        switch = await switch_stages(self.registry, (self.settings, self.stages), new, self._runners)
        changed = changed_kinds(self.settings, switch.settings)
        reset_endpointer = (
            "vad" in changed or "turn" in changed or switch.settings.conversation != self.settings.conversation
        )
        self.stages, self.settings = switch.stages, switch.settings
        self.activation.update(self.settings.activation)
        if self.settings.activation.mode != self.activation.mode:
            self.set_activation(self.settings.activation.mode)  # says so when it cannot
        # Apply is the user saying "try again" (often after fixing a key): providers
        # disabled for AUTH or with an open breaker get a fresh chance.
        for slot in self.stages.slots.values():
            slot.runner.reset()
        if reset_endpointer:
            self.listener.reset_endpointer()
        self.announcer.wire(self.stages)
        if self.store is not None:
            await asyncio.to_thread(self.store.save, self.settings)
        results = [self._emit(ev) for ev in switch.results]
        self._spawn(self._close_when_idle(switch.replaced), "close-replaced")
        return results

    async def reload_stage(self, kind: str) -> ProviderSwitched:
        """Rebuild one stage from the current settings (e.g. after its model was downloaded)."""
        slot = await rebuild_stage(self.registry, kind, self.settings, self._runners)
        if isinstance(slot, ProviderSwitched):
            return self._emit(slot)
        old = self.stages.slots.get(kind)
        self.stages = StageSet({**self.stages.slots, kind: slot})
        self.telemetry.set_health(kind, slot.name, 2)
        if old is not None:
            self._spawn(self._close_when_idle([old]), "close-replaced")
        return self._emit(ProviderSwitched(stage=kind, provider=slot.name, ok=True))

    async def _close_when_idle(self, slots: list[StageSlot]) -> None:
        await self.wait_idle()
        for s in slots:
            await close_slot(s)

    async def check_health(self) -> list[ProviderHealth]:
        return await check_health(self.stages, self.registry, self.errors)


__all__ = ["APOLOGY", "ProviderHealth", "Session", "SessionOptions", "SessionParts"]


def _note_turn_detection(turn: Turn, utt: Utterance) -> None:
    """What the turn detector said at the last pause, for the turn's timings and span."""
    if utt.turn_verdict is None:
        return
    probability, took_s = utt.turn_verdict
    turn.timings["turn_detect"] = took_s
    if probability is not None:
        turn.timings["turn_finished_p"] = probability  # a probability, not seconds
