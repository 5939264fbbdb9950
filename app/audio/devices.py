"""Audio devices through PortAudio (sounddevice): listing, choosing, and why audio is off.

Devices are saved by *name + host API*, never by index: PortAudio renumbers devices
whenever something is plugged in. When the saved device is gone we fall back to the
system default and say so, because a silent switch to the laptop's built-in microphone
is the kind of surprise users report as "it stopped hearing me".

PortAudio itself may be missing (no libportaudio2) — then `import sounddevice` raises
OSError. The app must still start with text input, so every entry point here returns a
status object or raises `VoiceError(AUDIO_DEVICE)` with the fix, never the raw OSError.
`VOXDESK_NO_PORTAUDIO=1` simulates the missing library for tests and support.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from app.audio.cpu_load import CpuMeter
from app.plugin.errors import ErrorCode, VoiceError

Direction = Literal["input", "output"]

PORTAUDIO_MISSING = (
    "PortAudio library not found — install it with `sudo apt install libportaudio2` "
    "(macOS: `brew install portaudio`) and restart VoxDesk"
)
NO_PORTAUDIO_ENV = "VOXDESK_NO_PORTAUDIO"

_sd_lock = threading.Lock()
_sd_module: ModuleType | None = None
_sd_error: str | None = None


def load_sounddevice() -> ModuleType | None:
    """The sounddevice module, or None when PortAudio is unavailable (see `portaudio_error`)."""
    global _sd_module, _sd_error
    if os.environ.get(NO_PORTAUDIO_ENV, "").strip() not in ("", "0"):
        _sd_error = PORTAUDIO_MISSING + f" (simulated by {NO_PORTAUDIO_ENV})"
        return None
    with _sd_lock:
        if _sd_module is not None:
            return _sd_module
        try:
            import sounddevice
        except (OSError, ImportError) as exc:
            _sd_error = f"{PORTAUDIO_MISSING} ({exc})"
            return None
        _sd_module, _sd_error = sounddevice, None
        return sounddevice


def portaudio_error() -> str | None:
    """Why PortAudio is unavailable, or None when it loaded."""
    return None if load_sounddevice() is not None else _sd_error


def require_sounddevice(op: str) -> ModuleType:
    sd = load_sounddevice()
    if sd is None:
        raise VoiceError(op, ErrorCode.AUDIO_DEVICE, _sd_error or PORTAUDIO_MISSING)
    return sd


@dataclass(frozen=True, slots=True)
class AudioDevice:
    index: int
    name: str
    host_api: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    is_default_input: bool = False
    is_default_output: bool = False

    @property
    def label(self) -> str:
        """How doctor, the settings dialog and `--mic/--speaker` name a device."""
        return f"{self.name} ({self.host_api})"

    def supports(self, direction: Direction) -> bool:
        return (self.max_input_channels if direction == "input" else self.max_output_channels) > 0


@dataclass(frozen=True, slots=True)
class AudioStatus:
    """What the UI shows about audio: usable or not, and why/how to fix."""

    microphone: bool
    speaker: bool
    message: str  # empty when both work

    @property
    def ok(self) -> bool:
        return self.microphone and self.speaker


@dataclass(frozen=True, slots=True)
class DeviceChoice:
    device: AudioDevice
    notice: str | None  # set when the saved device was not found and the default is used


def list_devices(direction: Direction | None = None) -> list[AudioDevice]:
    """Devices PortAudio knows now; empty when PortAudio is unavailable."""
    sd = load_sounddevice()
    if sd is None:
        return []
    try:
        apis = sd.query_hostapis()
        raw = sd.query_devices()
    except Exception:  # PortAudio not initialised / broken backend: treat as no devices
        return []
    default_in, default_out = _default_indices(sd)
    out: list[AudioDevice] = []
    for d in raw:
        dev = AudioDevice(
            index=int(d["index"]),
            name=str(d["name"]),
            host_api=str(apis[d["hostapi"]]["name"]),
            max_input_channels=int(d["max_input_channels"]),
            max_output_channels=int(d["max_output_channels"]),
            default_samplerate=float(d["default_samplerate"]),
            is_default_input=int(d["index"]) == default_in,
            is_default_output=int(d["index"]) == default_out,
        )
        if direction is None or dev.supports(direction):
            out.append(dev)
    return out


def _default_indices(sd: Any) -> tuple[int, int]:
    try:
        pair = sd.default.device
        d_in, d_out = int(pair[0]), int(pair[1])
    except Exception:
        d_in = d_out = -1
    if d_in < 0 or d_out < 0:
        try:
            api = sd.query_hostapis(0)
            d_in = d_in if d_in >= 0 else int(api["default_input_device"])
            d_out = d_out if d_out >= 0 else int(api["default_output_device"])
        except Exception:
            pass
    return d_in, d_out


def default_device(direction: Direction) -> AudioDevice | None:
    devices = list_devices(direction)
    flag = "is_default_input" if direction == "input" else "is_default_output"
    for d in devices:
        if getattr(d, flag):
            return d
    return devices[0] if devices else None


def _no_device_error(op: str, direction: Direction) -> VoiceError:
    err = portaudio_error()
    if err:
        return VoiceError(op, ErrorCode.AUDIO_DEVICE, err)
    what = "microphone" if direction == "input" else "speaker"
    return VoiceError(
        op,
        ErrorCode.AUDIO_DEVICE,
        f"no {what} found — plug one in (or check the system sound settings) and try again",
    )


def _parse_label(name: str) -> tuple[str, str | None]:
    """`"vox_mic (ALSA)"` → ("vox_mic", "ALSA"): accept what doctor prints."""
    name = name.strip()
    if name.endswith(")") and " (" in name:
        base, _, api = name[:-1].rpartition(" (")
        return base, api
    return name, None


def choose_device(direction: Direction, name: str | None, host_api: str | None = None) -> DeviceChoice:
    """Find the saved device; else the default with a notice. Raises AUDIO_DEVICE if none at all.

    Matching order: exact name + host API, exact name on any host API, then a unique
    case-insensitive substring (so `--mic "USB"` works from a terminal).
    """
    op = f"audio.{direction}"
    devices = list_devices(direction)
    if not devices:
        raise _no_device_error(op, direction)
    default = default_device(direction)
    assert default is not None
    if not name or (name.lower() == "default" and not any(d.name == name for d in devices)):
        return DeviceChoice(default, None)
    base, label_api = _parse_label(name)
    api = host_api or label_api
    for candidates in (
        [d for d in devices if d.name == base and (api is None or d.host_api == api)],
        [d for d in devices if d.name == base],
        [d for d in devices if base.lower() in d.name.lower()],
    ):
        if len(candidates) == 1 or (candidates and candidates[0].name == base):
            return DeviceChoice(candidates[0], None)
    what = "microphone" if direction == "input" else "speaker"
    saved = f"{base} ({api})" if api else base
    return DeviceChoice(
        default,
        f"{what} “{saved}” not found — using the default {what} “{default.label}”",
    )


def rescan_devices(*, streams_open: bool) -> bool:
    """Make PortAudio re-enumerate devices (after a replug). Only safe with no open streams,
    because re-initialising PortAudio closes every stream; returns whether it rescanned."""
    sd = load_sounddevice()
    if sd is None or streams_open:
        return False
    try:
        sd._terminate()
        sd._initialize()
    except Exception:
        return False
    return True


def audio_status() -> AudioStatus:
    """For the window's status line: is the microphone usable, and if not, how to fix it."""
    err = portaudio_error()
    if err:
        return AudioStatus(False, False, f"microphone disabled: {err}")
    has_in, has_out = bool(list_devices("input")), bool(list_devices("output"))
    parts = []
    if not has_in:
        parts.append("microphone disabled: no input device found — plug in a microphone and restart")
    if not has_out:
        parts.append("speaker disabled: no output device found — replies are shown as text only")
    return AudioStatus(has_in, has_out, "; ".join(parts))


