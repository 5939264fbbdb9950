"""Settings: pick a provider per stage, edit its options, devices, conversation, telemetry.

Provider pages are built from the registry alone (names, badges, the pydantic
schema of the options), so a third-party provider gets a page for free. Apply
validates everything first and shows each problem under its field; only then is
the engine asked to switch, and a provider that fails to start is reported while
the old one keeps working.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSlider,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.audio.streams import AudioSink
from app.engine.events import ProviderSwitched
from app.plugin import field_hints
from app.plugin.errors import VoiceError
from app.plugin.model_spec import ModelKind, ModelOption
from app.plugin.provider_api import KINDS
from app.plugin.registry import Registry, Runs
from app.plugin.server_place import place_label, provider_place
from app.store.models import catalogue, option_model_id
from app.store.paths import AppPaths, resolve_paths
from app.store.settings import ActivationSettings, ConversationSettings, Settings, StageSettings, TelemetrySettings
from ui import theme
from ui.dialog_fit import fit_to_screen, scrolling
from ui.echo_check_panel import EchoCheckPanel
from ui.fallback_list import FallbackList
from ui.model_manager import Hooks, ModelManager
from ui.schema_form import SchemaForm
from ui.stage_titles import STAGE_TITLES, stage_title

log = logging.getLogger(__name__)

#: Stages with a tab of their own, in tab order; a kind not named here or in
#: STAGE_SECTIONS still gets a tab (after these).
STAGE_TABS = ("llm", "stt", "tts", "vad")
#: Stages shown as a section of another tab: users think of the end of a turn as part of
#: voice detection, and of the echo canceller as part of their speaker and microphone.
STAGE_SECTIONS = {"turn": "vad", "echo": "audio", "wake": "activation"}
#: Turn detectors that never give a verdict: the silence rule decides, patience is unused.
NO_VERDICT_TURN = frozenset({"silence"})
#: Conversation fields edited by a control of their own rather than the Conversation form.
OWN_CONTROL_FIELDS = frozenset({"turn_patience_ms"})
ApplyFn = Callable[[Settings], Awaitable[Sequence[ProviderSwitched]]]
#: Read once when the engine builds its telemetry; `Session.apply_settings` leaves them alone.
RESTART_FIELDS = ("enabled", "otlp_endpoint")
AFTER_RESTART = "takes effect after restart"


def _mark_after_restart(schema: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """A copy of `schema` whose `names` say in their title that they wait for a restart."""
    props = {k: dict(v) for k, v in (schema.get("properties") or {}).items()}
    for name in names:
        if name in props:
            title = props[name].get("title") or name.replace("_", " ").capitalize()
            props[name]["title"] = f"{title} ({AFTER_RESTART})"
    return {**schema, "properties": props}


def _with_hints(schema: dict[str, Any], hints: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A copy of `schema` with form hints added to some fields (for settings models outside ui/)."""
    props = {k: dict(v) for k, v in (schema.get("properties") or {}).items()}
    for name, extra in hints.items():
        if name in props:
            props[name] = {**extra, **props[name]}
    return {**schema, "properties": props}


def _secret_field(spec: Any) -> bool:
    return bool(spec.kind == "secret")


@runtime_checkable
class ServerChoices(Protocol):
    """A provider that asks its server what it offers for some options (a Wyoming server's
    voices); its spec declares them as `extra["server_choices"]`."""

    async def choices(self) -> Mapping[str, Sequence[str]]: ...


#: The provider list keeps at least this width however long the text beside it.
PROVIDER_LIST_MIN_W = 200
#: The options box keeps at least this height (more than a few rows squeezed into a sliver).
OPTIONS_MIN_H = 180
#: How long Settings waits for a server to say what it offers.
ASK_SERVER_S = 8.0
#: The same, when asked unprompted on showing the page.
QUIET_ASK_S = 3.0


@runtime_checkable
class ListsModels(Protocol):
    """A provider whose server lists its models (an OpenAI-compatible server's /v1/models)."""

    async def list_models(self) -> list[str]: ...


