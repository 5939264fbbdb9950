"""The speed figures the model manager shows: kept per model in the data folder, read
back whatever state the file is in, and the provider that runs a model found from the
catalogue (the timing itself runs a real model: tests/integration/test_model_download.py)."""

from __future__ import annotations

import json

import pytest

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.model_spec import ModelFile, ModelOption, ModelSpec
from app.store.model_speed import (
    SpeedRecord,
    benchmark_options,
    forget_speed,
    load_speeds,
    provider_for,
    save_speed,
    speed_file,
)
from app.store.paths import AppPaths, resolve_paths
from tests.support.model_plugins import declare_models


@pytest.fixture
def paths() -> AppPaths:
    return resolve_paths().ensure()


def _record(model_id: str, words_per_s: float) -> SpeedRecord:
    return SpeedRecord(model_id, words_per_s, words_per_s * 1.3, 0.12, 40, 31, "2026-12-01T13:00:00+00:00")


def test_figures_are_kept_per_model_and_forgotten_on_delete(paths) -> None:
    assert load_speeds(paths) == {}
    save_speed(paths, _record("a", 12.0))
    save_speed(paths, _record("b", 3.5))
    save_speed(paths, _record("a", 14.0))  # measured again: the new figure wins
    assert load_speeds(paths) == {"a": _record("a", 14.0), "b": _record("b", 3.5)}
    assert speed_file(paths).parent == paths.data_dir
    forget_speed(paths, "a")
    assert set(load_speeds(paths)) == {"b"}


def test_an_unreadable_or_foreign_file_means_no_figures_not_a_crash(paths) -> None:
    speed_file(paths).write_text("{not json", "utf-8")
    assert load_speeds(paths) == {}
    speed_file(paths).write_text(json.dumps({"old": {"rate": 3}, "ok": _record("ok", 9.0).__dict__}), "utf-8")
    assert set(load_speeds(paths)) == {"ok"}
    save_speed(paths, _record("new", 20.0))  # replaces the file cleanly
    assert set(load_speeds(paths)) == {"ok", "new"}


def test_the_phrase_rounds_as_a_listener_would_say_it() -> None:
    assert _record("m", 4.26).phrase() == "about 4.3 words a second here"
    assert _record("m", 23.6).phrase() == "about 24 words a second here"


def test_the_benchmark_uses_the_users_options_but_the_model_it_times() -> None:
    option = ModelOption("model", default="x", path_option="model_path")
    got = benchmark_options("fast-one", option, {"model": "other", "model_path": "/a/b.gguf", "n_threads": 2})
    assert got == {"model": "fast-one", "model_path": None, "n_threads": 2}


def test_the_provider_declaring_a_model_runs_its_benchmark() -> None:
    from app.store.models import catalogue

    llm = next(s for s in catalogue().values() if s.kind == "llm")
    name, option = provider_for(llm.id)
    from app.plugin.registry import get_registry

    assert llm in get_registry().spec("llm", name).models and option.id_option


def test_a_model_no_provider_can_run_is_refused_with_a_message() -> None:
    spec = ModelSpec("orphan-llm", "llm", "declared without a model option", (ModelFile("x.gguf", "http://x"),), "t")
    undo = declare_models(spec)
    try:
        with pytest.raises(VoiceError) as info:
            provider_for("orphan-llm")
        assert info.value.code is ErrorCode.NOT_FOUND and "no installed provider" in info.value.message
    finally:
        undo()
