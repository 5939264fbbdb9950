"""The Wyoming protocol, client side: one TCP connection per request, every wait bounded.

Events are written with the ``wyoming`` library's own writer. They are read here
rather than with ``wyoming.event.async_read_event`` because that one drops the
``version`` every event header carries (needed to refuse a server too old for us),
turns malformed input into "connection closed", and reads lengths without a cap.

Faults become ``VoiceError`` codes the stage runner already acts on:

- not reachable, refused, reset, closed mid-answer → UNAVAILABLE (retried, then the
  next provider);
- no answer within ``timeout_s`` → TIMEOUT (the next provider at once);
- an ``error`` event, an unexpected event, malformed bytes → PROVIDER_ERROR;
- a server on an older protocol than ``MIN_PROTOCOL``, or one that offers no service of
  the kind asked for (a TTS port set as STT) → INVALID_CONFIG: settings must change.

While audio (STT) or text (streamed TTS) is still being sent the server may rightly be
silent, so the answer deadline starts when the sending ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

from wyoming.asr import Transcribe, Transcript, TranscriptChunk
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.redaction import redact
from providers.wyoming.config import parse_uri

log = logging.getLogger(__name__)

#: Wyoming 1.0 is the first stable release of the event set this client speaks (info
#: with programs and models, transcribe/transcript, synthesize with a voice); a server
#: stating an older version is refused rather than half understood.
MIN_PROTOCOL = (1, 0, 0)
#: Caps on what one event may make us buffer (a broken server must not eat the memory).
MAX_LINE = 1 << 20
MAX_DATA = 8 << 20
MAX_PAYLOAD = 16 << 20
#: The rate, width and channels VoxDesk sends speech in (the engine's capture format).
STT_RATE, STT_WIDTH, STT_CHANNELS = 16_000, 2, 1


@dataclass(frozen=True)
class Frame:
    """One event as read, with the protocol version its header stated (None if none)."""

    event: Event
    version: str | None


@dataclass(frozen=True)
class Model:
    """A model (STT) or voice (TTS) the server offers."""

    name: str
    languages: tuple[str, ...] = ()
    description: str = ""
    speakers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerInfo:
    """What ``describe`` told about the server (its first program of each kind)."""

    uri: str
    protocol: str | None
    asr_program: str = ""
    tts_program: str = ""
    asr_models: tuple[Model, ...] = ()
    voices: tuple[Model, ...] = ()
    streams_transcripts: bool = False
    streams_synthesis: bool = False
    offers: tuple[str, ...] = field(default_factory=tuple)

    @property
    def languages(self) -> tuple[str, ...]:
        langs = {lang for m in (*self.asr_models, *self.voices) for lang in m.languages}
        return tuple(sorted(langs))


@dataclass(frozen=True)
class SpeechPiece:
    """Text from the server: a partial (streaming servers) or the final transcript."""

    text: str
    is_final: bool
    language: str | None = None


@dataclass(frozen=True)
class Sound:
    """Audio the server sent: 16/32-bit or 8-bit PCM at its own rate."""

    audio: bytes
    rate: int
    width: int
    channels: int


def version_tuple(version: str) -> tuple[int, ...] | None:
    """``"1.2.0rc1"`` → (1, 2, 0); None when it does not start like a version."""
    parts = []
    for p in version.split(".")[:3]:
        digits = re.match(r"\d+", p)
        if digits is None:
            return None
        parts.append(int(digits.group()))
    return tuple(parts)


class Connection:
    """One open connection: events out with wyoming's writer, events in with our reader."""

    def __init__(self, client: WyomingClient, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.client = client
        self.reader = reader
        self.writer = writer
        self.protocol: str | None = None

    async def send(self, event: Event) -> None:
        try:
            async with asyncio.timeout(self.client.timeout_s):
                await async_write_event(event, self.writer)
        except TimeoutError:
            raise self.client.timeout_error(f"taking {event.type}") from None
        except OSError as exc:
            raise self.client.closed_error(exc) from None

    async def receive(self) -> Frame:
        """The next event; raises VoiceError for EOF, bad bytes and a too-old protocol."""
        try:
            frame = await self._read()
        except asyncio.IncompleteReadError:
            raise self.client.closed_error(None, midway=True) from None
        except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise self.client.error(
                ErrorCode.PROVIDER_ERROR, f"sent something that is not a Wyoming event ({type(exc).__name__})"
            ) from None
        except OSError as exc:
            raise self.client.closed_error(exc) from None
        if frame is None:
            raise self.client.closed_error(None)
        if frame.version is not None:
            self.protocol = frame.version
            self.client.check_version(frame.version)
        return frame

    async def _read(self) -> Frame | None:
        line = await self.reader.readline()
        if not line:
            return None
        if not line.endswith(b"\n"):
            raise asyncio.IncompleteReadError(line, None)
        header = json.loads(line)
        if not isinstance(header, dict) or not isinstance(header.get("type"), str):
            raise ValueError("no event type")
        data = header.get("data") or {}
        if not isinstance(data, dict):
            raise TypeError("data is not an object")
        data_length = _length(header.get("data_length"), MAX_DATA)
        if data_length:
            extra = json.loads(await self.reader.readexactly(data_length))
            if not isinstance(extra, dict):
                raise TypeError("data is not an object")
            data.update(extra)
        payload_length = _length(header.get("payload_length"), MAX_PAYLOAD)
        payload = await self.reader.readexactly(payload_length) if payload_length else None
        version = header.get("version")
        return Frame(Event(header["type"], data, payload), version if isinstance(version, str) else None)

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


def _length(value: Any, cap: int) -> int:
    if value is None:
        return 0
    if not isinstance(value, int) or value < 0 or value > cap:
        raise ValueError(f"bad length {value!r}")
    return value


class WyomingClient:
    """A Wyoming server at ``uri`` for one stage (``op`` names it in errors)."""

    def __init__(self, op: str, uri: str, *, timeout_s: float, connect_timeout_s: float) -> None:
        self.op = op
        self.uri = uri
        self.host, self.port = parse_uri(uri)
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._info: ServerInfo | None = None

    # -- errors ---------------------------------------------------------------
    def error(self, code: ErrorCode, what: str) -> VoiceError:
        return VoiceError(self.op, code, f"the Wyoming server at {self.uri} {what}")

    def offline_error(self) -> VoiceError:
        return VoiceError(
            self.op,
            ErrorCode.UNAVAILABLE,
            f"Wyoming server at {self.uri} is not answering: start it or check the address",
        )

    def timeout_error(self, doing: str) -> VoiceError:
        return self.error(
            ErrorCode.TIMEOUT, f"gave no answer within {self.timeout_s:g} s ({doing}) — is it overloaded?"
        )

    def closed_error(self, exc: BaseException | None, *, midway: bool = False) -> VoiceError:
        why = f" ({type(exc).__name__})" if exc is not None else ""
        where = "in the middle of an event" if midway else "before it answered"
        return self.error(ErrorCode.UNAVAILABLE, f"closed the connection {where}{why} — is it restarting?")

    def unexpected(self, event: Event, doing: str) -> VoiceError:
        if Error.is_type(event.type):
            err = Error.from_event(event)
            code = f" [{err.code}]" if err.code else ""
            return self.error(ErrorCode.PROVIDER_ERROR, f"reported an error{code}: {redact(err.text)[:300]}")
        return self.error(
            ErrorCode.PROVIDER_ERROR, f"sent an unexpected {event.type[:40]!r} event while {doing} — check the address"
        )

    def check_version(self, version: str) -> None:
        parsed = version_tuple(version)
        if parsed is not None and parsed < MIN_PROTOCOL:
            self._info = None
            need = ".".join(map(str, MIN_PROTOCOL))
            raise self.error(
                ErrorCode.INVALID_CONFIG,
                f"speaks Wyoming protocol {version[:20]}; VoxDesk needs {need} or newer — update the server",
            )

    # -- connections ----------------------------------------------------------
    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Connection]:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                reader, writer = await asyncio.open_connection(self.host, self.port, limit=MAX_LINE)
        except (TimeoutError, OSError):
            self._info = None
            raise self.offline_error() from None
        conn = Connection(self, reader, writer)
        try:
            yield conn
        except VoiceError:
            self._info = None  # ask again next time: the server may have changed
            raise
        finally:
            await conn.aclose()

    async def answers(
        self, conn: Connection, doing: str, sender: Awaitable[None] | None = None
    ) -> AsyncGenerator[Frame, None]:
        """Events from the server, each within ``timeout_s`` — counted from when ``sender``
        (what we are still sending) has finished; a failure in ``sender`` is raised here."""
        send_task = asyncio.ensure_future(sender) if sender is not None else None
        try:
            while True:
                read = asyncio.ensure_future(conn.receive())
                try:
                    await self._wait_for(read, send_task, doing)
                finally:
                    if not read.done():
                        read.cancel()
                        await asyncio.gather(read, return_exceptions=True)
                yield read.result()
        finally:
            if send_task is not None and not send_task.done():
                send_task.cancel()
                await asyncio.gather(send_task, return_exceptions=True)

    async def _wait_for(self, read: asyncio.Future[Frame], send_task: asyncio.Future[None] | None, doing: str) -> None:
        while not read.done():
            sending = send_task is not None and not send_task.done()
            waits: set[asyncio.Future[Any]] = {read, send_task} if sending and send_task else {read}
            done, _ = await asyncio.wait(
                waits, timeout=None if sending else self.timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                raise self.timeout_error(doing)
            if send_task is not None and send_task in done and not read.done() and send_task.exception():
                raise send_task.exception()  # type: ignore[misc]

    # -- describe -------------------------------------------------------------
    async def describe(self, *, refresh: bool = False) -> ServerInfo:
        """What the server offers (kept until a request fails or ``refresh``)."""
        if self._info is not None and not refresh:
            return self._info
        async with self.connect() as conn:
            await conn.send(Describe().event())
            async with contextlib.aclosing(self.answers(conn, "describing itself")) as frames:
                async for frame in frames:
                    if Info.is_type(frame.event.type):
                        self._info = self._server_info(frame)
                        return self._info
                    raise self.unexpected(frame.event, "describing itself")
        raise AssertionError("unreachable")  # pragma: no cover - answers() raises or yields

    def _server_info(self, frame: Frame) -> ServerInfo:
        try:
            info = Info.from_event(frame.event)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self.error(
                ErrorCode.INVALID_CONFIG,
                f"describes itself in a form VoxDesk does not read ({type(exc).__name__}: {redact(str(exc))[:80]}) "
                "— its Wyoming version may be too old; update the server",
            ) from None
        offers = tuple(k for k in ("asr", "tts", "wake", "handle", "intent", "mic", "snd") if getattr(info, k))
        asr = next((p for p in info.asr if p.installed), info.asr[0] if info.asr else None)
        tts = next((p for p in info.tts if p.installed), info.tts[0] if info.tts else None)
        return ServerInfo(
            uri=self.uri,
            protocol=frame.version,
            asr_program=f"{asr.name} {asr.version or ''}".strip() if asr else "",
            tts_program=f"{tts.name} {tts.version or ''}".strip() if tts else "",
            asr_models=tuple(
                Model(m.name, tuple(m.languages or ()), m.description or "") for m in (asr.models if asr else [])
            ),
            voices=tuple(
                Model(
                    v.name,
                    tuple(v.languages or ()),
                    v.description or "",
                    tuple(s.name for s in (v.speakers or [])),
                )
                for v in (tts.voices if tts else [])
            ),
            streams_transcripts=bool(asr and asr.supports_transcript_streaming),
            streams_synthesis=bool(tts and tts.supports_synthesize_streaming),
            offers=offers,
        )

    def require(self, info: ServerInfo, kind: str) -> None:
        """INVALID_CONFIG when the server offers no service of ``kind`` ("asr" / "tts")."""
        if kind in info.offers:
            return
        names = {"asr": "speech recognition", "tts": "text-to-speech", "wake": "wake words", "handle": "intents"}
        others = ", ".join(names.get(o, o) for o in info.offers) or "nothing"
        raise self.error(
            ErrorCode.INVALID_CONFIG,
            f"offers no {names[kind]} (it offers {others}) — check the port in Settings",
        )

    # -- speech to text -------------------------------------------------------
    async def transcribe(
        self, audio: AsyncIterable[bytes], *, language: str | None, model: str | None
    ) -> AsyncGenerator[SpeechPiece, None]:
        """Send 16 kHz 16-bit mono PCM as it comes; partials (if the server streams them),
        then the final transcript."""
        info = await self.describe()
        self.require(info, "asr")
        doing = "transcribing"
        async with self.connect() as conn:
            await conn.send(Transcribe(name=model or None, language=language or None).event())
            await conn.send(AudioStart(rate=STT_RATE, width=STT_WIDTH, channels=STT_CHANNELS).event())

            async def send_audio() -> None:
                async for pcm in audio:
                    if pcm:
                        await conn.send(
                            AudioChunk(rate=STT_RATE, width=STT_WIDTH, channels=STT_CHANNELS, audio=pcm).event()
                        )
                await conn.send(AudioStop().event())

            partial = ""
            async with contextlib.aclosing(self.answers(conn, doing, send_audio())) as frames:
                async for frame in frames:
                    ev = frame.event
                    if Transcript.is_type(ev.type):
                        final = Transcript.from_event(ev)
                        yield SpeechPiece(str(final.text or "").strip(), True, final.language)
                        return
                    if TranscriptChunk.is_type(ev.type):
                        partial += str(TranscriptChunk.from_event(ev).text or "")
                        yield SpeechPiece(partial.strip(), False)
                    elif ev.type not in ("transcript-start", "transcript-stop", "pong"):
                        raise self.unexpected(ev, doing)

    # -- text to speech -------------------------------------------------------
    async def synthesize(self, text: str, voice: SynthesizeVoice | None) -> AsyncGenerator[Sound, None]:
        """Audio for one text: audio-start, audio-chunk…, audio-stop."""
        info = await self.describe()
        self.require(info, "tts")
        doing = "speaking"
        async with self.connect() as conn:
            await conn.send(Synthesize(text=text, voice=voice).event())
            async with contextlib.aclosing(self.answers(conn, doing)) as frames:
                async for frame in frames:
                    ev = frame.event
                    if AudioChunk.is_type(ev.type):
                        yield _sound(AudioChunk.from_event(ev))
                    elif AudioStop.is_type(ev.type):
                        return
                    elif not AudioStart.is_type(ev.type):
                        raise self.unexpected(ev, doing)

    async def synthesize_stream(
        self, texts: AsyncIterable[str], voice: SynthesizeVoice | None
    ) -> AsyncGenerator[Sound, None]:
        """Text streamed in (synthesize-start/chunk/stop), audio out as the server makes it,
        until synthesize-stopped. For servers whose info says they stream synthesis."""
        self.require(await self.describe(), "tts")
        doing = "speaking a streamed reply"
        async with self.connect() as conn:
            await conn.send(SynthesizeStart(voice=voice).event())

            async def send_text() -> None:
                said = []
                async for text in texts:
                    if text:
                        said.append(text)
                        await conn.send(SynthesizeChunk(text=text).event())
                # The whole text once more, for servers that only read `synthesize` (as the protocol asks).
                await conn.send(Synthesize(text="".join(said), voice=voice).event())
                await conn.send(SynthesizeStop().event())

            async with contextlib.aclosing(self.answers(conn, doing, send_text())) as frames:
                async for frame in frames:
                    ev = frame.event
                    if AudioChunk.is_type(ev.type):
                        yield _sound(AudioChunk.from_event(ev))
                    elif ev.type == "synthesize-stopped":
                        return
                    elif not (AudioStart.is_type(ev.type) or AudioStop.is_type(ev.type)):
                        raise self.unexpected(ev, doing)


def _sound(chunk: AudioChunk) -> Sound:
    return Sound(chunk.audio, int(chunk.rate), int(chunk.width), int(chunk.channels))
