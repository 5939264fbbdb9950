"""A simulated room on the private PulseAudio of tests/audio_env.sh: what the speaker
plays comes back into the microphone, later and quieter, like laptop speakers.

The app plays into sink `speaker` (PCM vox_speaker) and listens on `mic.monitor` (PCM
vox_mic). A `module-loopback` from `speaker.monitor` into sink `mic` is the room's echo
path: its latency is the acoustic delay (on top of the devices' own), the volume of its
sink input the attenuation. A low noise may play into `mic` as well, and the "user"
talks by playing a wav into `mic` (`say`). Everything loaded is unloaded on exit.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from app.audio.files import read_wav, write_wav

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class RoomSettings:
    delay_ms: int
    attenuation_db: float
    noise_dbfs: float | None = None  # steady background noise in the microphone

    def __str__(self) -> str:
        noise = f", noise {self.noise_dbfs:g} dBFS" if self.noise_dbfs is not None else ""
        return f"{self.delay_ms} ms, -{self.attenuation_db:g} dB{noise}"


#: Laptop speakers near and far (issue 15).
ROOMS = (RoomSettings(30, 0.0), RoomSettings(80, 6.0), RoomSettings(150, 12.0))


def pulse_env() -> dict[str, str] | str:
    """Start (or reuse) the private PulseAudio; its environment, or why it is not up."""
    try:
        out = subprocess.run([str(ROOT / "tests/audio_env.sh"), "start"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"PulseAudio could not start: {exc}"
    if out.returncode != 0:
        return f"PulseAudio could not start: {out.stderr.strip()}"
    return dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def pactl(*args: str) -> str:
    return subprocess.run(["pactl", *args], check=True, capture_output=True, text=True, timeout=10).stdout


def _sink_input_of(module: str) -> str:
    """The sink input a module owns (pactl's long listing names its owner module)."""
    for block in pactl("list", "sink-inputs").split("\n\n"):
        head = re.search(r"Sink Input #(\d+)", block)
        owner = re.search(r"Owner Module:\s*(\d+)", block)
        if head and owner and owner.group(1) == module:
            return head.group(1)
    raise RuntimeError(f"module {module} has no sink input")


def say(wav: Path) -> subprocess.Popen[bytes]:
    """The user speaks: `wav` played into the microphone (returns at once)."""
    return subprocess.Popen(["paplay", "--device=mic", str(wav)], env=os.environ.copy())


class SimulatedRoom:
    """`with SimulatedRoom(settings, tmp):` the speaker's echo (and noise) reach the microphone."""

    def __init__(self, settings: RoomSettings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self._module: str | None = None
        self._noise: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SimulatedRoom:
        s = self.settings
        self._module = pactl(
            "load-module",
            "module-loopback",
            "source=speaker.monitor",
            "sink=mic",
            f"latency_msec={s.delay_ms}",
            # A fixed delay: by default the loopback keeps retuning it for seconds, which
            # no room does (the canceller then chases a moving echo).
            "adjust_time=0",
            "source_dont_move=true",
            "sink_dont_move=true",
        ).strip()
        try:
            pactl("set-sink-input-volume", _sink_input_of(self._module), f"{-s.attenuation_db:g}dB")
            if s.noise_dbfs is not None:
                self._noise = self._play_noise(s.noise_dbfs)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _play_noise(self, dbfs: float) -> subprocess.Popen[bytes]:
        rng = np.random.default_rng(15)
        rate = 48_000
        noise = rng.standard_normal(rate * 120).astype(np.float32) * np.float32(10 ** (dbfs / 20))
        path = write_wav(self.workdir / "room-noise.wav", noise, rate)
        return subprocess.Popen(["paplay", "--device=mic", str(path)], env=os.environ.copy())

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._noise is not None:
            self._noise.terminate()
            self._noise.wait(5)
            self._noise = None
        if self._module is not None:
            subprocess.run(["pactl", "unload-module", self._module], capture_output=True, timeout=10)
            self._module = None


def espeak(text: str, voice: str, rate: int = 16_000) -> np.ndarray:
    """espeak-ng speech in `voice` (not the replies' piper voice, nor the questions' en-us)."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True, capture_output=True)
        subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(out)], check=True)
        return read_wav(out)[0]


def espeak_wav(text: str, voice: str, path: Path, *, lead_s: float = 0.0, rate: int = 48_000) -> Path:
    """The same as a wav for `say`, at the microphone sink's rate, with `lead_s` of silence first."""
    speech = espeak(text, voice, rate)
    return write_wav(path, np.concatenate([np.zeros(int(lead_s * rate), np.float32), speech]), rate)
