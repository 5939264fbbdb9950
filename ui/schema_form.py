"""A form generated from a pydantic JSON schema, so any provider gets a settings page.

Providers (built-in or third-party) describe their options only as a pydantic
model; the settings dialog must not know them. From the schema we pick an editor
per field (check box, choice list, spin box with its unit, language or time-zone
drop-down, text, password, file picker), put expert options in a collapsed
"Advanced" group (`app.plugin.field_hints`), and validate as the user types: first the simple checks the
schema states (number, range, required), then the model itself when we have it,
so every message sits under the field it is about.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.plugin import field_hints
from ui.choice_inputs import choices_of, editable_combo, language_combo, select_language, set_choices, time_zones
from ui.collapsible import Collapsible
from ui.number_input import NumberInput

SECRET_NAMES = ("api_key", "apikey", "token", "password", "secret")
PATH_SUFFIXES = ("_path", "_file", "_dir", "_directory")
PATH_FORMATS = ("path", "file-path", "directory-path")
LONG_TEXT = 200  # strings allowed longer than this get a multi-line editor

_MISSING = object()


@dataclass(frozen=True)
class FieldSpec:
    """One property of the schema, reduced to what an editor needs."""

    name: str
    title: str
    kind: str  # bool | int | float | enum | str | text | secret | path | dir | list | json
    description: str = ""
    default: Any = _MISSING
    required: bool = False
    nullable: bool = False
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    max_length: int | None = None
    min_length: int | None = None
    #: Schema hints (`app.plugin.field_hints`): an expert option, the list a string comes from, a unit.
    advanced: bool = False
    choice_list: str | None = None
    unit: str = ""

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING

    def range_hint(self) -> str:
        lo = self.minimum if self.minimum is not None else self.exclusive_minimum
        hi = self.maximum if self.maximum is not None else self.exclusive_maximum
        lo_op = "≤" if self.minimum is not None else "<"
        hi_op = "≤" if self.maximum is not None else "<"
        if lo is not None and hi is not None:
            return f"{_num(lo)} {lo_op} value {hi_op} {_num(hi)}"
        if lo is not None:
            return f"{'≥' if self.minimum is not None else '>'} {_num(lo)}"
        if hi is not None:
            return f"{'≤' if self.maximum is not None else '<'} {_num(hi)}"
        return ""


_UNITS = {"s": "s", "ms": "ms", "dbfs": "dBFS", "hz": "Hz", "mb": "MB"}
_WORDS = {"id": "ID", "url": "URL", "api": "API", "llm": "LLM", "vad": "VAD", "tts": "TTS", "stt": "STT", "cpu": "CPU"}
_NAMES = {
    "n_ctx": "Context window (tokens)",
    "n_threads": "Threads",
    "n_batch": "Batch size",
    "noise_scale": "Voice variation",
    "noise_w_scale": "Rhythm variation",
    "top_p": "Top-p",
    "top_k": "Top-k",
}


def field_label(name: str, title: object = None) -> str:
    """A form label for a config field: the model's own title if it set one, otherwise
    one made from the name — `sentence_pause_s` → "Sentence pause (s)", `speaker_id` →
    "Speaker ID" — instead of pydantic's "Sentence Pause S"."""
    if isinstance(title, str) and title and title != name.replace("_", " ").title():
        return title
    if name in _NAMES:
        return _NAMES[name]
    words = [w for w in name.split("_") if w]
    unit = _UNITS.get(words[-1].lower()) if len(words) > 1 else None
    if unit:
        words = words[:-1]
    text = " ".join(_WORDS.get(w.lower(), w) for w in words)
    text = text[:1].upper() + text[1:]
    return f"{text} ({unit})" if unit else text


