"""The one way VoxDesk talks HTTP: safe defaults for every remote provider.

- TLS verification is always on, against the OS trust store when ``truststore``
  is installed (corporate CAs work like in the browser), else certifi's bundle.
- Plain ``http://`` only for hosts that cannot be on the internet: loopback,
  private-LAN addresses, and LAN-only names (``localhost``, ``*.local``,
  ``*.lan``, ``*.home.arpa``, ``*.internal``, single-label names). Anything else
  must use https — otherwise the API key would travel in clear text. Redirects
  are checked against the same rule.
- Connect/read timeouts, at most 3 redirects, and response size caps
  (``read_capped`` / ``iter_capped``) so a broken server cannot eat the memory.
- ``translate_error`` / ``error_for_response`` turn httpx exceptions and error
  statuses into VoiceErrors via ``app.plugin.resilience.classify_status``, with any key
  scrubbed from the text.

httpx is imported lazily so listing providers stays cheap.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import ssl
import string
import unicodedata
from collections.abc import AsyncGenerator, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.redaction import redact
from app.plugin.resilience import classify_status

if TYPE_CHECKING:
    import httpx

#: JSON answers (model lists, transcripts, error bodies) are small.
MAX_JSON_BYTES = 8 * 1024 * 1024
#: Audio bodies (speech) may be long replies, still bounded.
MAX_AUDIO_BYTES = 64 * 1024 * 1024
#: One SSE line; a server that never sends a newline is broken.
MAX_LINE_BYTES = 1024 * 1024
MAX_REDIRECTS = 3
USER_AGENT = "VoxDesk/0.1"

_LAN_SUFFIXES = (".local", ".lan", ".home.arpa", ".internal", ".localhost", ".localdomain")
#: What IDNA maps to "." in a host name (httpx does, so the resolver sees dots).
_IDNA_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _numeric_part(part: str) -> int | None:
    """One part of an inet_aton address: decimal, 0x hex or 0-led octal; None if not numeric."""
    if part[:2] in ("0x", "0X"):
        digits, base, valid = part[2:], 16, string.hexdigits
    elif len(part) > 1 and part[0] == "0":
        digits, base, valid = part[1:], 8, "01234567"
    else:
        digits, base, valid = part, 10, "0123456789"
    if not digits or any(c not in valid for c in digits):
        return None
    return int(digits, base)


def _inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """`host` read as the C library's inet_aton reads it (what getaddrinfo connects to):
    1 to 4 parts, each decimal, hex or octal, the last filling the remaining bytes."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = [_numeric_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    nums = [v for v in values if v is not None]
    *head, last = nums
    if any(v > 255 for v in head) or last >= 1 << (8 * (5 - len(nums))):
        return None
    value = last
    for i, v in enumerate(head):
        value |= v << (24 - 8 * i)
    return ipaddress.IPv4Address(value)


def parse_host(host: str) -> _IPAddress | str:
    """The address a URL's host means to the resolver, or the normalised name.

    Numeric hosts are read the way the system resolver reads them, not only in
    canonical form: ``134744072``, ``0x08080808``, ``8.8.2056`` and ``010.010.010.010``
    are all 8.8.8.8. IPv6 may be bracketed and carry a zone id. Raises ValueError for
    what is neither an address nor a plausible name (``08``, ``1.2.3.4.5``, ``[::ffff:1]x``).
    """
    h = unicodedata.normalize("NFKC", host).translate(_IDNA_DOTS).strip().lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h.endswith(".") and not h.endswith(".."):
        h = h[:-1]  # the root of the DNS: "8.8.8.8." is 8.8.8.8
    if not h:
        raise ValueError("empty host")
    if ":" in h:
        return ipaddress.IPv6Address(h.split("%", 1)[0])  # a zone id (%eth0, %25eth0) is local detail
    v4 = _inet_aton(h)
    if v4 is not None:
        return v4
    last = h.rsplit(".", 1)[-1]
    if last.isdigit() or (last.startswith("0x") and all(c in string.hexdigits for c in last[2:])):
        # A numeric last label makes a URL host an address (WHATWG) that this one is not;
        # the resolver might still look it up as a name. Neither is a LAN name.
        raise ValueError(f"{host!r} is neither an address nor a name")
    if not set(h) <= _NAME_CHARS or ".." in h or h.startswith("."):
        raise ValueError(f"{host!r} is not a host name")
    return h


