"""What goes over the wire: PCM both ways, the language code sent, version parsing."""

from __future__ import annotations

import numpy as np
import pytest

from app.plugin.errors import ErrorCode, VoiceError
from providers.wyoming.client import Sound, version_tuple
from providers.wyoming.stt import pcm16, wire_language
from providers.wyoming.tts import to_float


def test_pcm16_round_trip_and_clipping() -> None:
    x = np.array([0.0, 0.5, -0.5, 1.5, -1.5], np.float32)
    raw = np.frombuffer(pcm16(x), "<i2")
    assert raw.tolist() == [0, 16383, -16383, 32767, -32767]
    back = to_float(Sound(pcm16(x), 16000, 2, 1))
    assert np.allclose(back, np.clip(x, -1, 1), atol=1e-4)


def test_server_audio_of_any_width_and_channels_becomes_float_mono() -> None:
    stereo = np.array([[16384, -16384], [32767, 32767]], "<i2").tobytes()
    assert np.allclose(to_float(Sound(stereo, 22050, 2, 2)), [0.0, 0.99997], atol=1e-4)
    assert np.allclose(to_float(Sound(bytes([128, 255, 0]), 8000, 1, 1)), [0.0, 0.9921875, -1.0])
    wide = np.array([1 << 30, -(1 << 31)], "<i4").tobytes()
    assert np.allclose(to_float(Sound(wide, 48000, 4, 1)), [0.5, -1.0])
    assert len(to_float(Sound(b"\x01\x00\x02", 16000, 2, 1))) == 1  # a torn sample is dropped
    with pytest.raises(VoiceError) as err:
        to_float(Sound(b"\x00" * 6, 16000, 3, 1))
    assert err.value.code is ErrorCode.PROVIDER_ERROR and "24-bit" in err.value.message


@pytest.mark.parametrize(
    ("configured", "conversation", "sent"),
    [
        ("", "en", "en"),
        ("", "en-GB", "en"),
        ("", "auto", None),
        ("", None, None),
        ("fr", "en", "fr"),
        ("auto", "de", None),
    ],
)
def test_the_language_sent(configured: str, conversation: str | None, sent: str | None) -> None:
    assert wire_language(configured, conversation) == sent


def test_versions() -> None:
    assert version_tuple("1.10.2") == (1, 10, 2) > (1, 0, 0)
    assert version_tuple("0.4.0") == (0, 4, 0) < (1, 0, 0)
    assert version_tuple("1.2.0rc1") == (1, 2, 0)
    assert version_tuple("x.y") is None
