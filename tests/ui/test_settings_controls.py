"""Settings controls that fit the value, all generated from the providers' schemas: spin boxes
with units and bounds, an ordered fallback checklist, language / time-zone / server-model
drop-downs, a collapsed Advanced group, and a dialog that fits a 2× 1080p screen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QSpinBox

from app.plugin.registry import get_registry
from app.store.settings import Settings
from tests.ui.conftest import wait_until
from ui.settings_dialog import SettingsDialog

ROOT = Path(__file__).resolve().parents[2]


def _dialog(qtbot: Any, settings: Settings | None = None) -> SettingsDialog:
    dialog = SettingsDialog(settings or Settings(), get_registry())
    qtbot.addWidget(dialog)
    return dialog


def test_numbers_are_spin_boxes_with_the_schema_bounds_and_units(qtbot: Any) -> None:
    llm = _dialog(qtbot).stage_pages["llm"]
    llm.select("openai-compatible")
    assert llm.form is not None
    temperature = llm.form.editor("temperature")
    assert isinstance(temperature, QDoubleSpinBox)
    assert (temperature.minimum(), temperature.maximum(), temperature.value()) == (0.0, 2.0, 0.7)
    number = llm.form.field("temperature").number
    assert number is not None and number.slider is not None  # a short range gets a slider too
    number.slider.setValue(number.slider.maximum())
    assert llm.form.values()["temperature"] == 2.0
    timeout = llm.form.editor("timeout_s")
    assert isinstance(timeout, QDoubleSpinBox) and timeout.suffix() == " s"
    assert timeout.minimum() > 0 and timeout.maximum() == 600  # gt=0, le=600
    tokens = llm.form.editor("max_tokens")
    assert isinstance(tokens, QSpinBox) and (tokens.minimum(), tokens.maximum()) == (1, 32768)


def test_an_optional_number_reads_default_and_means_none(qtbot: Any) -> None:
    llm = _dialog(qtbot).stage_pages["llm"]
    llm.select("llama-cpp")
    assert llm.form is not None
    threads = llm.form.editor("n_threads")
    assert isinstance(threads, QSpinBox) and threads.text() == "default"
    assert llm.form.values()["n_threads"] is None
    threads.setValue(4)
    assert llm.form.values()["n_threads"] == 4
    seed = llm.form.editor("seed")  # up to 2**32 - 1: wider than a QSpinBox
    llm.form.set_values({"seed": 2**32 - 1})
    assert llm.form.values()["seed"] == 2**32 - 1 and isinstance(seed, QDoubleSpinBox)


def test_a_saved_value_with_more_decimals_is_kept_exactly(qtbot: Any) -> None:
    settings = Settings.model_validate({"tts": {"provider": "piper", "options": {"sentence_pause_s": 0.125}}})
    dialog = _dialog(qtbot, settings)
    assert dialog.new_settings().tts.options == {"sentence_pause_s": 0.125}


def test_fallbacks_are_an_ordered_checklist_of_the_known_providers(qtbot: Any) -> None:
    dialog = _dialog(qtbot)
    llm = dialog.stage_pages["llm"]
    fb = llm.fallbacks
    assert set(fb.names()) == set(get_registry().list_providers("llm"))
    assert fb.fallbacks() == Settings().llm.fallbacks
    assert llm.provider in fb.names() and llm.provider not in fb.fallbacks()  # not its own fallback
    assert all(fb.list.item(i).isHidden() == (fb.names()[i] == llm.provider) for i in range(fb.list.count()))
    others = [n for n in fb.names() if n != llm.provider and n not in fb.fallbacks()]
    fb.set_checked(others[0], True)
    first = fb.fallbacks()
    fb.list.setCurrentRow(fb.names().index(others[0]))
    fb.move_current(-1)  # Move up: tried before the one above it
    assert fb.fallbacks() == [first[-1], *first[:-1]]
    assert dialog.new_settings().llm.fallbacks == fb.fallbacks()
    fb.set_checked(others[0], False)
    assert dialog.new_settings().llm.fallbacks == Settings().llm.fallbacks


def test_languages_and_time_zones_are_drop_downs(qtbot: Any) -> None:
    dialog = _dialog(qtbot)
    language = dialog.conversation_form.editor("language")
    assert isinstance(language, QComboBox) and not language.isEditable()
    assert language.currentData() == "en" and language.currentText() == "English (en)"
    language.setCurrentIndex(language.findData("fr"))
    assert dialog.new_settings().conversation.language == "fr"
    llm = dialog.stage_pages["llm"]
    llm.select("skills")
    assert llm.form is not None
    zone = llm.form.editor("timezone")
    assert isinstance(zone, QComboBox) and zone.isEditable() and zone.findText("Europe/Berlin") >= 0
    assert llm.form.values()["timezone"] is None  # empty: this computer's zone
    zone.setCurrentIndex(zone.findText("Europe/Berlin"))
    assert llm.form.values()["timezone"] == "Europe/Berlin"
    zone.setEditText("Mars/Olympus")
    assert llm.form.error_text("timezone")  # the model's own check, under the field


def test_expert_options_sit_in_a_collapsed_advanced_group(qtbot: Any) -> None:
    dialog = _dialog(qtbot)
    dialog.show()
    llm = dialog.stage_pages["llm"]
    llm.select("llama-cpp")
    assert llm.form is not None and llm.form.advanced is not None
    assert not llm.form.advanced.is_expanded()
    for name in ("top_k", "seed", "chat_template", "load_timeout_s"):
        assert not llm.form.editor(name).isVisible(), name
    assert llm.form.editor("temperature").isVisible()
    llm.form.show_errors({"top_k": "too many"})  # a problem in a closed group opens it
    assert llm.form.advanced.is_expanded() and llm.form.editor("top_k").isVisible()


class _Models(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"data": [{"id": "qwen2.5:3b"}, {"id": "llama3.2:1b"}]}).encode()
        self.send_response(200 if self.path.endswith("/models") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def models_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Models)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_the_server_model_field_is_filled_from_v1_models_when_shown(qtbot: Any, run: Any, models_server: str) -> None:
    settings = Settings.model_validate(
        {"llm": {"provider": "openai-compatible", "options": {"base_url": models_server, "model": "mine"}}}
    )

    async def scenario() -> tuple[list[str], str]:
        dialog = _dialog(qtbot, settings)
        dialog.show()
        page = dialog.stage_pages["llm"]
        assert page.form is not None
        await wait_until(lambda: bool(page.form and page.form.field("model").choices()), 10, "the server's models")
        model = page.form.editor("model")
        assert isinstance(model, QComboBox) and model.isEditable()
        result = page.form.field("model").choices(), model.currentText()
        dialog.reject()
        return result

    choices, text = run(scenario(), timeout=20)
    assert sorted(choices) == ["llama3.2:1b", "qwen2.5:3b"]
    assert text == "mine"  # what the user typed is kept


def test_an_unreachable_server_leaves_the_model_as_free_text_quietly(qtbot: Any, run: Any) -> None:
    settings = Settings.model_validate(
        {"llm": {"provider": "openai-compatible", "options": {"base_url": "http://127.0.0.1:9/v1", "model": "x"}}}
    )

    async def scenario() -> tuple[list[str], str, str]:
        dialog = _dialog(qtbot, settings)
        dialog.show()
        page = dialog.stage_pages["llm"]
        await wait_until(lambda: not page._key_tasks, 10, "the quiet ask to give up")
        assert page.form is not None
        result = page.form.field("model").choices(), page.form.values()["model"], page.offers.text()
        dialog.reject()
        return result

    choices, model, offers = run(scenario(), timeout=20)
    assert choices == [] and model == "x" and offers == ""


def test_settings_fits_a_2x_1080p_screen_with_its_buttons_visible(tmp_path: Path) -> None:
    """At QT_SCALE_FACTOR=2 on 1920×1080 (960×540 logical) Settings was 1640×1200: OK/Apply off-screen."""
    screen = tmp_path / "screen.json"
    screen.write_text(
        json.dumps({"screens": [{"name": "s", "x": 0, "y": 0, "width": 1920, "height": 1080, "logicalDpi": 96}]})
    )
    env = {**os.environ, "QT_SCALE_FACTOR": "2", "QT_QPA_PLATFORM": f"offscreen:configfile={screen}"}
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests/ui/settings_fit_probe.py")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    sx, sy, sw, sh = probe["screen"]
    assert (sw, sh) == (960, 540)
    fx, fy, fw, fh = probe["frame"]
    assert sx <= fx and sy <= fy and fx + fw <= sx + sw and fy + fh <= sy + sh, probe
    for name, (x0, y0, x1, y1, visible) in probe["buttons"].items():
        assert visible and x0 >= 0 and x1 < probe["size"][0] and y0 >= 0 and y1 < probe["size"][1], (name, probe)
    assert probe["list_w"] >= 200  # the provider list keeps a sensible width


def test_a_long_keychain_note_wraps_instead_of_widening_the_dialog(qtbot: Any) -> None:
    dialog = _dialog(qtbot)
    dialog.resize(880, 600)
    dialog.show()
    llm = dialog.stage_pages["llm"]
    llm.select("openai-compatible")
    llm.key_status.setText("no key stored yet — " + "the system keychain (Secret Service, locked; unlock it) " * 6)
    qtbot.wait(50)
    assert llm.key_status.wordWrap()
    assert dialog.minimumSizeHint().width() < 960  # fits a 2× 1080p screen
    assert llm.list.width() >= 200, llm.list.width()
    assert Qt.TextFormat.RichText == llm.badges.textFormat() and llm.badges.wordWrap()


def test_the_health_table_says_a_localhost_server_runs_on_this_computer(qtbot: Any) -> None:
    """A server on 127.0.0.1 was listed as "remote" because its provider type can be a cloud."""
    from app.engine.session import ProviderHealth
    from app.plugin.provider_api import Health, HealthStatus
    from app.plugin.server_place import stage_place
    from ui.health_panel import HealthPanel

    def settings_for(url: str) -> Settings:
        return Settings.model_validate({"llm": {"provider": "openai-compatible", "options": {"base_url": url}}})

    rows = [ProviderHealth("llm", "openai-compatible", False, Health(HealthStatus.DOWN, "not answering"))]
    seen = []
    for url in ("http://127.0.0.1:9/v1", "http://192.168.1.20:11434/v1", "https://api.openai.com/v1"):
        settings = settings_for(url)
        panel = HealthPanel(locate=lambda stage, name, s=settings: stage_place(get_registry(), s, stage, name))
        qtbot.addWidget(panel)
        panel.set_rows(rows)
        seen.append(panel.row_texts()[0][2])
    assert seen == ["this computer", "your server", "cloud"]
