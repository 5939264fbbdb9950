"""A loopback server that speaks the OpenAI-compatible API and misbehaves on request.

Real servers cannot be told to answer 503, stall, or drop a connection mid-reply,
so this one can. It runs its own asyncio loop in a thread (the test's loop stays
clean) on 127.0.0.1 with a free port. The fault is chosen by the first path
segment, so one server serves a healthy and a broken provider at once::

    with FaultServer() as srv:
        srv.base_url("ok")        # http://127.0.0.1:PORT/ok/v1
        srv.base_url("503")       # every request → 503
        srv.base_url("429-7")     # 429 with Retry-After: 7

Modes: ok, 401, 403, 404, 422, 429[-secs], 500, 503, flaky-N (first N requests 503,
then ok), slow-SECS (first byte after SECS), stall (headers never come),
trickle (headers, then one body byte per second), trickle-after-first (first
delta at once, then one byte per second), drop (first delta, then the
connection is cut), drop-before (cut before any byte), malformed (broken
SSE/JSON), huge (an endless body), gated (first part, then waits for
``release``), wav (speech as a WAV file).

Endpoints: GET /models, POST /chat/completions (SSE), POST /audio/transcriptions
(multipart WAV → {"text"}), POST /audio/speech (PCM 24 kHz, streamed in pieces).
Every request is recorded (method, path, headers, WAV rate); disconnects before
a response finished are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading
import time
import wave
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

REPLY_TEXT = "Hello from the fault server. This is the second sentence."
TRANSCRIPT_TEXT = "hello from the fault server"
MODEL_ID = "fault-model"
SPEECH_RATE = 24_000
SPEECH_PIECES = 4
SPEECH_SECONDS = 0.8


@dataclass
class Recorded:
    method: str
    path: str
    mode: str
    headers: dict[str, str]
    body: bytes = b""
    wav_rate: int | None = None
    wav_samples: int | None = None


def speech_pcm(seconds: float = SPEECH_SECONDS, rate: int = SPEECH_RATE) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    return (tone * 32767).astype("<i2").tobytes()


def _wav_header(rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"")
    return buf.getvalue()  # data size 0: streamed WAVs do not know it either


class _ClientGone(Exception):
    pass


class FaultServer:
    def __init__(self) -> None:
        self.port = 0
        self.requests: list[Recorded] = []
        self.disconnects: Counter[str] = Counter()
        self.release = threading.Event()
        self._mode_hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._disconnected = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # -- life cycle --------------------------------------------------------
    def start(self) -> FaultServer:
        self._thread = threading.Thread(target=self._run, name="fault-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault server did not start")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        asyncio.get_running_loop().stop()

    def stop(self) -> None:
        self.release.set()
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            self._thread.join(10)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- queries for tests -------------------------------------------------
    def base_url(self, mode: str = "ok") -> str:
        return f"http://127.0.0.1:{self.port}/{mode}/v1"

    def hits(self, mode: str, endpoint: str = "") -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.mode == mode and r.path.endswith(endpoint))

    def wait_disconnect(self, mode: str, timeout: float = 5.0) -> bool:
        """Block until a client hung up on ``mode`` before its response finished."""
        with self._disconnected:
            return self._disconnected.wait_for(lambda: self.disconnects[mode] > 0, timeout)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.disconnects.clear()
            self._mode_hits.clear()
        self.release.clear()

    # -- HTTP --------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (_ClientGone, ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        body = b""
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        parts = target.split("?")[0].strip("/").split("/")
        mode = parts[0] if parts else ""
        endpoint = "/".join(parts[2:]) if len(parts) > 2 and parts[1] == "v1" else ""
        rec = Recorded(method, target, mode, headers, body)
        if endpoint == "audio/transcriptions":
            rec.wav_rate, rec.wav_samples = _wav_info(body)
        with self._lock:
            self.requests.append(rec)
            self._mode_hits[mode] += 1
            hit = self._mode_hits[mode]
        await _Exchange(self, reader, writer, mode, endpoint, hit, body).run()

    def _record_disconnect(self, mode: str) -> None:
        with self._disconnected:
            self.disconnects[mode] += 1
            self._disconnected.notify_all()


def _wav_info(body: bytes) -> tuple[int | None, int | None]:
    start = body.find(b"RIFF")
    if start < 0:
        return None, None
    try:
        with wave.open(io.BytesIO(body[start:]), "rb") as w:
            return w.getframerate(), w.getnframes()
    except (wave.Error, EOFError):
        return None, None


@dataclass
class _Exchange:
    """One request/response, with a watcher that notices the client hanging up."""

    server: FaultServer
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    mode: str
    endpoint: str
    hit: int
    body: bytes
    gone: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        watcher = asyncio.create_task(self._watch())
        finished = False
        try:
            await self._respond()
            finished = True
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if not finished or self.gone.is_set():
                self.server._record_disconnect(self.mode)

    async def _watch(self) -> None:
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(1024):
                pass
        self.gone.set()

    # -- writing helpers ---------------------------------------------------
    async def _write(self, data: bytes) -> None:
        if self.gone.is_set():
            raise _ClientGone
        self.writer.write(data)
        await self.writer.drain()

    async def head(self, status: int, ctype: str, *, length: int | None = None, extra: str = "") -> None:
        reason = {
            200: "OK",
            401: "Unauthorized",
            403: "Forbidden",
            404: "Not Found",
            422: "Unprocessable",
            429: "Too Many Requests",
            500: "Internal Server Error",
            503: "Service Unavailable",
        }
        framing = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
        await self._write(
            f"HTTP/1.1 {status} {reason.get(status, 'X')}\r\nContent-Type: {ctype}\r\n{framing}{extra}"
            "Connection: close\r\n\r\n".encode()
        )

    async def chunk(self, data: bytes) -> None:
        if data:
            await self._write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    async def end(self) -> None:
        await self._write(b"0\r\n\r\n")

    async def json(self, status: int, obj: Any, extra: str = "") -> None:
        data = json.dumps(obj).encode()
        await self.head(status, "application/json", length=len(data), extra=extra)
        await self._write(data)

    async def pause(self, seconds: float) -> None:
        """Sleep, but stop at once when the client hangs up."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.gone.wait(), seconds)
        if self.gone.is_set():
            raise _ClientGone

    async def wait_release(self, limit: float = 10.0) -> None:
        deadline = time.monotonic() + limit
        while not self.server.release.is_set() and time.monotonic() < deadline:
            await self.pause(0.01)

    # -- behaviour ---------------------------------------------------------
    async def _respond(self) -> None:
        mode, base = self.mode, self.mode.split("-")[0]
        if base in ("401", "403", "404", "422", "500", "503"):
            await self.json(int(base), {"error": {"message": f"fault {base}", "type": "fault"}})
            return
        if base == "429":
            secs = mode.split("-")[1] if "-" in mode else "1"
            await self.json(429, {"error": {"message": "slow down"}}, extra=f"Retry-After: {secs}\r\n")
            return
        if base == "flaky" and self.hit <= int(mode.split("-")[1]):
            await self.json(503, {"error": {"message": "warming up"}})
            return
        if mode == "drop-before":
            self.writer.transport.abort()
            return
        if mode == "stall":
            await self.pause(60)
            return
        if base == "slow":
            await self.pause(float(mode.split("-", 1)[1]))
        if self.endpoint == "models":
            await self.json(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]})
        elif self.endpoint == "chat/completions":
            await self._chat()
        elif self.endpoint == "audio/transcriptions":
            await self._transcribe()
        elif self.endpoint == "audio/speech":
            await self._speech()
        else:
            await self.json(404, {"error": {"message": f"no endpoint {self.endpoint}"}})

    async def _chat(self) -> None:
        mode = self.mode
        await self.head(200, "text/event-stream")
        if mode == "trickle":
            for byte in b'data: {"choices":[{"delta":{"content":"slow"}}]}\n\n':
                await self.chunk(bytes([byte]))
                await self.pause(1.0)
            return
        if mode == "huge":
            await self.chunk(b"data: ")
            block = b"x" * 65536
            for _ in range(4096):  # 256 MiB at most, stops when the client hangs up
                await self.chunk(block)
            return
        if mode == "malformed":
            await self.chunk(b"data: {not json at all\n\n")
            await self.end()
            return
        words = REPLY_TEXT.split(" ")
        for i, word in enumerate(words):
            delta = word if i == 0 else " " + word
            event = {
                "id": "x",
                "object": "chat.completion.chunk",
                "model": MODEL_ID,
                "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": None}],
            }
            await self.chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
            if i == 0:
                if mode == "drop":
                    await asyncio.sleep(0.05)
                    self.writer.transport.abort()
                    raise _ClientGone
                if mode == "trickle-after-first":
                    for byte in b"data: {}\n\n":
                        await self.pause(1.0)
                        await self.chunk(bytes([byte]))
                    return
                if mode == "gated":
                    await self.wait_release()
        await self.chunk(b"data: [DONE]\n\n")
        await self.end()

    async def _transcribe(self) -> None:
        if self.mode == "malformed":
            data = b'{"text": "unterminated'
            await self.head(200, "application/json", length=len(data))
            await self._write(data)
            return
        if self.mode == "huge":
            await self.head(200, "application/json")
            await self.chunk(b'{"text": "')
            for _ in range(4096):
                await self.chunk(b"a" * 65536)
            return
        await self.json(200, {"text": TRANSCRIPT_TEXT})

    async def _speech(self) -> None:
        pcm = speech_pcm()
        if self.mode == "malformed":
            await self.json(200, {"audio": "not audio"})
            return
        await self.head(200, "audio/wav" if self.mode == "wav" else "audio/pcm")
        if self.mode == "wav":
            await self.chunk(_wav_header(SPEECH_RATE))
        step = len(pcm) // SPEECH_PIECES + 1  # odd sizes: the client must carry half samples
        for i in range(0, len(pcm), step):
            await self.chunk(pcm[i : i + step])
            if i == 0 and self.mode == "gated":
                await self.wait_release()
            elif i == 0 and self.mode == "drop":
                self.writer.transport.abort()
                raise _ClientGone
        await self.end()
