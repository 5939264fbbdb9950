"""Test speech, generated at test time (no audio is committed)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from app.audio.files import read_wav, write_wav

SAMPLE_RATE = 16_000


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, rate: int = SAMPLE_RATE, *, words_per_minute: int = 150, voice: str = "en-us") -> np.ndarray:
    """espeak-ng speech as float32 mono at `rate` (resampled with sox); `voice` is espeak-ng's
    (`fr`, `de`… for other languages)."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        out = Path(tmp) / "out.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(raw), text],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            ["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(out)],
            check=True,
            capture_output=True,
        )
        return read_wav(out)[0]


def speak_to_wav(text: str, path: Path, rate: int = SAMPLE_RATE, *, lead_s: float = 0.3, tail_s: float = 0.8) -> Path:
    """Speech padded with silence, as a microphone would hear a question."""
    speech = speak(text, rate)
    pad = lambda s: np.zeros(int(s * rate), np.float32)  # noqa: E731
    return write_wav(path, np.concatenate([pad(lead_s), speech, pad(tail_s)]), rate)


def normalise(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over normalised words / reference length."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)] / max(1, len(ref))


def heard_minutes(reply: str, heard: str) -> bool:
    """Whether a transcript of a spoken time ("It's 2:28 PM.") holds its minutes. Whisper
    writes times its own way ("220 8 p.m.", "for 30pm") and hears "thirteen" as "thirty"
    at times (13 ↔ 30 … 19 ↔ 90): the minutes' digits must come in order."""
    minute = reply.split(":")[1][:2].lstrip("0") or "0"
    teen = {str(m): str((m - 10) * 10) for m in range(13, 20)}
    digits = "".join(re.findall(r"\d+", heard))

    def in_order(wanted: str) -> bool:
        it = iter(digits)
        return all(d in it for d in wanted)

    return any(in_order(m) for m in (minute, teen.get(minute, minute)))