class StagePage(QWidget):
    """Provider list on the left, the chosen provider's details and options on the right."""

    def __init__(self, kind: str, registry: Registry, current: StageSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.registry = registry
        self._options: dict[str, dict[str, Any]] = {current.provider: dict(current.options)}
        self._fallbacks = list(current.fallbacks)
        self._original: StageSettings | None = current
        self.form: SchemaForm | None = None
        self.provider_error = ""
        self._info: Any = None
        self._schema: dict[str, Any] = {}
        self._asked: SchemaForm | None = None
        self._key_tasks: set[asyncio.Task[None]] = set()

        lay = QVBoxLayout(self)
        #: Providers and options on top; a stage's own panel (the models) below, if any.
        self._outer = QSplitter(Qt.Orientation.Vertical)
        lay.addWidget(self._outer)
        split = QSplitter(Qt.Orientation.Horizontal)
        self._outer.addWidget(split)
        self.list = QListWidget()
        self.list.setAccessibleName(f"{stage_title(kind)} providers")
        self.list.setMinimumWidth(PROVIDER_LIST_MIN_W)  # a long note on the right must not crush it
        for name in registry.list_providers(kind):
            item = QListWidgetItem(self._item_text(name))
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(self._item_tip(name))
            self.list.addItem(item)
        split.addWidget(self.list)

        right = QWidget()
        self._right = QVBoxLayout(right)
        self.title = QLabel()
        self.title.setObjectName("panel_title")
        self.badges = QLabel()
        self.badges.setTextFormat(Qt.TextFormat.RichText)
        self.badges.setWordWrap(True)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self._right.addWidget(self.title)
        self._right.addWidget(self.badges)
        self._right.addWidget(self.description)
        self.key_row = QWidget()
        key_lay = QFormLayout(self.key_row)
        key_lay.setContentsMargins(0, 0, 0, 0)
        self.api_key = QLineEdit()
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key.setAccessibleName("API key")
        self.key_status = QLabel()
        self.key_status.setObjectName("bubble_meta")
        self.key_status.setWordWrap(True)  # the keychain's note can be long: wrap, never widen the dialog
        key_lay.addRow("API key:", self.api_key)
        key_lay.addRow("", self.key_status)
        self._right.addWidget(self.key_row)
        self.fallbacks = FallbackList(registry.list_providers(kind), self._fallbacks, self._display_name)
        fb = QFormLayout()
        fb.addRow("Fallbacks:", self.fallbacks)
        self._right.addLayout(fb)
        self.ask_server = QPushButton("Ask the server what it offers")
        self.ask_server.setAccessibleName("Ask the server what it offers")
        self.ask_server.clicked.connect(self._ask_clicked)
        self.offers = QLabel()
        self.offers.setObjectName("bubble_meta")
        self.offers.setWordWrap(True)
        self._right.addWidget(self.ask_server)
        self._right.addWidget(self.offers)
        self.options_box = QGroupBox("Options")
        self._options_lay = QVBoxLayout(self.options_box)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)  # the group box draws the frame
        scroll.setWidget(self.options_box)
        scroll.setMinimumHeight(OPTIONS_MIN_H)  # on a short screen the tab scrolls rather than crush the options
        self._right.addWidget(scroll, 1)
        self.error = QLabel()
        self.error.setObjectName("field_error")
        self.error.setWordWrap(True)
        self._right.addWidget(self.error)
        split.addWidget(right)
        split.setSizes([270, 500])

        self.list.currentItemChanged.connect(self._on_pick)
        self.select(current.provider)

    def _display_name(self, name: str) -> str:
        try:
            return self.registry.info(self.kind, name).display_name
        except VoiceError:
            return f"{name} (unavailable)"

    def _item_text(self, name: str) -> str:
        try:
            info = self.registry.info(self.kind, name)
        except VoiceError:
            return f"{name}  (unavailable)"
        missing = " · not installed" if info.missing_requirements() else ""
        return f"{info.display_name}  ·  {info.where_label}{missing}"

    def _item_tip(self, name: str) -> str:
        """Where it runs and what it needs, for the list's tooltip."""
        try:
            info = self.registry.info(self.kind, name)
        except VoiceError as exc:
            return exc.message
        needs = list(info.needs) or (["an API key"] if info.needs_api_key else [])
        return f"Runs on {info.where_label}" + (f"; needs {', '.join(needs)}" if needs else "")

    def add_panel(self, title: str, panel: QWidget, share: tuple[int, int] | None = None) -> None:
        """A box of the stage's own below the providers (Settings → Assistant: the models);
        `share`: the heights of providers and box, in proportion, from the start."""
        box = QGroupBox(title)
        QVBoxLayout(box).addWidget(panel)
        self._outer.addWidget(box)
        top, bottom = share or (3, 2)
        self._outer.setStretchFactor(0, top)
        self._outer.setStretchFactor(1, bottom)
        if share is not None:
            self._outer.setSizes([top * 100, bottom * 100])

    def option_value(self, name: str) -> Any:
        """The value of one option of the provider on show, as edited so far."""
        return self.form.values().get(name) if self.form is not None else None

    def use_option(self, provider: str, values: dict[str, Any]) -> None:
        """Switch the page to `provider` and set some of its options (Apply makes it real)."""
        if self.provider != provider:
            self.select(provider)
        if self.form is not None and self.provider == provider:
            self.form.set_values(values)

    def select(self, name: str) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == name:
                self.list.setCurrentRow(i)
                return

    @property
    def provider(self) -> str:
        item = self.list.currentItem()
        return str(item.data(Qt.ItemDataRole.UserRole)) if item else ""

    def _on_pick(self, current: QListWidgetItem | None, previous: QListWidgetItem | None) -> None:
        if previous is not None and self.form is not None:
            self._options[str(previous.data(Qt.ItemDataRole.UserRole))] = self.form.values()
        if current is None:
            return
        name = str(current.data(Qt.ItemDataRole.UserRole))
        self.fallbacks.exclude(name)
        if self.form is not None:
            self.form.setParent(None)
            self.form.deleteLater()
            self.form = None
        self.error.clear()
        try:
            spec = self.registry.spec(self.kind, name)
        except VoiceError as exc:
            self.title.setText(name)
            self._info = None
            self.badges.setText("")
            self.description.setText(exc.message)
            self.key_row.hide()
            self.provider_error = exc.message
            return
        self.provider_error = ""
        info = spec.info
        self._info = info
        self.title.setText(info.display_name)
        self.description.setText(info.description)
        schema = spec.config_schema()
        self._schema = schema
        self.form = SchemaForm(schema, self._options.get(name, {}), model=spec.config_model, hidden=_secret_field)
        self.badges.setText(self._badges_html(info))
        address = field_hints.address_field(schema)
        if address is not None and address in self.form.fields_by_name():
            # Where it runs follows the address being typed (127.0.0.1 is this computer).
            self.form.field(address).changed.connect(self._refresh_badges)
        self.form.setAccessibleName(f"{info.display_name} options")
        if (form_lay := self.form.layout()) is not None:
            form_lay.setContentsMargins(0, 0, 0, 0)  # the group box has margins of its own
        self._options_lay.addWidget(self.form)
        self.key_row.setVisible(info.needs_api_key)
        self.api_key.clear()
        if info.needs_api_key:
            self._show_key_status(name)
        self.ask_server.setVisible(
            bool(info.extra.get("server_choices")) or bool(field_hints.server_choice_fields(schema))
        )
        self.offers.clear()
        if self.isVisible():
            self._ask_quietly()

    def _ask_clicked(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a bare widget): nothing to run the question on
            return
        task = loop.create_task(self.ask_server_choices())
        self._key_tasks.add(task)
        task.add_done_callback(self._key_tasks.discard)

    async def ask_server_choices(self) -> None:
        """Ask the server (at the address being edited) what it offers; its answers become
        suggestions on the options' fields and a line under them."""
        name, form = self.provider, self.form
        if form is None:
            return
        self.offers.setText("asking the server…")
        try:
            provider = self.registry.create(self.kind, name, form.values())
        except VoiceError as exc:
            self.offers.setText(exc.message)
            return
        try:
            async with asyncio.timeout(ASK_SERVER_S):
                offered = await self._offered(provider, name)
        except VoiceError as exc:
            offered, why = {}, exc.message
        except TimeoutError:
            offered, why = {}, f"the server gave no answer within {ASK_SERVER_S:g} s"
        else:
            why = ""
        finally:
            with contextlib.suppress(Exception):
                await provider.aclose()
        with contextlib.suppress(RuntimeError):  # the dialog may have closed meanwhile
            if self.provider == name and self.form is form:
                self.offers.setText(why or self._show_offers(form, offered))

    async def _offered(self, provider: Any, name: str) -> Mapping[str, Sequence[str]]:
        """What the server lists: its own choices, or its models for the fields marked so."""
        if isinstance(provider, ServerChoices):
            return await provider.choices()
        fields = field_hints.server_choice_fields(self._schema)
        if fields and isinstance(provider, ListsModels):
            models = await provider.list_models()
            return dict.fromkeys(fields, models)
        raise VoiceError(f"{self.kind}.{name}", "UNAVAILABLE", "this provider cannot ask its server")

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self._ask_quietly()

    def _ask_quietly(self) -> None:
        """On show: fill the server's drop-downs once, if an address is set; on failure the
        fields stay free text and nothing is said (the button asks out loud)."""
        form = self.form
        if form is None or not field_hints.server_choice_fields(self._schema) or self._asked is form:
            return
        address = field_hints.address_field(self._schema)
        if address is None or not form.values().get(address):
            return
        self._asked = form
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._fill_quietly(self.provider, form))
        self._key_tasks.add(task)
        task.add_done_callback(self._key_tasks.discard)

    async def _fill_quietly(self, name: str, form: SchemaForm) -> None:
        # On the loop like the button's ask: httpx waits without blocking the GUI thread.
        try:
            provider = self.registry.create(self.kind, name, form.values())
        except VoiceError:
            return
        try:
            async with asyncio.timeout(QUIET_ASK_S):
                offered = await self._offered(provider, name)
        except (VoiceError, TimeoutError, OSError) as exc:  # unreachable, no key: keep the free text
            log.info("settings: could not list what %s.%s offers: %s", self.kind, name, type(exc).__name__)
            return
        finally:
            with contextlib.suppress(Exception):
                await provider.aclose()
        with contextlib.suppress(RuntimeError):  # the dialog may have closed meanwhile
            if self.provider == name and self.form is form:
                self.offers.setText(self._show_offers(form, offered))

    @staticmethod
    def _show_offers(form: SchemaForm, offered: Mapping[str, Sequence[str]]) -> str:
        parts = []
        for option, values in offered.items():
            if not values:
                continue
            if form.set_choices(option, list(values)):  # a drop-down of the server's list
                pass
            elif option in form.fields_by_name() and isinstance(editor := form.editor(option), QLineEdit):
                completer = QCompleter(list(values), editor)
                completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
                completer.setFilterMode(Qt.MatchFlag.MatchContains)
                editor.setCompleter(completer)
            shown = ", ".join(values[:4]) + (", …" if len(values) > 4 else "")
            parts.append(f"{len(values)} {option}{'s' if len(values) > 1 else ''} ({shown})")
        return (
            "The server offers " + "; ".join(parts) + " — type in a field to pick one."
            if parts
            else ("The server lists no choices.")
        )

    def place(self) -> Runs | None:
        """Where the provider on show runs, from the address being edited: local, server or cloud."""
        if self._info is None:
            return None
        options = self.form.values() if self.form is not None else {}
        return provider_place(self._info, self._schema, options)

    def _refresh_badges(self) -> None:
        if self._info is not None:
            self.badges.setText(self._badges_html(self._info))

    def _badges_html(self, info: Any) -> str:
        """Badges in the theme's colours (rich text cannot use the stylesheet's)."""
        c = theme.colours_for(self.palette())
        place = self.place() or info.where
        where = place_label(place) if place else info.where_label
        badges = [
            f'<span style="background:{c["ok_bg"]};color:{c["ok_fg"]}">&nbsp;works offline&nbsp;</span>'
            if place in ("local", "server")
            else f'<span style="background:{c["remote_bg"]};color:{c["remote_fg"]}">&nbsp;online&nbsp;</span>',
            f"runs on {html.escape(where)}",
        ]
        if info.needs:
            badges.append("needs " + html.escape(", ".join(info.needs)))
        if info.streaming:
            badges.append("streaming")
        if info.needs_api_key:
            badges.append("needs API key")
        langs = info.capabilities.get("languages") or []
        if langs and langs != ["*"]:
            badges.append("languages: " + ", ".join(langs[:6]))
        missing = info.missing_requirements()
        badges.append(
            f'<span style="color:{c["error_fg"]}">not installed here: {", ".join(missing)}</span>'
            if missing
            else "available here"
        )
        return " · ".join(badges)

    def changeEvent(self, event: QEvent) -> None:
        # Light/dark switched while the dialog is open: redraw the badges in the new colours.
        if event.type() == QEvent.Type.PaletteChange and self._info is not None:
            self.badges.setText(self._badges_html(self._info))
        super().changeEvent(event)

    def _show_key_status(self, name: str) -> None:
        """Ask the keychain off the GUI thread: a Secret Service call can block for long
        (or wait for the user to unlock it)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a bare widget): ask directly
            self.key_status.setText(self._key_status(name))
            return
        self.key_status.setText("checking the keychain…")

        async def fill() -> None:
            text = await asyncio.to_thread(self._key_status, name)
            with contextlib.suppress(RuntimeError):  # the dialog may have closed meanwhile
                if self.provider == name:  # still the provider on show
                    self.key_status.setText(text)

        task = loop.create_task(fill())
        self._key_tasks.add(task)
        task.add_done_callback(self._key_tasks.discard)

    def cancel_background(self) -> None:
        for task in list(self._key_tasks):
            task.cancel()

    def _key_status(self, name: str) -> str:
        try:
            from app.store import secrets

            have = secrets.get_api_key(self.kind, name)
            where = secrets.keychain_status()
        except Exception as exc:  # the keychain may be missing on a headless box
            return f"keychain unavailable ({type(exc).__name__})"
        return ("a key is stored" if have else "no key stored yet") + f" — {where}"

    def stage_settings(self) -> StageSettings:
        options = self.form.values() if self.form is not None else {}
        original = self._original
        if original is not None and original.provider == self.provider:
            # Unchanged options must not look changed (that would restart the provider).
            with contextlib.suppress(VoiceError):
                if self.registry.validate(self.kind, self.provider, options) == self.registry.validate(
                    self.kind, self.provider, original.options
                ):
                    options = dict(original.options)
        fallbacks = self.fallbacks.fallbacks()
        kept = dict(original.fallback_options) if original is not None else {}
        return StageSettings(provider=self.provider, options=options, fallbacks=fallbacks, fallback_options=kept)

    def validate(self) -> bool:
        """Inline checks, then the registry's own validation of the chosen provider."""
        self.error.clear()
        if self.provider_error:
            self.error.setText(self.provider_error)
            return False
        if self.form is not None and not self.form.validate():
            return False
        try:
            self.registry.validate(self.kind, self.provider, self.form.values() if self.form else {})
        except VoiceError as exc:
            per_field = {}
            for part in exc.message.split("; "):
                name, _, msg = part.partition(": ")
                per_field[name.split(".")[0]] = msg
            if self.form is not None:
                self.form.show_errors(per_field)
            self.error.setText(exc.message)
            return False
        unknown = [f for f in self.stage_settings().fallbacks if not self.registry.is_registered(self.kind, f)]
        if unknown:
            self.error.setText(f"unknown fallback provider(s): {', '.join(unknown)}")
            return False
        return True

    async def save_key(self) -> str | None:
        """Store a typed key in the keychain (off the GUI thread); a problem to show, or None."""
        key = self.api_key.text()
        if not key:
            return None
        from app.store import secrets

        try:
            await asyncio.to_thread(secrets.set_api_key, self.kind, self.provider, key)
        except Exception as exc:
            return str(exc)
        self.api_key.clear()
        self._show_key_status(self.provider)
        return None