def _unit_of(name: str, prop: Mapping[str, Any]) -> str:
    hinted = prop.get(field_hints.UNIT)
    if isinstance(hinted, str):
        return hinted
    words = name.split("_")
    return _UNITS.get(words[-1].lower(), "") if len(words) > 1 else ""


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _deref(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(prop)
    ref = out.pop("$ref", None)
    if ref is None and isinstance(out.get("allOf"), list) and len(out["allOf"]) == 1:
        ref = out.pop("allOf")[0].get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = dict(defs.get(ref.split("/")[-1], {}))
        target.update(out)  # the field's own title, description and default win
        return target
    return out


def parse_schema(schema: Mapping[str, Any]) -> list[FieldSpec]:
    """Fields in declaration order; unknown shapes fall back to a JSON text field."""
    defs = schema.get("$defs", {}) or {}
    required = set(schema.get("required", []) or [])
    fields = []
    for name, raw in (schema.get("properties") or {}).items():
        prop = _deref(raw, defs)
        nullable = False
        if isinstance(prop.get("anyOf"), list):
            options = [_deref(o, defs) for o in prop["anyOf"]]
            non_null = [o for o in options if o.get("type") != "null"]
            nullable = len(non_null) < len(options)
            base = {k: v for k, v in prop.items() if k != "anyOf"}
            prop = {**non_null[0], **base} if len(non_null) == 1 else {**base, "type": "json"}
        typ = prop.get("type")
        fmt = str(prop.get("format", ""))
        lname = name.lower()
        choices: tuple[Any, ...] = ()
        if "enum" in prop:
            kind, choices = "enum", tuple(prop["enum"])
        elif "const" in prop:
            kind, choices = "enum", (prop["const"],)
        elif typ == "boolean":
            kind = "bool"
        elif typ == "integer":
            kind = "int"
        elif typ == "number":
            kind = "float"
        elif typ == "string":
            if fmt == "password" or prop.get("writeOnly") or any(s in lname for s in SECRET_NAMES):
                kind = "secret"
            elif fmt == "directory-path" or lname.endswith(("_dir", "_directory")):
                kind = "dir"
            elif fmt in PATH_FORMATS or lname.endswith(PATH_SUFFIXES) or lname == "path":
                kind = "path"
            elif (prop.get("maxLength") or 0) > LONG_TEXT:
                kind = "text"
            else:
                kind = "str"
        elif typ == "array" and (prop.get("items") or {}).get("type") in ("string", "integer", "number"):
            kind = "list"
        else:
            kind = "json"
        fields.append(
            FieldSpec(
                name=name,
                title=field_label(name, prop.get("title")),
                kind=kind,
                description=str(prop.get("description", "")),
                default=prop.get("default", _MISSING),
                required=name in required,
                nullable=nullable,
                choices=choices,
                minimum=prop.get("minimum"),
                maximum=prop.get("maximum"),
                exclusive_minimum=prop.get("exclusiveMinimum"),
                exclusive_maximum=prop.get("exclusiveMaximum"),
                max_length=prop.get("maxLength"),
                min_length=prop.get("minLength"),
                advanced=field_hints.is_advanced(prop),
                choice_list=field_hints.choice_list(prop) if kind == "str" else None,
                unit=_unit_of(name, prop) if kind in ("int", "float") else "",
            )
        )
    return fields


class _Invalid:
    def __init__(self, message: str) -> None:
        self.message = message


class FieldEditor(QWidget):
    """Editor + inline message for one field."""

    changed = Signal()

    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        self.number: NumberInput | None = None
        self.input: QWidget = self._make_input()
        self.input.setObjectName(f"field_{spec.name}")
        self.input.setAccessibleName(spec.title)
        if spec.description:
            self.input.setAccessibleDescription(spec.description)
            if self.number is None:  # a number's tip also gives its range
                self.input.setToolTip(spec.description)
        row.addWidget(self.number if self.number is not None else self.input, 1)
        if spec.kind in ("path", "dir"):
            browse = QPushButton("Browse…")
            browse.setAccessibleName(f"Browse for {spec.title}")
            browse.clicked.connect(self._browse)
            row.addWidget(browse)
        lay.addLayout(row)
        self.error = QLabel("")
        self.error.setObjectName("field_error")
        self.error.setWordWrap(True)
        self.error.setAccessibleName(f"{spec.title} problem")
        self.error.hide()
        lay.addWidget(self.error)

    # -- construction -------------------------------------------------------
    def _make_input(self) -> QWidget:
        s = self.spec
        if s.kind == "bool":
            box = QCheckBox(s.description or s.title)
            box.toggled.connect(self.changed)
            return box
        if s.kind == "enum":
            combo = QComboBox()
            if s.nullable:
                combo.addItem("(none)", None)
            for c in s.choices:
                combo.addItem(str(c), c)
            combo.currentIndexChanged.connect(self.changed)
            return combo
        if s.kind in ("int", "float"):
            self.number = NumberInput(
                integer=s.kind == "int",
                bounds=(s.minimum, s.maximum, s.exclusive_minimum, s.exclusive_maximum),
                nullable=s.nullable,
                unit=s.unit,
                default=s.default if s.has_default else None,
            )
            self.number.valueChanged.connect(self.changed)
            tip = "; ".join(p for p in (s.description, s.range_hint()) if p)
            self.number.spin.setToolTip(tip)
            return self.number.spin
        if s.choice_list is not None:
            return self._make_choice(s.choice_list)
        if s.kind == "text":
            edit = QPlainTextEdit()
            edit.setFixedHeight(80)
            edit.textChanged.connect(self.changed)
            return edit
        line = QLineEdit()
        if s.kind == "secret":
            line.setEchoMode(QLineEdit.EchoMode.Password)
            line.setPlaceholderText("stored in the system keychain")
        elif s.kind == "list":
            line.setPlaceholderText("comma-separated")
        elif s.kind == "json":
            line.setPlaceholderText("JSON value")
        elif s.has_default and s.default not in (None, ""):
            line.setPlaceholderText(f"default {s.default}")
        line.textChanged.connect(self.changed)
        return line

    def _make_choice(self, source: str) -> QComboBox:
        """A drop-down for a string from a known list (see `field_hints.choices`)."""
        s = self.spec
        default = s.default if s.has_default and s.default not in (None, "") else None
        if source == field_hints.LANGUAGE:
            combo = language_combo()
            combo.currentIndexChanged.connect(self.changed)
            return combo
        if source == field_hints.TIMEZONE:
            combo = editable_combo(["", *time_zones()], placeholder="this computer's time zone")
        else:  # the server's list, filled when the server is asked (`set_choices`)
            combo = editable_combo([], placeholder=f"default {default}" if default else "type or pick one")
        combo.currentTextChanged.connect(self.changed)
        return combo

    def set_choices(self, values: list[str]) -> bool:
        """Offer `values` in this field's drop-down (an editable one); False if it has none."""
        w = self.input
        if not isinstance(w, QComboBox) or not w.isEditable():
            return False
        set_choices(w, values)
        return True

    def choices(self) -> list[str]:
        return choices_of(self.input) if isinstance(self.input, QComboBox) else []

    def _browse(self) -> None:
        current = self.text()
        if self.spec.kind == "dir":
            chosen = QFileDialog.getExistingDirectory(self, f"Choose {self.spec.title}", current)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, f"Choose {self.spec.title}", current)
        if chosen:
            self.set_value(chosen)

    # -- value --------------------------------------------------------------
    def text(self) -> str:
        w = self.input
        if isinstance(w, QLineEdit):
            return w.text()
        if isinstance(w, QPlainTextEdit):
            return w.toPlainText()
        if isinstance(w, QComboBox) and w.isEditable():
            return w.currentText()
        return ""

    def set_value(self, value: Any) -> None:
        w = self.input
        if self.number is not None:
            self.number.set_value(value)
        elif isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, QComboBox) and w.isEditable():
            w.setEditText("" if value is None else str(value))
        elif isinstance(w, QComboBox) and self.spec.choice_list == field_hints.LANGUAGE:
            select_language(w, None if value is None else str(value))
        elif isinstance(w, QComboBox):
            idx = w.findData(value)
            w.setCurrentIndex(max(idx, 0))
        elif isinstance(w, QPlainTextEdit):
            w.setPlainText("" if value is None else str(value))
        elif isinstance(w, QLineEdit):
            if value is None:
                w.setText("")
            elif self.spec.kind == "list" and isinstance(value, list | tuple):
                w.setText(", ".join(str(v) for v in value))
            elif self.spec.kind == "json":
                w.setText(json.dumps(value))
            else:
                w.setText(str(value))

    def value(self) -> Any:
        """The parsed value, `_MISSING` (leave to default) or `_Invalid(message)`."""
        s = self.spec
        w = self.input
        if self.number is not None:
            return self.number.value()
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, QComboBox) and not w.isEditable():
            return w.currentData()
        text = self.text().strip() if s.kind not in ("text", "secret") else self.text()
        if text == "":
            return self._empty_value()
        try:
            if s.kind in ("int", "float", "list", "json"):
                return self._parse(text)
        except OverflowError:
            return _Invalid("number is too large")
        if s.min_length is not None and len(text) < s.min_length:
            return _Invalid(f"at least {s.min_length} characters")
        if s.max_length is not None and len(text) > s.max_length:
            return _Invalid(f"at most {s.max_length} characters")
        return text

    def _empty_value(self) -> Any:
        s = self.spec
        # Only the schema's `required` list makes a field required: pydantic fields with a
        # `default_factory` have no schema default, yet the model fills them in.
        if s.has_default:
            return None if s.nullable else _MISSING
        if not s.required or s.kind == "secret":
            return _MISSING
        if s.nullable:
            return None  # `x: T | None` with no default: None is a valid answer
        return _Invalid("required — enter a value")

    def _parse(self, text: str) -> Any:
        """An int, float, list or JSON field's text as its value (or `_Invalid`)."""
        kind = self.spec.kind
        if kind == "list":
            return [p.strip() for p in text.split(",") if p.strip()]
        if kind == "json":
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return _Invalid('enter a JSON value, e.g. {"key": 1}')
        try:
            v: Any = int(text) if kind == "int" else float(text)
        except ValueError:
            return _Invalid("enter a whole number" if kind == "int" else "enter a number")
        return self._check_range(v)

    def _check_range(self, v: float) -> Any:
        s = self.spec
        if s.minimum is not None and v < s.minimum:
            return _Invalid(f"must be ≥ {_num(s.minimum)}")
        if s.maximum is not None and v > s.maximum:
            return _Invalid(f"must be ≤ {_num(s.maximum)}")
        if s.exclusive_minimum is not None and v <= s.exclusive_minimum:
            return _Invalid(f"must be > {_num(s.exclusive_minimum)}")
        if s.exclusive_maximum is not None and v >= s.exclusive_maximum:
            return _Invalid(f"must be < {_num(s.exclusive_maximum)}")
        return v

    def show_error(self, message: str | None) -> None:
        if message:
            self.error.setText(message)
            self.error.show()
            self.input.setProperty("invalid", True)
        else:
            self.error.clear()
            self.error.hide()
            self.input.setProperty("invalid", False)


