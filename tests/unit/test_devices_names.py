"""Friendly device names from the sound server, with `pactl` answered by a fake."""

from __future__ import annotations

import json

import pytest

from app.audio import desktop_names
from app.audio.devices import AudioDevice

PULSE = AudioDevice(3, "pulse", "ALSA", 32, 32, 44_100.0)
DEFAULT = AudioDevice(4, "default", "ALSA", 32, 32, 44_100.0, is_default_input=True, is_default_output=True)
HEADSET = AudioDevice(5, "USB Headset: Audio (hw:1,0)", "ALSA", 1, 2, 48_000.0)

SINKS = [
    {"name": "alsa_output.pci-0000_00_1f.3.analog-stereo", "description": "Built-in Audio Analog Stereo"},
    {"name": "bluez_sink.AA", "description": "WH-1000XM4"},
]
TEXT_SINKS = """Sink #0
\tState: SUSPENDED
\tName: alsa_output.pci-0000_00_1f.3.analog-stereo
\tDescription: Built-in Audio Analog Stereo
\tDriver: module-alsa-card.c
Sink #1
\tName: bluez_sink.AA
\tDescription: WH-1000XM4
"""


def fake_pactl(monkeypatch: pytest.MonkeyPatch, *, json_ok: bool = True, default: str = "bluez_sink.AA") -> list[tuple]:
    calls: list[tuple] = []

    def _pactl(*args: str, timeout_s: float = 1.5) -> str | None:
        calls.append(args)
        if args == ("-f", "json", "list", "sinks"):
            return json.dumps(SINKS) if json_ok else None
        if args == ("list", "sinks"):
            return TEXT_SINKS
        if args == ("get-default-sink",):
            return default + "\n"
        return None

    monkeypatch.setattr(desktop_names, "_pactl", _pactl)
    monkeypatch.setattr(desktop_names, "list_devices", lambda direction=None: [PULSE, DEFAULT, HEADSET])
    return calls


@pytest.mark.parametrize("json_ok", [True, False])
def test_the_server_default_devices_show_the_desktops_name_and_keep_their_id(
    monkeypatch: pytest.MonkeyPatch, json_ok: bool
) -> None:
    fake_pactl(monkeypatch, json_ok=json_ok)
    assert desktop_names.device_choices("output") == [
        ("pulse (ALSA)", "Default — WH-1000XM4 (PulseAudio)"),
        ("default (ALSA)", "Default — WH-1000XM4"),
        ("USB Headset: Audio (hw:1,0) (ALSA)", "USB Headset: Audio (hw:1,0) (ALSA)"),
    ]


def test_without_a_sound_server_the_portaudio_names_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pactl(monkeypatch)
    monkeypatch.setattr(desktop_names, "_pactl", lambda *a, **k: None)
    assert [text for _, text in desktop_names.device_choices("output")] == [
        "pulse (ALSA)",
        "default (ALSA)",
        "USB Headset: Audio (hw:1,0) (ALSA)",
    ]


def test_an_unknown_default_sink_is_shown_by_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pactl(monkeypatch, default="alsa_output.usb-dock")
    assert desktop_names.device_choices("output")[1] == ("default (ALSA)", "Default — alsa_output.usb-dock")


def test_pactl_text_listing_is_parsed() -> None:
    assert desktop_names.parse_pactl_list(TEXT_SINKS) == {
        "alsa_output.pci-0000_00_1f.3.analog-stereo": "Built-in Audio Analog Stereo",
        "bluez_sink.AA": "WH-1000XM4",
    }


def test_a_missing_or_hanging_pactl_is_no_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(desktop_names.shutil, "which", lambda exe: None)
    assert desktop_names._pactl("info") is None
    monkeypatch.setattr(desktop_names.shutil, "which", lambda exe: "/bin/sleep")
    assert desktop_names._pactl("5", timeout_s=0.2) is None  # timed out, not waited for