def _field_bounds(model: type[BaseModel], name: str) -> tuple[int, int]:
    """A numeric field's `ge`/`le`: the slider's ends follow the settings' own rule."""
    lo = hi = None
    for rule in model.model_fields[name].metadata:
        lo, hi = getattr(rule, "ge", lo), getattr(rule, "le", hi)
    assert lo is not None and hi is not None, f"{name} needs ge and le"
    return int(lo), int(hi)


class TurnSection(QWidget):
    """Settings → Voice detection → Turn detection: the detector and its patience."""

    PATIENCE_MS = _field_bounds(ConversationSettings, "turn_patience_ms")  # 0.3–5 s
    PATIENCE_STEP_MS = 100

    def __init__(self, page: StagePage, patience_ms: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.page = page
        self._saved_ms = patience_ms
        if (page_lay := page.layout()) is not None:
            page_lay.setContentsMargins(0, 0, 0, 0)  # inside a group box: one set of margins
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(page, 1)
        row = QHBoxLayout()
        self.patience_label = QLabel("Patience — how long to wait when you pause mid-sentence:")
        self.patience = QSlider(Qt.Orientation.Horizontal)
        self.patience.setAccessibleName("Patience: how long to wait when you pause mid-sentence")
        lo, hi = self.PATIENCE_MS
        self.patience.setRange(lo // self.PATIENCE_STEP_MS, hi // self.PATIENCE_STEP_MS)  # in tenths of a second
        self.patience.setPageStep(5)
        self.patience.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.patience.setTickInterval(5)
        self.patience_label.setBuddy(self.patience)
        self.patience_value = QLabel()
        self.patience_value.setMinimumWidth(self.patience_value.fontMetrics().horizontalAdvance("5.0 s "))
        row.addWidget(self.patience_label)
        row.addWidget(self.patience, 1)
        row.addWidget(self.patience_value)
        lay.addLayout(row)
        self.patience_hint = QLabel()
        self.patience_hint.setObjectName("bubble_meta")
        self.patience_hint.setWordWrap(True)
        lay.addWidget(self.patience_hint)
        self.patience.valueChanged.connect(self._show_patience)
        page.list.currentItemChanged.connect(lambda *_: self._follow_provider())
        self.set_patience_ms(patience_ms)
        self._show_patience()
        self._follow_provider()

    def patience_ms(self) -> int:
        # An untouched slider keeps the saved value exactly (an odd one from the settings
        # file must not look changed and reset the endpointer).
        if self.patience.value() == self._slider_value(self._saved_ms):
            return self._saved_ms
        return int(self.patience.value() * self.PATIENCE_STEP_MS)

    def _slider_value(self, ms: int) -> int:
        lo, hi = self.PATIENCE_MS
        return round(min(max(ms, lo), hi) / self.PATIENCE_STEP_MS)

    def set_patience_ms(self, ms: int) -> None:
        self.patience.setValue(self._slider_value(ms))

    def patience_text(self) -> str:
        return f"{self.patience.value() * self.PATIENCE_STEP_MS / 1000:.1f} s"

    def _show_patience(self) -> None:
        self.patience_value.setText(self.patience_text())
        self.patience.setAccessibleDescription(self.patience_text())

    def _follow_provider(self) -> None:
        """Patience only matters to a detector that can call a sentence unfinished."""
        fixed = self.page.provider in NO_VERDICT_TURN
        for w in (self.patience_label, self.patience, self.patience_value):
            w.setEnabled(not fixed)
        self.patience_hint.setText(
            "Silence only waits the same pause after every sentence (Conversation → Endpoint silence): "
            "patience does not apply."
            if fixed
            else "A finished sentence ends the turn after a short pause; an unfinished one waits up to "
            "this long for more words."
        )


class AudioPage(QWidget):
    """Microphone and speaker pickers with a test tone and a mic test."""

    test_tone_requested = Signal(str)
    mic_test_requested = Signal(str)

    def __init__(self, current: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QFormLayout(self)
        self.input = QComboBox()
        self.input.setAccessibleName("Microphone")
        self.output = QComboBox()
        self.output.setAccessibleName("Speaker")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self._task: asyncio.Task[None] | None = None
        self._fill(current)
        tone = QPushButton("Play test tone")
        tone.setAccessibleName("Play a test tone on the chosen speaker")
        tone.clicked.connect(lambda: self.test_tone_requested.emit(self.output.currentData() or ""))
        mic = QPushButton("Test microphone")
        mic.setAccessibleName("Test the chosen microphone")
        mic.clicked.connect(lambda: self.mic_test_requested.emit(self.input.currentData() or ""))
        in_row = QHBoxLayout()
        in_row.addWidget(self.input, 1)
        in_row.addWidget(mic)
        out_row = QHBoxLayout()
        out_row.addWidget(self.output, 1)
        out_row.addWidget(tone)
        lay.addRow("Microphone:", in_row)
        lay.addRow("Speaker:", out_row)
        lay.addRow(self.status)

    def _fill(self, current: Settings) -> None:
        """List devices off the GUI thread when a loop runs (PortAudio can take a few
        hundred ms); until then the saved choice is shown, so Apply keeps it."""
        self._populate(current, [], [], "Looking for audio devices…", final=False)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._populate(current, *self._query())
            return

        async def fill() -> None:
            found = await asyncio.to_thread(self._query)
            with contextlib.suppress(RuntimeError):  # the dialog may have closed meanwhile
                self._populate(current, *found)

        self._task = loop.create_task(fill())

    @staticmethod
    def _query() -> tuple[list[tuple[str, str]], list[tuple[str, str]], str]:
        """(saved id, text shown) per device: the desktop's names where it has them."""
        try:
            from app.audio import devices as audio_devices
            from app.audio.desktop_names import device_choices

            inputs, outputs = device_choices("input"), device_choices("output")
            status = audio_devices.audio_status()
            return inputs, outputs, status.message or "Microphone and speaker are available."
        except Exception as exc:
            return [], [], f"Audio devices could not be listed: {exc}"

    def _populate(
        self,
        current: Settings,
        inputs: list[tuple[str, str]],
        outputs: list[tuple[str, str]],
        status: str,
        *,
        final: bool = True,
    ) -> None:
        self.status.setText(status)
        for combo, names, saved in (
            (self.input, inputs, current.audio.input_device),
            (self.output, outputs, current.audio.output_device),
        ):
            chosen = combo.currentData() if combo.count() else saved  # keep what the user picked
            combo.clear()
            combo.addItem("System default", None)
            for n, text in names:
                combo.addItem(text, n)
            if chosen and combo.findData(chosen) < 0:
                combo.addItem(f"{chosen} (not connected)" if final else chosen, chosen)
            combo.setCurrentIndex(max(0, combo.findData(chosen)))

    def cancel_background(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def values(self) -> dict[str, Any]:
        return {"input_device": self.input.currentData(), "output_device": self.output.currentData()}

    def show_result(self, text: str) -> None:
        self.status.setText(text)


#: The stages whose models Settings lists.
MODEL_STAGES: tuple[ModelKind, ...] = ("llm", "stt", "tts", "turn", "wake")


class SettingsDialog(QDialog):
    """Apply validates, then awaits `apply_fn` (the session's hot switch)."""

    applied = Signal(object)  # list[ProviderSwitched]

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        apply_fn: ApplyFn | None = None,
        parent: QWidget | None = None,
        *,
        paths: AppPaths | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("VoxDesk Settings")
        self.setObjectName("settings_dialog")
        self.setAccessibleName("Settings")
        self.resize(880, 720)  # clamped to the screen when shown (fit_to_screen)
        # The main window knows the app's folders (--home); a bare dialog finds them itself.
        self.paths = paths or getattr(parent, "paths", None) or resolve_paths()
        self.settings = settings
        self.registry = registry
        self.apply_fn = apply_fn
        self._task: asyncio.Task[bool] | None = None
        self._fitted = False

        lay = QVBoxLayout(self)
        self.tabs = QTabWidget()
        self.stage_pages: dict[str, StagePage] = {}
        tabbed = [*STAGE_TABS, *(k for k in KINDS if k not in STAGE_TABS and k not in STAGE_SECTIONS)]
        for kind in tabbed:
            page = StagePage(kind, registry, settings.stage(kind))
            self.stage_pages[kind] = page
            self.tabs.addTab(page, stage_title(kind))
        self.turn_section = self._add_turn_section(settings)
        self.audio_page = AudioPage(settings)
        self.echo_check = EchoCheckPanel(registry, self._chosen_devices, self._echo_stage)
        self.tabs.addTab(self._audio_tab(settings), "Audio")
        self.tabs.addTab(self._activation_tab(settings), "Activation")
        #: Every stage whose providers declare model files lists them (Assistant, Speech
        #: recognition, Voice, the turn model, the wake words); `model_manager` is the Assistant's.
        self.model_managers: dict[str, ModelManager] = {}
        for managed in MODEL_STAGES:
            if (manager := self._add_model_manager(managed)) is not None:
                self.model_managers[managed] = manager
        self.model_manager = self.model_managers.get("llm")
        self.applied.connect(self._explain_missing_models)
        self.conversation_form = SchemaForm(
            _with_hints(
                ConversationSettings.model_json_schema(), {"language": field_hints.choices(field_hints.LANGUAGE)}
            ),
            settings.conversation.model_dump(),
            model=ConversationSettings,
            hidden=lambda f: f.name in OWN_CONTROL_FIELDS,
        )
        self.conversation_form.setAccessibleName("Conversation options")
        self.tabs.addTab(self._scrolled(self.conversation_form), "Conversation")
        self.telemetry_form = SchemaForm(
            _mark_after_restart(TelemetrySettings.model_json_schema(), RESTART_FIELDS),
            settings.telemetry.model_dump(),
            model=TelemetrySettings,
        )
        self.telemetry_form.setAccessibleName("Telemetry options")
        self.telemetry_note = QLabel("Turning export on or off and the OTLP endpoint take effect after restart.")
        self.telemetry_note.setObjectName("bubble_meta")
        self.telemetry_note.setWordWrap(True)
        telemetry_tab = QWidget()
        tl = QVBoxLayout(telemetry_tab)
        tl.addWidget(self.telemetry_note)
        tl.addWidget(self._scrolled(self.telemetry_form), 1)
        self.tabs.addTab(telemetry_tab, "Telemetry")
        lay.addWidget(scrolling(self.tabs), 1)  # on a small screen the tabs scroll, the buttons stay

        self.status = QLabel()
        self.status.setObjectName("apply_status")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Apply result")
        lay.addWidget(self.status)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Apply
            | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(lambda: self._start_apply(False))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).clicked.connect(lambda: self._start_apply(True))
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)

    def _add_turn_section(self, settings: Settings) -> TurnSection:
        """Turn detection sits under the voice detector (STAGE_SECTIONS), with its patience slider."""
        page = StagePage("turn", self.registry, settings.stage("turn"))
        self.stage_pages["turn"] = page
        section = TurnSection(page, settings.conversation.turn_patience_ms)
        self.stage_pages[STAGE_SECTIONS["turn"]].add_panel(STAGE_TITLES["turn"], section, share=(4, 5))
        return section

    def _audio_tab(self, settings: Settings) -> QWidget:
        """Devices on top, then the echo canceller (STAGE_SECTIONS) and the echo check."""
        page = StagePage("echo", self.registry, settings.stage("echo"))
        self.stage_pages["echo"] = page
        if (page_lay := page.layout()) is not None:
            page_lay.setContentsMargins(0, 0, 0, 0)  # inside a group box: one set of margins
        box = QGroupBox(STAGE_TITLES["echo"])
        QVBoxLayout(box).addWidget(page)
        tab = QWidget()
        lay = QVBoxLayout(tab)
        lay.addWidget(self.audio_page)
        lay.addWidget(box, 1)
        lay.addWidget(self.echo_check)
        return tab

    def _activation_tab(self, settings: Settings) -> QWidget:
        """How turns start (mode, hotkey, chime), then the wake-word detector, then what the
        desktop allows (the hotkey's and the tray's notes, set by the window)."""
        self.activation_form = SchemaForm(
            ActivationSettings.model_json_schema(), settings.activation.model_dump(), model=ActivationSettings
        )
        self.activation_form.setAccessibleName("Activation options")
        page = StagePage("wake", self.registry, settings.stage("wake"))
        self.stage_pages["wake"] = page
        if (page_lay := page.layout()) is not None:
            page_lay.setContentsMargins(0, 0, 0, 0)
        box = QGroupBox(STAGE_TITLES["wake"])
        QVBoxLayout(box).addWidget(page)
        self.activation_notes = QLabel()
        self.activation_notes.setObjectName("bubble_meta")
        self.activation_notes.setWordWrap(True)
        self.activation_notes.setAccessibleName("Hotkey and tray status")
        self.activation_notes.hide()
        tab = QWidget()
        lay = QVBoxLayout(tab)
        lay.addWidget(self.activation_form)
        lay.addWidget(self.activation_notes)
        lay.addWidget(box, 1)
        return tab

    def set_activation_notes(self, notes: Sequence[str]) -> None:
        """What the desktop does not allow here (no global hotkey, no tray), one line each."""
        self.activation_notes.setText("\n".join(notes))
        self.activation_notes.setVisible(bool(notes))

    def _echo_stage(self) -> StageSettings | str:
        """The echo stage as edited: the check judges the canceller about to be applied."""
        page = self.stage_pages["echo"]
        if not page.validate():  # an invalid option is left out of the form's values
            return page.error.text() or f"{STAGE_TITLES['echo']}: some options need fixing (see the messages in red)"
        return page.stage_settings()

    def _chosen_devices(self) -> tuple[str | None, str | None]:
        chosen = self.audio_page.values()
        return chosen["input_device"], chosen["output_device"]

    def tab_of(self, widget: QWidget) -> int:
        """The index of the tab that shows `widget` (a stage section sits inside another tab); -1 if none."""
        w: QWidget | None = widget
        while w is not None:
            i = self.tabs.indexOf(w)
            if i >= 0:
                return i
            w = w.parentWidget()
        return -1

    def show_stage(self, kind: str) -> None:
        """Bring the tab holding `kind`'s provider choice to the front."""
        page = self.stage_pages.get(kind)
        if page is not None and (i := self.tab_of(page)) >= 0:
            self.tabs.setCurrentIndex(i)

    def _add_model_manager(self, kind: ModelKind) -> ModelManager | None:
        """A stage's models (voices for Voice) to download, check, preview and choose, under its providers."""
        if not any(spec.kind == kind for spec in catalogue(self.registry).values()):
            return None
        page = self.stage_pages[kind]
        hooks = Hooks(lambda provider: self._edited_options(provider, kind), preview_sink=self._preview_sink)
        manager = ModelManager(self.paths, kind=kind, hooks=hooks)
        manager.chosen.connect(lambda provider, option, model_id: self._use_model(provider, option, model_id, kind))
        title = {"tts": "Voices", "wake": "Wake words"}.get(kind, "Models")
        page.add_panel(title, manager, share=(1, 1) if kind == "wake" else None)  # under the activation options
        page.list.currentItemChanged.connect(lambda *_: self._follow_model_field(kind))
        manager.listed.connect(lambda: self._show_chosen_model(kind))
        self.finished.connect(manager.shutdown)  # a download stops; its part is kept for a resume
        self._follow_model_field(kind, manager)
        return manager

    def _edited_options(self, provider: str, kind: str = "llm") -> dict[str, Any]:
        """The stage's options being edited, when `provider` is the one on show (the speed
        benchmark then uses the user's threads and context, the preview their speaking rate)."""
        page = self.stage_pages[kind]
        if page.provider != provider or page.form is None:
            return {}
        return page.form.values()

    def _model_spec_option(self, provider: str, kind: str = "llm") -> ModelOption | None:
        with contextlib.suppress(VoiceError):
            return self.registry.spec(kind, provider).model_option
        return None

    def _model_option(self, provider: str, kind: str = "llm") -> tuple[str, str | None] | None:
        option = self._model_spec_option(provider, kind)
        return (option.id_option, option.path_option) if option is not None else None

    def _use_model(self, provider: str, id_option: str, model_id: str, kind: str = "llm") -> None:
        values: dict[str, Any] = {id_option: model_id}
        names = self._model_option(provider, kind)
        if names is not None and names[1]:
            values[names[1]] = None  # a file set for the previous model must not win over the choice
        self.stage_pages[kind].use_option(provider, values)
        self._follow_model_field(kind)  # the page may show another provider's form now

    def _show_chosen_model(self, kind: str = "llm") -> None:
        """Mark the model the stage's options name; one not on this computer gets its Download."""
        manager = getattr(self, "model_managers", {}).get(kind)
        if manager is not None:
            self._mark_chosen(manager, kind)

    def _mark_chosen(self, manager: ModelManager, kind: str) -> None:
        page = self.stage_pages[kind]
        option = self._model_spec_option(page.provider, kind)
        if option is None or page.form is None:
            manager.set_chosen(None)
            return
        if option.path_option and page.option_value(option.path_option):
            manager.set_chosen(None)  # a file of the user's own: nothing in the list to mark
            return
        value = page.option_value(option.id_option)
        model_id = option_model_id(option, value)
        if model_id is not None and model_id not in catalogue(self.registry):
            manager.set_chosen(None, unknown=str(value))
        else:
            manager.set_chosen(model_id)

    def _follow_model_field(self, kind: str, manager: ModelManager | None = None) -> None:
        """Keep the list's mark on the model typed or picked in the provider's options."""
        manager = manager or getattr(self, "model_managers", {}).get(kind)
        page = self.stage_pages[kind]
        option = self._model_spec_option(page.provider, kind)
        if manager is None:
            return
        if page.form is not None and option is not None:
            with contextlib.suppress(KeyError):
                field = page.form.field(option.id_option)
                if not field.property("follows_model"):  # once per form (a new one comes with each provider)
                    field.setProperty("follows_model", True)
                    field.changed.connect(lambda: self._mark_chosen(manager, kind))
        self._mark_chosen(manager, kind)

    def _preview_sink(self) -> AudioSink:
        """The speaker chosen under Audio (as edited), for a voice preview."""
        from app.audio.playback import open_device_sink

        audio = getattr(self, "audio_page", None)
        device = audio.values().get("output_device") if audio is not None else self.settings.audio.output_device
        same = device == self.settings.audio.output_device
        return open_device_sink(device or None, self.settings.audio.output_host_api if same else None)

    def _explain_missing_models(self, results: Sequence[ProviderSwitched]) -> None:
        """A stage that could not switch because its model is not here says so in plain
        words, pointing at the Download beside it, instead of the engine's message."""
        for r in results:
            manager = self.model_managers.get(r.stage)
            problem = manager.chosen_problem() if manager is not None and not r.ok else ""
            if not problem:
                continue
            self.stage_pages[r.stage].error.setText(problem)
            if r.message:
                self.status.setText(self.status.text().replace(r.message, problem))

    @staticmethod
    def _scrolled(w: QWidget) -> QScrollArea:
        s = QScrollArea()
        s.setWidgetResizable(True)
        s.setWidget(w)
        return s

    # -- building the new settings ------------------------------------------
    def validate(self) -> bool:
        ok = True
        first_bad: int | None = None
        for page in self.stage_pages.values():
            if not page.validate():
                ok = False
                first_bad = first_bad if first_bad is not None else self.tab_of(page)
        for form in (self.conversation_form, self.activation_form, self.telemetry_form):
            if not form.validate():
                ok = False
        if first_bad is not None:
            self.tabs.setCurrentIndex(first_bad)
        if not ok:
            self._set_status("Some values need fixing — see the messages in red.", ok=False)
        return ok

    def new_settings(self) -> Settings:
        data = self.settings.model_dump()
        for kind in KINDS:
            data[kind] = self.stage_pages[kind].stage_settings().model_dump()
        data["audio"] = {**data.get("audio", {}), **self.audio_page.values()}
        data["conversation"] = {
            **data.get("conversation", {}),
            **self.conversation_form.values(),
            "turn_patience_ms": self.turn_section.patience_ms(),
        }
        data["activation"] = {**data.get("activation", {}), **self.activation_form.values()}
        data["telemetry"] = {**data.get("telemetry", {}), **self.telemetry_form.values()}
        return Settings.model_validate(data)

    def _set_status(self, text: str, *, ok: bool) -> None:
        self.status.setText(text)
        self.status.setProperty("ok", "true" if ok else "false")
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)

    # -- apply ----------------------------------------------------------------
    def _start_apply(self, close: bool) -> None:
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.ensure_future(self.apply(close=close))

    async def apply(self, *, close: bool = False) -> bool:
        """Validate, store keys, hot-switch. True when everything switched."""
        if not self.validate():
            return False
        new = self.new_settings()
        problems = [p for p in [await page.save_key() for page in self.stage_pages.values()] if p]
        self.buttons.setEnabled(False)
        self._set_status("Applying…", ok=True)
        results: Sequence[ProviderSwitched] = []
        try:
            if self.apply_fn is not None:
                results = await self.apply_fn(new)
        except VoiceError as exc:  # e.g. the settings could not be saved (full or read-only disk)
            problems.append(exc.message)
        except Exception as exc:  # a bug must not leave the dialog saying "Applying…" forever
            log.exception("applying settings failed")
            problems.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.buttons.setEnabled(True)
        failed = [r for r in results if not r.ok]
        problems.extend(f"{stage_title(r.stage)}: {r.message}" for r in failed)
        for r in failed:  # the old provider is still in use: show that in the list
            page = self.stage_pages.get(r.stage)
            if page is not None:
                page.error.setText(r.message)
        if not problems:
            switched = [f"{stage_title(r.stage)} → {r.provider}" for r in results if r.ok]
            restart = any(getattr(new.telemetry, f) != getattr(self.settings.telemetry, f) for f in RESTART_FIELDS)
            self.settings = new
            self._set_status(
                "Applied."
                + (f" Switched: {', '.join(switched)}." if switched else "")
                + (f" Telemetry export {AFTER_RESTART}." if restart else ""),
                ok=True,
            )
        else:
            self._set_status("Not everything could be applied: " + " | ".join(problems), ok=False)
        self.applied.emit(list(results))
        if close and not problems:
            self.accept()
        return not problems

    def showEvent(self, event: Any) -> None:
        if not self._fitted:
            self._fitted = True
            fit_to_screen(self)  # HiDPI or a small screen: the first size fits, content scrolls
        super().showEvent(event)

    def done(self, r: int) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        for page in self.stage_pages.values():
            page.cancel_background()
        self.audio_page.cancel_background()
        self.echo_check.cancel_background()
        if self.model_manager is not None:
            self.model_manager.shutdown()  # a download stops; its part is kept for a resume
        with contextlib.suppress(RuntimeError):
            super().done(r)
