"""What a `Session` may be given: its parts (devices, registry, clock…) and timings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

from app.audio.streams import AudioSink, AudioSource
from app.engine.context import Clock, Sleep
from app.engine.speaker import SpeakerOptions
from app.plugin.registry import Registry
from app.store.history import History
from app.store.settings import SettingsStore
from app.telemetry import Telemetry


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """Timings a test may shorten; the defaults are what the app uses."""

    speaker: SpeakerOptions = field(default_factory=SpeakerOptions)
    announce_timeout_s: float = 10.0
    #: How long closing waits for cancelled work to unwind, and for devices and providers.
    close_tasks_s: float = 1.0
    close_device_s: float = 1.0


class SessionParts(TypedDict, total=False):
    """What a `Session` may be given besides its settings and paths (all optional)."""

    store: SettingsStore | None  # saves applied settings
    registry: Registry | None  # the providers (default: the installed ones)
    telemetry: Telemetry | None
    source: AudioSource | None  # microphone (none: typed turns only)
    sink: AudioSink | None  # speaker (none: replies as text only)
    clock: Clock  # monotonic seconds (a test's fake clock)
    sleep: Sleep  # waits on that clock
    history: History | None  # default: the history file under `paths`
    options: SessionOptions | None
