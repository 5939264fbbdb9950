"""The listener: microphone frames → VAD (worker thread) → endpointer → one utterance.

While the user speaks, the STT provider streams partial transcripts; when silence
begins, a speculative final transcription starts so it is usually ready when the
endpoint fires, and the turn detector is asked whether the user has finished. Both
answers go back to the endpointer, which ends a finished turn early and waits on an
unfinished one (app/engine/endpointing.py). The listener knows nothing of turns: it tells its host (the session)
when speech starts (`on_speech_start`, which may barge in) and hands over a finished
utterance with its transcript task (`on_utterance`). Its `pauses` observer (the
session's speculator) hears of each speculative transcription and of its cancelling,
to start a reply on it ahead of the endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from app.audio.far_end import FarEndTap
from app.audio.streams import AudioSource
from app.engine.activation import Activation, WakeListener, wake_detector
from app.engine.context import EngineContext, wire_device
from app.engine.echo_gate import EchoGate
from app.engine.echo_path import POOR_ERLE_DB, EchoPath
from app.engine.endpointing import Endpointer, EndpointEvent, SilenceStart, SpeechEnd, SpeechResumed, SpeechStart
from app.engine.events import AudioLevel, Notice, PartialTranscript, SpeechStarted, State
from app.engine.stages import StageSet, StageSlot
from app.engine.tasks import wait_for_task
from app.engine.turn_words import ending, ends_with_full_stop
from app.plugin import languages
from app.plugin.errors import VoiceError, as_voice_error
from app.plugin.provider_api import (
    SAMPLE_RATE,
    EchoCanceller,
    STTProvider,
    TurnProvider,
    TurnVerdict,
    VADProvider,
    WakeDetection,
)
from app.store.settings import Settings

log = logging.getLogger(__name__)

MIN_UTTERANCE_SAMPLES = SAMPLE_RATE // 4  # push-to-talk taps shorter than this are not turns
DROPPED_NOTICE_EVERY_S = 30.0
LEVEL_EVERY = 2  # ~15 level updates per second is plenty for a meter
DROPPED_CHECK_EVERY = 32  # about once a second
ECHO_RETRY_S = 30.0  # a canceller that raised is tried again after this


@dataclass
class Utterance:
    """Audio of one user utterance and the STT work started on it."""

    started_at: float
    frames: list[np.ndarray] = field(default_factory=list)
    last_speech_at: float = 0.0
    partial_feed: asyncio.Queue[np.ndarray | None] | None = None
    partial_task: asyncio.Task[None] | None = None
    speculative: asyncio.Task[str] | None = None
    speculative_len: int = 0
    #: The turn detector's last answer: (probability it was finished, seconds it took).
    turn_verdict: tuple[float | None, float] | None = None

    def audio(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, np.float32)

    @property
    def samples(self) -> int:
        return sum(len(f) for f in self.frames)


class PauseObserver(Protocol):
    """Who starts work on a pause's speculative transcript (app/engine/speculation.py)."""

    def paused(self, utt: Utterance, transcript: asyncio.Task[str]) -> None:
        """Silence began; `transcript` is the speculative STT job (the final one unless speech resumes)."""

    def cancelled(self) -> None:
        """That job was called off: speech resumed, or the utterance was dropped or too short."""


