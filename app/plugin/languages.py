"""The conversation's language: `auto` or a code, shared by speech recognition, the
assistant's prompt and the voice.

Codes are Whisper's (ISO 639-1 where one exists, `haw` and `yue` otherwise): the widest
set a speech recognizer here understands. A region ("fr-FR", "pt_BR") is accepted and
dropped: recognizers and prompts work per language, voices say their region themselves.
Data and two small protocols only; no provider library.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

AUTO = "auto"

#: Whisper's languages, by code, with the English name a prompt or a message uses.
NAMES: dict[str, str] = {
    "af": "Afrikaans", "am": "Amharic", "ar": "Arabic", "as": "Assamese", "az": "Azerbaijani",
    "ba": "Bashkir", "be": "Belarusian", "bg": "Bulgarian", "bn": "Bengali", "bo": "Tibetan",
    "br": "Breton", "bs": "Bosnian", "ca": "Catalan", "cs": "Czech", "cy": "Welsh", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian", "eu": "Basque",
    "fa": "Persian", "fi": "Finnish", "fo": "Faroese", "fr": "French", "gl": "Galician",
    "gu": "Gujarati", "ha": "Hausa", "haw": "Hawaiian", "he": "Hebrew", "hi": "Hindi",
    "hr": "Croatian", "ht": "Haitian Creole", "hu": "Hungarian", "hy": "Armenian", "id": "Indonesian",
    "is": "Icelandic", "it": "Italian", "ja": "Japanese", "jw": "Javanese", "ka": "Georgian",
    "kk": "Kazakh", "km": "Khmer", "kn": "Kannada", "ko": "Korean", "la": "Latin",
    "lb": "Luxembourgish", "ln": "Lingala", "lo": "Lao", "lt": "Lithuanian", "lv": "Latvian",
    "mg": "Malagasy", "mi": "Maori", "mk": "Macedonian", "ml": "Malayalam", "mn": "Mongolian",
    "mr": "Marathi", "ms": "Malay", "mt": "Maltese", "my": "Burmese", "ne": "Nepali", "nl": "Dutch",
    "nn": "Norwegian Nynorsk", "no": "Norwegian", "oc": "Occitan", "pa": "Punjabi", "pl": "Polish",
    "ps": "Pashto", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sa": "Sanskrit",
    "sd": "Sindhi", "si": "Sinhala", "sk": "Slovak", "sl": "Slovenian", "sn": "Shona", "so": "Somali",
    "sq": "Albanian", "sr": "Serbian", "su": "Sundanese", "sv": "Swedish", "sw": "Swahili",
    "ta": "Tamil", "te": "Telugu", "tg": "Tajik", "th": "Thai", "tk": "Turkmen", "tl": "Tagalog",
    "tr": "Turkish", "tt": "Tatar", "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek",
    "vi": "Vietnamese", "yi": "Yiddish", "yo": "Yoruba", "zh": "Chinese", "yue": "Cantonese",
}  # fmt: skip


def normalise(value: str) -> str:
    """`auto` or a known language code, lower case and without a region; ValueError
    naming a few codes otherwise."""
    code = value.strip().lower().replace("_", "-")
    if code in ("", AUTO):
        return AUTO
    base = code.split("-", 1)[0]
    if base in NAMES:
        return base
    raise ValueError(
        f"{value!r} is not a language code — use auto (detect it) or a code such as en, fr, de, es, it, pt, nl, zh"
    )


def name(code: str | None) -> str:
    """English name of a language code ("French"); the code itself when unknown."""
    if not code:
        return "unknown"
    return NAMES.get(code.lower().replace("_", "-").split("-", 1)[0], code)


def is_english(code: str | None) -> bool:
    return bool(code) and name(code) == "English"


def for_recognizer(setting: str | None) -> str | None:
    """What a speech recognizer is given: None (detect) for `auto` or nothing, else the code."""
    if not setting:
        return None
    code = normalise(setting)
    return None if code == AUTO else code


@runtime_checkable
class ReportsLanguage(Protocol):
    """A speech recognizer that says which language it heard in its last final transcript."""

    @property
    def detected_language(self) -> str | None: ...


@runtime_checkable
class SpeaksLanguages(Protocol):
    """A voice that can say whether it speaks a language, and what to do when it cannot."""

    def language_problem(self, language: str) -> str | None:
        """None when the voice speaks `language` (a code), else one sentence for the user
        naming a voice that does."""
        ...