def _local_address(ip: _IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return _local_address(ip.ipv4_mapped)
        # Only what cannot leave the site: loopback, link-local, unique-local (fc00::/7).
        # Tunnels and translators (6to4, Teredo, NAT64) carry IPv4 to the internet.
        return ip.is_loopback or ip.is_link_local or ip in _IPV6_ULA or ip == ipaddress.IPv6Address("::")
    return ip.is_loopback or ip.is_private or ip.is_link_local


_IPV6_ULA = ipaddress.IPv6Network("fc00::/7")


def is_private_host(host: str) -> bool:
    """True for hosts a plain-http connection is acceptable to (never reaches the internet)."""
    try:
        parsed = parse_host(host)
    except ValueError:
        return False
    if not isinstance(parsed, str):
        return _local_address(parsed)
    return parsed == "localhost" or parsed.endswith(_LAN_SUFFIXES) or "." not in parsed


def check_base_url(url: str, *, op: str = "http") -> str:
    """Validate a base URL the user typed; returns it normalised (``/v1`` added to a bare host).

    Raises INVALID_CONFIG for anything that is not http(s), has no host, carries
    credentials, or is plain http to a public host.
    """
    url = (url or "").strip()
    shape = f"base URL {redact(url)!r} must look like https://host/v1"
    try:
        parts = urlsplit(url)
        hostname, _port = parts.hostname, parts.port  # both raise ValueError when malformed
    except ValueError:
        raise VoiceError(op, ErrorCode.INVALID_CONFIG, shape) from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise VoiceError(op, ErrorCode.INVALID_CONFIG, shape)
    if parts.username or parts.password:
        raise VoiceError(
            op,
            ErrorCode.INVALID_CONFIG,
            "put the API key in the keychain, not in the base URL",
        )
    try:
        parse_host(hostname)
    except ValueError:
        raise VoiceError(op, ErrorCode.INVALID_CONFIG, f"{shape} ({redact(hostname)!r} is not a host)") from None
    if parts.scheme == "http" and not is_private_host(hostname):
        raise VoiceError(
            op,
            ErrorCode.INVALID_CONFIG,
            f"plain http to {hostname} would send your key unencrypted — use https:// "
            "(plain http is allowed only for this computer and your local network)",
        )
    path = parts.path.rstrip("/")
    if not path:
        path = "/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


@lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    """OS trust store via truststore when available; verification is never turned off."""
    try:
        import truststore

        ctx: ssl.SSLContext = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    except ImportError:
        import certifi

        ctx = ssl.create_default_context(cafile=certifi.where())
    return ctx


def make_client(
    *,
    timeout_s: float = 30.0,
    connect_timeout_s: float = 5.0,
    headers: Mapping[str, str] | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient with VoxDesk's policy. Create it inside the running loop; ``aclose()`` it."""
    import httpx

    async def _check_redirect(request: httpx.Request) -> None:
        # Every request (including redirect hops) must satisfy the http/https rule.
        if request.url.scheme == "http" and not is_private_host(request.url.host):
            raise VoiceError(
                "http",
                ErrorCode.INVALID_CONFIG,
                f"refusing plain http to {request.url.host} — use https://",
            )

    return httpx.AsyncClient(
        verify=ssl_context(),
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s, pool=connect_timeout_s),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        headers={"User-Agent": USER_AGENT, **dict(headers or {})},
        event_hooks={"request": [_check_redirect]},
        trust_env=False,  # proxies from env would see the key; opt in explicitly later if needed
    )


def translate_error(op: str, exc: BaseException) -> VoiceError:
    """httpx exception → VoiceError (never includes headers; text is redacted)."""
    import httpx

    if isinstance(exc, VoiceError):
        return exc
    detail = redact(str(exc))[:200]
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return VoiceError(op, ErrorCode.UNAVAILABLE, "could not connect in time — is the server running?")
    if isinstance(exc, httpx.TimeoutException):
        return VoiceError(op, ErrorCode.TIMEOUT, "the server did not answer in time — try again")
    if isinstance(exc, httpx.TooManyRedirects):
        return VoiceError(op, ErrorCode.INVALID_CONFIG, "too many redirects — check the base URL")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return VoiceError(op, ErrorCode.INVALID_CONFIG, f"bad URL ({detail}) — check the base URL")
    if isinstance(exc, httpx.ConnectError):
        if "CERTIFICATE_VERIFY_FAILED" in str(exc) or isinstance(exc.__cause__, ssl.SSLError):
            return VoiceError(
                op,
                ErrorCode.INVALID_CONFIG,
                "the server's TLS certificate is not trusted — install its CA in the system store",
            )
        return VoiceError(
            op,
            ErrorCode.UNAVAILABLE,
            "could not connect — check the server is running and the base URL",
        )
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError | httpx.NetworkError):
        return VoiceError(op, ErrorCode.UNAVAILABLE, f"the connection broke ({detail}) — try again")
    if isinstance(exc, httpx.DecodingError):
        return VoiceError(op, ErrorCode.PROVIDER_ERROR, f"the server sent an undecodable body ({detail})")
    if isinstance(exc, httpx.HTTPError):
        return VoiceError(op, ErrorCode.UNAVAILABLE, f"HTTP error ({detail})")
    if isinstance(exc, TimeoutError):
        return VoiceError(op, ErrorCode.TIMEOUT, "no answer in time — try again")
    return VoiceError(op, ErrorCode.PROVIDER_ERROR, f"{type(exc).__name__}: {redact(str(exc))[:200]}")


