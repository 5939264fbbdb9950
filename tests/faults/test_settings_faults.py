"""Settings faults: absurd nesting, a damaged file on a read-only disk, a full disk on
save, unknown keys in `--set` and in the file. Start-up always continues with one
clear line; only bad usage on the command line (`--set` a key that does not exist)
exits 2. Disks are real small tmpfs mounts (see test_history_faults)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from app.plugin.errors import ErrorCode, VoiceError
from app.store.settings import Settings, SettingsStore
from tests.faults.test_history_faults import SmallDisk, small_disk, voxdesk

__all__ = ["small_disk"]  # the fixture, shared with the history faults


def make_home(root: Path) -> Path:
    for d in ("config", "data", "cache"):
        (root / d).mkdir(parents=True, exist_ok=True)
    return root


def stderr_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


# ---------------------------------------------------------------- nesting


@pytest.mark.parametrize("depth", [950, 100_000])
def test_deeply_nested_settings_never_stop_start_up(tmp_path: Path, depth: int) -> None:
    home = make_home(tmp_path / "home")
    settings_file = home / "config" / "settings.json"
    text = (
        '{"conversation": {"language": "de"}, "llm": {"provider": "skills", "options": {"x": '
        + "[" * depth
        + "]" * depth
        + "}}}"
    )
    settings_file.write_text(text)
    out = voxdesk(home, "history", "list")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "RecursionError" not in out.stderr
    [line] = stderr_lines(out.stderr)
    assert "nested too deeply" in line
    # Nothing the user wrote is lost: either the file is kept aside whole, or it stays until a save
    # (which copies it aside first) — in both cases the bytes are still on disk.
    kept = sorted(settings_file.parent.glob("settings.json.corrupt.*"))
    on_disk = [p.read_text() for p in [*kept, settings_file] if p.exists()]
    assert text in on_disk
    if kept:
        assert str(kept[0]) in line


def test_a_too_deep_value_is_dropped_alone(tmp_path: Path) -> None:
    raw = {
        "conversation": {"language": "de"},
        "llm": {"provider": "skills", "options": {"ok": 1, "x": json.loads("[" * 300 + "]" * 300)}},
    }
    (tmp_path / "settings.json").write_text(json.dumps(raw))
    result = SettingsStore(tmp_path).load()
    assert result.settings.conversation.language == "de"  # the rest of the file still applies
    assert result.settings.llm.options == {"ok": 1}
    assert len(result.notices) == 1 and "llm.options.x" in result.notices[0]


def test_a_deeply_nested_set_value_is_bad_usage(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    out = voxdesk(home, "--set", "llm.options.x=" + "[" * 100_000, "history", "list")
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    [line] = stderr_lines(out.stderr)
    assert "llm.options.x" in line and "nested too deeply" in line


# ---------------------------------------------------------------- read-only and full disks


def test_a_damaged_file_on_a_read_only_disk_is_left_alone_and_start_up_continues(
    small_disk: Callable[..., SmallDisk],
) -> None:
    disk = small_disk()
    home = make_home(disk.root)
    settings_file = home / "config" / "settings.json"
    settings_file.write_bytes(b'{"llm": {"provider": "sk')
    disk.read_only()
    out = voxdesk(home, "history", "list")
    assert out.returncode == 0, out.stderr
    assert settings_file.read_bytes() == b'{"llm": {"provider": "sk'
    [line] = stderr_lines(out.stderr)
    assert "damaged" in line and "read-only" in line and str(settings_file) in line
    assert "defaults" in line
    assert out.stdout == "No conversations yet.\n"


def test_saving_after_a_damaged_file_was_left_in_place_keeps_it(small_disk: Callable[..., SmallDisk]) -> None:
    disk = small_disk()
    settings_file = disk.root / "settings.json"
    settings_file.write_bytes(b"{not json")
    disk.read_only()
    store = SettingsStore(disk.root)
    result = store.load()
    assert result.settings == Settings()
    disk.writable()
    s = Settings()
    s.conversation.language = "fr"
    store.save(s)  # the damaged original is kept aside before the new file replaces it
    [kept] = sorted(disk.root.glob("settings.json.corrupt.*"))
    assert kept.read_bytes() == b"{not json"
    assert SettingsStore(disk.root).load().settings.conversation.language == "fr"


def test_save_on_a_read_only_disk_is_a_voice_error_saying_what_to_do(small_disk: Callable[..., SmallDisk]) -> None:
    disk = small_disk()
    store = SettingsStore(disk.root / "config")
    store.save(Settings())
    disk.read_only()
    s = Settings()
    s.conversation.language = "fr"
    with pytest.raises(VoiceError) as err:
        store.save(s)
    assert err.value.code is ErrorCode.UNAVAILABLE
    msg = err.value.message
    assert "read-only" in msg and str(disk.root / "config") in msg and "Errno" not in msg
    assert "make it writable" in msg


def test_save_on_a_full_disk_is_a_voice_error_and_leaves_no_debris(small_disk: Callable[..., SmallDisk]) -> None:
    disk = small_disk(size_kb=256)
    config = disk.root / "config"
    store = SettingsStore(config)
    store.save(Settings())
    before = (config / "settings.json").read_bytes()
    disk.fill()
    s = Settings()
    s.conversation.system_prompt = "x" * 3000
    with pytest.raises(VoiceError) as err:
        store.save(s)
    assert err.value.code is ErrorCode.UNAVAILABLE
    assert "disk full" in err.value.message and "free some space" in err.value.message
    assert (config / "settings.json").read_bytes() == before  # the old file is intact
    assert [p.name for p in config.iterdir()] == ["settings.json"]  # no half-written temp file


# ---------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    "item,expect",
    [
        ("nosuch.key=1", "unknown setting nosuch.key"),
        ("activation.mod=always", "did you mean activation.mode"),
        ("telemetri.enabled=false", "did you mean telemetry.enabled"),
        ("llm.provder=skills", "did you mean llm.provider"),
    ],
)
def test_set_with_an_unknown_key_is_bad_usage_with_a_suggestion(tmp_path: Path, item: str, expect: str) -> None:
    home = make_home(tmp_path / "home")
    out = voxdesk(home, "--set", item, "history", "list")
    assert out.returncode == 2, out.stderr
    [line] = stderr_lines(out.stderr)
    assert expect in line, line


def test_set_still_takes_provider_options_and_known_keys(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    out = voxdesk(
        home,
        "--set",
        "llm.options.temperature=0.2",
        "--set",
        "conversation.language=de",
        "--set",
        "llm.fallback_options.openai-compatible.model=x",
        "history",
        "list",
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""


def test_unknown_keys_in_the_file_are_kept_and_told_once(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    settings_file = home / "config" / "settings.json"
    raw = {
        "conversation": {"language": "de"},
        "activation": {"mod": "always"},
        "telemetri": {"enabled": False},
        "llm": {"provider": "skills", "options": {"anything": 1}},
    }
    settings_file.write_text(json.dumps(raw))
    out = voxdesk(home, "history", "list")
    assert out.returncode == 0, out.stderr
    [line] = stderr_lines(out.stderr)  # one message for all of them
    assert "activation.mod" in line and "did you mean activation.mode" in line
    assert "telemetri" in line and "did you mean telemetry" in line
    assert "anything" not in line  # provider options are the provider's business
    assert "kept" in line
    store = SettingsStore(home / "config")
    result = store.load()
    assert result.settings.conversation.language == "de"
    store.save(result.settings)
    again = json.loads(settings_file.read_text())
    assert again["activation"]["mod"] == "always" and again["telemetri"] == {"enabled": False}
