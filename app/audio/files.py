"""The audio interfaces over WAV files: `converse --input/--output`, `bench` and tests.

A file source behaves like a microphone (same 16 kHz 512-sample frames, same capture
timestamps) so the engine cannot tell the difference; real-time pace reproduces what a
user would experience, "as fast as possible" makes tests and batch runs quick.
The file sink keeps what would have been played and writes one WAV on `stop()`.

The reader parses RIFF itself instead of using `wave`: the standard library refuses
WAVE_FORMAT_EXTENSIBLE (what sox writes for 24-bit and multichannel files) and float
samples, and it trusts the header's sizes. Here the header is checked against the
file before a byte of audio is read, so an absurd one (1 Hz, 0 channels, more audio
than the file holds) is refused at once with one line instead of eating memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import soxr

from app.audio.streams import AudioSink, AudioSource
from app.commands.terminal_text import escape_control
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk, validate_audio

OP = "audio.file"
#: Below this no speech survives; above it no recorder goes (768 kHz is the highest DACs do).
MIN_RATE, MAX_RATE = 2_000, 768_000
MAX_CHANNELS = 64
#: A question, or a long recording split into turns; more would only fill the memory.
MAX_SECONDS = 3600.0
#: Chunks before "data" (LIST, fact, bext, cue...) are skipped, not read; a file with
#: more of them than this is not a recording.
MAX_CHUNKS = 4096

Encoding = Literal["pcm", "float", "mulaw", "alaw"]

_PCM, _FLOAT, _ALAW, _MULAW, _EXTENSIBLE = 0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE
#: Bytes 2..16 of every KSDATAFORMAT_SUBTYPE_* GUID; the first two hold the format code.
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
#: Writers that cannot seek back to fix the size (a pipe, a recorder cut off) leave one of
#: these in the data chunk: 0, all ones, or sox's 0x7FFFF000 ("as large as it gets").
_UNKNOWN_SIZES = (0, 0xFFFFFFFF, 0x7FFFF000)
_CONVERT = "convert it, e.g. `sox in.x -b 16 out.wav`"


@dataclass(frozen=True)
class WavInfo:
    """What a WAV header says, checked against the file it came from."""

    rate: int
    channels: int
    encoding: Encoding
    width: int  # bytes per sample
    data_offset: int
    data_bytes: int  # whole frames only

    @property
    def frames(self) -> int:
        return self.data_bytes // (self.width * self.channels)

    @property
    def duration_s(self) -> float:
        return self.frames / self.rate


def _name(path: str | Path) -> str:
    return escape_control(str(path), keep_newlines=False)


def _bad(path: str | Path, why: str) -> VoiceError:
    return VoiceError(OP, ErrorCode.INVALID_CONFIG, f"{_name(path)} {why}")


def _chunks(f: BinaryIO, path: str | Path, file_size: int) -> tuple[bytes, int, int]:
    """(fmt chunk body, data offset, data size) from a RIFF/WAVE file; sizes not yet checked."""
    head = f.read(12)
    if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RF64", b"RIFX"):
        raise _bad(path, f"is not a WAV file — {_CONVERT}")
    if head[:4] == b"RIFX":
        raise _bad(path, f"is a big-endian WAV (RIFX) — {_CONVERT}")
    rf64_data: int | None = None
    fmt: bytes | None = None
    pos = 12
    for _ in range(MAX_CHUNKS):
        f.seek(pos)
        header = f.read(8)
        if len(header) < 8:
            break
        cid, size = header[:4], struct.unpack("<I", header[4:])[0]
        body_at = pos + 8
        if cid == b"ds64" and size >= 16:  # RF64: the real sizes of files over 4 GB
            rf64_data = struct.unpack("<Q", f.read(16)[8:16])[0]
        elif cid == b"fmt ":
            if size < 16 or size > 1024:
                raise _bad(path, f"has a damaged format header ({size} bytes) — {_CONVERT}")
            fmt = f.read(size)
            if len(fmt) < size:
                raise _bad(path, "is truncated inside its format header — re-export or re-record it")
        elif cid == b"data":
            if fmt is None:
                raise _bad(path, f"has its audio before its format header — {_CONVERT}")
            if rf64_data is not None and size == 0xFFFFFFFF:
                size = rf64_data
            elif size in _UNKNOWN_SIZES:  # written by a stream that never came back to fix it
                size = file_size - body_at
            return fmt, body_at, size
        pos = body_at + size + (size & 1)  # chunks are padded to an even length
        if pos > file_size:
            break
    if fmt is None:
        raise _bad(path, f"is not a WAV file (no format header) — {_CONVERT}")
    raise _bad(path, "holds no audio (no data chunk) — re-export or re-record it")


def _format(path: str | Path, fmt: bytes) -> tuple[Encoding, int, int, int]:
    """(encoding, channels, rate, bytes per sample) from a fmt chunk, or a one-line refusal."""
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _EXTENSIBLE:
        if len(fmt) < 40:
            raise _bad(path, f"has a damaged extensible format header — {_CONVERT}")
        sub = fmt[24:40]
        if sub[2:] != _GUID_TAIL:
            raise _bad(path, f"uses an unknown sample format — {_CONVERT}")
        tag = struct.unpack("<H", sub[:2])[0]
    if not 1 <= channels <= MAX_CHANNELS:
        raise _bad(path, f"claims {channels} channels (1 to {MAX_CHANNELS} are possible) — the header is damaged")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise _bad(
            path, f"claims a sample rate of {rate} Hz ({MIN_RATE} to {MAX_RATE} are possible) — the header is damaged"
        )
    width = -(-bits // 8) if bits else 0
    if block_align and width and block_align != width * channels:
        width = block_align // channels if block_align % channels == 0 else 0
    encoding: Encoding
    if tag == _PCM and width in (1, 2, 3, 4):
        encoding = "pcm"
    elif tag == _FLOAT and width in (4, 8):
        encoding = "float"
    elif tag in (_MULAW, _ALAW) and width == 1:
        encoding = "mulaw" if tag == _MULAW else "alaw"
    elif tag in (_PCM, _FLOAT, _MULAW, _ALAW):
        raise _bad(path, f"has {bits}-bit samples, which cannot be read — {_CONVERT}")
    else:
        raise _bad(path, f"is compressed (WAV format 0x{tag:04x}) — {_CONVERT}")
    return encoding, channels, rate, width


def probe_wav(path: str | Path) -> WavInfo:
    """Read and check a WAV header without reading the audio; a one-line VoiceError if unusable.

    Bad input is INVALID_CONFIG (exit code 2), a file that is not there NOT_FOUND.
    """
    try:
        with open(path, "rb") as f:
            file_size = f.seek(0, 2)
            if file_size == 0:
                raise _bad(path, "is empty — record or export it again")
            f.seek(0)
            fmt, data_offset, data_bytes = _chunks(f, path, file_size)
    except FileNotFoundError:
        raise VoiceError(OP, ErrorCode.NOT_FOUND, f"audio file {_name(path)} does not exist") from None
    except IsADirectoryError:
        raise _bad(path, "is a folder, not a WAV file") from None
    except OSError as exc:
        raise _bad(path, f"cannot be read ({exc.strerror or exc})") from None
    encoding, channels, rate, width = _format(path, fmt)
    available = file_size - data_offset
    if data_bytes > available:
        raise _bad(
            path,
            f"is truncated: its header promises {data_bytes} bytes of audio but the file "
            f"holds {available} — re-export it, or rescue it with `sox --ignore-length in.wav out.wav`",
        )
    frame = width * channels
    info = WavInfo(rate, channels, encoding, width, data_offset, data_bytes - data_bytes % frame)
    if info.frames == 0:
        raise _bad(path, "holds no audio — record or export it again")
    if info.duration_s > MAX_SECONDS:
        raise _bad(
            path,
            f"is {info.duration_s / 60:.0f} minutes long; at most {MAX_SECONDS / 60:.0f} "
            "minutes can be read — cut it, e.g. `sox in.wav part.wav trim 0 30:00`",
        )
    return info


def _mulaw_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.uint8)
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = ((mantissa.astype(np.int32) << 3) + 0x84) << exponent.astype(np.int32)
    value = np.where(sign, 0x84 - magnitude, magnitude - 0x84)
    return (value / 32768.0).astype(np.float32)


def _alaw_table() -> np.ndarray:
    a = np.arange(256, dtype=np.uint8) ^ 0x55
    sign = a & 0x80
    exponent = ((a >> 4) & 0x07).astype(np.int32)
    mantissa = (a & 0x0F).astype(np.int32)
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1))
    value = np.where(sign, magnitude, -magnitude)
    return (value / 32768.0).astype(np.float32)


def _decode(raw: bytes, info: WavInfo) -> np.ndarray:
    """Interleaved bytes → float32 in [-1, 1], still interleaved."""
    if info.encoding == "mulaw":
        return _mulaw_table()[np.frombuffer(raw, np.uint8)]
    if info.encoding == "alaw":
        return _alaw_table()[np.frombuffer(raw, np.uint8)]
    if info.encoding == "float":
        data = np.frombuffer(raw, "<f4" if info.width == 4 else "<f8").astype(np.float32)
        data = np.nan_to_num(data, nan=0.0, posinf=1.0, neginf=-1.0)
        return np.clip(data, -1.0, 1.0, out=data)
    if info.width == 1:
        return (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    if info.width == 2:
        return np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    if info.width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        return ints.astype(np.float32) / float(1 << 23)
    return (np.frombuffer(raw, "<i4").astype(np.float64) / 2147483648.0).astype(np.float32)


def iter_wav(path: str | Path, info: WavInfo | None = None, *, block_frames: int = 1 << 16) -> Iterator[np.ndarray]:
    """Mono float32 blocks of the file (channels averaged), read a block at a time."""
    info = info or probe_wav(path)
    frame = info.width * info.channels
    left = info.data_bytes
    try:
        with open(path, "rb") as f:
            f.seek(info.data_offset)
            while left > 0:
                raw = f.read(min(left, block_frames * frame))
                if not raw:
                    break
                left -= len(raw)
                raw = raw[: len(raw) - len(raw) % frame]
                data = _decode(raw, info)
                if info.channels > 1:
                    data = data.reshape(-1, info.channels).mean(axis=1, dtype=np.float32)
                yield data
    except OSError as exc:
        raise _bad(path, f"cannot be read ({exc.strerror or exc})") from None


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the file's rate: PCM 8/16/24/32-bit, float 32/64-bit,
    µ-law/A-law, plain or extensible headers, any channel count (averaged)."""
    info = probe_wav(path)
    blocks = list(iter_wav(path, info))
    data = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return np.ascontiguousarray(data, dtype=np.float32), info.rate


