"""The endpoint the three OpenAI-compatible providers share: where the server is and how to reach it.

One set of rules for every such provider's settings (the field types below):

- ``base_url``: the API root; plain ``http://`` only for hosts that cannot be on
  the internet (loopback, private LAN, LAN-only names), so a key never travels in
  clear text (``app.plugin.http_client.check_base_url``).
- ``timeout_s`` / ``connect_timeout_s``: the longest wait for any answer, and for
  the connection.
- ``extra_headers``: may not carry credentials (they would land in the settings file).

And one ``Endpoint`` per provider instance: the HTTP client with VoxDesk's policy,
the API key looked up from the keychain / environment (``app.store.secrets``) on
every request — so a key changed in Settings applies at once, and it exists only in
request headers — plus the ``GET /models`` list and health check.

The field types keep each provider's own defaults and field order (the settings
form follows it): e.g. ``base_url: BaseURL = Field("http://127.0.0.1:11434/v1")``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Protocol

from pydantic import AfterValidator, Field

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.http_client import (
    check_base_url,
    check_extra_headers,
    error_for_response,
    make_client,
    read_json,
    translate_error,
)
from app.plugin.provider_api import Health, HealthStatus

if TYPE_CHECKING:
    import httpx

#: The provider name of all three (``llm.openai-compatible``, ``stt.…``, ``tts.…``).
NAME = "openai-compatible"


def _plain_http_rule(url: str) -> str:
    try:
        return check_base_url(url, op=NAME)
    except VoiceError as err:
        raise ValueError(err.message) from None


BaseURL = Annotated[str, AfterValidator(_plain_http_rule)]
ReadTimeout = Annotated[float, Field(gt=0, le=600, description="Longest wait for any answer from the server")]
ConnectTimeout = Annotated[float, Field(gt=0, le=60)]
ExtraHeaders = Annotated[dict[str, str], AfterValidator(check_extra_headers)]


class EndpointSettings(Protocol):
    """The part of a provider's config that ``Endpoint`` reads."""

    @property
    def base_url(self) -> str: ...

    @property
    def timeout_s(self) -> float: ...

    @property
    def connect_timeout_s(self) -> float: ...

    @property
    def extra_headers(self) -> Mapping[str, str]: ...


def auth_headers(api_key: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    headers = dict(extra or {})
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


class Endpoint:
    """One server for one stage (``kind``): client, key, health, model list."""

    def __init__(self, kind: str, settings: EndpointSettings) -> None:
        self.kind = kind
        self.base_url = check_base_url(settings.base_url, op=f"{kind}.{NAME}")
        self.timeout_s = settings.timeout_s
        self.connect_timeout_s = settings.connect_timeout_s
        self.extra_headers = check_extra_headers(settings.extra_headers)
        self._client: httpx.AsyncClient | None = None

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = make_client(timeout_s=self.timeout_s, connect_timeout_s=self.connect_timeout_s)
        return self._client

    def headers(self) -> dict[str, str]:
        from app.store.secrets import get_api_key

        return auth_headers(get_api_key(self.kind, NAME), self.extra_headers)

    async def list_models(self, *, timeout_s: float = 5.0) -> list[str]:
        """Model ids from ``GET /models`` (sorted), for the settings dialog."""
        op = f"{self.kind}.{NAME}.models"
        try:
            async with self.client.stream("GET", self.url("models"), headers=self.headers(), timeout=timeout_s) as resp:
                if resp.status_code >= 400:
                    raise await error_for_response(op, resp)
                data = await read_json(resp, op=op)
        except VoiceError:
            raise
        except Exception as exc:
            raise translate_error(op, exc) from None
        items = data.get("data") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise VoiceError(op, ErrorCode.PROVIDER_ERROR, "the model list has an unexpected shape")
        ids = {str(m.get("id")) for m in items if isinstance(m, dict) and m.get("id")}
        return sorted(ids)

    async def health(self, *, timeout_s: float = 3.0) -> Health:
        """Cheap ``GET /models``: ok when it answers 200, down when unreachable or the key is refused."""
        start = time.perf_counter()
        try:
            models = await self.list_models(timeout_s=timeout_s)
        except VoiceError as err:
            status = HealthStatus.DOWN
            if err.code in (ErrorCode.INVALID_CONFIG, ErrorCode.RATE_LIMIT, ErrorCode.PROVIDER_ERROR):
                status = HealthStatus.DEGRADED
            return Health(status, err.message, time.perf_counter() - start)
        detail = f"{len(models)} model(s) at {self.base_url}"
        return Health(HealthStatus.OK, detail, time.perf_counter() - start)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
