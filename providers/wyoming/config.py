"""Settings both Wyoming providers share: the server's address and how long to wait.

Wyoming has no authentication and no encryption (by design: it is meant for a home
network), so a server on a public address is refused: the microphone's audio would
cross the internet in clear.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from app.plugin.http_client import is_private_host, parse_host

NAME = "wyoming"
URI_SHAPE = "use tcp://HOST:PORT, e.g. tcp://192.168.1.20:10300"


def parse_uri(uri: str) -> tuple[str, int]:
    """(host, port) of a ``tcp://host:port`` address; ValueError with what to type instead."""
    text = (uri or "").strip()
    try:
        parts = urlsplit(text)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ValueError(f"{text!r} is not a server address — {URI_SHAPE}") from None
    if parts.scheme != "tcp":
        raise ValueError(f"{text!r}: Wyoming servers listen on plain TCP — {URI_SHAPE}")
    if not host or port is None:
        raise ValueError(f"{text!r} needs a host and a port — {URI_SHAPE}")
    if parts.path.strip("/") or parts.query or parts.username or parts.password:
        raise ValueError(f"{text!r} has more than a host and a port — {URI_SHAPE}")
    try:
        parse_host(host)
    except ValueError:
        raise ValueError(f"{host!r} is not a host — {URI_SHAPE}") from None
    if not is_private_host(host):
        raise ValueError(
            f"{host} is not on this computer or your local network: Wyoming is unencrypted, "
            "so your voice would cross the internet in clear — run the server on your network"
        )
    return host, port


def _check_uri(uri: str) -> str:
    host, port = parse_uri(uri)
    shown = f"[{host}]" if ":" in host else host
    return f"tcp://{shown}:{port}"


ServerURI = Annotated[str, AfterValidator(_check_uri)]
Timeout = Annotated[float, Field(gt=0, le=120, description="Longest wait for the server's next answer")]
ConnectTimeout = Annotated[float, Field(gt=0, le=30, description="Longest wait to connect")]
