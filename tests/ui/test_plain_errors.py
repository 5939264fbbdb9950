"""Errors in the window: one banner or dialog per cause, plain words, buttons that act."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QAbstractButton, QDialog, QLabel, QWidget

from app.engine import events as ev
from app.engine.plain_words import has_engine_words
from app.plugin.errors import VoiceError
from app.store import models
from app.store.paths import resolve_paths
from app.store.settings import Settings, SettingsStore
from tests.ui.conftest import close_window
from ui.first_run import FirstRunDialog, ProgressFn
from ui.main_window import MainWindow

LLM_ID = "qwen2.5-0.5b-instruct-q4_k_m"


def visible_texts(widget: QWidget) -> list[str]:
    out = [w.text() for w in widget.findChildren(QLabel) if w.isVisibleTo(widget) and w.text()]
    out += [b.text() for b in widget.findChildren(QAbstractButton) if b.isVisibleTo(widget) and b.text()]
    return out


def assert_plain(widget: QWidget) -> None:
    bad = [t for t in visible_texts(widget) if has_engine_words(t) or "MODEL_MISSING" in t or "voxdesk " in t]
    assert bad == [], bad


def missing(model_id: str) -> str:
    with pytest.raises(VoiceError) as caught:
        models.resolve_model(model_id)
    return caught.value.message  # the engine's real words


def _window(qtbot: Any) -> MainWindow:
    paths = resolve_paths().ensure()
    window = MainWindow(paths, Settings(), SettingsStore(paths.config_dir))
    qtbot.addWidget(window)
    window.show()
    return window


def dialogs(window: MainWindow) -> list[FirstRunDialog]:
    return [d for d in window.findChildren(FirstRunDialog) if d.isVisible()]


@pytest.mark.own_model_cache
def test_a_missing_model_is_one_plain_dialog_and_a_missing_turn_model_no_second(qtbot: Any, run: Any) -> None:
    window = _window(qtbot)
    llm = ev.ErrorRaised(stage="llm", provider="llama-cpp", code="MODEL_MISSING", message=missing(LLM_ID))
    window.on_event(llm)
    (dialog,) = dialogs(window)
    assert_plain(dialog)
    assert any("VoxDesk needs a 491 MB language model to answer general questions" in t for t in visible_texts(dialog))
    window.on_event(llm)  # the same cause again (each question): still one dialog
    # The turn model on the first question: optional, so a banner — never a second modal.
    turn_words = llm.message.replace(LLM_ID, "smart-turn-v3.2")  # the same resolver's words (it ships in a package)
    turn = ev.ErrorRaised(stage="turn", provider="smart-turn", code="MODEL_MISSING", message=turn_words, turn_id="t1")
    window.on_event(turn)
    assert len(dialogs(window)) == 1
    banners = window._error_banners()
    assert banners.causes() == ["model-missing:smart-turn-v3.2"]
    assert_plain(banners)
    assert "Download" in visible_texts(banners)
    assert [m for m in window.view.messages() if m.role == "error"] == []  # no red bubble per question
    dialog.reject()  # "Not now": the cause stays in sight, with its Download button
    assert set(banners.causes()) == {"model-missing:smart-turn-v3.2", f"model-missing:{LLM_ID}"}
    window.on_event(llm)
    assert dialogs(window) == [] and banners.banner(f"model-missing:{LLM_ID}").count == 2  # type: ignore[union-attr]
    close_window(window, run)


@pytest.fixture
def not_found_server() -> Iterator[str]:
    class Gone(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *_a: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gone)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/model.gguf"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_a_failed_download_says_why_in_plain_words_and_fits(
    qtbot: Any, run: Any, not_found_server: str, tmp_path: Path
) -> None:
    def fetch(progress: ProgressFn, cancel: threading.Event) -> Path:
        return models.download(not_found_server, tmp_path / "m.gguf", "0" * 64, progress=progress, cancel=cancel).path

    dialog = FirstRunDialog("The language model is not installed", "VoxDesk needs a 491 MB language model.", fetch)
    qtbot.addWidget(dialog)
    dialog.show()
    task = dialog.start_download()
    with pytest.raises(VoiceError):
        run(task, timeout=30)
    qtbot.waitUntil(lambda: dialog.download_button.text() == "Retry")
    qtbot.wait(50)
    assert "did not finish" in dialog.status.text()
    assert_plain(dialog)
    for label in dialog.findChildren(QLabel):
        if label.isVisible() and label.text():
            need = label.heightForWidth(label.width()) if label.wordWrap() else label.sizeHint().height()
            assert need <= label.height() + 1, f"{label.text()!r} needs {need} px, has {label.height()}"
            assert label.geometry().right() <= dialog.width() and label.geometry().bottom() <= dialog.height()
    assert dialog.width() <= dialog.maximumWidth()


@pytest.mark.slow  # a real Session: faster-whisper and Piper load
def test_an_unreachable_server_is_a_banner_at_start_not_a_bubble_per_question(qtbot: Any, run: Any) -> None:
    import socket

    from app.engine.session import Session

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed: nothing listens there
    settings = Settings.model_validate(
        {
            "vad": {"provider": "energy"},
            "stt": {"provider": "faster-whisper"},
            "llm": {"provider": "openai-compatible", "options": {"base_url": f"http://127.0.0.1:{port}/v1"}},
            "tts": {"provider": "piper"},
            "activation": {"mode": "push_to_talk"},
        }
    )
    paths = resolve_paths().ensure()
    store = SettingsStore(paths.config_dir)
    window = MainWindow(paths, settings, store)
    qtbot.addWidget(window)
    window.show()
    session = Session(settings, paths, store=store)
    run(window.start_session(session), timeout=120)
    banners = window._error_banners()
    cause = "unreachable:llm:openai-compatible"
    assert cause in banners.causes(), banners.causes()  # before any question
    assert window.statusBar().currentMessage() != "Ready."
    assert_plain(banners)
    labels = visible_texts(banners)
    assert "VoxDesk can't reach the assistant server" in labels
    assert {"Retry", "Open Settings", "Use the local model"} <= set(labels)
    for q in ("what is the capital of france", "tell me a joke"):
        run(session.send_text(q), timeout=60)
    assert [m for m in window.view.messages() if m.role == "error"] == []
    assert banners.causes().count(cause) == 1 and banners.banner(cause).count >= 2  # type: ignore[union-attr]
    close_window(window, run)


def test_open_settings_goes_to_the_stage_tab(qtbot: Any, run: Any) -> None:
    window = _window(qtbot)
    window.on_event(ev.ErrorRaised(stage="tts", provider="piper", code="INVALID_CONFIG", message="bad voice"))
    (banner,) = window._error_banners().banners()
    assert_plain(banner)
    banner.buttons[next(iter(banner.buttons))].click()
    dialog = next(d for d in window.findChildren(QDialog) if d.isVisible() and hasattr(d, "tabs"))
    assert dialog.tabs.tabText(dialog.tabs.currentIndex()) == "Voice"
    dialog.close()
    banner.close_button.click()
    assert window._error_banners().causes() == []
    close_window(window, run)
