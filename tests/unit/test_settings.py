from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app.plugin.errors import ErrorCode, VoiceError
from app.store.settings import SCHEMA_VERSION, Settings, SettingsStore, apply_overrides

REPO = Path(__file__).resolve().parents[2]


def corrupt_files(d: Path) -> list[Path]:
    return sorted(d.glob("settings.json.corrupt.*"))


def test_round_trip(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path)
    s = Settings()
    s.llm.provider = "llama-cpp"
    s.llm.options = {"n_threads": 2}
    s.conversation.endpoint_silence_ms = 600
    store.save(s)
    loaded = store.load()
    assert loaded.notices == []
    assert loaded.settings == s
    data = json.loads((tmp_path / "settings.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize(
    "content,why",
    [
        (b"", "empty"),
        (b"\x00\xff\xfe\x00binary", "not valid text"),
        (b'{"llm": {"provider": "skil', "damaged"),
        (b"[1, 2, 3]", "not a settings object"),
    ],
)
def test_unreadable_file_is_kept_aside_and_defaults_used(tmp_path: Path, content: bytes, why: str) -> None:
    (tmp_path / "settings.json").write_bytes(content)
    result = SettingsStore(tmp_path).load()
    assert result.settings == Settings()
    assert len(result.notices) == 1 and why in result.notices[0]
    kept = corrupt_files(tmp_path)
    assert len(kept) == 1 and kept[0].read_bytes() == content  # nothing lost
    assert str(kept[0]) in result.notices[0]


def test_invalid_field_falls_back_alone(tmp_path: Path) -> None:
    raw = Settings().model_dump(mode="json")
    raw["conversation"]["endpoint_silence_ms"] = -5
    raw["conversation"]["language"] = "en-GB"
    raw["telemetry"]["enabled"] = "perhaps"
    (tmp_path / "settings.json").write_text(json.dumps(raw))
    result = SettingsStore(tmp_path).load()
    s = result.settings
    assert s.conversation.endpoint_silence_ms == Settings().conversation.endpoint_silence_ms
    assert s.conversation.language == "en-GB"  # the valid neighbour survives
    assert s.telemetry.enabled is True
    joined = " ".join(result.notices)
    assert "conversation.endpoint_silence_ms" in joined and "telemetry.enabled" in joined
    assert corrupt_files(tmp_path) == []


def test_newer_schema_and_unknown_keys_kept(tmp_path: Path) -> None:
    raw = Settings().model_dump(mode="json")
    raw["schema_version"] = SCHEMA_VERSION + 1
    raw["future_section"] = {"x": 1}
    raw["conversation"]["future_option"] = True
    (tmp_path / "settings.json").write_text(json.dumps(raw))
    store = SettingsStore(tmp_path)
    result = store.load()
    assert any("newer" in n for n in result.notices)
    store.save(result.settings)
    again = json.loads((tmp_path / "settings.json").read_text())
    assert again["future_section"] == {"x": 1}
    assert again["conversation"]["future_option"] is True
    assert again["schema_version"] == SCHEMA_VERSION + 1


def test_no_secret_in_the_file(tmp_path: Path) -> None:
    s = Settings()
    s.llm.options = {"base_url": "http://127.0.0.1:1/v1", "api_key": "sk-canary-123"}
    store = SettingsStore(tmp_path)
    store.save(s)
    assert "sk-canary-123" not in (tmp_path / "settings.json").read_text()
    raw = json.loads((tmp_path / "settings.json").read_text())
    raw["llm"]["options"]["api_key"] = "sk-canary-456"
    (tmp_path / "settings.json").write_text(json.dumps(raw))
    result = store.load()
    assert "api_key" not in result.settings.llm.options
    assert any("API key" in n for n in result.notices)


def test_atomic_write_survives_crash_between_write_and_replace(tmp_path: Path) -> None:
    """Kill the writer after the temp file is written but before os.replace: old file intact."""
    store = SettingsStore(tmp_path)
    s = Settings()
    s.conversation.language = "de"
    store.save(s)
    before = (tmp_path / "settings.json").read_bytes()
    code = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        import app.store.safe_files as sf
        import app.store.settings as st
        def die(src, dst):
            os.kill(os.getpid(), signal.SIGKILL)
        sf.os.replace = die
        store = st.SettingsStore(Path({str(tmp_path)!r}))
        s = st.Settings()
        s.conversation.language = "fr"
        store.save(s)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO)
    assert proc.returncode == -9
    assert (tmp_path / "settings.json").read_bytes() == before
    assert SettingsStore(tmp_path).load().settings.conversation.language == "de"


