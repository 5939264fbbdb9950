"""Where a server is, read from its URL: this computer, the user's own network, or the cloud.

A provider type says where it *may* run (an OpenAI-compatible API is "your server or
cloud"); the address the user typed says where it *does*: Ollama on 127.0.0.1 is on this
computer, a box at 192.168.1.20 or `nas.local` is the user's server, api.openai.com is
the cloud. Settings and the health table show this, not the type.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from app.plugin import field_hints
from app.plugin.http_client import is_private_host, parse_host
from app.plugin.registry import RUNS_LABELS, ProviderInfo, Runs

#: Names that always mean this computer.
_THIS_COMPUTER = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def _host_of(url: str) -> str | None:
    text = (url or "").strip()
    if not text:
        return None
    if "://" not in text:
        text = f"//{text}"  # a bare host[:port] is still an address
    try:
        return urlsplit(text).hostname or None
    except ValueError:
        return None


def place_of_url(url: str | None) -> Runs | None:
    """ "local", "server" or "cloud" for a server's URL; None when it names no host."""
    host = _host_of(url or "")
    if host is None:
        return None
    try:
        parsed = parse_host(host)
    except ValueError:
        return None
    if isinstance(parsed, str):
        if parsed in _THIS_COMPUTER or parsed.endswith(".localhost"):
            return "local"
    else:
        ip = parsed.ipv4_mapped if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped else parsed
        if ip.is_loopback or ip.is_unspecified:
            return "local"
    return "server" if is_private_host(host) else "cloud"


def place_label(place: Runs) -> str:
    """The place in words: "this computer", "your server", "cloud"."""
    return RUNS_LABELS[place]


def provider_place(info: ProviderInfo, schema: Mapping[str, Any], options: Mapping[str, Any]) -> Runs:
    """Where a configured provider runs: from its address option when it has one, else its type."""
    if info.where == "local":
        return "local"
    name = field_hints.address_field(schema)
    if name is not None:
        value = options.get(name)
        if value is None:
            value = ((schema.get("properties") or {}).get(name) or {}).get("default")
        place = place_of_url(str(value)) if value else None
        if place is not None:
            return place
    return info.where


def stage_place(registry: Any, settings: Any, stage: str, provider: str) -> Runs | None:
    """Where `provider` of `stage` runs with the options `settings` give it (chosen or fallback);
    None when the registry cannot say. For the health table."""
    try:
        spec = registry.spec(stage, provider)
        chosen = settings.stage(stage)
    except Exception:
        return None
    options = chosen.options if chosen.provider == provider else chosen.fallback_options.get(provider, {})
    return provider_place(spec.info, spec.config_schema(), options)
