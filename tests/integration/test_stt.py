"""faster-whisper on speech generated at test time with espeak-ng (real model from the package)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk, HealthStatus, STTProvider
from app.plugin.registry import get_registry
from app.store.models import resolve_model
from providers.stt.faster_whisper import FasterWhisperSTT
from tests.support.speech import have_espeak, speak, word_error_rate

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not have_espeak(), reason="espeak-ng is needed to generate speech"),
]

SENTENCES = (
    "Please turn on the kitchen lights.",
    "What is the weather going to be like tomorrow morning?",
    "Remind me to buy milk and coffee on the way home.",
)


@pytest.fixture(scope="module")
def stt() -> Iterator[STTProvider]:
    provider = get_registry().create("stt", "faster-whisper", {})
    assert isinstance(provider, STTProvider)
    asyncio.run(provider.warmup())
    yield provider
    asyncio.run(provider.aclose())


@pytest.fixture(scope="module")
def speech() -> dict[str, np.ndarray]:
    return {s: speak(s) for s in SENTENCES}


def _wer(reference: str, hypothesis: str) -> float:
    return word_error_rate(reference, hypothesis)


async def test_three_sentences_within_ten_percent_word_error_rate(stt, speech) -> None:
    hypotheses = [await stt.transcribe(speech[s]) for s in SENTENCES]
    wer = _wer(" ".join(SENTENCES), " ".join(hypotheses))
    assert wer <= 0.10, list(zip(SENTENCES, hypotheses, strict=True))


async def _paced(audio: np.ndarray, speedup: float) -> AsyncIterator[np.ndarray]:
    """A microphone: 32 ms frames at (sped-up) real-time pace."""
    for i in range(0, len(audio), FRAME_SAMPLES):
        yield audio[i : i + FRAME_SAMPLES]
        await asyncio.sleep(FRAME_SAMPLES / SAMPLE_RATE / speedup)


async def test_streaming_gives_partials_before_the_final_without_stalling_the_loop(stt, speech) -> None:
    text = f"{SENTENCES[1]} {SENTENCES[2]}"
    audio = np.concatenate([speech[SENTENCES[1]], speech[SENTENCES[2]]])  # ~6 s
    worst_lag = 0.0
    done = asyncio.Event()

    async def watch_loop() -> None:
        nonlocal worst_lag
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            worst_lag = max(worst_lag, time.perf_counter() - t - 0.01)

    watcher = asyncio.create_task(watch_loop())
    results = [t async for t in stt.stream(_paced(audio, speedup=1.5))]
    done.set()
    await watcher

    partials = [r for r in results if not r.is_final]
    assert partials, results  # at least one partial while the user still spoke
    assert [r.is_final for r in results].count(True) == 1 and results[-1].is_final
    assert _wer(text, results[-1].text) <= 0.10, results[-1].text
    first_words = set(partials[0].text.lower().replace(",", "").split())
    assert first_words & {"what", "is", "the", "weather"}, partials[0].text  # a partial of the start
    # Decoding runs in a worker thread: the loop keeps ticking (the UI never freezes).
    assert worst_lag < 0.25, f"event loop stalled {worst_lag * 1000:.0f} ms"


async def test_stream_of_short_input_gives_one_final_only(stt, speech) -> None:
    async def once() -> AsyncIterator[np.ndarray]:
        yield speech[SENTENCES[0]]

    results = [t async for t in stt.stream(once())]
    assert len(results) == 1 and results[0].is_final
    assert _wer(SENTENCES[0], results[0].text) <= 0.2


# -- the short-window fast path ---------------------------------------------------------


class Probe:
    """The real CTranslate2 Whisper, with its encode/generate calls recorded in order, and an
    encode that can be held at a gate (so a test can act while a decode is in the encoder)."""

    def __init__(self, real: object) -> None:
        self.real = real
        self.calls: list[tuple[str, int]] = []
        self.gate: threading.Event | None = None
        self.in_encoder = threading.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)

    def encode(self, features, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append(("encode", int(features.shape[-1])))
        self.in_encoder.set()
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        return self.real.encode(features, **kwargs)  # type: ignore[attr-defined]

    def generate(self, features, prompts, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append(("generate", len(prompts)))
        return self.real.generate(features, prompts, **kwargs)  # type: ignore[attr-defined]


@pytest.fixture
def probe(stt) -> Iterator[Probe]:
    assert isinstance(stt, FasterWhisperSTT) and stt._model is not None
    real = stt._model.model
    stt._model.model = probe = Probe(real)
    yield probe
    if probe.gate is not None:
        probe.gate.set()
    stt._model.model = real


def _encodes(probe: Probe) -> list[int]:
    return [frames for call, frames in probe.calls if call == "encode"]


async def test_a_short_command_is_decoded_in_a_short_window(stt, speech, probe) -> None:
    text = await stt.transcribe(speech[SENTENCES[0]])  # ~2.3 s
    assert _wer(SENTENCES[0], text) <= 0.1, text
    assert _encodes(probe) == [1500], probe.calls  # 15 s, the shortest window, not Whisper's 30 s


async def test_a_ten_second_utterance_is_decoded_in_a_window_just_longer(stt, speech, probe) -> None:
    audio = np.concatenate([speech[s] for s in (SENTENCES[1], SENTENCES[2], SENTENCES[0])])
    seconds = len(audio) / SAMPLE_RATE
    assert 8.5 < seconds < 10.5, seconds
    text = await stt.transcribe(audio)
    reference = " ".join((SENTENCES[1], SENTENCES[2], SENTENCES[0]))
    assert _wer(reference, text) <= 0.1, text
    assert _encodes(probe) == [max(1500, 100 * int(np.ceil(seconds + 2)))], probe.calls


async def test_an_utterance_over_twenty_five_seconds_takes_the_full_window(stt, speech, probe) -> None:
    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    audio = np.concatenate([p for _ in range(3) for s in SENTENCES for p in (speech[s], gap)])
    assert len(audio) > 25 * SAMPLE_RATE
    text = await stt.transcribe(audio)
    assert _wer(" ".join(SENTENCES * 3), text) <= 0.15, text
    assert set(_encodes(probe)) == {3000}, probe.calls


async def test_a_decode_cancelled_in_the_encoder_never_runs_the_decoder(stt, speech, probe) -> None:
    probe.gate = threading.Event()
    doomed = asyncio.ensure_future(stt.transcribe(speech[SENTENCES[0]]))
    assert await asyncio.to_thread(probe.in_encoder.wait, 30)
    doomed.cancel()
    probe.gate.set()
    # The next decode runs on the same thread after the cancelled one has stopped.
    text = await stt.transcribe(speech[SENTENCES[1]])
    assert _wer(SENTENCES[1], text) <= 0.1, text
    assert [call for call, _ in probe.calls] == ["encode", "encode", "generate"], probe.calls
    assert doomed.cancelled()


async def test_a_final_issued_while_a_partial_decodes_does_not_wait_for_it(stt, speech, probe) -> None:
    audio = speech[SENTENCES[1]]
    more = asyncio.Event()

    async def microphone() -> AsyncIterator[np.ndarray]:
        yield audio[: 2 * SAMPLE_RATE]  # enough for a partial; the input stays open
        await more.wait()

    probe.gate = threading.Event()
    stream = stt.stream(microphone())
    consumer = asyncio.ensure_future(anext(stream, None))  # the stream starts its partial
    assert await asyncio.to_thread(probe.in_encoder.wait, 30)  # ... which is now in the encoder
    final = asyncio.ensure_future(stt.transcribe(audio))  # the engine's speculative final
    await asyncio.sleep(0)  # it has asked for the decode thread
    probe.gate.set()
    text = await final
    assert _wer(SENTENCES[1], text) <= 0.1, text
    # The partial stopped after its encoder: the decoder ran once, for the final.
    assert probe.calls == [("encode", 1500), ("encode", 1500), ("generate", 1)], probe.calls
    more.set()
    rest = [t for t in [await consumer] if t is not None] + [t async for t in stream]
    assert rest and rest[-1].is_final  # the stream still ends with its own final


# -- bad input --------------------------------------------------------------------


@pytest.mark.parametrize("samples", [0, 160], ids=["empty", "10ms"])
async def test_too_little_audio_is_a_clear_error(stt, samples: int) -> None:
    with pytest.raises(VoiceError) as info:
        await stt.transcribe(np.zeros(samples, np.float32))
    assert info.value.code is ErrorCode.INVALID_CONFIG
    assert "too short" in info.value.message


async def test_nan_and_inf_samples_are_cleaned_not_fatal(stt, speech) -> None:
    audio = speech[SENTENCES[0]].copy()
    audio[::500] = np.nan
    audio[250::1000] = np.inf
    text = await stt.transcribe(audio)
    assert _wer(SENTENCES[0], text) <= 0.2, text


async def test_stereo_and_int16_are_converted(stt, speech) -> None:
    mono = speech[SENTENCES[0]]
    stereo = np.stack([mono, mono], axis=1)
    assert _wer(SENTENCES[0], await stt.transcribe(stereo)) <= 0.2
    pcm = (mono * 32767).astype(np.int16)
    assert _wer(SENTENCES[0], await stt.transcribe(pcm)) <= 0.2


async def test_other_sample_rates_are_resampled_when_stated(stt) -> None:
    # A bare array cannot say its rate (it is taken as 16 kHz); a stated rate is honoured.
    audio_8k = speak(SENTENCES[0], rate=8000)
    assert _wer(SENTENCES[0], await stt.transcribe(audio_8k, sample_rate=8000)) <= 0.2
    audio_44k = speak(SENTENCES[0], rate=44_100)
    assert _wer(SENTENCES[0], await stt.transcribe(AudioChunk(audio_44k, 44_100))) <= 0.2


async def test_sixty_seconds_of_audio_is_transcribed(stt, speech) -> None:
    pieces = [speech[SENTENCES[2]]]
    pieces += [np.zeros(SAMPLE_RATE * 60 - len(pieces[0]), np.float32)]
    text = await stt.transcribe(np.concatenate(pieces))
    assert {"milk", "coffee", "home"} <= set(text.lower().replace(",", "").replace(".", "").split()), text


async def test_audio_beyond_the_limit_is_refused_before_decoding(stt) -> None:
    with pytest.raises(VoiceError) as info:
        await stt.transcribe(np.zeros(SAMPLE_RATE * 121, np.float32))
    assert info.value.code is ErrorCode.INVALID_CONFIG and "limit" in info.value.message


# -- model files ----------------------------------------------------------------------


async def test_missing_model_path_says_what_to_do(tmp_path: Path) -> None:
    stt = get_registry().create("stt", "faster-whisper", {"model": str(tmp_path / "no-such-model")})
    health = await stt.health()
    assert health.status is HealthStatus.DOWN and "does not exist" in health.detail
    with pytest.raises(VoiceError) as info:
        await stt.warmup()
    assert info.value.code is ErrorCode.MODEL_MISSING
    assert "Settings" in info.value.message


async def test_folder_without_model_files_is_model_missing(tmp_path: Path) -> None:
    stt = get_registry().create("stt", "faster-whisper", {"model": str(tmp_path)})
    with pytest.raises(VoiceError) as info:
        await stt.warmup()
    assert info.value.code is ErrorCode.MODEL_MISSING
    assert "voxdesk models fetch" in info.value.message


async def test_truncated_model_is_a_provider_error_naming_the_fix(tmp_path: Path) -> None:
    source = resolve_model("whisper-tiny.en")
    copy = tmp_path / "tiny"
    shutil.copytree(source, copy)
    with (copy / "model.bin").open("r+b") as f:
        f.truncate((copy / "model.bin").stat().st_size // 3)
    stt = get_registry().create("stt", "faster-whisper", {"model": str(copy)})
    with pytest.raises(VoiceError) as info:
        await stt.warmup()
    assert info.value.code is ErrorCode.PROVIDER_ERROR
    assert "damaged" in info.value.message


async def test_unknown_model_id_lists_the_known_ones() -> None:
    stt = get_registry().create("stt", "faster-whisper", {"model": "whisper-gigantic"})
    with pytest.raises(VoiceError) as info:
        await stt.warmup()
    assert "whisper-tiny.en" in info.value.message


async def test_health_before_and_after_loading() -> None:
    stt = get_registry().create("stt", "faster-whisper", {})
    before = await stt.health()
    assert before.status is HealthStatus.OK and "first use" in before.detail
    await stt.aclose()  # closing an unloaded provider is harmless


def test_provider_info_and_lazy_import() -> None:
    info = get_registry().info("stt", "faster-whisper")
    assert info.streaming and info.local and SAMPLE_RATE in info.sample_rates
    code = (
        "import sys, providers.stt.faster_whisper; "
        "print(any(m in sys.modules for m in ('faster_whisper', 'ctranslate2')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
