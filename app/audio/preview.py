"""Preview a voice: speak one sample sentence with a TTS provider on a chosen speaker.

Settings → Voice's Preview button lets a user hear a voice before choosing it. The
voice's own provider is built through the registry (the same one a reply would use,
with the options being edited), the sentence is synthesised and played through an
`AudioSink` (the speaker the Audio tab names, or any sink a caller hands in), and
what was heard is measured so the window can say so. Blocking: for a worker thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.audio.streams import AudioSink
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import TTSProvider
from app.plugin.registry import Registry, get_registry

OP = "tts.preview"
SAMPLE_SENTENCE = "Hello! This is how I will sound when I answer your questions."
#: How often a running preview looks at its stop flag while the speaker plays.
POLL_S = 0.05


@dataclass(frozen=True)
class PreviewResult:
    #: Seconds of audio handed to the speaker.
    seconds: float
    #: From the request (voice loaded) to the first audio: what a reply would wait.
    first_audio_s: float
    #: Loudest sample, 0..1: a voice that produced only silence shows here.
    peak: float
    stopped: bool = False


async def _drain(sink: AudioSink, cancel: threading.Event | None) -> bool:
    """Wait for the speaker to finish; True when stopped early by `cancel`."""
    drained = asyncio.ensure_future(sink.drain())
    try:
        while not drained.done():
            if cancel is not None and cancel.is_set():
                sink.flush()
                return True
            await asyncio.wait({drained}, timeout=POLL_S)
        drained.result()
        return False
    finally:
        drained.cancel()


async def speak_sample(
    tts: TTSProvider, sink: AudioSink, *, text: str = SAMPLE_SENTENCE, cancel: threading.Event | None = None
) -> PreviewResult:
    """Synthesise `text` and play it on `sink` (started and stopped here)."""
    await tts.warmup()  # loading the voice is not what a reply waits for: keep it out of the figure
    await sink.start()
    seconds = peak = 0.0
    first: float | None = None
    stopped = False
    try:
        sink.mark()
        start = time.perf_counter()
        async for chunk in tts.synthesize(text):
            if cancel is not None and cancel.is_set():
                sink.flush()
                stopped = True
                break
            if len(chunk.samples) == 0:
                continue
            if first is None:
                first = time.perf_counter() - start
            seconds += len(chunk.samples) / chunk.sample_rate
            peak = max(peak, float(np.max(np.abs(chunk.samples))))
            sink.play(chunk)
        if not stopped:
            stopped = await _drain(sink, cancel)
    finally:
        await sink.stop()
    if first is None and not stopped:
        raise VoiceError(OP, ErrorCode.PROVIDER_ERROR, "the voice produced no sound for the sample sentence")
    return PreviewResult(round(seconds, 3), round(first or 0.0, 3), round(peak, 4), stopped)


def preview_voice(  # noqa: PLR0913 - keyword-only parts of one preview
    provider: str,
    options: Mapping[str, Any],
    sink: AudioSink,
    *,
    text: str = SAMPLE_SENTENCE,
    cancel: threading.Event | None = None,
    registry: Registry | None = None,
) -> PreviewResult:
    """Build `provider` with `options`, speak `text` on `sink`, close it. Blocking (seconds)."""
    reg = registry or get_registry()

    async def run() -> PreviewResult:
        tts = reg.create("tts", provider, options)
        if not isinstance(tts, TTSProvider):
            raise VoiceError(OP, ErrorCode.INVALID_CONFIG, f"{provider} is not a voice provider")
        try:
            return await speak_sample(tts, sink, text=text, cancel=cancel)
        finally:
            await tts.aclose()

    return asyncio.run(run())
