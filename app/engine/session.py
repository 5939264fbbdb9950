"""The conversation engine: one object the window, the CLI and the tests all drive.

Audio path (hands-free): source frames → VAD (worker thread) → endpointer. While the
user speaks, the STT provider streams partial transcripts; when silence begins, a
speculative final transcription starts so it is usually ready when the endpoint
fires. The reply streams LLM deltas → sentence chunker → TTS → sink, each chunk as
soon as it is complete. Speech during the reply (past the echo gate) is barge-in:
playback is flushed, the turn's LLM/TTS work cancelled, the partial reply stored as
interrupted. Typed text and push-to-talk enter the same turn logic.

Everything here runs on the asyncio loop; inference happens in provider workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from app.audio.streams import AudioSink, AudioSource
from app.engine.chunking import SentenceChunker
from app.engine.echo_gate import EchoGate
from app.engine.endpointing import Endpointer, SilenceStart, SpeechEnd, SpeechResumed, SpeechStart
from app.engine.events import (
    AudioLevel,
    ErrorRaised,
    Event,
    FinalTranscript,
    Notice,
    PartialTranscript,
    ProviderSwitched,
    ReplyDelta,
    SpeechEnded,
    SpeechStarted,
    State,
    StateChanged,
    TurnFinished,
)
from app.engine.stages import (
    StageSet,
    StageSlot,
    build_all,
    build_slot,
    changed_kinds,
    close_slot,
    missing_stage_error,
    promote,
    remember_replaced_options,
    warm,
)
from app.plugin.errors import ErrorCode, VoiceError, as_voice_error
from app.plugin.provider_api import (
    SAMPLE_RATE,
    AudioChunk,
    ChatMessage,
    Health,
    HealthStatus,
    LLMProvider,
    STTProvider,
    TTSProvider,
    VADProvider,
)
from app.plugin.registry import Registry, get_registry
from app.plugin.resilience import Deadline
from app.store.history import History
from app.store.paths import AppPaths
from app.store.settings import Settings, SettingsStore
from app.telemetry import Telemetry

log = logging.getLogger(__name__)
T = TypeVar("T")

APOLOGY = "Sorry, I couldn't do that just now."
MIN_UTTERANCE_SAMPLES = SAMPLE_RATE // 4  # push-to-talk taps shorter than this are not turns
SPEAKER_IDLE_CLOSE_S = 15.0
# After the last reply sample is due, the room (and the output buffer) still carry it
# for a moment; the microphone treats that tail as our own voice too.
ECHO_TAIL_S = 0.3
ANNOUNCE_TIMEOUT_S = 10.0
DROPPED_NOTICE_EVERY_S = 30.0
#: How long closing waits for cancelled work to unwind, and for devices and providers to stop.
CLOSE_TASKS_S = 1.0
CLOSE_DEVICE_S = 1.0
CLOSE_PROVIDERS_S = 2.0
_HISTORY_NOTICE_HOOK = "on_notice"


@dataclass
class ProviderHealth:
    stage: str
    provider: str
    local: bool
    health: Health
    breaker_state: str | None = None
    error_count: int = 0
    last_error: str | None = None
    last_error_at: float | None = None


@dataclass
class _Utterance:
    """Audio of one user utterance and the STT work started on it."""

    started_at: float
    frames: list[np.ndarray] = field(default_factory=list)
    last_speech_at: float = 0.0
    partial_feed: asyncio.Queue[np.ndarray | None] | None = None
    partial_task: asyncio.Task[None] | None = None
    speculative: asyncio.Task[str] | None = None
    speculative_len: int = 0

    def audio(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, np.float32)


class _TelemetryObserver:
    """Resilience → telemetry and the UI: error counts, span events, fallback notices."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def on_error(self, stage: str, provider: str, code: str) -> None:
        self._s._count_error(stage, provider, code)

    def on_event(self, name: str, attrs: Mapping[str, Any]) -> None:
        self._s.telemetry.add_event(self._s._turn_span, name, {k: str(v) for k, v in attrs.items()})
        if name == "fallback":
            self._s._emit(Notice(message=f"{attrs.get('stage')}: {attrs.get('from')} failed "
                                         f"({attrs.get('code')}); using {attrs.get('to')}"))


