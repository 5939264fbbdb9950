"""Remote servers: the plain-http rule cannot be dodged with a numeric host, and a
streamed reply that ends without its end marker is a cut reply, not a complete one.

Nothing here may reach the internet: the public addresses in the tables are only
ever *refused*; a guard makes any connection to a non-loopback address fail at once
(in this process and in the `voxdesk` subprocesses), so a regression shows up as a
failed test, never as a packet to 8.8.8.8.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.http_client import check_base_url, is_private_host, make_client
from app.plugin.provider_api import ChatMessage, LLMProvider
from app.plugin.registry import get_registry

VOXDESK = str(Path(sys.executable).with_name("voxdesk"))

# -- no internet, whatever the code under test does ----------------------------------------

_GUARD = """
import errno, ipaddress, socket

def _loopback_only(address):
    host = address[0] if isinstance(address, tuple) else None
    if host is None:
        return
    try:
        ok = ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise OSError(errno.ENETUNREACH, f"test guard: no connection to {host} allowed")

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex

def connect(self, address):
    _loopback_only(address)
    return _connect(self, address)

def connect_ex(self, address):
    _loopback_only(address)
    return _connect_ex(self, address)
"""
_INSTALL = "\nsocket.socket.connect, socket.socket.connect_ex = connect, connect_ex\n"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    namespace: dict[str, Any] = {}
    exec(_GUARD, namespace)
    monkeypatch.setattr(socket.socket, "connect", namespace["connect"])
    monkeypatch.setattr(socket.socket, "connect_ex", namespace["connect_ex"])


def guarded_env(tmp_path: Path, home: Path) -> dict[str, str]:
    """Environment for a `voxdesk` subprocess that cannot connect beyond 127.0.0.1."""
    site = tmp_path / "guard-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(textwrap.dedent(_GUARD) + _INSTALL)
    pythonpath = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "VOXDESK_HOME": str(home), "PYTHONPATH": pythonpath}


def test_the_guard_itself_refuses_a_public_address() -> None:
    with socket.socket() as s, pytest.raises(OSError) as info:
        s.connect(("8.8.8.8", 80))
    assert info.value.errno == errno.ENETUNREACH


# -- the plain-http rule: hosts parsed the way the resolver reads them --------------------

#: Every one of these reaches a public address (mostly 8.8.8.8), or is not a host at all.
PUBLIC_OR_INVALID = [
    "134744072",  # decimal integer: 8.8.8.8
    "0x08080808",  # hex integer
    "0X8080808",
    "8.8.2056",  # three parts: the last fills two bytes
    "8.526344",  # two parts
    "0x8.0x8.0x8.0x8",  # hex parts
    "010.010.010.010",  # octal parts: 8.8.8.8
    "0x8.010.2056",  # mixed
    "0127.0.0.1",  # octal 0127 = 87: looks like loopback, is 87.0.0.1
    "8.8.8.8.",  # trailing dot
    "8\u30028\u30028\u30028",  # ideographic full stops, mapped to dots by IDNA
    "\uff18.\uff18.\uff18.\uff18",  # fullwidth digits
    "4294967296",  # beyond 32 bits: not an address, not a name
    "08",  # not octal, not a name
    "0x",
    "1.2.3.4.5",
    "lan-box.1",  # numeric last label: never a name
    "%31%32%37.0.0.1",  # percent-encoded
    "[::ffff:8.8.8.8]",  # IPv4-mapped
    "[::ffff:808:808]",
    "[::ffff:8.8.8.8%25eth0]",
    "[0:0:0:0:0:ffff:0808:0808]",
    "[64:ff9b::808:808]",  # NAT64
    "[2002:808:808::1]",  # 6to4
    "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",  # Teredo
    "[::8.8.8.8]",  # IPv4-compatible (deprecated)
    "[2606:4700:4700::1111]",
    "[fec0::1]",  # site-local: deprecated, not guaranteed local
    "[::ffff:134744072]",  # not an IPv6 address
    "example.com",
    "api.openai.com",
]

#: Loopback and LAN, in canonical and non-canonical spellings.
LOCAL = [
    "127.0.0.1",
    "127.1",
    "2130706433",  # 127.0.0.1 as one integer
    "0x7f000001",
    "0x7f.1",
    "0177.0.0.1",  # octal 0177 = 127
    "10.0.0.010",  # 10.0.0.8
    "192.168.1.20",
    "192.168.0x1.20",
    "172.16.0.5",
    "169.254.1.1",
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[fe80::1%25eth0]",
    "[fd12:3456::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:192.168.1.2]",
    "localhost",
    "LOCALHOST",
    "nas.local",
    "printer.lan",
    "box.home.arpa",
    "gpu-server",  # single-label LAN name
    "ollama",
    "my_box",
]


@pytest.mark.parametrize("host", PUBLIC_OR_INVALID)
def test_plain_http_to_a_public_or_odd_host_is_refused(host: str) -> None:
    with pytest.raises(VoiceError) as info:
        check_base_url(f"http://{host}/v1", op="llm.openai-compatible")
    assert info.value.code is ErrorCode.INVALID_CONFIG
    assert "https" in info.value.message
    assert not is_private_host(host)


@pytest.mark.parametrize("host", PUBLIC_OR_INVALID[:10])
def test_https_to_the_same_hosts_is_still_fine(host: str) -> None:
    assert check_base_url(f"https://{host}/v1").startswith("https://")


@pytest.mark.parametrize("host", LOCAL)
def test_plain_http_to_loopback_and_lan_is_allowed(host: str) -> None:
    assert is_private_host(host)
    assert check_base_url(f"http://{host}:8080/v1") == f"http://{host}:8080/v1"


@pytest.mark.parametrize("host", ["134744072", "0x08080808", "127.1", "[::ffff:8.8.8.8]", "[fe80::1%25eth0]"])
def test_the_rule_agrees_with_what_the_resolver_connects_to(host: str) -> None:
    """Our reading of a numeric host is the C library's (inet_aton / getaddrinfo)."""
    bare = host.strip("[]").replace("%25", "%")
    resolved = socket.getaddrinfo(bare, 80, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)[0][4][0]
    ip = ipaddress.ip_address(str(resolved).split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    local = ip.is_loopback or ip.is_link_local or (ip.is_private and not ip.is_global)
    assert is_private_host(host) is local


@pytest.mark.parametrize("url", ["http://[::ffff:134744072]/v1", "http://host:99999/v1", "http://[fe80::1/v1"])
def test_malformed_urls_are_one_clear_error(url: str) -> None:
    with pytest.raises(VoiceError) as info:
        check_base_url(url)
    assert info.value.code is ErrorCode.INVALID_CONFIG


@pytest.mark.parametrize("kind", ["llm", "stt", "tts"])
@pytest.mark.parametrize("host", ["134744072", "0x08080808"])
def test_every_remote_provider_refuses_the_numeric_forms(kind: str, host: str) -> None:
    with pytest.raises(VoiceError) as info:
        get_registry().validate(kind, "openai-compatible", {"base_url": f"http://{host}/v1"})
    assert info.value.code is ErrorCode.INVALID_CONFIG
    assert "unencrypted" in info.value.message


class _Redirector(BaseHTTPRequestHandler):
    target = ""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.mark.parametrize(
    "target", ["http://134744072/v1/models", "http://0x08080808/v1/models", "http://[::ffff:8.8.8.8]/v1/models"]
)
async def test_a_redirect_to_a_numeric_public_host_is_not_followed(target: str) -> None:
    handler = type("Handler", (_Redirector,), {"target": target})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    client = make_client(timeout_s=5)
    try:
        with pytest.raises(VoiceError) as info:
            await client.get(
                f"http://127.0.0.1:{srv.server_address[1]}/v1/models", headers={"Authorization": "Bearer sk-test"}
            )
        assert info.value.code is ErrorCode.INVALID_CONFIG
        assert "refusing plain http" in info.value.message
    finally:
        await client.aclose()
        srv.shutdown()
        srv.server_close()
        thread.join()


@pytest.mark.parametrize("host", ["134744072", "0x08080808"])
def test_converse_refuses_the_issue_hosts_with_exit_2(tmp_path: Path, voxdesk_home: Path, host: str) -> None:
    proc = subprocess.run(
        [
            VOXDESK,
            "converse",
            "--text",
            "tell me about the history of Rome",
            "--set",
            "llm.provider=openai-compatible",
            "--set",
            f"llm.options.base_url=http://{host}/v1",
        ],
        capture_output=True,
        text=True,
        env=guarded_env(tmp_path, voxdesk_home),
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "unencrypted" in proc.stderr and "Traceback" not in proc.stderr


# -- a stream without its end marker -------------------------------------------------------

FIRST, SECOND = "The Roman Republic", " began in 509 BC."


def _event(content: str, finish: str | None = None) -> bytes:
    body = {
        "id": "x",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class _ChatHandler(BaseHTTPRequestHandler):
    """Streams a two-part reply; the first path segment says how it ends."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        mode = self.path.strip("/").split("/")[0]
        events = [_event(FIRST), _event(SECOND, "stop" if mode == "finish-no-done" else None)]
        if mode == "ok":
            events.append(b"data: [DONE]\n\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if mode == "close-no-done":
            # HTTP/1.0 style: the body ends when the server closes the connection.
            self.send_header("Connection", "close")
            self.end_headers()
            for e in events:
                self.wfile.write(e)
                self.wfile.flush()
            self.close_connection = True
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for e in events:
            self.wfile.write(f"{len(e):x}\r\n".encode() + e + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")  # a clean end of the body, but no [DONE] for "chunked-no-done"
        self.wfile.flush()


@pytest.fixture
def chat_server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


def remote_llm(base: str, mode: str) -> LLMProvider:
    provider = get_registry().create(
        "llm", "openai-compatible", {"base_url": f"{base}/{mode}/v1", "model": "m", "timeout_s": 10}
    )
    assert isinstance(provider, LLMProvider)
    return provider


async def _collect(provider: LLMProvider) -> list[str]:
    got: list[str] = []
    try:
        async with contextlib.aclosing(provider.chat([ChatMessage("user", "hi")])) as stream:  # type: ignore[type-var]
            async for delta in stream:
                got.append(delta)
    finally:
        await provider.aclose()
    return got


@pytest.mark.parametrize("mode", ["ok", "finish-no-done"])
async def test_a_finished_stream_is_a_complete_reply(chat_server: str, mode: str) -> None:
    assert "".join(await _collect(remote_llm(chat_server, mode))) == FIRST + SECOND


@pytest.mark.parametrize("mode", ["chunked-no-done", "close-no-done"])
async def test_a_stream_that_stops_without_done_is_a_cut_reply(chat_server: str, mode: str) -> None:
    got: list[str] = []
    provider = remote_llm(chat_server, mode)
    with pytest.raises(VoiceError) as info:
        async with contextlib.aclosing(provider.chat([ChatMessage("user", "hi")])) as stream:  # type: ignore[type-var]
            async for delta in stream:
                got.append(delta)
    await provider.aclose()
    assert "".join(got) == FIRST + SECOND  # what came is kept, and said once
    assert info.value.code is ErrorCode.UNAVAILABLE  # the same class as a dropped connection
    assert "cut off" in info.value.message


@pytest.mark.parametrize("mode", ["chunked-no-done", "close-no-done"])
def test_a_cut_stream_is_not_stored_as_a_complete_turn(
    tmp_path: Path, voxdesk_home: Path, chat_server: str, mode: str
) -> None:
    proc = subprocess.run(
        [
            VOXDESK,
            "converse",
            "--text",
            "tell me about the history of Rome",
            "--json",
            "--set",
            "llm.provider=openai-compatible",
            "--set",
            f"llm.options.base_url={chat_server}/{mode}/v1",
            "--set",
            "llm.options.model=m",
        ],
        capture_output=True,
        text=True,
        env=guarded_env(tmp_path, voxdesk_home),
        timeout=180,
    )
    turn = json.loads(proc.stdout)["turns"][0]
    assert proc.returncode != 0, proc.stderr
    assert turn["error"] and "cut off" in turn["error"]
    db = next(voxdesk_home.rglob("history.sqlite3"))
    with contextlib.closing(sqlite3.connect(db)) as conn:
        status, reply = conn.execute("SELECT status, reply_text FROM turns ORDER BY id DESC LIMIT 1").fetchone()
    assert status != "complete"
    assert FIRST in reply  # what was said is kept


def test_a_cut_stream_is_stored_as_interrupted(tmp_path: Path, voxdesk_home: Path, chat_server: str) -> None:
    subprocess.run(
        [
            VOXDESK,
            "converse",
            "--text",
            "tell me about the history of Rome",
            "--set",
            "llm.provider=openai-compatible",
            "--set",
            f"llm.options.base_url={chat_server}/close-no-done/v1",
            "--set",
            "llm.options.model=m",
        ],
        capture_output=True,
        text=True,
        env=guarded_env(tmp_path, voxdesk_home),
        timeout=180,
    )
    db = next(voxdesk_home.rglob("history.sqlite3"))
    with contextlib.closing(sqlite3.connect(db)) as conn:
        status, interrupted = conn.execute("SELECT status, interrupted FROM turns ORDER BY id DESC LIMIT 1").fetchone()
    assert (status, interrupted) == ("interrupted", 1)
