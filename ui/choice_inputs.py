"""Drop-downs for string options picked from a known list: languages, time zones, and what
a server offers (an OpenAI-compatible server's models).

Languages: a fixed list (`app.plugin.languages`), so not editable. Time zones and server
models: editable with type-to-filter, so a name the list lacks can still be typed (a
model the server will load on demand, a zone the list has not heard of yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QCompleter

from app.plugin import languages

DETECT = "Detect automatically"


@lru_cache(maxsize=1)
def time_zones() -> tuple[str, ...]:
    """The IANA zones this system knows, sorted (tzdata on disk; read once)."""
    import zoneinfo

    return tuple(sorted(z for z in zoneinfo.available_timezones() if "/" in z or z == "UTC"))


def language_combo(*, allow_auto: bool = True) -> QComboBox:
    """Languages by name ("French (fr)"), the code as data; "auto" first."""
    combo = QComboBox()
    if allow_auto:
        combo.addItem(DETECT, languages.AUTO)
    for code, name in sorted(languages.NAMES.items(), key=lambda kv: kv[1]):
        combo.addItem(f"{name} ({code})", code)
    return combo


def select_language(combo: QComboBox, value: str | None) -> None:
    """Show `value`; a code the list lacks (a region such as en-GB) is added as written."""
    code = (value or "").strip()
    if not code:
        code = languages.AUTO
    idx = combo.findData(code)
    if idx < 0:
        idx = combo.findData(code.lower())
    if idx < 0:
        combo.addItem(code, code)
        idx = combo.count() - 1
    combo.setCurrentIndex(idx)


def editable_combo(choices: Sequence[str], placeholder: str = "") -> QComboBox:
    """An editable combo whose list filters by what is typed (anywhere in the name)."""
    combo = QComboBox()
    combo.setEditable(True)
    combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
    combo.setMaxVisibleItems(15)
    set_choices(combo, choices)
    if placeholder and (line := combo.lineEdit()) is not None:
        line.setPlaceholderText(placeholder)
    return combo


def set_choices(combo: QComboBox, choices: Sequence[str]) -> None:
    """Replace the list, keeping the text being edited."""
    text = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(list(dict.fromkeys(c for c in choices if c)))
    combo.setEditText(text)
    combo.blockSignals(False)
    completer = QCompleter(combo.model(), combo)
    completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
    completer.setFilterMode(Qt.MatchFlag.MatchContains)
    completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
    combo.setCompleter(completer)


def choices_of(combo: QComboBox) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]