def doctor_audio_report() -> list[str]:
    """Lines for `voxdesk doctor`: PortAudio state and every device with the name to use."""
    err = portaudio_error()
    if err:
        return [f"audio: microphone disabled: {err}"]
    sd = load_sounddevice()
    lines = [f"audio: PortAudio {getattr(sd, 'get_portaudio_version', lambda: (0, '?'))()[1]}"]
    devices = list_devices()
    if not devices:
        lines.append("audio: no devices found — check that a sound server (PulseAudio/PipeWire) is running")
        return lines
    for d in devices:
        roles = [r for r, ok in (("input", d.max_input_channels), ("output", d.max_output_channels)) if ok]
        defaults = [
            r for r, ok in (("default input", d.is_default_input), ("default output", d.is_default_output)) if ok
        ]
        extra = f" [{', '.join(defaults)}]" if defaults else ""
        lines.append(
            f"  {d.label}: {'/'.join(roles)}, {d.max_input_channels} in / {d.max_output_channels} out, "
            f"{d.default_samplerate:.0f} Hz{extra}"
        )
    status = audio_status()
    if status.message:
        lines.append(f"audio: {status.message}")
    return lines


def close_stream(stream: Any, timeout_s: float = 2.0) -> bool:
    """Abort + close a PortAudio stream in a helper thread; never hangs the caller.

    A stalled ALSA/PulseAudio backend can block `Pa_CloseStream` forever; we give up
    after `timeout_s` and leave the daemon thread behind rather than freeze the app.
    Returns whether it closed in time.
    """
    if stream is None:
        return True

    def _close() -> None:
        try:
            stream.abort()
        except Exception:
            pass
        try:
            stream.close()
        except Exception:
            pass

    t = threading.Thread(target=_close, name="voxdesk-audio-close", daemon=True)
    t.start()
    t.join(timeout_s)
    return not t.is_alive()