def _server_message(body: bytes) -> str:
    """The human message in an OpenAI-style error body, short and redacted."""
    text = body[:4096].decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        msg = text.strip()
    else:
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            msg = str(err.get("message") or err.get("type") or "")
        elif isinstance(err, str):
            msg = err
        elif isinstance(data, dict) and "detail" in data:
            msg = str(data["detail"])
        else:
            msg = ""
    msg = " ".join(msg.split())
    return redact(msg)[:200]


async def error_for_response(op: str, response: httpx.Response) -> VoiceError:
    """Read (a capped amount of) an error response and classify it."""
    try:
        body = await read_capped(response, op=op, limit=64 * 1024)
    except VoiceError:
        body = b""
    return classify_status(
        op,
        response.status_code,
        retry_after=response.headers.get("retry-after"),
        detail=_server_message(body),
    )


async def iter_capped(response: httpx.Response, *, op: str, limit: int) -> AsyncGenerator[bytes, None]:
    """Body chunks as they arrive; PROVIDER_ERROR once more than ``limit`` bytes came."""
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise VoiceError(op, ErrorCode.PROVIDER_ERROR, f"response too large ({declared} bytes, limit {limit})")
    total = 0
    async for chunk in response.aiter_bytes():
        total += len(chunk)
        if total > limit:
            raise VoiceError(op, ErrorCode.PROVIDER_ERROR, f"response too large (over {limit} bytes)")
        yield chunk


async def read_capped(response: httpx.Response, *, op: str, limit: int = MAX_JSON_BYTES) -> bytes:
    parts = [chunk async for chunk in iter_capped(response, op=op, limit=limit)]
    return b"".join(parts)


async def read_json(response: httpx.Response, *, op: str, limit: int = MAX_JSON_BYTES) -> Any:
    body = await read_capped(response, op=op, limit=limit)
    try:
        return json.loads(body)
    except ValueError:
        raise VoiceError(
            op,
            ErrorCode.PROVIDER_ERROR,
            "the server sent malformed JSON — is the base URL an OpenAI-compatible API?",
        ) from None


async def iter_lines(
    response: httpx.Response, *, op: str, limit: int = MAX_AUDIO_BYTES, max_line: int = MAX_LINE_BYTES
) -> AsyncGenerator[str, None]:
    """Text lines of a streamed body (SSE), each and all bounded in size."""
    buf = b""
    # aclosing: a consumer that stops early must not leave generators for the GC to finalise.
    async with contextlib.aclosing(iter_capped(response, op=op, limit=limit)) as chunks:
        async for chunk in chunks:
            buf += chunk
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    break
                line, buf = buf[:nl], buf[nl + 1 :]
                yield line.rstrip(b"\r").decode("utf-8", "replace")
            if len(buf) > max_line:
                raise VoiceError(op, ErrorCode.PROVIDER_ERROR, f"the server sent a line over {max_line} bytes")
    if buf:
        yield buf.rstrip(b"\r").decode("utf-8", "replace")


FORBIDDEN_HEADER_NAMES = frozenset({"authorization", "api-key", "x-api-key", "proxy-authorization", "cookie"})


def check_extra_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Extra headers from settings may not carry credentials (they would land in the settings file)."""
    for name in headers:
        if name.strip().lower() in FORBIDDEN_HEADER_NAMES:
            raise ValueError(f"header {name!r} holds a credential — store the API key in the keychain instead")
    return dict(headers)