def _form_layout() -> QFormLayout:
    layout = QFormLayout()
    layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    layout.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # narrow windows: label above its field
    return layout


class SchemaForm(QWidget):
    """Editors for every property of `schema`, validated live.

    `model` (the pydantic class the schema came from) adds its own rules; without it
    the schema's stated rules still apply.
    """

    validity_changed = Signal(bool)

    def __init__(
        self,
        schema: Mapping[str, Any],
        values: Mapping[str, Any] | None = None,
        *,
        model: type[BaseModel] | None = None,
        hidden: Callable[[FieldSpec], bool] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.schema = dict(schema)
        self.model = model
        self.fields = [f for f in parse_schema(schema) if not (hidden and hidden(f))]
        self._editors: dict[str, FieldEditor] = {}
        self._extra = {k: v for k, v in (values or {}).items() if k not in {f.name for f in self.fields}}
        self._valid = True
        outer = QVBoxLayout(self)
        outer.setSpacing(0)
        layout = _form_layout()
        outer.addLayout(layout)
        if not self.fields:
            layout.addRow(QLabel("This provider has no options."))
        advanced = [f for f in self.fields if f.advanced]
        expert_body = QWidget()
        expert_layout = _form_layout()
        expert_layout.setContentsMargins(0, 0, 0, 0)
        expert_body.setLayout(expert_layout)
        #: Expert options (field_hints.advanced), collapsed until asked for.
        self.advanced: Collapsible | None = None
        for spec in self.fields:
            ed = FieldEditor(spec, self)
            value = (values or {}).get(spec.name, spec.default if spec.has_default else None)
            if value is not None and value is not _MISSING:
                ed.set_value(value)
            elif spec.nullable and ed.number is not None:
                ed.set_value(None)
            ed.changed.connect(self.validate)
            self._editors[spec.name] = ed
            (expert_layout if spec.advanced else layout).addRow(self._label(spec, ed), ed)
        if advanced:
            self.advanced = Collapsible(f"Advanced options ({len(advanced)})", expert_body)
            self.advanced.setObjectName("advanced_options")
            outer.addWidget(self.advanced)
        outer.addStretch(1)
        self.validate()

    @staticmethod
    def _label(spec: FieldSpec, ed: FieldEditor) -> QLabel:
        title = spec.title
        if ed.number is not None and ed.number.unit and title.endswith(f" ({spec.unit})"):
            title = title.removesuffix(f" ({spec.unit})")  # the box shows the unit already
        label = QLabel("" if spec.kind == "bool" else f"{title}:")
        label.setBuddy(ed.input)
        if spec.description:
            label.setToolTip(spec.description)
        return label

    def editor(self, name: str) -> QWidget:
        return self._editors[name].input

    def fields_by_name(self) -> dict[str, FieldSpec]:
        return {f.name: f for f in self.fields}

    def field(self, name: str) -> FieldEditor:
        return self._editors[name]

    def error_text(self, name: str) -> str:
        ed = self._editors[name]
        return ed.error.text() if not ed.error.isHidden() else ""

    def set_values(self, values: Mapping[str, Any]) -> None:
        for name, v in values.items():
            if name in self._editors:
                self._editors[name].set_value(v)
        self.validate()

    def _collect(self) -> tuple[dict[str, Any], dict[str, str]]:
        values: dict[str, Any] = dict(self._extra)
        errors: dict[str, str] = {}
        for name, ed in self._editors.items():
            v = ed.value()
            if isinstance(v, _Invalid):
                errors[name] = v.message
            elif v is not _MISSING:
                values[name] = v
        if self.model is not None and not errors:
            try:
                self.model.model_validate(values)
            except ValidationError as exc:
                for e in exc.errors():
                    loc = e["loc"]
                    key = str(loc[0]) if loc else ""
                    msg = str(e["msg"]).removeprefix("Value error, ")
                    if key in self._editors:
                        errors.setdefault(key, msg)
                    else:
                        errors.setdefault("", f"{key or 'options'}: {msg}")
        return values, errors

    def validate(self) -> bool:
        """Update every inline message; True when the form can be applied."""
        _, errors = self._collect()
        for name, ed in self._editors.items():
            ed.show_error(errors.get(name))
        valid = not errors
        if self.advanced is not None and any(self._editors[n].spec.advanced for n in errors if n in self._editors):
            self.advanced.set_expanded(True)  # a message hidden in a closed group would not be seen
        if valid != self._valid:
            self._valid = valid
            self.validity_changed.emit(valid)
        return valid

    def is_valid(self) -> bool:
        return self.validate()

    def errors(self) -> dict[str, str]:
        return self._collect()[1]

    def values(self) -> dict[str, Any]:
        """Valid values only (invalid fields are left out; check `is_valid()` first)."""
        return self._collect()[0]

    def secret_values(self) -> dict[str, str]:
        """Secrets typed in, kept apart so they go to the keychain, never to settings."""
        out = {}
        for name, ed in self._editors.items():
            if ed.spec.kind == "secret" and ed.text():
                out[name] = ed.text()
        return out

    def show_errors(self, errors: Mapping[str, str]) -> None:
        """Show messages that came from elsewhere (e.g. the registry on apply)."""
        for name, msg in errors.items():
            if name in self._editors:
                self._editors[name].show_error(msg)
                if self._editors[name].spec.advanced and self.advanced is not None:
                    self.advanced.set_expanded(True)

    def set_choices(self, name: str, values: list[str]) -> bool:
        """Offer `values` in a field's drop-down (e.g. a server's models); False if it has none."""
        ed = self._editors.get(name)
        return ed is not None and ed.set_choices(values)
