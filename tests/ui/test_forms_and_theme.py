"""Provider forms that validate untouched, restart-only options, and dark-theme colours."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from PySide6.QtGui import QIcon, QPalette
from PySide6.QtWidgets import QCheckBox, QLineEdit

from app.plugin.errors import VoiceError
from app.plugin.provider_api import KINDS
from app.plugin.registry import get_registry
from app.store.settings import Settings
from ui import theme
from ui.controls import Controls
from ui.schema_form import SchemaForm
from ui.settings_dialog import SettingsDialog


def test_every_registered_provider_form_is_valid_when_untouched(qtbot: Any) -> None:
    registry = get_registry()
    dialog = SettingsDialog(Settings(), registry)
    qtbot.addWidget(dialog)
    checked = []
    for kind in KINDS:
        page = dialog.stage_pages[kind]
        for name in registry.list_providers(kind):
            try:
                spec = registry.spec(kind, name)
            except VoiceError:
                continue  # a provider that cannot load says so on its page instead
            form = SchemaForm(spec.config_schema(), {}, model=spec.config_model)
            qtbot.addWidget(form)
            assert form.errors() == {}, (kind, name)
            page.select(name)  # the dialog's own page: what Apply checks
            assert page.validate(), (kind, name, page.error.text(), page.form and page.form.errors())
            checked.append((kind, name))
    # providers whose options use default_factory (no schema default) are among them
    assert {("llm", "llama-cpp"), ("llm", "openai-compatible")} <= set(checked)


class _Factories(BaseModel):
    name: str
    extra_headers: dict[str, str] = Field(default_factory=dict)
    stop: list[str] = Field(default_factory=list)


def test_only_schema_required_fields_are_required_and_empty_optional_ones_are_left_out(
    qtbot: Any,
) -> None:
    form = SchemaForm(_Factories.model_json_schema(), {}, model=_Factories)
    qtbot.addWidget(form)
    assert form.errors() == {"name": "required — enter a value"}
    name = form.editor("name")
    assert isinstance(name, QLineEdit)
    name.setText("x")
    assert form.is_valid() and form.values() == {"name": "x"}


def test_telemetry_options_say_they_take_effect_after_restart(qtbot: Any, run: Any) -> None:
    async def apply(_new: Settings) -> list[Any]:
        return []

    dialog = SettingsDialog(Settings(), get_registry(), apply)
    qtbot.addWidget(dialog)
    form = dialog.telemetry_form
    enabled = form.editor("enabled")
    assert isinstance(enabled, QCheckBox) and "after restart" in enabled.text()
    assert "after restart" in form.fields_by_name()["otlp_endpoint"].title
    assert "after restart" in dialog.telemetry_note.text()
    endpoint = form.editor("otlp_endpoint")
    assert isinstance(endpoint, QLineEdit)
    endpoint.setText("http://127.0.0.1:4318")
    assert run(dialog.apply()) is True
    assert "after restart" in dialog.status.text()


def _inks(icon: QIcon) -> set[str]:
    """Colours of an icon's fully opaque pixels (the mute icon's slash is red in both themes)."""
    img = icon.pixmap(24, 24).toImage()
    return {
        img.pixelColor(x, y).name()
        for y in range(img.height())
        for x in range(img.width())
        if img.pixelColor(x, y).alpha() == 255
    }


def test_control_icons_are_retinted_when_the_palette_turns_dark(qtbot: Any) -> None:
    controls = Controls()
    qtbot.addWidget(controls)
    buttons = (controls.mute, controls.stop, controls.send)
    controls.setPalette(controls.style().standardPalette())
    light_ink = controls.palette().color(QPalette.ColorRole.ButtonText).name()
    assert all(light_ink in _inks(b.icon()) for b in buttons)
    controls.setPalette(theme.dark_palette())  # what ThemeFollower does when the OS turns dark
    for b in buttons:
        inks = _inks(b.icon())
        assert theme.DARK["text"] in inks and light_ink not in inks, b.accessibleName()


def test_settings_badges_use_the_dark_theme_colours(qtbot: Any) -> None:
    dialog = SettingsDialog(Settings(), get_registry())
    qtbot.addWidget(dialog)
    llm = dialog.stage_pages["llm"]
    llm.select("skills")
    dialog.setPalette(dialog.style().standardPalette())
    assert theme.LIGHT["ok_bg"] in llm.badges.text()
    dialog.setPalette(theme.dark_palette())  # the open dialog follows a switch to dark
    assert theme.DARK["ok_bg"] in llm.badges.text() and theme.LIGHT["ok_bg"] not in llm.badges.text()
    llm.select("openai-compatible")
    assert llm.form is not None
    llm.form.set_values({"base_url": "https://api.openai.com/v1"})
    assert theme.DARK["remote_bg"] in llm.badges.text()


def test_where_a_server_runs_is_read_from_its_address_not_its_type(qtbot: Any) -> None:
    """A server on localhost was labelled "online" as though it were a cloud service."""
    dialog = SettingsDialog(Settings(), get_registry())
    qtbot.addWidget(dialog)
    llm = dialog.stage_pages["llm"]
    llm.select("openai-compatible")
    assert llm.form is not None
    shown = {}
    for url in ("http://127.0.0.1:11434/v1", "http://192.168.1.20:11434/v1", "https://api.openai.com/v1"):
        llm.form.set_values({"base_url": url})  # typing in the field updates the badges at once
        shown[url] = (llm.place(), llm.badges.text())
    assert shown["http://127.0.0.1:11434/v1"][0] == "local"
    assert "runs on this computer" in shown["http://127.0.0.1:11434/v1"][1]
    assert "online" not in shown["http://127.0.0.1:11434/v1"][1]
    assert shown["http://192.168.1.20:11434/v1"][0] == "server"
    assert "runs on your server" in shown["http://192.168.1.20:11434/v1"][1]
    assert shown["https://api.openai.com/v1"][0] == "cloud"
    assert (
        "online" in shown["https://api.openai.com/v1"][1] and "runs on cloud" in shown["https://api.openai.com/v1"][1]
    )


def test_field_labels_read_like_words() -> None:
    from ui.schema_form import field_label

    assert field_label("sentence_pause_s", "Sentence Pause S") == "Sentence pause (s)"
    assert field_label("speaker_id", "Speaker Id") == "Speaker ID"
    assert field_label("n_ctx", "N Ctx") == "Context window (tokens)"
    assert field_label("base_url", "Base Url") == "Base URL"
    assert field_label("threshold", "Speech threshold") == "Speech threshold"  # the model's own title wins