def run_with_timeout(fn: Callable[[], Any], timeout_s: float, op: str) -> Any:
    """Run a blocking PortAudio call (open/start) in a thread; AUDIO_DEVICE on timeout."""
    box: dict[str, Any] = {}

    def _run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=_run, name="voxdesk-audio-open", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        raise VoiceError(
            op,
            ErrorCode.AUDIO_DEVICE,
            f"the audio device did not respond within {timeout_s:.0f} s — pick another device",
        )
    if "error" in box:
        exc = box["error"]
        if isinstance(exc, VoiceError):
            raise exc
        raise VoiceError(
            op, ErrorCode.AUDIO_DEVICE, f"could not open the audio device ({exc}) — pick another device in Settings"
        )
    return box.get("value")


async def in_own_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run blocking audio I/O on a thread of its own, not the loop's shared executor.

    The engine keeps the default executor busy (decodes, model calls) exactly when the
    speaker reopens — the user has just started to talk. An open queued behind that work
    used up the stream's start-up grace before the stream even existed, and PulseAudio's
    normal start-up pause was then taken for a lost device."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def _settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def _run() -> None:
        try:
            result: tuple[bool, Any] = (True, fn(*args))
        except BaseException as exc:
            result = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(_settle, *result)

    threading.Thread(target=_run, name="voxdesk-audio-io", daemon=True).start()
    return await future


def same_device(a: AudioDevice | None, b: AudioDevice | None) -> bool:
    """The same device, whatever PortAudio's numbering (it renumbers after a rescan)."""
    return a is not None and b is not None and (a.name, a.host_api) == (b.name, b.host_api)


def still_listed(device: AudioDevice, direction: Direction) -> bool:
    """Whether PortAudio still offers `device` (by name + host API)."""
    return any(same_device(device, d) for d in list_devices(direction))


ErrorCallback = Callable[[VoiceError], None]
NoticeCallback = Callable[[str], None]