class ListenerHost(Protocol):
    """What the listener asks of the session that owns it."""

    @property
    def settings(self) -> Settings: ...
    @property
    def stages(self) -> StageSet: ...
    @property
    def muted(self) -> bool: ...
    @property
    def hands_free(self) -> bool:
        """The microphone stays open without the talk button (wake word or always listening)."""

    @property
    def activation(self) -> Activation:
        """Whether speech may start a turn now, and whether to listen for the wake word."""

    def on_wake(self, heard: WakeDetection, captured_at: float) -> None:
        """The wake phrase ended in the frame captured at `captured_at`."""

    def went_to_sleep(self) -> None:
        """The wake word's awake window closed with nobody speaking."""

    @property
    def echo(self) -> EchoGate:
        """What the speaker played, to tell our own voice from the user's."""

    @property
    def raw_echo(self) -> EchoGate:
        """The same, for the microphone before the echo canceller."""

    def is_speaking(self, at: float) -> bool:
        """Is our own voice in the room at `at` (a reply, an apology, a timer)?"""

    def echo_reference(self) -> FarEndTap | None:
        """What the speaker device is handed (None for a sink nobody hears, like a file)."""

    def only_chime(self, at: float) -> bool:
        """All that plays at `at` is the wake chime: listen through it."""

    def listens_while_speaking(self) -> bool:
        """Full duplex now: the user may talk over a reply (else the microphone is ignored)."""

    def on_speech_start(self, at: float) -> bool:
        """Speech began at `at`; False when it must be ignored (barge-in is off)."""

    def on_utterance(self, utt: Utterance, transcript: asyncio.Task[str] | None, endpoint_at: float) -> None:
        """The user finished speaking; `transcript` is the (maybe speculative) STT job."""

    def set_state(self, state: State, turn_id: str | None = None) -> None: ...
    def rest_state(self) -> State: ...


def make_endpointer(settings: Settings, stages: StageSet) -> Endpointer:
    c = settings.conversation
    slot = stages.slots.get("vad")
    # Threshold and hangover are the VAD provider's own settings (they depend on its scores).
    vad = slot.provider if slot is not None and isinstance(slot.provider, VADProvider) else None
    return Endpointer(
        threshold=vad.threshold if vad else 0.5,
        min_speech_ms=c.min_speech_ms,
        hangover_ms=vad.hangover_ms if vad else 300,
        end_silence_ms=c.endpoint_silence_ms,
        pre_roll_ms=300,
        # Ask the turn detector and start the transcript this early in a pause: both must
        # be in for a finished sentence to end at the minimum silence (~160-200 ms).
        speculate_after_ms=96,
        decides="turn" in stages.slots,
        min_silence_ms=c.turn_min_silence_ms,
        patience_ms=c.turn_patience_ms,
    )


def level_event(frame: np.ndarray) -> AudioLevel:
    rms = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64)))) if len(frame) else 0.0
    peak = float(np.max(np.abs(frame))) if len(frame) else 0.0
    return AudioLevel(rms_dbfs=20 * np.log10(max(rms, 1e-6)), peak_dbfs=20 * np.log10(max(peak, 1e-6)))


