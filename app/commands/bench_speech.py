"""Spoken questions for `voxdesk bench`, in a voice other than the reply voice.

The questions are spoken by espeak-ng (a formant synthesiser, nothing like Piper's
neural reply voice): questions in the reply voice would flatter the speech recogniser
and the voice activity detector, and no user sounds like the reply voice.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.audio.files import load_wav, write_wav
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import SAMPLE_RATE

#: espeak-ng voice and words a minute: a plain American voice at a calm talking pace.
QUESTION_VOICE = "en-us"
QUESTION_WPM = 140
#: Silence around each question: the VAD needs a little lead-in, and the endpointer
#: needs the trailing silence to decide the user has finished.
LEAD_S, TAIL_S = 0.4, 1.0


def espeak_program() -> str:
    """The espeak-ng executable, or one message saying how to get it."""
    found = shutil.which("espeak-ng")
    if found is None:
        raise VoiceError(
            "bench.questions",
            ErrorCode.MODEL_MISSING,
            "espeak-ng is not installed; the bench speaks its questions with it (a voice other than the "
            "reply voice) — install it (Debian/Ubuntu: sudo apt install espeak-ng) and run the bench again",
        )
    return found


async def speak_with_espeak(
    text: str, out: Path, program: str, *, voice: tuple[str, int] = (QUESTION_VOICE, QUESTION_WPM), pad: bool = True
) -> Path:
    """One question as a 16 kHz mono WAV with silence around it, in `voice` (espeak-ng voice,
    words a minute); with `pad=False` none: the turn-taking bench lays its own."""
    name, wpm = voice
    raw = out.with_suffix(".espeak.wav")
    proc = await asyncio.create_subprocess_exec(
        program,
        "-v",
        name,
        "-s",
        str(wpm),
        "-w",
        str(raw),
        "--",
        text,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    if proc.returncode != 0 or not raw.exists():
        raise VoiceError(
            "bench.questions",
            ErrorCode.PROVIDER_ERROR,
            f"espeak-ng failed ({err.decode(errors='replace').strip() or f'exit {proc.returncode}'}) "
            f"— check `espeak-ng --voices=en` lists {name}",
        )
    audio = await asyncio.to_thread(load_wav, raw, SAMPLE_RATE)
    raw.unlink(missing_ok=True)
    if not pad:
        return await asyncio.to_thread(write_wav, out, audio * 0.8, SAMPLE_RATE)
    lead, tail = np.zeros(int(LEAD_S * SAMPLE_RATE), np.float32), np.zeros(int(TAIL_S * SAMPLE_RATE), np.float32)
    return await asyncio.to_thread(write_wav, out, np.concatenate([lead, audio * 0.8, tail]), SAMPLE_RATE)


async def synthesise_questions(texts: Sequence[str], out_dir: Path, *, prefix: str) -> list[Path]:
    """Each text once, as `<prefix><n>.wav` in out_dir."""
    program = espeak_program()
    return [await speak_with_espeak(t, out_dir / f"{prefix}{i}.wav", program) for i, t in enumerate(texts)]
