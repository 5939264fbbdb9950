"""The desktop's names for audio devices, where the sound server offers them.

Through ALSA, PortAudio sees a PulseAudio/PipeWire desktop as "pulse" and "default"
— which say nothing to a user. Both play into the desktop's current default sink (and
record from its default source), whose description ("Built-in Audio Analog Stereo")
is what the system's sound settings show. We ask `pactl` for it (PipeWire answers
through pipewire-pulse). The PortAudio label stays the id: saved settings keep working,
only the text a person reads changes.

`pactl` is a subprocess with a short timeout: call this off the GUI thread.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from app.audio.devices import AudioDevice, Direction, list_devices

#: PortAudio (ALSA) devices that are the sound server's current default device, and
#: what tells them apart when a list shows more than one.
SERVER_DEFAULTS = {"default": "", "pulse": " (PulseAudio)", "pipewire": " (PipeWire)"}
PACTL_TIMEOUT_S = 1.5


def _pactl(*args: str, timeout_s: float = PACTL_TIMEOUT_S) -> str | None:
    exe = shutil.which("pactl")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _descriptions(kind: str) -> dict[str, str]:
    """{sink or source name: description}: pactl's JSON (PulseAudio 16+, PipeWire), else its text."""
    raw = _pactl("-f", "json", "list", kind)
    if raw:
        try:
            return {str(e["name"]): str(e.get("description") or e["name"]) for e in json.loads(raw)}
        except (ValueError, TypeError, KeyError):
            pass
    return parse_pactl_list(_pactl("list", kind) or "")


def parse_pactl_list(text: str) -> dict[str, str]:
    """`pactl list sinks` (any PulseAudio) → {name: description}."""
    found: dict[str, str] = {}
    name: str | None = None
    for line in text.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "Name":
            name = value.strip()
        elif key == "Description" and name:
            found[name] = value.strip()
            name = None
    return found


def _default_name(kind: str) -> str | None:
    """The server's default sink/source name (`pactl get-default-…`, else `pactl info`)."""
    what = "sink" if kind == "sinks" else "source"
    out = _pactl(f"get-default-{what}")
    if out and out.strip():
        return out.strip()
    for line in (_pactl("info") or "").splitlines():
        if line.startswith(f"Default {what.capitalize()}:"):
            return line.split(":", 1)[1].strip() or None
    return None


def server_default_description(direction: Direction) -> str | None:
    """What the desktop calls its current default speaker/microphone, or None (no server)."""
    kind = "sinks" if direction == "output" else "sources"
    name = _default_name(kind)
    if not name:
        return None
    return _descriptions(kind).get(name, name)


def friendly_name(device: AudioDevice, direction: Direction, server_default: str | None) -> str:
    """The text to show for `device`: "Default — <the desktop's name>" for the server's
    default device when it is known, else the PortAudio label."""
    suffix = SERVER_DEFAULTS.get(device.name.lower())
    if suffix is None or not server_default:
        return device.label
    return f"Default — {server_default}{suffix}"


def device_choices(direction: Direction) -> list[tuple[str, str]]:
    """(id, text) for every device: the id is the PortAudio label that settings save."""
    devices = list_devices(direction)
    server_default = None
    if any(d.name.lower() in SERVER_DEFAULTS for d in devices):
        server_default = server_default_description(direction)
    return [(d.label, friendly_name(d, direction, server_default)) for d in devices]