def test_overrides_apply_and_report_every_bad_field() -> None:
    s = apply_overrides(
        Settings(),
        [
            "llm.provider=openai-compatible",
            "llm.options.base_url=http://127.0.0.1:8080/v1",
            "conversation.endpoint_silence_ms=300",
        ],
    )
    assert s.llm.provider == "openai-compatible"
    assert s.llm.options["base_url"] == "http://127.0.0.1:8080/v1"
    assert s.conversation.endpoint_silence_ms == 300
    with pytest.raises(VoiceError) as err:
        apply_overrides(Settings(), ["conversation.endpoint_silence_ms=5", "conversation.history_turns=-1"])
    assert err.value.code is ErrorCode.INVALID_CONFIG
    assert "endpoint_silence_ms" in str(err.value) and "history_turns" in str(err.value)
    with pytest.raises(VoiceError):
        apply_overrides(Settings(), ["novalue"])
    with pytest.raises(VoiceError) as err:
        apply_overrides(Settings(), ["llm.options.api_key=sk-canary"])
    assert "sk-canary" not in str(err.value)


def test_cli_bad_settings_file_never_blocks_start(tmp_path: Path) -> None:
    home = tmp_path / "h"
    (home / "config").mkdir(parents=True)
    (home / "config" / "settings.json").write_bytes(b"\x00garbage")
    env = {**os.environ, "VOXDESK_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-m", "app", "providers", "--json"], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert "kept as" in out.stderr
    assert json.loads(out.stdout)


def test_a_bad_stage_defaults_that_stage_alone_and_the_original_is_kept(tmp_path: Path) -> None:
    raw = Settings().model_dump(mode="json")
    raw["conversation"]["system_prompt"] = "Talk like a pirate."
    raw["tts"]["options"] = {"length_scale": 1.2}
    raw["llm"] = {"provider": 5, "options": {"n_threads": 2}}  # a hand edit gone wrong
    original = json.dumps(raw)
    (tmp_path / "settings.json").write_text(original)
    store = SettingsStore(tmp_path)
    result = store.load()
    assert result.settings.llm.provider == Settings().llm.provider
    assert result.settings.conversation.system_prompt == "Talk like a pirate."  # everything else survives
    assert result.settings.tts.options == {"length_scale": 1.2}
    assert any("llm.provider" in n for n in result.notices)
    store.save(result.settings)
    backups = sorted(tmp_path.glob("settings.json.backup.*"))
    assert len(backups) == 1 and backups[0].read_text() == original  # the hand edit is not lost
    store.save(result.settings)
    assert len(sorted(tmp_path.glob("settings.json.backup.*"))) == 1  # once, not on every save


def test_overrides_last_for_the_run_and_user_edits_are_saved(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path)
    stored = Settings()
    stored.llm.provider = "llama-cpp"
    stored.llm.options = {"n_threads": 2}
    store.save(stored)
    loaded = store.load().settings
    run = apply_overrides(
        loaded,
        ["llm.provider=openai-compatible", "llm.options.base_url=http://127.0.0.1:8080/v1", "conversation.language=de"],
    )
    assert run.llm.options == {"base_url": "http://127.0.0.1:8080/v1"}  # the old options are not inherited
    store.remember_overrides(loaded, run)
    edited = run.model_copy(deep=True)
    edited.conversation.system_prompt = "Be brief."  # changed in the settings dialog
    store.save(edited)
    again = store.load().settings
    assert again.llm.provider == "llama-cpp" and again.llm.options == {"n_threads": 2}
    assert again.conversation.language == "en"
    assert again.conversation.system_prompt == "Be brief."


def test_cli_set_before_and_after_the_command_both_apply(tmp_path: Path) -> None:
    env = {**os.environ, "VOXDESK_HOME": str(tmp_path / "h")}
    out = subprocess.run(
        [sys.executable, "-m", "app", "--set", "conversation.language=de", "doctor", "--set", "llm.provider=nope"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert "[FAIL] llm: nope" in out.stdout, out.stdout + out.stderr
