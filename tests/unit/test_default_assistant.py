"""Out of the box the assistant is skills in front of the embedded instruct model, with
skills behind it too; a settings file that names an LLM keeps its choice."""

from __future__ import annotations

import json
from pathlib import Path

from app.plugin.registry import get_registry
from app.store.models import configured_models, get_spec
from app.store.settings import Settings, SettingsStore
from providers.llm.llama_cpp_models import DEFAULT_MODEL_ID, EMBEDDED_MODEL_ID


def test_default_assistant_is_the_embedded_model_behind_the_skills() -> None:
    s = Settings()
    assert s.llm.provider == "llama-cpp"
    assert s.llm.fallbacks == ["skills"]  # a damaged model still leaves skills answering
    assert s.conversation.skills_first  # skills answer what they know before the model
    reg = get_registry()
    assert reg.info("llm", "skills").extra.get("quick_answers") is True
    option = reg.spec("llm", "llama-cpp").model_option
    assert option is not None and option.default == DEFAULT_MODEL_ID == EMBEDDED_MODEL_ID


def test_the_default_model_ships_in_packages_and_is_a_chat_model() -> None:
    spec = get_spec(DEFAULT_MODEL_ID)
    assert spec.package is not None and spec.package.parts  # installed with the app, nothing to fetch
    assert spec.licence == "Apache-2.0"
    assert "Instruct" in spec.description


def test_default_settings_load_the_embedded_model_from_its_package() -> None:
    (entry,) = [m for m in configured_models(Settings()) if m.stage == "llm"]
    assert (entry.model_id, entry.path, entry.provider) == (EMBEDDED_MODEL_ID, None, "llama-cpp")


def _load(config_dir: Path, raw: dict[str, object]) -> Settings:
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "settings.json").write_text(json.dumps(raw))
    result = SettingsStore(config_dir).load()
    assert result.notices == []
    return result.settings


def test_a_settings_file_that_names_an_llm_keeps_it(tmp_path: Path) -> None:
    # Saved by an older version (every save writes the whole llm section): kept as written.
    old = _load(tmp_path / "a", {"schema_version": 1, "llm": {"provider": "skills", "options": {}, "fallbacks": []}})
    assert (old.llm.provider, old.llm.fallbacks) == ("skills", [])
    chosen = _load(tmp_path / "b", {"llm": {"provider": "llama-cpp", "options": {"model": "/m/mine.gguf"}}})
    assert chosen.llm.options == {"model": "/m/mine.gguf"} and chosen.llm.fallbacks == []


def test_a_settings_file_without_an_llm_section_gets_the_new_default(tmp_path: Path) -> None:
    s = _load(tmp_path, {"schema_version": 1, "conversation": {"language": "en"}})
    assert (s.llm.provider, s.llm.fallbacks) == ("llama-cpp", ["skills"])


async def test_behind_the_default_model_the_skills_never_ask_for_a_language_model() -> None:
    from app.engine.stages import build_slot
    from app.plugin.provider_api import ChatMessage

    s = Settings()
    slot = build_slot(get_registry(), "llm", s.llm)
    name, fallback = slot.chain[1]
    assert name == "skills"
    said = "".join([d async for d in fallback.chat([ChatMessage("user", "tell me a joke")])])  # type: ignore[attr-defined]
    assert "language model isn't answering" in said and "need a language model" not in said
