"""Where a server runs, read from its URL (app.plugin.server_place): the Settings badges and
the health table say "this computer" for localhost, not "online"."""

from __future__ import annotations

import pytest

from app.plugin.registry import ProviderInfo
from app.plugin.server_place import place_of_url, provider_place


@pytest.mark.parametrize(
    ("url", "place"),
    [
        ("http://127.0.0.1:11434/v1", "local"),
        ("http://localhost:8080/v1", "local"),
        ("http://[::1]:1234/v1", "local"),
        ("tcp://127.0.0.1:10300", "local"),
        ("127.0.0.1:8080", "local"),
        ("http://192.168.1.20:11434/v1", "server"),
        ("http://10.0.0.5/v1", "server"),
        ("http://172.16.3.4/v1", "server"),
        ("http://nas.local:8000/v1", "server"),
        ("tcp://[fd00::7]:10200", "server"),
        ("https://api.openai.com/v1", "cloud"),
        ("https://8.8.8.8/v1", "cloud"),
        ("", None),
        ("not a url at all", None),
    ],
)
def test_place_of_url(url: str, place: str | None) -> None:
    assert place_of_url(url) == place


def test_a_provider_place_follows_its_address_option_not_its_type() -> None:
    info = ProviderInfo("OpenAI-compatible", local=False, runs="server-or-cloud")
    schema = {"properties": {"base_url": {"type": "string", "default": "http://127.0.0.1:11434/v1"}}}
    assert provider_place(info, schema, {}) == "local"  # the default address
    assert provider_place(info, schema, {"base_url": "https://api.example.com/v1"}) == "cloud"
    assert provider_place(info, {"properties": {}}, {}) == "server-or-cloud"  # no address: its type
    assert provider_place(ProviderInfo("Piper"), schema, {}) == "local"
