"""Widgets from plain data and real app objects (registry, settings, telemetry types)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field, SecretStr
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QPushButton, QSpinBox

from app.engine.events import ProviderSwitched
from app.engine.session import ProviderHealth
from app.plugin.provider_api import KINDS, Health, HealthStatus
from app.plugin.registry import get_registry
from app.store.settings import Settings
from app.telemetry import StageStats, TelemetrySnapshot, TurnTiming
from ui.conversation_view import ConversationView
from ui.health_panel import HealthPanel
from ui.latency_panel import TIMELINE, LatencyPanel, StackedBar
from ui.schema_form import SchemaForm
from ui.settings_dialog import SettingsDialog


def test_form_from_a_real_provider_schema_has_the_right_editors(qtbot: Any) -> None:
    spec = get_registry().spec("stt", "faster-whisper")
    form = SchemaForm(spec.config_schema(), {}, model=spec.config_model)
    qtbot.addWidget(form)
    compute = form.editor("compute_type")
    assert isinstance(compute, QComboBox)
    assert [compute.itemText(i) for i in range(compute.count())] == [
        "int8",
        "int8_float32",
        "int16",
        "float32",
        "default",
    ]
    threads = form.editor("cpu_threads")
    assert isinstance(threads, QSpinBox) and (threads.minimum(), threads.maximum()) == (0, 64)
    assert "0 ≤ value ≤ 64" in threads.toolTip()
    assert form.is_valid()
    assert form.values()["compute_type"] == "int8"


def test_invalid_value_is_rejected_inline_and_cleared_when_fixed(qtbot: Any) -> None:
    spec = get_registry().spec("stt", "faster-whisper")
    form = SchemaForm(spec.config_schema(), {}, model=spec.config_model)
    qtbot.addWidget(form)
    threads = form.editor("cpu_threads")
    assert isinstance(threads, QSpinBox)
    threads.setValue(99)  # a spin box keeps to the schema's range
    assert threads.value() == 64 and form.is_valid()
    form.show_errors({"cpu_threads": "must be ≤ 64"})  # as the registry reports on apply
    assert form.error_text("cpu_threads") == "must be ≤ 64"
    threads.setValue(2)
    assert form.error_text("cpu_threads") == ""
    assert form.is_valid() and form.values()["cpu_threads"] == 2


def test_skills_schema_gives_a_nullable_text_and_a_checkbox(qtbot: Any) -> None:
    spec = get_registry().spec("llm", "skills")
    form = SchemaForm(spec.config_schema(), {"twenty_four_hour": True}, model=spec.config_model)
    qtbot.addWidget(form)
    box = form.editor("twenty_four_hour")
    assert isinstance(box, QCheckBox) and box.isChecked()
    assert form.values() == {"timezone": None, "twenty_four_hour": True, "unanswered": "explain"}


class _PathsAndKeys(BaseModel):
    model_path: Path | None = Field(None, description="A .onnx voice file")
    api_key: SecretStr | None = None
    rate: float = Field(1.0, gt=0.0, le=4.0)


def test_model_paths_get_a_file_picker_and_keys_a_password_field(qtbot: Any) -> None:
    form = SchemaForm(_PathsAndKeys.model_json_schema(), {}, model=_PathsAndKeys)
    qtbot.addWidget(form)
    browse = [b.text() for b in form.field("model_path").findChildren(QPushButton)]
    assert browse == ["Browse…"]
    key = form.editor("api_key")
    assert isinstance(key, QLineEdit) and key.echoMode() == QLineEdit.EchoMode.Password
    key.setText("sk-test-123")
    assert form.secret_values() == {"api_key": "sk-test-123"}
    rate = form.editor("rate")
    assert isinstance(rate, QDoubleSpinBox)
    assert 0 < rate.minimum() < 0.1 and rate.maximum() == 4.0  # gt=0: zero cannot be entered


def test_settings_dialog_lists_every_registered_provider(qtbot: Any) -> None:
    registry = get_registry()
    dialog = SettingsDialog(Settings(), registry)
    qtbot.addWidget(dialog)
    for kind in KINDS:
        page = dialog.stage_pages[kind]
        listed = [page.list.item(i).data(256) for i in range(page.list.count())]
        assert listed == registry.list_providers(kind)
        assert page.provider == Settings().stage(kind).provider
    llm = dialog.stage_pages["llm"]
    llm.select("openai-compatible")
    assert "this computer" in llm.badges.text()  # its default address is 127.0.0.1
    assert llm.form is not None and isinstance(llm.form.editor("base_url"), QLineEdit)
    llm.form.set_values({"base_url": "https://api.openai.com/v1"})
    assert "online" in llm.badges.text()
    llm.select("skills")
    assert "offline" in llm.badges.text()


def test_settings_dialog_apply_refuses_invalid_values_without_calling_the_engine(qtbot: Any, run: Any) -> None:
    calls: list[Settings] = []

    async def apply(new: Settings) -> list[ProviderSwitched]:
        calls.append(new)
        return []

    dialog = SettingsDialog(Settings(), get_registry(), apply)
    qtbot.addWidget(dialog)
    llm = dialog.stage_pages["llm"]
    llm.select("llama-cpp")
    assert llm.form is not None
    tokens = llm.form.editor("max_tokens")
    assert isinstance(tokens, QSpinBox)
    tokens.setValue(8192)  # more than the context window leaves room for: the model's own rule
    dialog.tabs.setCurrentIndex(dialog.tabs.count() - 1)
    assert run(dialog.apply()) is False
    assert calls == []
    assert "n_ctx" in llm.form.errors()[""]
    assert dialog.tabs.currentWidget() is llm
    tokens.setValue(100)
    assert run(dialog.apply()) is True
    assert calls and calls[0].llm.options["max_tokens"] == 100


#: Timings of a real push-to-talk turn, as `Session._turn` records them: `vad_endpoint`
#: and `stt` are durations; the other three are points since the reply started.
REAL_TURN = {
    "vad_endpoint": 0.004,
    "stt": 0.270,
    "llm_first_token": 0.448,
    "llm": 0.452,
    "tts_first_audio": 0.507,
    "tts": 0.600,
    "playback_start": 0.520,
}
REAL_V2V = 0.800


def _snapshot() -> TelemetrySnapshot:
    # Older turns were slower in STT; the last one is the real turn.
    turns = [
        TurnTiming(
            f"t{i}",
            time.time(),
            {**REAL_TURN, "stt": REAL_TURN["stt"] + (11 - i) / 100},
            REAL_V2V + (11 - i) / 100,
        )
        for i in range(12)
    ]
    v2v = StageStats.of([t.voice_to_voice_s for t in turns if t.voice_to_voice_s is not None])
    stages = {k: StageStats.of([t.stages[k] for t in turns]) for k in turns[0].stages}
    return TelemetrySnapshot(turns=turns, stages=stages, voice_to_voice=v2v, exporter="otlp: ok")


def test_latency_panel_fills_from_a_snapshot_and_skips_unchanged_redraws(qtbot: Any) -> None:
    panel = LatencyPanel()
    qtbot.addWidget(panel)
    snap = _snapshot()
    assert panel.update_snapshot(snap) is True
    assert "800 ms" in panel.total_label.text()
    assert panel.cell_text("stt", "last") == "270 ms"
    stt_p95 = StageStats.of([REAL_TURN["stt"] + j / 100 for j in range(12)]).p95
    assert panel.cell_text("stt", "p95") == f"{stt_p95 * 1000:.0f} ms"
    assert panel.cell_text("voice_to_voice", "p50") == f"{snap.voice_to_voice.p50 * 1000:.0f} ms"
    assert "Endpoint → transcript 270 ms" in panel.bar.accessibleDescription()
    assert panel.update_snapshot(snap) is False
    assert panel.redraws == 1


def test_latency_bar_segments_are_gaps_between_points_and_add_up_to_voice_to_voice(qtbot: Any) -> None:
    panel = LatencyPanel()
    qtbot.addWidget(panel)
    panel.update_snapshot(_snapshot())
    drawn = dict(panel.bar.segment_values())
    # first token 448 ms after the reply started; first audio 59 ms later; playback 13 ms later
    assert drawn["Reply start → first token"] == pytest.approx(0.448)
    assert drawn["First token → first audio"] == pytest.approx(0.059)
    assert drawn["First audio → playback"] == pytest.approx(0.013)
    assert sum(drawn.values()) <= REAL_V2V + 0.001
    assert sum(drawn.values()) == pytest.approx(REAL_V2V, abs=0.001)  # nothing left out either
    # the Last column says what its label says
    assert panel.cell_text("llm_first_token", "last") == "448 ms"
    assert panel.cell_text("tts_first_audio", "last") == "59 ms"
    assert panel.cell_text("playback_start", "last") == "13 ms"
    shown = sum(int(panel.cell_text(k, "last").split()[0]) for k, _, _ in TIMELINE)
    assert abs(shown - 800) <= len(TIMELINE)  # each cell rounds by at most 0.5 ms


def test_latency_bar_for_a_typed_turn_has_only_reply_segments(qtbot: Any) -> None:
    bar = StackedBar()
    qtbot.addWidget(bar)
    bar.set_turn({"llm_first_token": 0.05, "tts_first_audio": 0.12, "playback_start": 0.15}, None)
    assert [(label, round(v, 3)) for label, v in bar.segment_values()] == [
        ("Reply start → first token", 0.05),
        ("First token → first audio", 0.07),
        ("First audio → playback", 0.03),
    ]


def test_health_panel_shows_a_down_provider_with_its_error(qtbot: Any) -> None:
    panel = HealthPanel()
    qtbot.addWidget(panel)
    at = time.time()
    panel.set_rows(
        [
            ProviderHealth("stt", "faster-whisper", True, Health(HealthStatus.OK, "tiny.en loaded")),
            ProviderHealth(
                "llm",
                "openai-compatible",
                False,
                Health(HealthStatus.DOWN, "cannot reach http://127.0.0.1:9/v1"),
                breaker_state="open",
                error_count=3,
                last_error="llm.openai-compatible: UNAVAILABLE: server not reachable",
                last_error_at=at,
            ),
        ]
    )
    panel.set_exporter_status("otlp http://127.0.0.1:4318: failing (connection refused)")
    rows = panel.row_texts()
    assert rows[0][:4] == ["stt", "faster-whisper", "this computer", "● ok"]
    assert rows[1][:6] == ["llm", "openai-compatible", "cloud", "● down", "3", "open"]  # no address known
    assert "server not reachable" in rows[1][6] and time.strftime("%H:%M", time.localtime(at)) in rows[1][6]
    assert "connection refused" in panel.exporter_label.text()


def test_conversation_view_turns_a_partial_into_the_final_and_streams_the_reply(qtbot: Any) -> None:
    view = ConversationView()
    qtbot.addWidget(view)
    view.user_partial(None, "what is")
    view.user_partial(None, "what is seventeen")
    assert [(m.role, m.text, m.final) for m in view.messages()] == [("user", "what is seventeen", False)]
    view.user_final("t1", "what is 17 times 23")
    view.reply_delta("t1", "17 times 23 ")
    view.reply_delta("t1", "is 391.")
    msgs = view.messages()
    assert [(m.role, m.text) for m in msgs] == [
        ("user", "what is 17 times 23"),
        ("assistant", "17 times 23 is 391."),
    ]
    assert not msgs[1].final
    view.turn_finished("t1", "what is 17 times 23", "17 times 23 is 391.", interrupted=True)
    assert msgs[1].final and msgs[1].interrupted
    view.error("llm · openai-compatible: server not reachable — start it or pick another in Settings")
    assert view.messages()[-1].role == "error"
    view.clear()
    assert view.messages() == []


def test_history_dialog_exports_the_selected_conversation(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from app.store.history import History
    from ui.history_dialog import HistoryDialog

    h = History(tmp_path / "history.db")
    try:
        t = h.begin_turn("set a timer for five minutes")
        h.finish_turn(t, "OK, timer set for 5 minutes.")
        dialog = HistoryDialog(h.list_conversations(), export=h.export)
        qtbot.addWidget(dialog)
        cid = h.list_conversations()[0].id
        assert dialog.export_to(cid, tmp_path / "talk.md")
        assert "OK, timer set for 5 minutes." in (tmp_path / "talk.md").read_text()
        assert dialog.export_to(cid, tmp_path / "talk", "JSON (*.json)")
        assert json.loads((tmp_path / "talk.json").read_text())["turns"][0]["user_text"].startswith("set a timer")
        (tmp_path / "a-file").write_text("")
        assert not dialog.export_to(cid, tmp_path / "a-file" / "talk.md")  # cannot write there
        assert "Could not save" in dialog.status.text()
    finally:
        h.close()


def test_a_slow_keychain_never_freezes_the_settings_dialog(qtbot, run, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Secret Service can take long (or wait for an unlock): keys are read and stored off the GUI thread."""
    import time

    import keyring
    from keyring.backend import KeyringBackend

    class SlowKeyring(KeyringBackend):
        priority = 1  # type: ignore[assignment]
        store: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            time.sleep(0.3)
            return self.store.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            time.sleep(0.3)
            self.store[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.store.pop((service, username), None)

    kr = SlowKeyring()
    monkeypatch.setattr(keyring, "get_keyring", lambda: kr)
    from tests.ui.conftest import GuiGapMeter, wait_until

    meter = GuiGapMeter()

    async def apply(new: Settings) -> list[ProviderSwitched]:
        return []

    async def scenario() -> bool:
        meter.start()
        dialog = SettingsDialog(Settings(), get_registry(), apply)
        qtbot.addWidget(dialog)
        page = dialog.stage_pages["llm"]
        page.select("openai-compatible")
        assert page.form is not None
        page.form.set_values({"base_url": "http://127.0.0.1:8080/v1", "model": "local"})
        page.api_key.setText("sk-test-0123456789")
        ok = await dialog.apply()
        await wait_until(lambda: "a key is stored" in page.key_status.text(), 5, "the key status")
        meter.stop()
        dialog.reject()  # closing cancels any keychain look-up still under way
        await asyncio.sleep(0)
        return ok

    assert run(scenario(), timeout=30) is True
    assert kr.store[("voxdesk", "llm.openai-compatible")] == "sk-test-0123456789"
    assert meter.worst < 0.2, f"GUI thread blocked {meter.worst * 1000:.0f} ms"


def test_audio_devices_are_listed_off_the_gui_thread_and_the_saved_one_kept(qtbot, run) -> None:  # type: ignore[no-untyped-def]
    async def apply(new: Settings) -> list[ProviderSwitched]:
        return []

    settings = Settings()
    settings.audio.input_device = "My USB Mic"

    async def scenario() -> tuple[str, str, str, str]:
        dialog = SettingsDialog(settings, get_registry(), apply)
        qtbot.addWidget(dialog)
        page = dialog.audio_page
        first = (page.status.text(), page.input.currentData())
        from tests.ui.conftest import wait_until

        await wait_until(lambda: "Looking" not in page.status.text(), 10, "the device list")
        final = (page.input.currentText(), page.input.currentData())
        dialog.reject()
        return (*first, *final)

    status, data, text, final_data = run(scenario(), timeout=30)
    assert status == "Looking for audio devices…" and data == "My USB Mic"  # Apply keeps it meanwhile
    assert text == "My USB Mic (not connected)" and final_data == "My USB Mic"


def test_latency_panel_shows_barge_in_reaction_and_the_echo_removed(qtbot: Any) -> None:
    panel = LatencyPanel()
    qtbot.addWidget(panel)
    panel.update_snapshot(_snapshot())
    assert panel.barge_in_label.text() == "Barge-in reaction: —"
    cut = [TurnTiming(f"b{i}", time.time(), {**REAL_TURN, "barge_in_stop": 0.1 + i / 100}, None) for i in range(3)]
    last = TurnTiming("e", time.time(), dict(REAL_TURN), REAL_V2V, echo_erle_db=41.6)
    panel.update_snapshot(TelemetrySnapshot(turns=[*cut, last]))
    assert panel.barge_in_label.text() == "Barge-in reaction: 120 ms (p95 119 ms over 3) · echo removed 42 dB"


def test_latency_values_are_in_the_accessible_names_not_hidden_behind_them(qtbot: Any) -> None:
    panel = LatencyPanel()
    qtbot.addWidget(panel)
    cell = panel._cells["stt"][0]
    assert cell.accessibleName() == "Endpoint → transcript last: no value yet"
    panel.update_snapshot(_snapshot())
    assert cell.accessibleName() == "Endpoint → transcript last: 270 ms"
    p95 = panel._cells["voice_to_voice"][2]
    assert p95.accessibleName() == f"Voice-to-voice p95: {p95.text()}" and "ms" in p95.text()
    assert panel.total_label.accessibleName() == "Last voice-to-voice latency: 800 ms"
