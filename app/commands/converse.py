"""Headless conversations through the same engine the window uses.

File mode feeds each WAV at real-time pace (as a microphone would), waits for the
reply, then feeds the next; device mode listens on a real microphone for N turns.
Either way the result is one JSON object per turn.

Ending a run early ends all of it: Ctrl+C exits 130 and `--timeout` (file mode) exits 1
with "timed out after N s"; either way the turns so far are printed, the reply that was
cut is stored in the history marked interrupted, and the questions after it are not
asked. Reply audio is kept only when `--output` asks for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.audio.streams import AudioSink, AudioSource
from app.commands.exit_codes import EXIT_FAIL, EXIT_INTERRUPTED, EXIT_MISSING, EXIT_TIMED_OUT, exit_code_for
from app.commands.terminal_text import escape_control
from app.engine.events import ErrorRaised, Event, FinalTranscript, Notice, TurnFinished
from app.engine.session import Session
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import SAMPLE_RATE, AudioChunk
from app.store.paths import AppPaths
from app.store.settings import Settings

log = logging.getLogger(__name__)

#: Once a run is over, the process must be gone within this long; a worker thread stuck
#: in native code past it would only hold the exit up (or abort it), so we leave anyway.
EXIT_GRACE_S = 0.75


class TimedOut(Exception):
    """The run's own --timeout ran out (not a provider's timeout)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"timed out after {_seconds(seconds)} s")
        self.seconds = seconds


def _seconds(s: float) -> str:
    return f"{s:g}"


def turn_json(ev: TurnFinished) -> dict[str, Any]:
    return {
        "turn_id": ev.turn_id,
        "user": ev.user_text,
        "reply": ev.reply_text,
        "interrupted": ev.interrupted,
        "error": ev.error,
        "stages_ms": {k: round(v * 1000, 1) for k, v in ev.timings.items()},
        "voice_to_voice_ms": round(ev.voice_to_voice_s * 1000, 1) if ev.voice_to_voice_s is not None else None,
        "providers": ev.providers,
    }


def unanswered(session: Session, why: str) -> TurnFinished:
    """A place-holder turn for an input that got no turn, so every input keeps a row."""
    return TurnFinished(
        user_text="",
        reply_text="",
        interrupted=False,
        timings={},
        voice_to_voice_s=None,
        providers=session.stages.providers_used(),
        error=why,
    )


class TurnCollector:
    """Listens to a session and keeps finished turns plus errors, for headless drivers.

    Errors and notices go to stderr (escaped: they may quote a transcript or a server);
    progress notices and transcripts only with `verbose`."""

    def __init__(self, session: Session, *, verbose: bool = False, into: list[TurnFinished] | None = None) -> None:
        self.turns: list[TurnFinished] = into if into is not None else []
        self.errors: list[ErrorRaised] = []
        self.changed = asyncio.Event()
        self._verbose = verbose
        session.add_listener(self._on_event)

    def _on_event(self, ev: Event) -> None:
        if isinstance(ev, TurnFinished):
            self.turns.append(ev)
            self.changed.set()
        elif isinstance(ev, ErrorRaised):
            self.errors.append(ev)
            _say(f"{ev.stage}/{ev.provider}: {ev.code}: {ev.message}")
        elif isinstance(ev, Notice) and (self._verbose or not ev.transient):
            _say(ev.message)
        elif self._verbose and isinstance(ev, FinalTranscript):
            _say(ev.text)

    async def wait_for(self, count: int) -> None:
        while len(self.turns) < count:
            self.changed.clear()
            await self.changed.wait()


def _say(text: str) -> None:
    print(f"voxdesk: {escape_control(text, keep_newlines=False)}", file=sys.stderr)


class DiscardSink(AudioSink):
    """A file-mode sink for runs without --output: times the reply, keeps no audio."""

    def __init__(self) -> None:
        self._first: float | None = None

    async def start(self) -> None:
        pass

    def play(self, chunk: AudioChunk) -> None:
        if self._first is None and len(chunk.samples):
            self._first = time.monotonic()

    def flush(self) -> None:
        pass

    async def drain(self) -> None:
        pass

    def mark(self) -> None:
        self._first = None

    @property
    def first_sample_time(self) -> float | None:
        return self._first

    async def stop(self) -> None:
        pass


def check_output_path(path: Path) -> None:
    """Refuse an --output that cannot be written, before any model loads (INVALID_CONFIG)."""
    op = "converse.output"
    if path.is_dir():
        raise VoiceError(
            op, ErrorCode.INVALID_CONFIG, f"--output {path} is a folder — give the path of the .wav file to write"
        )
    folder = path.parent
    if not folder.is_dir():
        blocker = next((p for p in folder.parents if p.exists()), None) if not folder.exists() else folder
        if blocker is not None and not blocker.is_dir():
            raise VoiceError(
                op,
                ErrorCode.INVALID_CONFIG,
                f"cannot write {path}: {blocker} is not a folder — choose another --output",
            )
        raise VoiceError(
            op,
            ErrorCode.INVALID_CONFIG,
            f"cannot write {path}: the folder {folder} does not exist — create it or choose another --output",
        )
    try:
        if path.exists():
            with path.open("r+b"):
                pass
        else:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".voxdesk-check-"):
                pass
    except OSError as exc:
        raise VoiceError(
            op,
            ErrorCode.INVALID_CONFIG,
            f"cannot write {path}: {exc.strerror or exc} — choose a folder you can write to",
        ) from None


