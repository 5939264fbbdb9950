"""Hints a provider's pydantic config gives the settings form, through `json_schema_extra`.

The form is generated from the JSON schema alone, so anything it cannot read from the
type (which list a string is chosen from, that an option is for experts, its unit) is
said here, by key, in the field's schema:

    top_k: int = Field(40, ge=0, le=1000, json_schema_extra=field_hints.advanced())
    model: str = Field("", json_schema_extra=field_hints.choices(SERVER))

No Qt and no provider library: data and small helpers only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

#: Schema keys (prefixed so they never clash with JSON-schema words).
ADVANCED = "x-advanced"
CHOICES = "x-choices"
UNIT = "x-unit"
ADDRESS = "x-address"

#: Lists a string option can be chosen from.
ChoiceList = Literal["language", "timezone", "server"]
LANGUAGE: Final[ChoiceList] = "language"
TIMEZONE: Final[ChoiceList] = "timezone"
SERVER: Final[ChoiceList] = "server"  # what the provider's server lists (an OpenAI-compatible server's /v1/models)

#: Names that hold a server's address when a schema does not mark one.
ADDRESS_NAMES = ("base_url", "uri", "url", "server_url", "endpoint")


def advanced(**more: Any) -> dict[str, Any]:
    """An expert option: the form puts it in a collapsed "Advanced" group."""
    return {ADVANCED: True, **more}


def choices(source: ChoiceList, **more: Any) -> dict[str, Any]:
    """A string picked from a known list (the form shows a drop-down)."""
    return {CHOICES: source, **more}


def unit(symbol: str, **more: Any) -> dict[str, Any]:
    """A number's unit, when its name does not end in one (`_s`, `_ms`, …)."""
    return {UNIT: symbol, **more}


def address(**more: Any) -> dict[str, Any]:
    """The option that holds the server's URL (where the provider runs is read from it)."""
    return {ADDRESS: True, **more}


def is_advanced(prop: Mapping[str, Any]) -> bool:
    return bool(prop.get(ADVANCED))


def choice_list(prop: Mapping[str, Any]) -> str | None:
    value = prop.get(CHOICES)
    return str(value) if value else None


def address_field(schema: Mapping[str, Any]) -> str | None:
    """The name of the option holding the server's address: the marked one, else a usual name."""
    props: Mapping[str, Any] = schema.get("properties") or {}
    for name, prop in props.items():
        if isinstance(prop, Mapping) and prop.get(ADDRESS):
            return str(name)
    return next((n for n in ADDRESS_NAMES if n in props), None)


def server_choice_fields(schema: Mapping[str, Any]) -> list[str]:
    """Options filled from what the server lists."""
    props: Mapping[str, Any] = schema.get("properties") or {}
    return [str(n) for n, p in props.items() if isinstance(p, Mapping) and p.get(CHOICES) == SERVER]
