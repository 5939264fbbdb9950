"""Headless conversations through the same engine the window uses.

File mode feeds each WAV at real-time pace (as a microphone would), waits for the
reply, then feeds the next; device mode listens on a real microphone for N turns.
Either way the result is one JSON object per turn.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from app.audio_io import AudioSink, AudioSource
from app.errors import ErrorCode, VoiceError
from app.events import ErrorRaised, Event, FinalTranscript, Notice, TurnFinished
from app.paths import AppPaths
from app.session import Session
from app.settings import Settings


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


class TurnCollector:
    """Listens to a session and keeps finished turns plus errors, for headless drivers."""

    def __init__(self, session: Session, *, verbose: bool = False) -> None:
        self.turns: list[TurnFinished] = []
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
            print(f"voxdesk: {ev.stage}/{ev.provider}: {ev.code}: {ev.message}", file=sys.stderr)
        elif self._verbose and isinstance(ev, Notice | FinalTranscript):
            print(f"voxdesk: {getattr(ev, 'message', None) or getattr(ev, 'text', '')}", file=sys.stderr)

    async def wait_for(self, count: int) -> None:
        while len(self.turns) < count:
            self.changed.clear()
            await self.changed.wait()


async def run_files(
    settings: Settings, paths: AppPaths, *, inputs: list[Path], texts: list[str], output: Path | None,
    realtime: bool = True, timeout: float = 120.0, session_kwargs: dict[str, Any] | None = None,
) -> list[TurnFinished]:
    from app.audio_files import WavFileSink, WavFileSource

    sink = WavFileSink(output)
    session = Session(settings, paths, sink=sink, **(session_kwargs or {}))
    collector = TurnCollector(session)
    try:
        async with asyncio.timeout(timeout):
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
                    collector.turns.append(TurnFinished(
                        user_text="", reply_text="", interrupted=False, timings={}, voice_to_voice_s=None,
                        providers=session.stages.providers_used(), error=f"no speech heard in {path.name}",
                    ))
    finally:
        await session.aclose()
    return collector.turns


async def run_devices(
    settings: Settings, paths: AppPaths, *, mic: str | None, speaker: str | None, turns: int, timeout: float,
) -> list[TurnFinished]:
    from app.audio_capture import open_device_source
    from app.audio_playback import open_device_sink

    source: AudioSource = open_device_source(mic or settings.audio.input_device, settings.audio.input_host_api)
    sink: AudioSink = open_device_sink(speaker or settings.audio.output_device, settings.audio.output_host_api)
    session = Session(settings, paths, source=None, sink=sink)
    collector = TurnCollector(session, verbose=True)
    try:
        await session.start()
        await session.ready.wait()
        await session.set_audio(source, sink)
        if not session.microphone_live:
            raise VoiceError("converse", ErrorCode.AUDIO_DEVICE,
                             "the microphone could not be opened — see the message above and `voxdesk doctor`")
        print("voxdesk: listening — speak now", file=sys.stderr)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await collector.wait_for(turns)
                await session.wait_idle()
    finally:
        await session.aclose()
    return collector.turns


def validate_stages(settings: Settings) -> None:
    """Every configured provider exists and its options are valid (INVALID_CONFIG/NOT_FOUND)."""
    from app.provider_api import KINDS
    from app.registry import get_registry

    reg = get_registry()
    for kind in KINDS:
        cfg = settings.stage(kind)
        reg.validate(kind, cfg.provider, cfg.options)


def converse_command(args: argparse.Namespace, paths: AppPaths, settings: Settings) -> int:
    inputs = [Path(p) for p in args.input]
    for p in inputs:
        if not p.is_file():
            raise VoiceError("converse", ErrorCode.NOT_FOUND, f"input file {p} does not exist")
    validate_stages(settings)  # a typo in a provider name fails now, before models load
    device_mode = bool(args.mic or args.speaker) and not inputs and not args.text
    if not inputs and not args.text and not device_mode:
        raise VoiceError("converse", ErrorCode.INVALID_CONFIG,
                         "nothing to say — give --input WAV, --text \"…\", or --mic/--speaker devices")
    if device_mode:
        turns = asyncio.run(run_devices(settings, paths, mic=args.mic, speaker=args.speaker,
                                        turns=args.turns, timeout=args.timeout))
    else:
        turns = asyncio.run(run_files(settings, paths, inputs=inputs, texts=list(args.text),
                                      output=Path(args.output) if args.output else None,
                                      realtime=not args.fast, timeout=args.timeout))
    rows = [turn_json(t) for t in turns]
    if args.json:
        json.dump({"turns": rows}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for r in rows:
            print(f"you: {r['user']}\nvoxdesk: {r['reply']}"
                  + (f"\n  ({r['error']})" if r["error"] else "")
                  + (f"\n  voice-to-voice {r['voice_to_voice_ms']} ms" if r["voice_to_voice_ms"] else ""))
    ok = bool(rows) and all(r["error"] is None for r in rows)
    if device_mode and len(rows) < args.turns:
        print(f"voxdesk: only {len(rows)} of {args.turns} turns heard before the timeout", file=sys.stderr)
        ok = False
    return 0 if ok else 1