async def _write_output(sink: Any, output: Path) -> None:
    from app.audio.files import write_wav

    try:
        await asyncio.to_thread(write_wav, output, sink.samples, sink.rate or SAMPLE_RATE)
    except OSError as exc:
        raise VoiceError(
            "converse.output",
            ErrorCode.UNAVAILABLE,
            f"the reply audio could not be written to {output}: {exc.strerror or exc} — "
            "check the disk and choose another --output",
        ) from None


# bench and tests/faults/test_memory.py call this by these keywords; `timeout` bounds the
# whole run and is told apart from a timeout inside it (TimedOut), so it stays a parameter.
async def run_files(  # noqa: PLR0913
    settings: Settings,
    paths: AppPaths,
    *,
    inputs: list[Path],
    texts: list[str],
    output: Path | None,
    realtime: bool = True,
    timeout: float = 120.0,  # noqa: ASYNC109
    into: list[TurnFinished] | None = None,
) -> list[TurnFinished]:
    """Every typed then spoken question in turn; the finished turns.

    Raises TimedOut when `timeout` runs out (the turns so far are in `into`); a
    cancelled caller (Ctrl+C) stops the run too. Either way the session is closed and
    the reply audio so far is written to `output`."""
    from app.audio.files import WavFileSink, WavFileSource

    # Without --output nothing keeps the audio: a long run must not grow with every reply.
    sink: AudioSink = WavFileSink(None) if output is not None else DiscardSink()
    session = Session(settings, paths, sink=sink)
    collector = TurnCollector(session, into=into)
    try:
        try:
            async with asyncio.timeout(timeout) as limit:
                await session.start()
                await session.ready.wait()
                for text in texts:
                    await session.send_text(text)
                for path in inputs:
                    before = len(collector.turns)
                    await session.set_audio(WavFileSource(path, realtime=realtime), sink)
                    await session.wait_capture_done()
                    await session.wait_idle()
                    if len(collector.turns) == before:
                        collector.turns.append(unanswered(session, f"no speech heard in {path.name}"))
        except TimeoutError:
            if limit.expired():
                raise TimedOut(timeout) from None
            raise
    except BaseException:
        await _close(session, sink, output, failing=True)
        raise
    await _close(session, sink, output, failing=False)
    return collector.turns


async def _close(session: Session, sink: AudioSink, output: Path | None, *, failing: bool) -> None:
    """Close the session, then write the reply audio so far (also when the run was cut)."""
    await session.aclose()
    if output is None:
        return
    try:
        await _write_output(sink, output)
    except VoiceError as exc:
        if not failing:
            raise
        _say(str(exc))  # the run's own failure (a timeout, Ctrl+C) is the one to report


@dataclass(frozen=True)
class DeviceRun:
    """`converse --mic/--speaker`: which devices (None: the ones in Settings), how many turns,
    and the longest the run may take."""

    mic: str | None
    speaker: str | None
    turns: int
    limit_s: float


async def run_devices(
    settings: Settings, paths: AppPaths, run: DeviceRun, *, into: list[TurnFinished] | None = None
) -> list[TurnFinished]:
    from app.audio.capture import open_device_source
    from app.audio.playback import open_device_sink

    audio = settings.audio
    source: AudioSource = open_device_source(run.mic or audio.input_device, audio.input_host_api)
    sink: AudioSink = open_device_sink(run.speaker or audio.output_device, audio.output_host_api)
    session = Session(settings, paths, source=None, sink=sink)
    collector = TurnCollector(session, verbose=True, into=into)
    try:
        await session.start()
        await session.ready.wait()
        await session.set_audio(source, sink)
        if not session.microphone_live:
            raise VoiceError(
                "converse",
                ErrorCode.AUDIO_DEVICE,
                "the microphone could not be opened — see the message above and `voxdesk doctor`",
            )
        print("voxdesk: listening — speak now", file=sys.stderr)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(run.limit_s):
                await collector.wait_for(run.turns)
                await session.wait_idle()
    finally:
        await session.aclose()
    return collector.turns