def load_wav(path: str | Path, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 at `rate`, decoded and resampled a block at a time (memory stays
    near the size of the result, whatever the file's rate and channels)."""
    info = probe_wav(path)
    if info.rate == rate:
        blocks = list(iter_wav(path, info))
    else:
        rs = soxr.ResampleStream(info.rate, rate, 1, dtype="float32", quality="HQ")
        blocks = [np.asarray(rs.resample_chunk(b), dtype=np.float32) for b in iter_wav(path, info)]
        blocks.append(np.asarray(rs.resample_chunk(np.zeros(0, np.float32), last=True), dtype=np.float32))
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> Path:
    """16-bit mono PCM — what every player and `sox` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def to_frames(samples: np.ndarray) -> list[np.ndarray]:
    """Split 16 kHz audio into 512-sample frames; the last one is padded with silence."""
    n = -(-len(samples) // FRAME_SAMPLES)
    padded = np.zeros(n * FRAME_SAMPLES, np.float32)
    padded[: len(samples)] = samples
    return [padded[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] for i in range(n)]


class WavFileSource(AudioSource):
    """Frames from one WAV file (any rate/channels), optionally followed by silence so
    the VAD can see the end of the last utterance, as a microphone would.

    The header is checked when the source is made, so a driver learns of a bad file
    (INVALID_CONFIG / NOT_FOUND) before it starts a session with it."""

    def __init__(self, path: str | Path, *, realtime: bool = True, trailing_silence_s: float = 0.0) -> None:
        self.path = Path(path)
        self.info = probe_wav(self.path)
        self.realtime = realtime
        self.trailing_silence_s = trailing_silence_s
        self._frames: list[np.ndarray] | None = None
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        samples = await asyncio.to_thread(load_wav, self.path, SAMPLE_RATE)
        tail = np.zeros(int(self.trailing_silence_s * SAMPLE_RATE), np.float32)
        self._frames = to_frames(np.concatenate([samples, tail]))
        self._stopped.clear()

    @property
    def duration_s(self) -> float:
        return len(self._frames or []) * FRAME_SAMPLES / SAMPLE_RATE

    async def frames(self) -> AsyncIterator[tuple[float, np.ndarray]]:
        if self._frames is None:
            await self.start()
        assert self._frames is not None
        frame_s = FRAME_SAMPLES / SAMPLE_RATE
        t0 = time.monotonic()
        for k, frame in enumerate(self._frames):
            if self._stopped.is_set():
                return
            if self.realtime:
                # A microphone delivers a frame once its last sample has been spoken.
                due = t0 + (k + 1) * frame_s
                delay = due - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopped.wait(), delay)
                    if self._stopped.is_set():
                        return
                yield due, frame
            else:
                yield time.monotonic(), frame
                await asyncio.sleep(0)  # let the engine run between frames

    async def stop(self) -> None:
        self._stopped.set()


class WavFileSink(AudioSink):
    """Collects reply audio at one rate (`sample_rate`, else the first chunk's) and
    writes `path` on `stop()`.

    Not real-time: a chunk counts as played when queued, so `first_sample_time` is the
    time the first chunk after `mark()` arrived. Real-time: a pump hands audio over at
    playback pace, so `drain()` takes as long as a speaker would and `flush()` cuts the
    rest, which is what barge-in tests need.
    """

    def __init__(self, path: str | Path | None, *, sample_rate: int | None = None, realtime: bool = False) -> None:
        self.path = Path(path) if path is not None else None
        self.rate = sample_rate
        self.realtime = realtime
        self._played: list[np.ndarray] = []
        self._queued: list[np.ndarray] = []
        self._resamplers: dict[int, soxr.ResampleStream] = {}
        self._first: float | None = None
        self._marked = True
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._pump: asyncio.Task[None] | None = None
        self._play_until = 0.0
        self.written: Path | None = None

    async def start(self) -> None:
        if self.realtime and self._pump is None:
            self._pump = asyncio.create_task(self._run_pump(), name="voxdesk-wav-sink")

    def _convert(self, chunk: AudioChunk) -> np.ndarray:
        samples = validate_audio("audio.file", chunk.samples)
        if self.rate is None:
            self.rate = chunk.sample_rate
        if chunk.sample_rate == self.rate or not len(samples):
            return samples
        rs = self._resamplers.get(chunk.sample_rate)
        if rs is None:
            rs = self._resamplers[chunk.sample_rate] = soxr.ResampleStream(
                chunk.sample_rate, self.rate, 1, dtype="float32", quality="HQ"
            )
        return np.asarray(rs.resample_chunk(samples), dtype=np.float32)

    def play(self, chunk: AudioChunk) -> None:
        samples = self._convert(chunk)
        if not len(samples):
            return
        if self._first is None and self._marked:
            self._first = time.monotonic()
        if self.realtime:
            self._queued.append(samples)
            self._idle.clear()
            self._wake.set()
        else:
            self._played.append(samples)

    async def _run_pump(self) -> None:
        block_s = 0.02
        while True:
            if not self._queued:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            head = self._queued[0]
            n = max(1, int((self.rate or SAMPLE_RATE) * block_s))
            self._played.append(head[:n])
            if len(head) > n:
                self._queued[0] = head[n:]
            else:
                self._queued.pop(0)
            await asyncio.sleep(min(block_s, len(head) / (self.rate or SAMPLE_RATE)))

    def flush(self) -> None:
        self._queued.clear()
        self._resamplers.clear()
        self._idle.set()

    async def drain(self) -> None:
        await self._idle.wait()

    def mark(self) -> None:
        self._marked = True
        self._first = None

    @property
    def first_sample_time(self) -> float | None:
        return self._first

    @property
    def is_playing(self) -> bool:
        return bool(self._queued)

    @property
    def samples(self) -> np.ndarray:
        """Everything played so far, at `rate`."""
        return np.concatenate(self._played) if self._played else np.zeros(0, np.float32)

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        self._queued.clear()
        if self.path is not None:
            self.written = await asyncio.to_thread(write_wav, self.path, self.samples, self.rate or SAMPLE_RATE)
