"""A start with `--set` overrides is scripted: the window then skips the first-run welcome."""

from __future__ import annotations

from pathlib import Path

from app.commands.cli import load_settings
from app.store.paths import AppPaths


def test_a_start_with_overrides_is_scripted_and_one_without_is_not(tmp_path: Path) -> None:
    paths = AppPaths(config_dir=tmp_path / "config", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    settings, store, _ = load_settings(paths, ["activation.mode=always"])
    assert store.has_overrides and settings.activation.mode == "always"
    _, plain, _ = load_settings(paths, [])
    assert not plain.has_overrides