class Session:
    def __init__(
        self,
        settings: Settings,
        paths: AppPaths,
        *,
        store: SettingsStore | None = None,
        registry: Registry | None = None,
        telemetry: Telemetry | None = None,
        source: AudioSource | None = None,
        sink: AudioSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.paths = paths.ensure()
        self.store = store
        self.registry = registry or get_registry()
        self.telemetry = telemetry or Telemetry(settings.telemetry)
        self.source = source
        self.sink = sink
        self.clock = clock
        self.history = History(self.paths.history_db)
        # History tells us (from whichever thread wrote) when a write starts or stops
        # failing; the user hears it once per outage. Set by name: older History
        # versions simply never call it.
        setattr(self.history, _HISTORY_NOTICE_HOOK, self._notice_from_any_thread)
        self._loop: asyncio.AbstractEventLoop | None = None
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
        self._failed_tasks: set[str] = set()  # background jobs whose failure was told
        self.state = State.IDLE
        self.stages = StageSet()
        self.hands_free = settings.conversation.hands_free
        self.muted = False
        self._listeners: list[Callable[[Event], None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._capture_task: asyncio.Task[None] | None = None
        self._capture_lock = asyncio.Lock()
        self._source_ended = False  # a file source ran out; never replay it
        self._sink_open = False
        self._sink_lock = asyncio.Lock()
        self._park_task: asyncio.Task[None] | None = None
        self._parking = False
        self._turn_task: asyncio.Task[None] | None = None
        self._utterance: _Utterance | None = None
        self._ptt_active = False
        self._vad_pool = ThreadPoolExecutor(1, thread_name_prefix="voxdesk-vad")
        self._echo = EchoGate()
        self._skills: LLMProvider | None = None
        self._errors: dict[tuple[str, str], tuple[int, str, float]] = {}
        self._closed = False
        self._interrupt_at: float | None = None
        self._turn_span: Any = None
        self._ref_cursor = 0.0
        self._last_playing_at = float("-inf")
        self._observer = _TelemetryObserver(self)
        self._endpointer = self._make_endpointer()
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

    def _emit(self, event: Event) -> None:
        for cb in list(self._listeners):
            try:
                cb(event)
            except Exception:  # a broken listener must not break the turn
                log.exception("event listener failed")

    def _set_state(self, state: State, turn_id: str | None = None) -> None:
        if state != self.state:
            self.state = state
            self._emit(StateChanged(state=state, turn_id=turn_id))

    @property
    def _out(self) -> AudioSink | None:
        """The speaker, when it is open (it may be parked while idle or missing)."""
        return self.sink if self._sink_open else None

    def _mic_live(self) -> bool:
        return self._capture_task is not None and not self._capture_task.done()

    @property
    def microphone_live(self) -> bool:
        """The microphone stream is open and feeding the engine."""
        return self._mic_live()

    def _rest_state(self) -> State:
        # LISTENING only while the microphone really runs (it may be missing or broken).
        return State.LISTENING if (self._mic_live() and self.hands_free and not self.muted) else State.IDLE

    def _playing_now(self, at: float) -> bool:
        """Is our own voice (a reply, an apology, a timer) coming out of the speaker at `at`?

        Asks the sink (a file written faster than real time is never "playing"), and
        keeps a short tail after it stops for the room and the output buffer."""
        out = self._out
        if out is not None and out.is_playing:
            self._last_playing_at = max(self._last_playing_at, at, self.clock())
            return True
        return out is not None and at < self._last_playing_at + ECHO_TAIL_S

    def _spawn(self, coro: Awaitable[T], name: str) -> asyncio.Task[T]:
        task: asyncio.Task[T] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        """A background job that failed is logged and told once per kind — never left
        for asyncio to print as "Task exception was never retrieved"."""
        if task.cancelled():
            return
        exc = task.exception()  # retrieved here, whoever else awaits it
        if exc is None:
            return
        name = task.get_name()
        if name in ("stt-final", "stt-speculative"):
            log.debug("transcription %s failed: %s", name, exc)  # its turn reports it
            return
        log.error("background task %s failed: %s", name, exc, exc_info=exc)
        if name not in self._failed_tasks:
            self._failed_tasks.add(name)
            what = " ".join(str(exc).split()) or type(exc).__name__
            self._emit(Notice(message=f"Something went wrong in the background ({name}: {what}); "
                                      "the conversation goes on — see the log for details."))

    def _notice_from_any_thread(self, message: str) -> None:
        """Emit a Notice from the loop's thread or any other (history writes run in workers)."""
        loop = self._loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            self._emit(Notice(message=message))
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
            loop.call_soon_threadsafe(self._emit, Notice(message=message))

    def _count_error(self, stage: str, provider: str, code: str, text: str | None = None) -> None:
        self.telemetry.record_error(stage, provider, code)
        count = self._errors.get((stage, provider), (0, "", 0.0))[0] + 1
        self._errors[(stage, provider)] = (count, text or code, time.time())

    def _report(self, stage: str, provider: str, err: VoiceError, turn_id: str | None = None,
                *, counted: bool = False) -> None:
        """Tell the user (ErrorRaised) and count it, unless resilience already counted it."""
        if not counted:
            self._count_error(stage, provider, err.code.value, str(err))
        else:
            count = self._errors.get((stage, provider), (1, "", 0.0))[0]
            self._errors[(stage, provider)] = (count, str(err), time.time())
        self._emit(ErrorRaised(stage=stage, provider=provider, code=err.code.value,
                               message=err.message, turn_id=turn_id))

    # -- life cycle --------------------------------------------------------
    async def start(self) -> None:
        """Build providers now (cheap); load models in the background."""
        self._loop = asyncio.get_running_loop()
        self.stages, failures = build_all(self.registry, self.settings, self._observer)
        for kind, err in failures.items():
            self._report(kind, self.settings.stage(kind).provider, err)
        self._endpointer = self._make_endpointer()
        # The session owns the skills that answer first, so their timers survive a
        # switch of the LLM in Settings.
        if self.registry.is_registered("llm", "skills"):
            llm = self.settings.llm
            opts = llm.options if llm.provider == "skills" else {}
            with contextlib.suppress(VoiceError):
                self._skills = self.registry.create("llm", "skills", opts)  # type: ignore[assignment]
        self._wire_skills_timers()
        self._spawn(self._warm_all(), "warmup")
        if self.sink is not None:
            await self._start_sink(self.sink)
        await self._sync_capture()
        if self.history.notice:
            self._emit(Notice(message=self.history.notice))
        self._set_state(self._rest_state())

    def _wire_skills_timers(self) -> None:
        """Timers set by the skills responder speak when they fire."""
        for prov in (self._skills, self.stages.slots.get("llm") and self.stages["llm"].provider):
            if prov is not None and hasattr(prov, "on_timer"):
                prov.on_timer = self._announce

    async def _announce(self, text: str) -> None:
        self._emit(Notice(message=text))
        if self.state in (State.IDLE, State.LISTENING) and "tts" in self.stages.slots:
            await self._ensure_sink()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._speak_text(self.stages["tts"], text), ANNOUNCE_TIMEOUT_S)

    async def _warm_all(self) -> None:
        pending = [s for s in self.stages.slots.values()]
        if pending:
            self._emit(Notice(message="Loading speech models…", transient=True))
        results = await asyncio.gather(*(warm(s) for s in pending), return_exceptions=True)
        for slot, res in zip(pending, results, strict=True):
            if isinstance(res, BaseException):
                self._report(slot.kind, slot.name, as_voice_error(f"{slot.kind}.{slot.name}", res))
                await self._use_fallback(slot)
            self.telemetry.set_health(slot.kind, slot.name, 0 if isinstance(res, BaseException) else 2)
        if pending:
            self._emit(Notice(message="Ready.", transient=True))
        self.ready.set()

    async def _use_fallback(self, slot: StageSlot) -> None:
        """The chosen provider cannot load here: run on the first fallback that can."""
        for i, (name, provider) in enumerate(slot.chain[1:], start=1):
            try:
                await provider.warmup()
            except Exception as exc:
                self._report(slot.kind, name, as_voice_error(f"{slot.kind}.{name}", exc))
                continue
            if self.stages.slots.get(slot.kind) is slot:
                self.stages = StageSet({**self.stages.slots, slot.kind: promote(slot, i, self._observer)})
            self._emit(Notice(message=f"{slot.kind}: {slot.name} is not available here; using {name}"))
            return

    async def _start_sink(self, sink: AudioSink) -> None:
        self._wire_device(sink, "output")
        try:
            await sink.start()
        except VoiceError as exc:  # no speaker: replies still show as text; retried next turn
            self._report("audio", "output", exc)
            return
        self._sink_open = True
        self._park_sink_later()

    async def _ensure_sink(self) -> None:
        """Re-open a speaker that was closed while idle (before the reply needs it)."""
        if self._park_task is not None and not self._parking:
            self._park_task.cancel()  # still only waiting: just call it off
            self._park_task = None
        async with self._sink_lock:  # a park under way finishes first, then we re-open
            if self.sink is not None and not self._sink_open:
                await self._start_sink(self.sink)

    def _park_sink_later(self) -> None:
        """Close an idle speaker after a while: an open output stream costs CPU even when silent."""
        if self.sink is None or not self.sink.closes_when_idle or self._closed:
            return
        if self._park_task is not None:
            self._park_task.cancel()
        self._park_task = self._spawn(self._park_sink(), "park-speaker")

    async def _park_sink(self) -> None:
        await asyncio.sleep(SPEAKER_IDLE_CLOSE_S)
        sink = self.sink
        busy = self._turn_task is not None or self._utterance is not None
        if sink is None or busy or sink.is_playing:
            return
        self._parking = True
        try:
            async with self._sink_lock:
                self._sink_open = False
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sink.stop(), 2.0)
        finally:
            self._parking = False

    def _wire_device(self, dev: object, what: str) -> None:
        """Device faults and fallbacks become events the user sees (called on the loop)."""
        if getattr(dev, "on_error", "absent") is None:
            dev.on_error = lambda err: self._report("audio", what, as_voice_error(f"audio.{what}", err))  # type: ignore[attr-defined]
        if getattr(dev, "on_notice", "absent") is None:
            dev.on_notice = lambda msg: self._emit(Notice(message=msg))  # type: ignore[attr-defined]

    async def _start_capture(self) -> None:
        assert self.source is not None
        self._wire_device(self.source, "input")
        try:
            await self.source.start()
        except VoiceError as exc:
            self._report("audio", "input", exc)
            return
        self._capture_task = self._spawn(self._capture_loop(self.source), "capture")

    def _want_capture(self) -> bool:
        return (self.source is not None and not self._source_ended and not self.muted
                and (self.hands_free or self._ptt_active))

    async def _sync_capture(self) -> None:
        """Keep the microphone open only while something listens to it.

        With hands-free off (and no push-to-talk) or muted, the input stream is closed:
        an idle window then costs next to nothing, and the OS microphone indicator is off."""
        async with self._capture_lock:
            running = self._capture_task is not None and not self._capture_task.done()
            if self._want_capture() and not running:
                await self._start_capture()
            elif not self._want_capture() and running and self.source is not None:
                assert self._capture_task is not None
                self._capture_task.cancel()
                await asyncio.gather(self._capture_task, return_exceptions=True)
                self._capture_task = None
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.source.stop(), 2.0)
        if self._turn_task is None and self._utterance is None and not self._ptt_active:
            self._set_state(self._rest_state())

    async def set_audio(self, source: AudioSource | None, sink: AudioSink | None) -> None:
        """Swap devices (settings change, device recovery) without a restart."""
        async with self._capture_lock:
            if self._capture_task is not None:
                self._capture_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._capture_task
                self._capture_task = None
        old_source, old_sink = self.source, self.sink
        if old_source is not None and old_source is not source:
            await old_source.stop()
        if old_sink is not None and old_sink is not sink:
            await old_sink.stop()
            self._sink_open = False
        self.source, self.sink = source, sink
        self._source_ended = False
        if sink is not None and sink is not old_sink:
            await self._start_sink(sink)
        await self._sync_capture()
        self._set_state(self._rest_state())

    async def aclose(self) -> None:
        """Stop audio, cancel work, close providers, flush telemetry — bounded in time.

        Providers stop and join their own threads and processes (synthesis, decoding,
        model loading) in their `aclose`, each within a bound, so nothing of ours is
        still running native code when the process exits."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=CLOSE_TASKS_S)
            if pending:
                log.warning("still running after close: %s", sorted(t.get_name() for t in pending))
        for dev in (self.source, self.sink):
            if dev is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(dev.stop(), CLOSE_DEVICE_S)
        closing: list[Awaitable[Any]] = [close_slot(s) for s in self.stages.slots.values()]
        if self._skills is not None:
            closing.append(self._skills.aclose())
        await asyncio.gather(*closing, return_exceptions=True)
        self._vad_pool.shutdown(wait=False, cancel_futures=True)
        # A VAD frame in flight finishes within milliseconds; wait for it (bounded).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.to_thread(self._vad_pool.shutdown, True), CLOSE_DEVICE_S)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.history.close)
        self.telemetry.shutdown(0.5)
        self._set_state(State.IDLE)

    # -- controls ----------------------------------------------------------
    def set_hands_free(self, on: bool) -> None:
        self.hands_free = on
        if not on and self._utterance is not None and not self._ptt_active:
            self._drop_utterance()
        self._spawn(self._sync_capture(), "sync-capture")
        self._set_state(self._rest_state() if self._turn_task is None else self.state)

    def set_muted(self, on: bool) -> None:
        self.muted = on
        if on:
            self._drop_utterance()
        self._spawn(self._sync_capture(), "sync-capture")
        if self._turn_task is None:
            self._set_state(self._rest_state())

    def stop_speaking(self) -> None:
        """The stop button: end the current reply now."""
        if self._turn_task is not None and not self._turn_task.done():
            self._interrupt()

    def push_to_talk(self, pressed: bool) -> None:
        now = self.clock()
        if pressed and not self._ptt_active:
            self._ptt_active = True
            self.stop_speaking()
            self._begin_utterance(now, [])
            self._set_state(State.LISTENING)
            self._spawn(self._sync_capture(), "sync-capture")
        elif not pressed and self._ptt_active:
            self._ptt_active = False
            utt = self._utterance
            if utt is not None:
                utt.last_speech_at = now
                self._end_utterance(now)
            self._spawn(self._sync_capture(), "sync-capture")

    async def new_conversation(self) -> None:
        await asyncio.to_thread(self.history.new_conversation)

    # -- capture & endpointing ----------------------------------------------
    def _make_endpointer(self) -> Endpointer:
        c = self.settings.conversation
        vad = self.stages.slots.get("vad")
        # Threshold and hangover are the VAD provider's own settings (they depend on its scores).
        threshold = float(getattr(vad.provider, "threshold", 0.5)) if vad else 0.5
        hangover = int(getattr(vad.provider, "hangover_ms", 300)) if vad else 300
        return Endpointer(
            threshold=threshold, min_speech_ms=c.min_speech_ms, hangover_ms=hangover,
            end_silence_ms=c.endpoint_silence_ms, pre_roll_ms=300,
        )

    async def _capture_loop(self, source: AudioSource) -> None:
        loop = asyncio.get_running_loop()
        level_every = 2  # ~15 level updates per second is plenty for a meter
        n = 0
        dropped_seen, told_at = getattr(source, "dropped_frames", 0), float("-inf")
        async for captured_at, frame in source.frames():
            n += 1
            if n % level_every == 0:
                self._emit_level(frame)
            if n % 32 == 0:  # about once a second: did the machine fall behind the microphone?
                dropped = getattr(source, "dropped_frames", 0)
                if dropped > dropped_seen and captured_at - told_at > DROPPED_NOTICE_EVERY_S:
                    told_at = captured_at
                    self._emit(Notice(message=f"The computer is too busy: {dropped - dropped_seen} moments "
                                              "of microphone audio were lost — close other programs or "
                                              "choose lighter models in Settings."))
                    log.warning("capture dropped %d frames", dropped - dropped_seen)
                dropped_seen = dropped
            if self.muted:
                continue
            if self._ptt_active:
                if self._utterance is not None:
                    self._feed(self._utterance, frame)
                continue
            if not self.hands_free:
                continue
            # A reply is "ours" for its whole turn (the speaker may run dry between two
            # sentences); apologies and timers count while they play, plus a short tail.
            speaking = (self._turn_task is not None and self.state == State.SPEAKING) \
                or self._playing_now(captured_at)
            if speaking and self.settings.conversation.half_duplex:
                continue  # speakers: never hear ourselves (replies, apologies, timers alike)
            vad = self.stages.slots.get("vad")
            if vad is None:
                continue
            try:
                prob = await loop.run_in_executor(
                    self._vad_pool, vad.provider.speech_probability, frame  # type: ignore[attr-defined]
                )
            except Exception as exc:
                self._report("vad", vad.name, as_voice_error("vad", exc))
                continue
            # While we speak, a gap in our own timeline (the device or a busy machine running
            # late) is not silence: the gate then compares against what played recently.
            if speaking and not self._echo.is_user_speech(frame, captured_at, still_playing=True):
                prob = 0.0  # our own voice through the speakers
            started = False
            for ev in self._endpointer.process(frame, prob):
                started = started or isinstance(ev, SpeechStart)
                self._on_endpoint(ev, captured_at)
            if self._utterance is not None and not started:
                self._feed(self._utterance, frame)
        self._source_ended = True
        # A file (or a device) ended mid-utterance: that is the end of the turn.
        if self._utterance is not None and not self._ptt_active:
            if not self._utterance.last_speech_at:
                self._utterance.last_speech_at = self.clock()
            self._end_utterance(self.clock())
        self._endpointer.reset()

    def _emit_level(self, frame: np.ndarray) -> None:
        rms = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64)))) if len(frame) else 0.0
        peak = float(np.max(np.abs(frame))) if len(frame) else 0.0
        self._emit(AudioLevel(rms_dbfs=20 * np.log10(max(rms, 1e-6)), peak_dbfs=20 * np.log10(max(peak, 1e-6))))

    def _on_endpoint(self, ev: object, now: float) -> None:
        if isinstance(ev, SpeechStart):
            if self._turn_task is not None and not self._turn_task.done():
                if not self.settings.conversation.barge_in:
                    return
                self._interrupt(barge_in_at=now)
            self._begin_utterance(now - len(ev.pre_roll) / SAMPLE_RATE, [ev.pre_roll])
        elif isinstance(ev, SilenceStart) and self._utterance is not None:
            self._utterance.last_speech_at = now - ev.silent_s
            self._start_speculative(self._utterance)
        elif isinstance(ev, SpeechResumed) and self._utterance is not None:
            self._cancel_speculative(self._utterance)
            self._start_partials(self._utterance)
        elif isinstance(ev, SpeechEnd) and self._utterance is not None:
            self._end_utterance(now)

    def _begin_utterance(self, started_at: float, frames: list[np.ndarray]) -> None:
        self._drop_utterance()
        utt = _Utterance(started_at=started_at, frames=[f for f in frames if len(f)])
        self._start_partials(utt)
        self._utterance = utt
        if not self._sink_open:
            self._spawn(self._ensure_sink(), "open-speaker")
        self._emit(SpeechStarted())
        self._set_state(State.LISTENING)

    def _start_partials(self, utt: _Utterance) -> None:
        """Stream the utterance so far, then every new frame, into the STT's partials."""
        stt = self.stages.slots.get("stt")
        if stt is None or utt.partial_task is not None:
            return
        utt.partial_feed = asyncio.Queue()
        for f in utt.frames:
            utt.partial_feed.put_nowait(f)
        utt.partial_task = self._spawn(self._partials(stt, utt.partial_feed), "stt-partials")

    def _feed(self, utt: _Utterance, frame: np.ndarray) -> None:
        utt.frames.append(frame)
        if utt.partial_feed is not None:
            utt.partial_feed.put_nowait(frame)

    async def _partials(self, slot: StageSlot, feed: asyncio.Queue[np.ndarray | None]) -> None:
        async def audio() -> AsyncIterator[np.ndarray]:
            while (item := await feed.get()) is not None:
                yield item

        stt: STTProvider = slot.provider  # type: ignore[assignment]
        try:
            async for tr in stt.stream(audio(), language=self.settings.conversation.language):
                if not tr.is_final and tr.text.strip():
                    self._emit(PartialTranscript(text=tr.text.strip()))
        except VoiceError as exc:
            log.debug("partial transcription failed: %s", exc)

    def _stop_partials(self, utt: _Utterance) -> None:
        if utt.partial_task is not None:
            utt.partial_task.cancel()
            utt.partial_task = None
            utt.partial_feed = None

    def _start_speculative(self, utt: _Utterance) -> None:
        """Silence began: transcribe now so the text is ready when the endpoint fires."""
        self._cancel_speculative(utt)
        self._stop_partials(utt)  # free the CPU for the final decode
        stt = self.stages.slots.get("stt")
        if stt is None:
            return
        utt.speculative_len = len(utt.frames)
        audio = utt.audio()
        utt.speculative = self._spawn(self._transcribe(stt, audio), "stt-speculative")

    def _cancel_speculative(self, utt: _Utterance) -> None:
        if utt.speculative is not None:
            utt.speculative.cancel()
            utt.speculative = None

    def _drop_utterance(self) -> None:
        utt, self._utterance = self._utterance, None
        if utt is not None:
            self._stop_partials(utt)
            self._cancel_speculative(utt)

    def _end_utterance(self, now: float) -> None:
        utt, self._utterance = self._utterance, None
        if utt is None:
            return
        self._stop_partials(utt)
        if sum(len(f) for f in utt.frames) < MIN_UTTERANCE_SAMPLES:
            self._cancel_speculative(utt)
            self._emit(Notice(message="That was too short to hear — hold the talk button while you speak."))
            self._set_state(self._rest_state())
            return
        duration = max(0.0, utt.last_speech_at - utt.started_at)
        self._emit(SpeechEnded(duration_s=duration))
        # One turn at a time: what the user just said supersedes a reply still running.
        self._interrupt(barge_in_at=now)
        stt = self.stages.slots.get("stt")
        transcript: asyncio.Task[str] | None = utt.speculative
        if transcript is None and stt is not None:
            transcript = self._spawn(self._transcribe(stt, utt.audio()), "stt-final")
        self._turn_task = self._spawn(
            self._turn(transcript=transcript, text=None, speech_end=utt.last_speech_at, endpoint_at=now,
                       speech_start=utt.started_at),
            "turn",
        )

    async def _transcribe(self, slot: StageSlot, audio: np.ndarray) -> str:
        lang = self.settings.conversation.language
        timeout = self.settings.conversation.first_output_deadline_s
        try:
            return await slot.runner.call(
                lambda p: p.transcribe(audio, language=lang), timeout=timeout  # type: ignore[attr-defined]
            )
        except VoiceError as exc:
            exc.counted = True  # type: ignore[attr-defined]
            raise

    # -- turns -------------------------------------------------------------
    async def send_text(self, text: str) -> None:
        """A typed turn; returns when the reply has been spoken (or failed)."""
        text = text.strip()
        if not text:
            return
        self.stop_speaking()
        if self._utterance is not None and not self._ptt_active:
            self._drop_utterance()  # typing supersedes a half-heard spoken question
        if self._turn_task is not None:
            await _wait_for_task(self._turn_task)
        task = self._spawn(self._turn(transcript=None, text=text, speech_end=None, endpoint_at=None,
                                      speech_start=None), "turn")
        self._turn_task = task
        try:
            await task
        except asyncio.CancelledError:
            # The turn was cut (stop button, barge-in, a newer turn): this call is done.
            # But when *our caller* is being cancelled (Ctrl+C, a timeout), the turn was
            # cancelled with it and has stored what was said; the caller must stop too.
            if _caller_cancelled():
                raise

    async def wait_capture_done(self) -> None:
        """Until the current source is exhausted (file sources end; devices do not).

        Cancelling the caller stops the waiting, not the capture."""
        if self._capture_task is not None:
            await _wait_for_task(self._capture_task)

    async def wait_idle(self) -> None:
        """Until no turn is running (headless drivers). Cancelling the caller stops the
        waiting, not the turn."""
        while self._turn_task is not None and not self._turn_task.done():
            await _wait_for_task(self._turn_task)

    def _interrupt(self, barge_in_at: float | None = None) -> None:
        task = self._turn_task
        if task is None or task.done():
            return
        if self._out is not None:
            self._out.flush()
        self._ref_cursor = 0.0
        self._echo.reset()
        self._interrupt_at = barge_in_at if barge_in_at is not None else self.clock()
        task.cancel()

    async def _turn(self, *, transcript: asyncio.Task[str] | None, text: str | None,
                    speech_end: float | None, endpoint_at: float | None,
                    speech_start: float | None) -> None:
        stages = self.stages  # this turn keeps these providers even if settings change
        turn_id = uuid.uuid4().hex[:12]
        span = self.telemetry.start_turn(turn_id)
        self._turn_span = span
        timings: dict[str, float] = {}
        reply: list[str] = []
        # (when it starts playing, sentence): what the user heard if they talk over the reply
        heard: list[tuple[float, str]] | None = [] if (self._out is not None and "tts" in stages.slots) else None
        interrupted = False
        error: VoiceError | None = None
        v2v: float | None = None
        db_turn: int | None = None
        providers = stages.providers_used()
        self._interrupt_at = None
        try:
            if speech_start is not None and speech_end is not None and endpoint_at is not None:
                timings["vad_endpoint"] = endpoint_at - speech_end
                self.telemetry.record_stage(span, "vad", providers.get("vad", "?"), speech_start, endpoint_at)
            if transcript is not None:
                self._set_state(State.THINKING, turn_id)
                t0 = self.clock()
                try:
                    text = (await transcript).strip()
                except VoiceError as exc:
                    raise VoiceError(f"stt.{providers.get('stt')}", exc.code, exc.message) from exc
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    raise as_voice_error(f"stt.{providers.get('stt')}", exc) from exc
                done = self.clock()
                # Speculative decoding may have finished before the endpoint: count only the wait.
                timings["stt"] = max(0.0, done - max(t0, endpoint_at or t0))
                self.telemetry.record_stage(span, "stt", providers.get("stt", "?"), t0, done)
                if not text:
                    raise VoiceError(f"stt.{providers.get('stt')}", ErrorCode.PROVIDER_ERROR,
                                     "I didn't catch that — please say it again")
                self._emit(FinalTranscript(text=text, turn_id=turn_id))
            elif transcript is None and speech_end is not None:
                raise missing_stage_error("stt", self.settings)
            assert text is not None
            if text is not None and transcript is None:
                self._emit(FinalTranscript(text=text, turn_id=turn_id))
            await self._ensure_sink()
            db_turn = await asyncio.to_thread(self.history.begin_turn, text)
            self._set_state(State.THINKING, turn_id)
            await self._reply(stages, span, turn_id, text, timings, reply, providers, heard, db_turn)
            out = self._out
            if out is not None and speech_end is not None and out.first_sample_time is not None:
                v2v = out.first_sample_time - speech_end
        except asyncio.CancelledError:
            interrupted = True
            if transcript is not None and not transcript.done():
                transcript.cancel()
            if self._interrupt_at is not None:
                timings["barge_in_stop"] = self.clock() - self._interrupt_at
            raise
        except VoiceError as exc:
            error = exc
        except Exception as exc:  # a provider bug must not kill the session
            log.exception("turn failed")
            error = as_voice_error("turn", exc)
        finally:
            if interrupted and heard is not None:
                # Keep what the user heard, not what was generated and queued.
                cut = self._interrupt_at if self._interrupt_at is not None else self.clock()
                reply = [" ".join(text for at, text in heard if at <= cut)]
            await self._finish_turn(span, turn_id, text, reply, interrupted, error, timings, v2v,
                                    providers, db_turn, stages)

    async def _finish_turn(self, span: Any, turn_id: str, text: str | None, reply: list[str],
                           interrupted: bool, error: VoiceError | None, timings: dict[str, float],
                           v2v: float | None, providers: dict[str, str], db_turn: int | None,
                           stages: StageSet) -> None:
        reply_text = "".join(reply).strip()
        if error is not None:
            stage = error.op.split(".")[0] if error.op.split(".")[0] in stages.slots else "turn"
            self._report(stage, providers.get(stage, stage), error, turn_id,
                         counted=getattr(error, "counted", False))
            if not interrupted:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await self._apologise(stages, reply_text, error)
        if db_turn is not None:
            cut = interrupted or (error is not None and bool(reply_text))  # cut mid-stream: what was said
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.to_thread(
                    self.history.finish_turn, db_turn, reply_text, cut, timings, providers,
                    str(error) if error else None, v2v * 1000 if v2v is not None else None,
                ))
        self.telemetry.end_turn(span, timings, v2v, interrupted=interrupted,
                                error=str(error) if error else None, user_text=text, reply_text=reply_text)
        self._emit(TurnFinished(
            turn_id=turn_id, user_text=text or "", reply_text=reply_text, interrupted=interrupted,
            timings=dict(timings), voice_to_voice_s=v2v, providers=providers,
            error=str(error) if error else None,
        ))
        if asyncio.current_task() is self._turn_task:
            self._turn_task = None
            self._park_sink_later()
        if self._utterance is None or self._ptt_active:
            self._set_state(self._rest_state() if not self._ptt_active else State.LISTENING)
        else:
            self._set_state(State.LISTENING)

    async def _apologise(self, stages: StageSet, said: str, error: VoiceError) -> None:
        if said or "tts" not in stages.slots or error.op.startswith("tts"):
            return  # never restart a sentence; the error event says the rest
        text = "Sorry, I didn't catch that." if error.op.startswith("stt") else APOLOGY
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._speak_text(stages["tts"], text), 10)

    async def _speak_text(self, slot: StageSlot, text: str) -> None:
        async for chunk in self._tts_stream(slot, text, []):
            self._play(chunk)
        if self._out is not None:
            await self._out.drain()

    def _tts_stream(self, slot: StageSlot, text: str, used: list[str]) -> AsyncIterator[AudioChunk]:
        """One sentence through the stage runner: first-output and idle deadlines, retries,
        and fallback to the next voice before any of this sentence's audio was played."""
        timeout = self.settings.conversation.first_output_deadline_s

        async def synth(p: Any) -> AsyncIterator[AudioChunk]:
            used.append(next(n for n, prov in slot.chain if prov is p))
            tts: TTSProvider = p
            got = False
            async for chunk in tts.synthesize(text):
                if len(chunk.samples):
                    got = True
                    yield chunk
            if not got and any(ch.isalnum() for ch in text):
                raise VoiceError(f"tts.{used[-1]}", ErrorCode.PROVIDER_ERROR,
                                 "the voice produced no audio — pick another voice in Settings")

        return slot.runner.stream(synth, first_output_timeout=timeout, idle_timeout=timeout)

    def _play(self, chunk: AudioChunk) -> float:
        """Queue a chunk; returns when it should start to sound (on the loop's clock)."""
        out = self._out
        if out is None or not len(chunk.samples):
            return self.clock()
        out.play(chunk)
        # Where this chunk lands on the playback timeline: after what is queued, or now
        # if the device has run dry. The echo gate compares the mic against it.
        start = max(self._ref_cursor, self.clock())
        self._echo.add_reference(start, chunk.samples, chunk.sample_rate)
        self._ref_cursor = start + chunk.duration_s
        return start

    async def _context_messages(self, text: str) -> list[ChatMessage]:
        conv = self.settings.conversation
        history = await asyncio.to_thread(
            lambda: self.history.recent_messages(conv.history_turns, budget_chars=6000)
        )
        return [ChatMessage("system", conv.system_prompt), *history, ChatMessage("user", text)]

    async def _reply(self, stages: StageSet, span: Any, turn_id: str, text: str, timings: dict[str, float],
                     reply: list[str], providers: dict[str, str], heard: list[tuple[float, str]] | None,
                     db_turn: int | None) -> None:
        if "llm" not in stages.slots:
            raise missing_stage_error("llm", self.settings)
        chunks: asyncio.Queue[str | None] = asyncio.Queue()
        t_start = self.clock()
        # The whole-turn deadline bounds the reply's generation; speaking a long answer
        # is not cut (each sentence has its own first-output and idle limits).
        deadline = Deadline(self.settings.conversation.turn_deadline_s)
        if self._out is not None:
            self._out.mark()
        self._echo.reset()

        async def produce() -> None:
            chunker = SentenceChunker()
            first = True
            try:
                async for delta in self._llm_stream(stages, text, providers, deadline):
                    if first:
                        timings["llm_first_token"] = self.clock() - t_start
                        first = False
                    reply.append(delta)
                    self._emit(ReplyDelta(text=delta, turn_id=turn_id))
                    for c in chunker.push(delta):
                        chunks.put_nowait(c)
                for c in chunker.flush():
                    chunks.put_nowait(c)
                if not "".join(reply).strip():
                    raise VoiceError(f"llm.{providers.get('llm')}", ErrorCode.PROVIDER_ERROR,
                                     "the assistant returned an empty reply — try again or pick another "
                                     "model in Settings")
            finally:
                chunks.put_nowait(None)
                end = self.clock()
                timings["llm"] = end - t_start
                self.telemetry.record_stage(span, "llm", providers.get("llm", "?"), t_start, end,
                                            self._gen_ai_attributes(stages, providers.get("llm", "?")))

        async def speak() -> None:
            slot = stages.slots.get("tts")
            tts = slot.provider if slot else None
            first_audio = True
            tts_start: float | None = None
            used: list[str] = []
            while (c := await chunks.get()) is not None:
                if slot is None:
                    continue
                tts_start = tts_start or self.clock()
                sentence_started = False
                try:
                    async for audio in self._tts_stream(slot, c, used):
                        if first_audio:
                            timings["tts_first_audio"] = self.clock() - t_start
                            first_audio = False
                            self._set_state(State.SPEAKING, turn_id)
                        at = self._play(audio)
                        if not sentence_started and heard is not None:
                            sentence_started = True
                            heard.append((at, c.strip()))
                            self._checkpoint(db_turn, " ".join(text for _, text in heard))
                    if used:
                        providers["tts"] = used[-1]
                except VoiceError as exc:
                    err = VoiceError(f"tts.{used[-1] if used else providers.get('tts')}", exc.code, exc.message)
                    err.counted = True  # type: ignore[attr-defined]
                    raise err from exc
            if tts_start is not None:
                end = self.clock()
                timings["tts"] = end - tts_start
                self.telemetry.record_stage(span, "tts", providers.get("tts", "?"), tts_start, end)
            if tts is None and reply:
                raise missing_stage_error("tts", self.settings)
            out = self._out
            if out is not None:
                p0 = self.clock()
                await out.drain()
                fst = out.first_sample_time
                if fst is not None:
                    timings["playback_start"] = fst - t_start
                self.telemetry.record_stage(span, "playback", "sink", fst or p0, self.clock())

        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(produce())
                tg.create_task(speak())
        except BaseExceptionGroup as group:
            # Report the stage's own error, not the group wrapper.
            errors = list(group.exceptions)
            raise next((e for e in errors if isinstance(e, VoiceError)), errors[0]) from None

    def _checkpoint(self, db_turn: int | None, spoken: str) -> None:
        """Save the reply queued for speaking so far: a crash or kill mid-reply keeps it."""
        if db_turn is not None:
            self._spawn(asyncio.to_thread(self.history.checkpoint_reply, db_turn, spoken),
                        "history-checkpoint")

    def _gen_ai_attributes(self, stages: StageSet, name: str) -> dict[str, Any]:
        """OpenTelemetry gen_ai.* attributes, with token counts where the provider has them."""
        attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.system": name}
        slot = stages.slots.get("llm")
        provider = next((p for n, p in slot.chain if n == name), None) if slot else None
        stats = getattr(provider, "last_stats", None)
        if stats is not None:
            attrs["gen_ai.usage.input_tokens"] = int(getattr(stats, "prompt_tokens", 0))
            attrs["gen_ai.usage.output_tokens"] = int(getattr(stats, "completion_tokens", 0))
        model = getattr(getattr(provider, "config", None), "model", None)
        if isinstance(model, str) and model:
            attrs["gen_ai.request.model"] = model
        return attrs

    async def _llm_stream(self, stages: StageSet, text: str, providers: dict[str, str],
                          deadline: Deadline) -> AsyncIterator[str]:
        if self._skills is not None and self.settings.conversation.skills_first:
            answer = getattr(self._skills, "try_answer", lambda _t: None)(text)
            if answer:
                providers["llm"] = "skills"
                yield answer
                return
        messages = await self._context_messages(text)
        slot = stages["llm"]
        conv = self.settings.conversation
        used: list[str] = []

        def chat(p: Any) -> AsyncIterator[str]:
            used.append(next(n for n, prov in slot.chain if prov is p))
            return p.chat(messages)

        try:
            async for delta in slot.runner.stream(chat, first_output_timeout=conv.first_output_deadline_s,
                                                  idle_timeout=conv.first_output_deadline_s, deadline=deadline):
                if used:
                    providers["llm"] = used[-1]
                yield delta
        except VoiceError as exc:
            exc.counted = True  # type: ignore[attr-defined]
            raise

    # -- settings & health ---------------------------------------------------
    async def apply_settings(self, new: Settings) -> list[ProviderSwitched]:
        """Switch changed stages for the next turn; a failing new provider keeps the old."""
        results: list[ProviderSwitched] = []
        staged = dict(self.stages.slots)
        replaced: list[StageSlot] = []
        new = remember_replaced_options(self.settings, new)
        for kind in changed_kinds(self.settings, new):
            cfg = new.stage(kind)
            try:
                slot = build_slot(self.registry, kind, cfg, self._observer)
                await warm(slot)
            except Exception as exc:
                err = as_voice_error(f"{kind}.{cfg.provider}", exc)
                results.append(ProviderSwitched(stage=kind, provider=cfg.provider, ok=False,
                                                message=f"{err} — kept {self.settings.stage(kind).provider}"))
                new = new.model_copy(update={kind: self.settings.stage(kind)})
                continue
            if kind in staged:
                replaced.append(staged[kind])
            staged[kind] = slot
            results.append(ProviderSwitched(stage=kind, provider=cfg.provider, ok=True))
        self.stages = StageSet(staged)
        vad_changed = "vad" in changed_kinds(self.settings, new)
        conv_changed = new.conversation != self.settings.conversation
        self.settings = new
        # Apply is the user saying "try again" (often after fixing a key): providers
        # disabled for AUTH or with an open breaker get a fresh chance.
        for slot in self.stages.slots.values():
            slot.runner.reset()
        if conv_changed or vad_changed:
            self._endpointer = self._make_endpointer()
        self._wire_skills_timers()
        if self.store is not None:
            await asyncio.to_thread(self.store.save, new)
        for ev in results:
            self._emit(ev)
        self._spawn(self._close_when_idle(replaced), "close-replaced")
        return results

    async def reload_stage(self, kind: str) -> ProviderSwitched:
        """Rebuild one stage from the current settings (e.g. after its model was downloaded)."""
        cfg = self.settings.stage(kind)
        try:
            slot = build_slot(self.registry, kind, cfg, self._observer)
            await warm(slot)
        except Exception as exc:
            err = as_voice_error(f"{kind}.{cfg.provider}", exc)
            result = ProviderSwitched(stage=kind, provider=cfg.provider, ok=False, message=str(err))
        else:
            old = self.stages.slots.get(kind)
            self.stages = StageSet({**self.stages.slots, kind: slot})
            self.telemetry.set_health(kind, cfg.provider, 2)
            if old is not None:
                self._spawn(self._close_when_idle([old]), "close-replaced")
            result = ProviderSwitched(stage=kind, provider=cfg.provider, ok=True)
        self._emit(result)
        return result

    async def _close_when_idle(self, slots: list[StageSlot]) -> None:
        await self.wait_idle()
        for s in slots:
            await close_slot(s)

    async def check_health(self) -> list[ProviderHealth]:
        rows: list[ProviderHealth] = []

        async def one(kind: str, name: str, provider: Any) -> ProviderHealth:
            try:
                h = await asyncio.wait_for(provider.health(), 5)
            except Exception as exc:
                h = Health(HealthStatus.DOWN, str(as_voice_error(f"{kind}.{name}", exc)))
            self.telemetry.set_health(kind, name, int(h.level))
            count, last, at = self._errors.get((kind, name), (0, None, None))
            try:
                local = self.registry.info(kind, name).local
            except VoiceError:
                local = True
            breaker = self.stages[kind].runner.snapshot().get(name) if kind in self.stages.slots else None
            return ProviderHealth(kind, name, local, h, breaker.state.value if breaker else None,
                                  count, last, at)

        jobs = [one(slot.kind, n, p) for slot in self.stages.slots.values() for n, p in slot.chain]
        rows = list(await asyncio.gather(*jobs))
        return rows


def _caller_cancelled() -> bool:
    """Is the task running this code being cancelled (as opposed to what it awaited)?"""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _wait_for_task(task: asyncio.Task[Any]) -> None:
    """Until `task` is done, whatever its outcome; the caller's own cancellation propagates
    (and leaves `task` running)."""
    if task.done():
        return
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.shield(task)
    if _caller_cancelled():
        raise asyncio.CancelledError


async def _aclose(agen: Any) -> None:
    close = getattr(agen, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await close()


__all__ = ["ProviderHealth", "Session", "VADProvider"]
