"""Settings → Voice detection → Turn detection: the detector choice and the patience slider,
down to a running Session that switches detector and patience without a restart."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDoubleSpinBox

from app.engine.endpointing import FRAME_MS
from app.engine.session import ProviderHealth
from app.plugin.errors import VoiceError
from app.plugin.provider_api import Health, HealthStatus
from app.plugin.registry import get_registry
from app.store.settings import ConversationSettings, Settings
from providers.turn import silence as silence_turn
from providers.turn import smart_turn
from tests.support.fakes import fake_session
from ui.health_panel import HealthPanel
from ui.settings_dialog import SettingsDialog


def _dialog(qtbot: Any, settings: Settings | None = None, **kw: Any) -> SettingsDialog:
    dialog = SettingsDialog(settings or Settings(), kw.pop("registry", None) or get_registry(), **kw)
    qtbot.addWidget(dialog)
    return dialog


def test_turn_detection_is_a_section_of_the_voice_detection_tab(qtbot: Any) -> None:
    dialog = _dialog(qtbot)
    turn, vad = dialog.stage_pages["turn"], dialog.stage_pages["vad"]
    tabs = [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())]
    assert "Turn detection" not in tabs
    assert dialog.tab_of(turn) == dialog.tabs.indexOf(vad) == tabs.index("Voice detection")
    listed = [turn.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(turn.list.count())]
    assert listed == get_registry().list_providers("turn")
    assert {"smart-turn", "silence"} <= set(listed)
    assert turn.provider == "smart-turn"  # the default
    assert turn.title.text() == "Smart Turn v3.2" and "unfinished" in turn.description.text()
    assert turn.form is not None and {"model", "threshold", "cpu_threads"} <= set(turn.form.fields_by_name())
    assert turn.list.accessibleName() == "Turn detection providers"
    dialog.show_stage("turn")
    assert dialog.tabs.currentWidget() is vad


def test_the_patience_slider_shows_seconds_and_is_the_only_patience_control(qtbot: Any) -> None:
    dialog = _dialog(qtbot)
    section = dialog.turn_section
    slider = section.patience
    assert "pause mid-sentence" in section.patience_label.text()
    lo, hi = (ConversationSettings.model_fields["turn_patience_ms"].metadata[i] for i in (0, 1))
    assert (slider.minimum() * 100, slider.maximum() * 100) == (lo.ge, hi.le) == (300, 5000)
    assert section.patience_value.text() == "1.5 s"
    slider.setValue(slider.minimum())
    assert section.patience_value.text() == "0.3 s"
    slider.setValue(slider.maximum())
    assert section.patience_value.text() == "5.0 s"
    qtbot.keyClick(slider, Qt.Key.Key_Left)  # keyboard: one step is a tenth of a second
    assert section.patience_value.text() == "4.9 s" and section.patience_ms() == 4900
    # Not also a number field in Conversation: two controls for one value would fight.
    assert "turn_patience_ms" not in dialog.conversation_form.fields_by_name()


def test_choosing_a_detector_and_a_patience_gives_settings_with_them(qtbot: Any) -> None:
    dialog = _dialog(qtbot)
    turn, section = dialog.stage_pages["turn"], dialog.turn_section
    untouched = dialog.new_settings()
    assert untouched.turn == Settings().turn and untouched.conversation == Settings().conversation

    turn.select("silence")
    assert not section.patience.isEnabled()  # the silence rule never waits on a sentence
    assert "patience does not apply" in section.patience_hint.text()
    section.patience.setValue(25)
    new = dialog.new_settings()
    assert new.turn.provider == "silence" and new.conversation.turn_patience_ms == 2500

    turn.select("smart-turn")
    assert section.patience.isEnabled() and "unfinished" in section.patience_hint.text()
    assert turn.form is not None
    threshold = turn.form.editor("threshold")
    assert isinstance(threshold, QDoubleSpinBox)
    threshold.setValue(0.7)
    new = dialog.new_settings()
    assert new.turn.provider == "smart-turn" and new.turn.options["threshold"] == 0.7
    assert new.turn.fallbacks == ["silence"]
    assert new.conversation.turn_patience_ms == 2500
    # The rest of Conversation is kept as it was.
    assert new.conversation.endpoint_silence_ms == Settings().conversation.endpoint_silence_ms


def test_an_untouched_slider_keeps_an_odd_saved_patience_exactly(qtbot: Any) -> None:
    settings = Settings.model_validate({"conversation": {"turn_patience_ms": 1550}})
    dialog = _dialog(qtbot, settings)
    assert dialog.new_settings().conversation.turn_patience_ms == 1550  # not rounded: no endpointer reset
    dialog.turn_section.patience.setValue(20)
    assert dialog.new_settings().conversation.turn_patience_ms == 2000


def test_a_bad_turn_option_is_refused_on_the_voice_detection_tab(qtbot: Any, run: Any, monkeypatch: Any) -> None:
    calls: list[Settings] = []

    async def apply(new: Settings) -> list[Any]:
        calls.append(new)
        return []

    dialog = _dialog(qtbot, apply_fn=apply)
    dialog.tabs.setCurrentIndex(0)
    turn = dialog.stage_pages["turn"]
    assert turn.form is not None
    threshold = turn.form.editor("threshold")
    assert isinstance(threshold, QDoubleSpinBox)
    assert threshold.maximum() < 1.0  # the schema's bound: 1.5 cannot even be typed
    real_validate = dialog.registry.validate

    def refuse_turn(kind: str, name: str, options: Any) -> Any:  # the registry's own check says no
        if kind == "turn":
            raise VoiceError("turn.smart-turn", "INVALID_CONFIG", "threshold: must be < 1")
        return real_validate(kind, name, options)

    monkeypatch.setattr(dialog.registry, "validate", refuse_turn)
    assert run(dialog.apply()) is False
    assert calls == []
    assert dialog.tabs.currentWidget() is dialog.stage_pages["vad"]  # where the message is
    assert turn.form.error_text("threshold")


def test_apply_switches_the_detector_and_patience_on_a_running_session(qtbot: Any, run: Any) -> None:
    """A real Session (fakes for the other stages) and the real turn detectors."""

    async def scenario() -> None:
        async with fake_session(turn={"finished": True}) as h:
            session = h.session
            for spec in (silence_turn.SPEC, smart_turn.SPEC):
                session.registry.add(spec)
            dialog = _dialog(qtbot, session.settings, registry=session.registry, apply_fn=session.apply_settings)
            turn, section = dialog.stage_pages["turn"], dialog.turn_section

            turn.select("silence")
            section.patience.setValue(25)
            assert await dialog.apply() is True, dialog.status.text()
            assert session.stages["turn"].name == "silence"
            assert session.settings.conversation.turn_patience_ms == 2500
            # The endpointer was rebuilt with the new patience (no restart).
            assert session.listener.endpointer.patience_frames == round(2500 / FRAME_MS)
            assert "Turn detection → silence" in dialog.status.text()

            turn.select("smart-turn")
            section.patience.setValue(8)
            assert await dialog.apply() is True, dialog.status.text()
            assert session.stages["turn"].name == "smart-turn"
            assert type(session.stages["turn"].provider).__name__ == "SmartTurn"
            assert session.listener.endpointer.patience_frames == round(800 / FRAME_MS)
            dialog.close()

    run(scenario(), timeout=60)


def test_the_health_table_names_the_turn_stage(qtbot: Any) -> None:
    panel = HealthPanel()
    qtbot.addWidget(panel)
    panel.set_rows([ProviderHealth("turn", "smart-turn", True, Health(HealthStatus.OK, "model loaded"))])
    assert panel.row_texts()[0][:4] == ["turn", "smart-turn", "this computer", "● ok"]
    stage = panel.table.item(0, 0)
    assert stage.toolTip() == "Turn detection"
    assert stage.data(Qt.ItemDataRole.AccessibleTextRole) == "Stage: Turn detection (turn)"
