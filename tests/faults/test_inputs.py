"""Input files: every WAV that sox or a phone recorder writes is read; absurd ones are
refused at once, with one line and exit code 2 (README: bad input → 2).

Test files are made by the real `sox` (installed by `make setup-test`), then some are
damaged byte by byte the way a broken recorder or a hostile file would be.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from app.audio.files import WavFileSource, load_wav, probe_wav, read_wav
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import FRAME_SAMPLES, SAMPLE_RATE

VOXDESK = str(Path(sys.executable).with_name("voxdesk"))
#: A refusal must not wait for models or decode anything: start-up plus a header read.
REFUSAL_S = 2.0


def sox(*args: str | Path) -> None:
    subprocess.run(["sox", *map(str, args)], check=True, capture_output=True)


def synth(path: Path, *opts: str, rate: int = 44_100, seconds: float = 0.5, tones: str = "sine 440") -> Path:
    """A tone file written by sox with the given output options (-b 24, -e float, -c 2...)."""
    sox("-n", "-r", str(rate), *opts, path, "synth", str(seconds), *tones.split())
    return path


def sox_mono_f32(path: Path) -> np.ndarray:
    """What sox itself decodes from `path`: float32, channels mixed to mono."""
    out = subprocess.run(["sox", str(path), "-t", "f32", "-c", "1", "-"], check=True, capture_output=True)
    return np.frombuffer(out.stdout, "<f4")


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def format_tag(path: Path) -> int:
    return int(struct.unpack("<H", path.read_bytes()[20:22])[0])


# -- what sox writes is read, sample for sample --------------------------------------------

SOX_FORMATS = {
    "u8": ("-b", "8", "-e", "unsigned-integer"),
    "s16": ("-b", "16"),
    "s24-extensible": ("-b", "24"),
    "s32-extensible": ("-b", "32"),
    "f32": ("-b", "32", "-e", "floating-point"),
    "f64": ("-b", "64", "-e", "floating-point"),
    "u-law": ("-b", "8", "-e", "u-law"),
    "a-law": ("-b", "8", "-e", "a-law"),
    "stereo": ("-b", "16", "-c", "2"),
    "5.1-extensible": ("-b", "16", "-c", "6"),
    "stereo-24": ("-b", "24", "-c", "2"),
}


@pytest.mark.parametrize("name", list(SOX_FORMATS))
def test_every_encoding_sox_writes_decodes_like_sox_does(tmp_path: Path, name: str) -> None:
    opts = SOX_FORMATS[name]
    channels = int(opts[opts.index("-c") + 1]) if "-c" in opts else 1
    tones = " ".join(f"sine {440 + 110 * i}" for i in range(channels))  # one per channel
    path = synth(tmp_path / f"{name}.wav", *opts, tones=tones)
    samples, rate = read_wav(path)
    reference = sox_mono_f32(path)
    assert rate == 44_100
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) == len(reference) == 22_050
    assert float(np.max(np.abs(samples - reference))) < 1e-3


def test_sox_24_bit_files_use_the_extensible_header(tmp_path: Path) -> None:
    # The case from the issue: the standard header sox writes for 24-bit audio.
    path = synth(tmp_path / "q24.wav", "-b", "24")
    assert format_tag(path) == 0xFFFE
    samples, rate = read_wav(path)
    assert abs(dominant_hz(samples, rate) - 440) < 3


def test_a_wav_sox_streamed_to_a_pipe_is_read_to_its_end(tmp_path: Path) -> None:
    # Written to a pipe, sox cannot go back to fix the sizes: the header claims ~2 GB.
    raw = (np.sin(2 * np.pi * 300 * np.arange(16_000) / 16_000) * 12_000).astype("<i2").tobytes()
    out = subprocess.run(
        ["sox", "-t", "raw", "-r", "16000", "-e", "signed", "-b", "16", "-c", "1", "-", "-t", "wav", "-"],
        input=raw,
        check=True,
        capture_output=True,
    ).stdout
    path = tmp_path / "piped.wav"
    path.write_bytes(out)
    assert struct.unpack("<I", out[40:44])[0] > len(out)
    samples, rate = read_wav(path)
    assert rate == 16_000 and len(samples) == 16_000
    assert abs(dominant_hz(samples, rate) - 300) < 3


def _insert_chunks(path: Path, before_data: list[bytes], after_data: bytes = b"") -> None:
    """Put extra RIFF chunks around the data chunk of a sox-written 16-bit mono file."""
    data = path.read_bytes()
    at = data.index(b"data")
    body = data[12:at] + b"".join(before_data) + data[at:] + after_data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body) + 4) + b"WAVE" + body)


def chunk(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def test_list_fact_and_odd_sized_chunks_are_skipped(tmp_path: Path) -> None:
    path = synth(tmp_path / "phone.wav", "-b", "16", rate=16_000)
    expected, _ = read_wav(path)
    info = chunk(b"LIST", b"INFO" + chunk(b"INAM", b"Voice memo 3\0") + chunk(b"ISFT", b"Recorder\0"))
    _insert_chunks(
        path, [info, chunk(b"fact", struct.pack("<I", 8000)), chunk(b"junk", b"odd")], after_data=chunk(b"id3 ", b"tag")
    )
    samples, rate = read_wav(path)
    assert rate == 16_000
    np.testing.assert_array_equal(samples, expected)


@pytest.mark.parametrize("rate", [8_000, 11_025, 22_050, 44_100, 48_000, 96_000])
async def test_any_rate_becomes_16k_frames_of_the_same_sound(tmp_path: Path, rate: int) -> None:
    path = synth(tmp_path / f"r{rate}.wav", "-b", "24", "-c", "2", rate=rate, seconds=1.0, tones="sine 500")
    src = WavFileSource(path, realtime=False)
    await src.start()
    try:
        frames = [f async for _, f in src.frames()]
    finally:
        await src.stop()
    assert all(f.shape == (FRAME_SAMPLES,) for f in frames)
    audio = np.concatenate(frames)
    assert abs(len(frames) - SAMPLE_RATE // FRAME_SAMPLES) <= 1
    assert abs(dominant_hz(audio[:SAMPLE_RATE], SAMPLE_RATE) - 500) < 5


def test_resampling_reads_in_blocks_and_matches_one_shot(tmp_path: Path) -> None:
    import soxr

    path = synth(tmp_path / "long.wav", "-b", "16", rate=48_000, seconds=3.0, tones="sine 700")
    samples, rate = read_wav(path)
    whole = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ")
    got = load_wav(path, SAMPLE_RATE)
    assert len(got) == len(whole)
    assert float(np.max(np.abs(got - whole))) < 1e-3


# -- absurd headers: refused at once, one line, exit 2 ---------------------------------------


def _patch(path: Path, offset: int, fmt: str, value: int) -> Path:
    data = bytearray(path.read_bytes())
    data[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    path.write_bytes(bytes(data))
    return path


def _rate(value: int) -> Callable[[Path], Path]:
    return lambda p: _patch(synth(p, "-b", "16", rate=16_000), 24, "<I", value)


def _data_size_beyond_the_file(p: Path) -> Path:
    return _patch(synth(p, "-b", "16", rate=16_000), 40, "<I", 50_000_000)


def _no_channels(p: Path) -> Path:
    return _patch(synth(p, "-b", "16", rate=16_000), 22, "<H", 0)


def _empty(p: Path) -> Path:
    p.write_bytes(b"")
    return p


def _text(p: Path) -> Path:
    p.write_text("this is a shopping list, not a recording\n")
    return p


def _mp3_named_wav(p: Path) -> Path:
    p.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(4000))
    return p


def _header_only(p: Path) -> Path:
    p.write_bytes(synth(p, "-b", "16", rate=16_000).read_bytes()[:30])
    return p


def _no_samples(p: Path) -> Path:
    data = synth(p, "-b", "16", rate=16_000).read_bytes()[:44]
    p.write_bytes(data[:40] + struct.pack("<I", 1) + b"\0")  # one byte: not even one sample
    return p


def _compressed(p: Path) -> Path:
    return synth(p, "-e", "ima-adpcm", rate=8_000)


REFUSALS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "rate 1 Hz": (_rate(1), "sample rate of 1 Hz"),
    "rate 0": (_rate(0), "sample rate of 0 Hz"),
    "rate 4 GHz": (_rate(4_000_000_000), "sample rate of 4000000000 Hz"),
    "data size beyond the file": (_data_size_beyond_the_file, "is truncated"),
    "0 channels": (_no_channels, "claims 0 channels"),
    "empty file": (_empty, "is empty"),
    "text file": (_text, "is not a WAV file"),
    "mp3 named .wav": (_mp3_named_wav, "is not a WAV file"),
    "header cut short": (_header_only, "truncated"),
    "no whole sample": (_no_samples, "holds no audio"),
    "ADPCM": (_compressed, "is compressed"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_reader_refuses_absurd_files_at_once(tmp_path: Path, case: str) -> None:
    build, words = REFUSALS[case]
    path = build(tmp_path / "bad.wav")
    start = time.perf_counter()
    with pytest.raises(VoiceError) as info:
        read_wav(path)
    assert time.perf_counter() - start < 0.1
    assert info.value.code is ErrorCode.INVALID_CONFIG
    assert words in info.value.message and str(path) in info.value.message
    assert "\n" not in str(info.value)


def voxdesk(*args: str, home: Path, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "VOXDESK_HOME": str(home)}
    start = time.perf_counter()
    proc = subprocess.run([VOXDESK, *args], capture_output=True, text=True, env=env, timeout=timeout)
    return proc, time.perf_counter() - start


@pytest.mark.parametrize("case", list(REFUSALS))
def test_converse_refuses_a_bad_input_with_one_line_and_exit_2(tmp_path: Path, voxdesk_home: Path, case: str) -> None:
    build, words = REFUSALS[case]
    path = build(tmp_path / "question.wav")
    proc, elapsed = voxdesk("converse", "--input", str(path), home=voxdesk_home, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and words in lines[0] and str(path) in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert elapsed < REFUSAL_S, f"refusal took {elapsed:.2f} s"


def test_converse_refuses_a_missing_input_with_exit_2(tmp_path: Path, voxdesk_home: Path) -> None:
    proc, _ = voxdesk("converse", "--input", str(tmp_path / "gone.wav"), home=voxdesk_home, timeout=60)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_converse_hears_a_24_bit_stereo_48k_recording(tmp_path: Path, voxdesk_home: Path) -> None:
    """The file the issue saw refused, end to end: sox's extensible 24-bit header."""
    from tests.support.speech import speak_to_wav

    plain = speak_to_wav("what time is it", tmp_path / "plain.wav")
    path = tmp_path / "q24.wav"
    sox(plain, "-r", "48000", "-b", "24", "-c", "2", path)
    assert format_tag(path) == 0xFFFE
    info = probe_wav(path)
    assert (info.rate, info.channels, info.width) == (48_000, 2, 3)
    proc, _ = voxdesk("converse", "--input", str(path), "--fast", "--json", home=voxdesk_home, timeout=180)
    assert proc.returncode == 0, proc.stderr
    turn = json.loads(proc.stdout)["turns"][0]
    assert "time" in turn["user"].lower(), turn