class SupervisedStream:
    """One PortAudio stream plus a watchdog that keeps it playing or recording.

    PortAudio often reports nothing when a USB headset is pulled or the sound server
    stalls: callbacks simply stop. So the watchdog looks at the time of the last
    callback; silence for longer than `stall_s` (or a stream that finished on its own)
    means the stream is in trouble. Sound servers also pause streams for their own
    reasons — PulseAudio/PipeWire starting up, or resuming a sink it suspended while
    idle — so trouble is first met quietly: the same device is reopened (up to
    `same_device_retries` times). Only when the device is no longer listed, or keeps
    failing, is it "lost": the owner gets one AUDIO_DEVICE error and the stream moves
    to the system default — announced as a switch only when that is another device.
    It retries every second until stopped. Subclasses build the stream (`_make_stream`)
    and must stamp `_last_callback` from their callback.
    """

    direction: Direction = "input"
    open_timeout_s = 5.0
    close_timeout_s = 2.0
    #: No callback for this long (after the first) means the stream stalled. A busy 2-core
    #: machine was seen to pause a healthy stream's callbacks for 0.5 s.
    stall_s = 0.7
    #: How long a fresh stream may be silent, counted from when it started: PulseAudio's
    #: null sink runs the first callbacks, then pauses ~1.9 s before it is steady.
    start_grace_s = 2.5
    #: While every core is busy (models loading, decodes), the sound server itself is
    #: starved and stops asking for audio: silence that long is a busy machine, not a
    #: lost device, until it lasts this long.
    starved_stall_s = 4.0
    #: Share of all cores busy since the last callback that counts as starved.
    starved_busy = 0.85
    #: Quiet reopens of the same device before it counts as lost...
    same_device_retries = 2
    #: ...and the wait between attempts that could not open it (a sound server starting).
    retry_delay_s = 0.5
    #: A stream that ran this long past its start-up grace is healthy again: the retry
    #: budget starts over.
    steady_s = 3.0

    def __init__(
        self,
        device: str | None = None,
        host_api: str | None = None,
        *,
        on_error: ErrorCallback | None = None,
        on_notice: NoticeCallback | None = None,
    ) -> None:
        self.requested_device = device
        self.requested_host_api = host_api
        self.on_error = on_error
        self.on_notice = on_notice
        self.device: AudioDevice | None = None
        self.notices: list[str] = []
        self.errors: list[VoiceError] = []
        self.reopen_count = 0  # moves to another device after a loss
        self.quiet_reopens = 0  # reopens of the same device nobody was told about
        self._stream: Any = None
        self._generation = 0
        self._started_at = 0.0
        self._last_callback = 0.0
        self._first_callback_due = 0.0
        self._callbacks_seen = False
        self._finished_unexpectedly = False
        self._stopping = False
        self._retries_left = self.same_device_retries
        self._loss_announced = False
        self._watchdog: Any = None  # asyncio.Task
        self._loop: Any = None
        self._cpu = CpuMeter()

    # -- for subclasses -------------------------------------------------------------
    def _make_stream(self, device: AudioDevice) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _on_reopened(self, device: AudioDevice) -> None:
        """Hook: adapt buffers/resamplers to the new device."""

    def _stamp_callback(self, now: float) -> None:
        self._last_callback = now
        self._callbacks_seen = True

    def _finished_hook(self) -> Callable[[], None]:
        """PortAudio finished_callback for the stream being built: flags a stream that
        died on its own (not one we are closing, nor an older generation)."""
        generation = self._generation

        def _finished() -> None:
            if not self._stopping and generation == self._generation:
                self._finished_unexpectedly = True

        return _finished

    # -- life cycle -----------------------------------------------------------------
    @property
    def op(self) -> str:
        return f"audio.{self.direction}"

    @property
    def _what(self) -> str:
        return "microphone" if self.direction == "input" else "speaker"

    def _notice(self, message: str) -> None:
        self.notices.append(message)
        if self.on_notice:
            self.on_notice(message)

    def _error(self, err: VoiceError) -> None:
        self.errors.append(err)
        if self.on_error:
            self.on_error(err)

    def _open_blocking(self, device: AudioDevice) -> Any:
        """Build and start the stream (a worker thread); the start-up grace counts from here."""
        stream = self._make_stream(device)
        try:
            stream.start()
        except BaseException:
            close_stream(stream, self.close_timeout_s)
            raise
        self._started_at = time.monotonic()
        return stream

    async def _open(self, device: AudioDevice) -> None:
        self._generation += 1
        self._callbacks_seen = False
        self._finished_unexpectedly = False
        self._stream = await in_own_thread(
            run_with_timeout, lambda: self._open_blocking(device), self.open_timeout_s, self.op
        )
        started = self._started_at
        self._last_callback = max(self._last_callback, started)
        self._first_callback_due = started + self.start_grace_s
        self.device = device

    async def _open_with_retries(self, device: AudioDevice) -> None:
        """Open `device`, retrying while the sound server may still be starting."""
        for attempt in range(self.same_device_retries + 1):
            try:
                await self._open(device)
                return
            except VoiceError:
                if attempt == self.same_device_retries or not still_listed(device, self.direction):
                    raise
                await asyncio.sleep(self.retry_delay_s)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._retries_left = self.same_device_retries
        self._loss_announced = False
        choice = choose_device(self.direction, self.requested_device, self.requested_host_api)
        if choice.notice:
            self._notice(choice.notice)
        try:
            await self._open_with_retries(choice.device)
        except VoiceError:
            default = default_device(self.direction)
            if default is None or same_device(default, choice.device):
                raise
            self._notice(f"{choice.device.label} could not be opened — using the default “{default.label}”")
            await self._open(default)
        assert self.device is not None
        self._on_reopened(self.device)
        self._watchdog = asyncio.create_task(self._watch(), name=f"voxdesk-{self.direction}-watchdog")

    def _stalled(self, now: float) -> str | None:
        if self._finished_unexpectedly:
            return "the audio stream stopped"
        if now < self._first_callback_due:
            # Sound servers prebuffer: a new stream may run a few callbacks, then pause
            # for up to the server's cycle (PulseAudio null sink: ~1.9 s) before it is steady.
            return None
        if not self._callbacks_seen:
            return "the audio device never started"
        silent_s = now - self._last_callback
        if silent_s > self.stall_s:
            if silent_s <= self.starved_stall_s and self._machine_saturated():
                return None
            return f"no audio from the device for {silent_s:.1f} s"
        return None

    def _machine_saturated(self) -> bool:
        busy = self._cpu.busy_fraction(since=self._last_callback)
        return busy is not None and busy >= self.starved_busy

    async def _watch(self) -> None:
        tick = min(0.1, self.stall_s / 4)
        last_tick = time.monotonic()
        while not self._stopping:
            await asyncio.sleep(tick)
            now = time.monotonic()
            self._cpu.sample(now)
            starved, last_tick = now - last_tick > tick + self.stall_s / 2, now
            if self._stream is None:
                await self._recover("no open audio stream")
                continue
            if starved:
                # This task itself ran late: the process was starved (a busy machine, a
                # library holding the GIL while models load), and so was the audio
                # callback. That is no lost device: judge it from now on.
                self._last_callback = max(self._last_callback, now)
                continue
            why = self._stalled(now)
            if why:
                await self._recover(why)
            elif now > self._first_callback_due + self.steady_s:
                self._retries_left = self.same_device_retries
                self._loss_announced = False

    async def _drop_stream(self) -> None:
        old, self._stream = self._stream, None
        self._generation += 1  # late callbacks from the old stream are ignored
        if old is not None:
            await in_own_thread(close_stream, old, self.close_timeout_s)

    async def _recover(self, why: str) -> None:
        """Reopen the same device quietly while that may help; else treat it as lost."""
        device = self.device
        if device is None or self._retries_left <= 0 or not still_listed(device, self.direction):
            await self._reopen_default(why)
            return
        self._retries_left -= 1
        await self._drop_stream()
        try:
            await self._open(device)
        except VoiceError:
            await asyncio.sleep(self.retry_delay_s)  # the next tick tries again (stream is None)
            return
        self.quiet_reopens += 1
        self._on_reopened(device)

    async def _reopen_default(self, why: str) -> None:
        lost = self.device
        default = default_device(self.direction)
        name = lost.label if lost else "audio device"
        what = self._what
        moving = default is not None and not same_device(default, lost)
        if not self._loss_announced:
            self._loss_announced = True
            then = f"switching to the default {what} “{default.label}”" if moving and default else "trying again"
            self._error(VoiceError(self.op, ErrorCode.AUDIO_DEVICE, f"{what} “{name}” was lost ({why}) — {then}"))
        await self._drop_stream()
        if default is None:
            await asyncio.sleep(1.0)
            return
        try:
            await self._open(default)
        except VoiceError:
            await asyncio.sleep(1.0)  # told once above; keep trying quietly
            return
        self._on_reopened(default)
        if moving:
            self.reopen_count += 1
            self._notice(f"{what} switched to the default “{default.label}”")
        self._retries_left = self.same_device_retries

    async def _shutdown(self) -> bool:
        """Stop the watchdog and close the stream without hanging; returns closed-in-time."""
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        stream, self._stream = self._stream, None
        self._generation += 1
        if stream is None:
            return True
        return bool(await in_own_thread(close_stream, stream, self.close_timeout_s))
