"""The audio a local speech recognizer accepts: 16 kHz mono float32, long enough to hold
a syllable and no longer than the provider's limit; anything else is one clear message."""

from __future__ import annotations

import numpy as np

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import SAMPLE_RATE, AudioChunk, validate_audio

MIN_SAMPLES = SAMPLE_RATE // 10  # 100 ms: less than a syllable, nothing to transcribe


def prepare_speech(op: str, audio: np.ndarray | AudioChunk, sample_rate: int | None, max_audio_s: float) -> np.ndarray:
    """16 kHz mono float32, or a VoiceError (for `op`) saying what is wrong with the input."""
    if isinstance(audio, AudioChunk):
        sample_rate = sample_rate or audio.sample_rate
        audio = audio.samples
    samples = validate_audio(op, audio)
    rate = sample_rate or SAMPLE_RATE
    if rate <= 0:
        raise VoiceError(op, ErrorCode.INVALID_CONFIG, f"sample rate {rate} Hz is not valid")
    if rate != SAMPLE_RATE and len(samples):
        import soxr

        samples = soxr.resample(samples, rate, SAMPLE_RATE).astype(np.float32, copy=False)
    if len(samples) < MIN_SAMPLES:
        raise VoiceError(
            op,
            ErrorCode.INVALID_CONFIG,
            f"audio too short ({len(samples) / SAMPLE_RATE * 1000:.0f} ms) — speak for longer",
        )
    if len(samples) > max_audio_s * SAMPLE_RATE:
        raise VoiceError(
            op,
            ErrorCode.INVALID_CONFIG,
            f"utterance of {len(samples) / SAMPLE_RATE:.0f} s is longer than the {max_audio_s:.0f} s limit — "
            "speak in shorter turns or raise max_audio_s in Settings",
        )
    return samples