class ExitGuard:
    """Bounds how long the process takes to exit once a run is over.

    Every thread of ours is stopped and joined (bounded) when the session closes, so
    the interpreter normally exits at once. Should anything still hold the exit up (a
    library's thread inside native code), leave after `grace_s` with the run's exit
    code, output flushed, instead of hanging or aborting in the library's teardown."""

    def __init__(self, *, enabled: bool = True) -> None:
        self._armed = not enabled

    def arm(self, code: int, grace_s: float = EXIT_GRACE_S) -> None:
        if self._armed:
            return
        self._armed = True

        def leave() -> None:
            time.sleep(grace_s)
            with contextlib.suppress(Exception):
                sys.stdout.flush()
            with contextlib.suppress(Exception):
                log.info("exit took longer than %.2f s after the run ended; leaving now", grace_s)
                sys.stderr.flush()
            os._exit(code)

        threading.Thread(target=leave, name="voxdesk-exit-guard", daemon=True).start()


def validate_stages(settings: Settings) -> None:
    """Every configured provider exists and its options are valid (INVALID_CONFIG/NOT_FOUND)."""
    from app.plugin.provider_api import KINDS
    from app.plugin.registry import get_registry

    reg = get_registry()
    for kind in KINDS:
        cfg = settings.stage(kind)
        reg.validate(kind, cfg.provider, cfg.options)


def converse_command(args: argparse.Namespace, paths: AppPaths, settings: Settings) -> int:
    """Exit codes: 0 every turn answered, 1 a turn failed or --timeout ran out,
    2 bad usage (including an --output that cannot be written), 3 a missing model or
    device, 130 Ctrl+C.

    `args.exit_guard` (set by the `voxdesk` program itself, never for in-process
    callers) bounds the process's exit once the run is over, see ExitGuard."""
    from app.audio.files import probe_wav

    inputs = [Path(p) for p in args.input]
    for p in inputs:
        probe_wav(p)  # a missing, empty or absurd file is refused now, before models load
    output = Path(args.output) if args.output else None
    if output is not None:
        check_output_path(output)
    validate_stages(settings)  # a typo in a provider name fails now, before models load
    device_mode = bool(args.mic or args.speaker) and not inputs and not args.text
    if not inputs and not args.text and not device_mode:
        raise VoiceError(
            "converse",
            ErrorCode.INVALID_CONFIG,
            'nothing to say — give --input WAV, --text "…", or --mic/--speaker devices',
        )
    guard = ExitGuard(enabled=bool(getattr(args, "exit_guard", False)))
    turns: list[TurnFinished] = []

    async def run() -> int:
        try:
            if device_mode:
                await run_devices(
                    settings, paths, DeviceRun(args.mic, args.speaker, args.turns, args.timeout), into=turns
                )
            else:
                await run_files(
                    settings,
                    paths,
                    inputs=inputs,
                    texts=list(args.text),
                    output=output,
                    realtime=not args.fast,
                    timeout=args.timeout,
                    into=turns,
                )
        except TimedOut as exc:
            _print_turns(turns, args.json)
            _say(f"{exc} — what was said so far is kept in the history")
            guard.arm(EXIT_TIMED_OUT)
            return EXIT_TIMED_OUT
        except asyncio.CancelledError:  # Ctrl+C: asyncio.run turns this into KeyboardInterrupt
            _print_turns(turns, args.json)
            _say("interrupted — what was said so far is kept in the history")
            guard.arm(EXIT_INTERRUPTED)
            raise
        except VoiceError as exc:  # said here, so that it is out before the exit is bounded
            if turns:
                _print_turns(turns, args.json)
            _say(str(exc))
            code = exit_code_for(exc)
            guard.arm(code)
            return code
        code = _print_turns(turns, args.json)
        if device_mode and len(turns) < args.turns:
            _say(f"only {len(turns)} of {args.turns} turns heard before the timeout")
            code = EXIT_FAIL
        guard.arm(code)
        return code

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _print_turns(turns: list[TurnFinished], as_json: bool) -> int:
    """Print the turns (JSON, or escaped text); 0 when every turn was answered, else 1."""
    rows = [turn_json(t) for t in turns]
    if as_json:
        # json.dumps escapes every control character (and all non-ASCII): terminal-safe.
        json.dump({"turns": rows}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for r in rows:
            text = (
                f"you: {r['user']}\nvoxdesk: {r['reply']}"
                + (f"\n  ({r['error']})" if r["error"] else "")
                + (f"\n  voice-to-voice {r['voice_to_voice_ms']} ms" if r["voice_to_voice_ms"] else "")
            )
            print(escape_control(text))
    sys.stdout.flush()
    if any(_error_code(r["error"]) in (ErrorCode.MODEL_MISSING, ErrorCode.AUDIO_DEVICE) for r in rows):
        return EXIT_MISSING
    return 0 if rows and all(r["error"] is None for r in rows) else EXIT_FAIL


def _error_code(error: str | None) -> ErrorCode | None:
    """The code in a turn's "op: CODE: cause" error text."""
    parts = (error or "").split(": ")
    return ErrorCode.__members__.get(parts[1]) if len(parts) > 2 else None