class Listener:
    """One microphone (or none), the endpointer and the utterance being heard."""

    def __init__(self, ctx: EngineContext, host: ListenerHost, source: AudioSource | None = None) -> None:
        self.ctx = ctx
        self.host = host
        self.source = source
        self.ptt_active = False
        self.utterance: Utterance | None = None
        self.pauses: PauseObserver | None = None
        self.endpointer = make_endpointer(host.settings, host.stages)
        self._capture_task: asyncio.Task[None] | None = None
        self._capture_lock = asyncio.Lock()
        self._source_ended = False  # a file source ran out; never replay it
        self._vad_pool = ThreadPoolExecutor(1, thread_name_prefix="voxdesk-vad")
        self._vad_failing = False  # told once per outage, not 31 times a second
        self.echo_path = EchoPath()
        self._echo_failed_at: float | None = None  # the canceller raised: as it is, half duplex, for a while
        self._echo_told = False
        self._echo_tap: FarEndTap | None = None
        self._told_poor = False
        self._dropped_seen = 0
        self._dropped_told_at = float("-inf")
        self.wake = WakeListener(ctx, self._vad_pool, host.on_wake)
        self._awake = False  # speech could start a turn at the last frame
        self._language_told: set[str] = set()  # "this voice cannot speak it", once each

    def reset_endpointer(self) -> None:
        self.endpointer = make_endpointer(self.host.settings, self.host.stages)

    def listen_afresh(self) -> None:
        """Forget what was heard so far (the wake phrase must not count as the question)."""
        self.drop_utterance()
        self.reset_endpointer()
        slot = self.host.stages.slots.get("vad")
        if slot is not None and isinstance(slot.provider, VADProvider):
            with contextlib.suppress(Exception):
                slot.provider.reset()

    @property
    def live(self) -> bool:
        """The microphone stream is open and feeding the engine."""
        return self._capture_task is not None and not self._capture_task.done()

    # -- the microphone ----------------------------------------------------------
    def _want_capture(self) -> bool:
        h = self.host
        return self.source is not None and not self._source_ended and not h.muted and (h.hands_free or self.ptt_active)

    async def _start_capture(self, source: AudioSource) -> None:
        wire_device(self.ctx, source, "input")
        try:
            await source.start()
        except VoiceError as exc:
            self.ctx.report("audio", "input", exc)
            return
        self._capture_task = self.ctx.spawn(self._capture_loop(source), "capture")

    async def _stop_capture(self) -> None:
        task, self._capture_task = self._capture_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def sync(self) -> None:
        """Keep the microphone open only while something listens to it.

        With hands-free off (and no push-to-talk) or muted, the input stream is closed:
        an idle window then costs next to nothing, and the OS microphone indicator is off."""
        async with self._capture_lock:
            if self._want_capture() and not self.live and self.source is not None:
                await self._start_capture(self.source)
            elif not self._want_capture() and self.live and self.source is not None:
                await self._stop_capture()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.source.stop(), 2.0)

    async def replace(self, source: AudioSource | None) -> None:
        """Swap the microphone; `sync()` opens the new one when it is wanted."""
        async with self._capture_lock:
            await self._stop_capture()
        old = self.source
        if old is not None and old is not source:
            await old.stop()
        self.source = source
        self._source_ended = False

    async def wait_done(self) -> None:
        if self._capture_task is not None:
            await wait_for_task(self._capture_task)

    async def aclose(self, close_s: float) -> None:
        if self.source is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.source.stop(), close_s)
        self._vad_pool.shutdown(wait=False, cancel_futures=True)
        # A VAD frame in flight finishes within milliseconds; wait for it (bounded).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.to_thread(self._vad_pool.shutdown, True), close_s)

    # -- the capture loop ----------------------------------------------------------
    async def _capture_loop(self, source: AudioSource) -> None:
        n = 0
        self._dropped_seen, self._dropped_told_at = source.dropped_frames, float("-inf")
        async for captured_at, frame in source.frames():
            n += 1
            if n % LEVEL_EVERY == 0:
                self.ctx.emit(level_event(frame))
            if n % DROPPED_CHECK_EVERY == 0:
                self._check_dropped(source, captured_at)
            await self._on_frame(captured_at, frame)
        self._source_ended = True
        # A file (or a device) ended mid-utterance: that is the end of the turn.
        if self.utterance is not None and not self.ptt_active:
            if not self.utterance.last_speech_at:
                self.utterance.last_speech_at = self.ctx.clock()
            self.end_utterance(self.ctx.clock())
        self.endpointer.reset()

    def _check_dropped(self, source: AudioSource, captured_at: float) -> None:
        """Did the machine fall behind the microphone?"""
        dropped = source.dropped_frames
        lost = dropped - self._dropped_seen
        if lost > 0 and captured_at - self._dropped_told_at > DROPPED_NOTICE_EVERY_S:
            self._dropped_told_at = captured_at
            self.ctx.emit(
                Notice(
                    message=f"The computer is too busy: {lost} moments of microphone audio "
                    "were lost — close other programs or choose lighter models in Settings."
                )
            )
            log.warning("capture dropped %d frames", lost)
        self._dropped_seen = dropped

    async def _on_frame(self, captured_at: float, frame: np.ndarray) -> None:
        host = self.host
        if host.muted:
            return
        raw, frame = frame, await self._cancel_echo(frame, captured_at)
        if self.ptt_active:
            if self.utterance is not None:
                self._feed(self.utterance, frame)
            return
        activation = host.activation
        detector = wake_detector(host.stages) if activation.wants_wake_word else None
        if detector is not None and await self.wake.hear(detector, frame, captured_at):
            self._awake = True
            return  # the session woke up: the endpointer starts afresh with the next frame
        if not activation.hears_speech(captured_at) and self.utterance is None:
            if self._awake:
                self._awake = False
                host.went_to_sleep()
            return
        self._awake = True
        # The wake chime is no reply: the user often goes straight on from the wake phrase,
        # and Silero does not take its two pure tones for speech.
        speaking = host.is_speaking(captured_at) and not host.only_chime(captured_at)
        if speaking and not host.listens_while_speaking():
            return  # half duplex: never hear ourselves (replies, apologies, timers alike)
        prob = await self._speech_probability(frame)
        if prob is None:
            return
        # While we speak, a gap in our own timeline (the device or a busy machine running
        # late) is not silence: the gate then compares against what played recently. With
        # the canceller it judges what echo is left.
        if speaking and not host.echo.is_user_speech(frame, captured_at, still_playing=True):
            prob = 0.0  # our own voice through the speakers
        elif speaking and prob >= self.endpointer.threshold:
            self.echo_path.note_user_speech()
        cancelling = speaking and self.echo_cancelling
        if cancelling and raw is not frame and host.raw_echo.louder_than_echo(raw, captured_at):
            # Double talk: the canceller's suppression chops the user's voice, but the raw
            # microphone is clearly louder than the room's echo could make it.
            prob = max(prob, self.endpointer.threshold)
        self.endpointer.sensitive = cancelling
        started = False
        for ev in self.endpointer.process(frame, prob):
            started = started or isinstance(ev, SpeechStart)
            self._on_endpoint(ev, captured_at)
        if self.utterance is not None and not started:
            self._feed(self.utterance, frame)

    def _canceller(self) -> tuple[EchoCanceller, FarEndTap] | None:
        slot = self.host.stages.slots.get("echo")
        tap = self.host.echo_reference()
        if slot is None or tap is None:
            return None
        if self._echo_failed_at is not None:
            if self.ctx.clock() - self._echo_failed_at < ECHO_RETRY_S:
                return None
            self._echo_failed_at = None  # try again: a passing fault (a device switch) should not last
        provider = slot.provider
        return (provider, tap) if isinstance(provider, EchoCanceller) and provider.cancels_echo else None

    @property
    def echo_cancelling(self) -> bool:
        """The microphone is cleaned of the speaker's echo, well enough to talk over it."""
        return self._canceller() is not None and not self.echo_path.poor

    async def _cancel_echo(self, frame: np.ndarray, captured_at: float) -> np.ndarray:
        """`frame` without our own voice, on the VAD's worker (in order, off the loop)."""
        pair = self._canceller()
        if pair is None:
            return frame
        if pair[1] is not self._echo_tap:  # another speaker: another echo path, learn it afresh
            self._echo_tap = pair[1]
            self.echo_path = EchoPath()
            with contextlib.suppress(Exception):
                pair[0].reset()
        loop = asyncio.get_running_loop()
        try:
            cleaned = await loop.run_in_executor(self._vad_pool, self.echo_path.process, *pair, frame, captured_at)
        except Exception as exc:
            # Without it the session keeps to half duplex (retrying now and then); the
            # conversation goes on. Told once per outage.
            self._echo_failed_at = self.ctx.clock()
            self.echo_path = EchoPath()
            if not self._echo_told:
                self._echo_told = True
                slot = self.host.stages.slots.get("echo")
                self.ctx.report("echo", slot.name if slot else "echo", as_voice_error("echo", exc))
            else:
                log.debug("echo canceller still failing: %s", exc)
            return frame
        self._echo_told = False
        if self.utterance is None and self.echo_path.judge() and not self._told_poor:
            self._told_poor = True
            erle = max(0.0, self.echo_path.median_erle() or 0.0)
            self.ctx.emit(
                Notice(
                    message=f"Talking over VoxDesk is off: its echo canceller removes only {erle:.0f} dB of its "
                    f"voice here (it needs {POOR_ERLE_DB:.0f}) — it now stops listening while it speaks. "
                    "Headphones, or a lower speaker volume, help; Settings → Audio has an echo check."
                )
            )
        return cleaned

    async def _speech_probability(self, frame: np.ndarray) -> float | None:
        """The VAD's score, or None without a VAD or when it failed (told once per outage)."""
        slot = self.host.stages.slots.get("vad")
        if slot is None or not isinstance(slot.provider, VADProvider):
            return None
        loop = asyncio.get_running_loop()
        try:
            prob = await loop.run_in_executor(self._vad_pool, slot.provider.speech_probability, frame)
        except Exception as exc:
            if not self._vad_failing:
                self._vad_failing = True
                self.ctx.report("vad", slot.name, as_voice_error("vad", exc))
            else:
                log.debug("VAD still failing: %s", exc)
            return None
        self._vad_failing = False
        return prob

    def _on_endpoint(self, ev: object, now: float) -> None:
        utt = self.utterance
        if isinstance(ev, SpeechStart):
            if self.host.on_speech_start(now):
                self.begin_utterance(now - len(ev.pre_roll) / SAMPLE_RATE, [ev.pre_roll])
        elif isinstance(ev, SilenceStart) and utt is not None:
            utt.last_speech_at = now - ev.silent_s
            self._start_speculative(utt, ev.pause)
            self._ask_turn(utt, ev.pause)
        elif isinstance(ev, SpeechResumed) and utt is not None:
            self._cancel_speculative(utt)
            self._start_partials(utt)
        elif isinstance(ev, SpeechEnd) and utt is not None:
            self.end_utterance(now)

    # -- the utterance -------------------------------------------------------------
    def begin_utterance(self, started_at: float, frames: list[np.ndarray]) -> None:
        self.drop_utterance()
        utt = Utterance(started_at=started_at, frames=[f for f in frames if len(f)])
        self._start_partials(utt)
        self.utterance = utt
        self.host.set_state(State.LISTENING)  # app/engine/events.py: listening, then speech
        self.ctx.emit(SpeechStarted())

    def _start_partials(self, utt: Utterance) -> None:
        """Stream the utterance so far, then every new frame, into the STT's partials."""
        stt = self.host.stages.slots.get("stt")
        if stt is None or utt.partial_task is not None:
            return
        utt.partial_feed = asyncio.Queue()
        for f in utt.frames:
            utt.partial_feed.put_nowait(f)
        utt.partial_task = self.ctx.spawn(self._partials(stt, utt.partial_feed), "stt-partials")

    def _feed(self, utt: Utterance, frame: np.ndarray) -> None:
        utt.frames.append(frame)
        if utt.partial_feed is not None:
            utt.partial_feed.put_nowait(frame)

    async def _partials(self, slot: StageSlot, feed: asyncio.Queue[np.ndarray | None]) -> None:
        async def audio() -> AsyncIterator[np.ndarray]:
            while (item := await feed.get()) is not None:
                yield item

        stt = slot.provider
        if not isinstance(stt, STTProvider):
            return
        try:
            async for tr in stt.stream(audio(), language=self.host.settings.conversation.language):
                if not tr.is_final and tr.text.strip():
                    self.ctx.emit(PartialTranscript(text=tr.text.strip()))
        except VoiceError as exc:
            log.debug("partial transcription failed: %s", exc)

    @staticmethod
    def _stop_partials(utt: Utterance) -> None:
        if utt.partial_task is not None:
            utt.partial_task.cancel()
            utt.partial_task = None
            utt.partial_feed = None

    def _start_speculative(self, utt: Utterance, pause: int) -> None:
        """Silence began: transcribe now so the text is ready when the endpoint fires."""
        self._cancel_speculative(utt)
        self._stop_partials(utt)  # free the CPU for the final decode
        stt = self.host.stages.slots.get("stt")
        if stt is None:
            self._answer(self.endpointer.hear_text(pause, None))
            return
        utt.speculative_len = len(utt.frames)
        utt.speculative = self.ctx.spawn(self.transcribe(stt, utt.audio()), "stt-speculative")
        utt.speculative.add_done_callback(lambda task: self._heard_words(task, pause))
        if self.pauses is not None:
            self.pauses.paused(utt, utt.speculative)

    def _heard_words(self, task: asyncio.Task[str], pause: int) -> None:
        """The pause's transcript is in: do its words stop mid-sentence?"""
        if task.cancelled():
            return
        text = "" if task.exception() is not None else task.result()
        words = ending(text, self.host.settings.conversation.language)
        self._answer(self.endpointer.hear_text(pause, words, punctuated=ends_with_full_stop(text)))

    def _ask_turn(self, utt: Utterance, pause: int) -> None:
        """Ask the turn detector about the utterance so far, off the capture path."""
        slot = self.host.stages.slots.get("turn")
        if slot is None:
            return
        audio = utt.audio()

        async def call(p: object) -> TurnVerdict:
            assert isinstance(p, TurnProvider)
            return await p.predict(audio)

        async def ask() -> None:
            t0 = self.ctx.clock()
            # Later than the silence rule it no longer matters: the turn has ended by then.
            limit = self.host.settings.conversation.endpoint_silence_ms / 1000
            try:
                verdict = await slot.runner.call(call, timeout=limit)
            except VoiceError as exc:
                log.debug("turn detector gave no answer: %s", exc)
                verdict = TurnVerdict(None)
            utt.turn_verdict = (verdict.probability, self.ctx.clock() - t0)
            self._answer(self.endpointer.hear_verdict(pause, verdict.finished, sure=verdict.sure))

        self.ctx.spawn(ask(), "turn-detect")

    def _answer(self, events: list[EndpointEvent]) -> None:
        """Events an answer caused (the turn may end at once)."""
        for ev in events:
            self._on_endpoint(ev, self.ctx.clock())

    def _cancel_speculative(self, utt: Utterance) -> None:
        if utt.speculative is not None:
            utt.speculative.cancel()
            utt.speculative = None
            if self.pauses is not None:
                self.pauses.cancelled()

    def drop_utterance(self) -> None:
        utt, self.utterance = self.utterance, None
        if utt is not None:
            self._stop_partials(utt)
            self._cancel_speculative(utt)

    def end_utterance(self, now: float) -> None:
        utt, self.utterance = self.utterance, None
        if utt is None:
            return
        self._stop_partials(utt)
        if utt.samples < MIN_UTTERANCE_SAMPLES:
            self._cancel_speculative(utt)
            self.ctx.emit(Notice(message="That was too short to hear — hold the talk button while you speak."))
            self.host.set_state(self.host.rest_state())
            return
        stt = self.host.stages.slots.get("stt")
        transcript: asyncio.Task[str] | None = utt.speculative
        if transcript is None and stt is not None:
            transcript = self.ctx.spawn(self.transcribe(stt, utt.audio()), "stt-final")
        self.host.on_utterance(utt, transcript, now)

    async def transcribe(self, slot: StageSlot, audio: np.ndarray) -> str:
        conv = self.host.settings.conversation
        lang = conv.language

        async def call(p: object) -> str:
            assert isinstance(p, STTProvider)
            return await p.transcribe(audio, language=lang)

        try:
            text = await slot.runner.call(call, timeout=conv.first_output_deadline_s)
        except VoiceError as exc:
            exc.counted = True  # the stage runner counted it
            raise
        self._check_voice_speaks(slot)
        return text

    def _check_voice_speaks(self, stt: StageSlot) -> None:
        """The language just heard (detected with `auto`, else the one set) is one the voice
        cannot speak: tell the user once, with a voice that can (the voice says which)."""
        lang = self.host.settings.conversation.language
        if lang == languages.AUTO:
            heard = stt.provider.detected_language if isinstance(stt.provider, languages.ReportsLanguage) else None
            if heard is None:
                return
            lang = heard
        tts = self.host.stages.slots.get("tts")
        voice = tts.provider if tts is not None else None
        if not isinstance(voice, languages.SpeaksLanguages):
            return
        problem = voice.language_problem(lang)
        if problem is not None and problem not in self._language_told:
            self._language_told.add(problem)
            self.ctx.emit(Notice(message=problem))
