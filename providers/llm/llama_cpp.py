"""LLM `llama-cpp`: local chat through llama-cpp-python, in a worker process.

What a user relies on:
- the window never freezes: generation runs in a child process (see
  `llama_cpp_worker`), the event loop only awaits a queue fed by a reader thread;
- "stop" is instant: cancelling the reply returns at once and the worker stops
  within one token;
- long conversations keep working: old turns are dropped (counted with the model's
  own tokenizer) so prompt + reply fit in `n_ctx`;
- the second turn answers sooner than the first: the same llama.cpp context is
  reused, so only the new part of the prompt is evaluated;
- a crash in native code costs one reply (UNAVAILABLE), not the app; the next
  reply starts a fresh worker.

`import llama_cpp` never happens in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing as mp
import os
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from app.plugin import field_hints
from app.plugin.errors import ErrorCode, VoiceError, as_voice_error
from app.plugin.model_spec import ModelOption, SelfCheck
from app.plugin.provider_api import ChatMessage, Health, HealthStatus, LLMProvider, TokenUsage, run_blocking
from app.plugin.registry import ProviderInfo, ProviderSpec
from providers.llm import llama_cpp_worker as worker
from providers.llm.llama_cpp_models import DEFAULT_MODEL_ID, GGUF_MAGIC, MODELS, explain_damaged_package

OP = "llm.llama-cpp"
WORKER_GONE = "the llama.cpp worker stopped unexpectedly — the next reply restarts it"
ChatFormatName = Literal["gemma", "chatml", "llama-3", "plain"]

Message = tuple[Any, ...]
Deliver = Callable[[Message], None]

#: Not a protocol message from the worker: the reader thread's notice that it died.
_GONE = "gone"


def physical_cores() -> int:
    """Physical cores available to this process; llama.cpp gains nothing from SMT siblings."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = list(range(os.cpu_count() or 2))
    cores: set[tuple[str, str]] = set()
    for cpu in allowed:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topo / "physical_package_id").read_text().strip()
            cores.add((package, (topo / "core_id").read_text().strip()))
        except OSError:
            return max(1, len(allowed) // 2) if len(allowed) > 2 else max(1, len(allowed))
    return max(1, len(cores))


class LlamaCppConfig(BaseModel):
    """Settings of the `llama-cpp` provider (the settings dialog builds its form from this)."""

    model: str = Field(
        default=DEFAULT_MODEL_ID,
        description="Model id from `voxdesk models list`, or the path of a .gguf file",
    )
    model_path: str | None = Field(default=None, description="Use this .gguf file for the model id above")
    n_ctx: int = Field(default=2048, ge=256, le=131_072, description="Context window in tokens")
    n_threads: int | None = Field(
        default=None,
        ge=1,
        le=512,
        description="CPU threads; empty = physical cores",
        json_schema_extra=field_hints.advanced(),
    )
    max_tokens: int = Field(default=128, ge=1, le=8192, description="Longest reply in tokens")
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0, json_schema_extra=field_hints.advanced())
    top_k: int = Field(default=40, ge=0, le=1000, json_schema_extra=field_hints.advanced())
    repeat_penalty: float = Field(default=1.1, ge=0.5, le=2.0, json_schema_extra=field_hints.advanced())
    stop: list[str] = Field(
        default_factory=list, description="Extra stop sequences", json_schema_extra=field_hints.advanced()
    )
    chat_format: ChatFormatName | None = Field(
        default=None,
        description="Built-in chat template for models whose GGUF has none",
        json_schema_extra=field_hints.advanced(),
    )
    chat_template: str | None = Field(
        default=None,
        description="Jinja chat template; overrides the GGUF's and chat_format",
        json_schema_extra=field_hints.advanced(),
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        lt=2**32,
        description="Fixed sampling seed; empty = random",
        json_schema_extra=field_hints.advanced(),
    )
    load_timeout_s: float = Field(default=120.0, gt=0.0, le=3600.0, json_schema_extra=field_hints.advanced())

    @model_validator(mode="after")
    def _reply_fits(self) -> LlamaCppConfig:
        if self.max_tokens > self.n_ctx - 64:
            raise ValueError(f"max_tokens ({self.max_tokens}) must leave room for the prompt in n_ctx ({self.n_ctx})")
        return self

    @property
    def threads(self) -> int:
        return self.n_threads or physical_cores()


@dataclass(frozen=True)
class GenerationStats:
    """What the worker reports after each reply (telemetry puts it on the LLM span)."""

    request_id: int
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    kept_messages: int = 0
    dropped_messages: int = 0
    truncated: bool = False
    first_token_s: float | None = None
    total_s: float | None = None
    cancelled: bool = False
    finish_reason: str | None = None

    @classmethod
    def from_worker(cls, raw: dict[str, Any]) -> GenerationStats:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in raw.items() if k in known})


@dataclass(frozen=True)
class FittedPrompt:
    """The part of a conversation that is sent to the model, and its size."""

    messages: list[ChatMessage]
    prompt_tokens: int
    dropped_messages: int
    truncated: bool


@dataclass
class _WorkerProcess:
    """One spawned worker: its pipes, reader thread and the requests awaiting answers."""

    proc: Any
    tx: Any
    rx: Any
    cancel_upto: Any
    sinks: dict[int, Deliver] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    gone: threading.Event = field(default_factory=threading.Event)
    booted: threading.Event = field(default_factory=threading.Event)
    sender: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="llama-cpp-send")
    )
    reader: threading.Thread | None = None
    exitcode: int | None = None
    on_done: Callable[[dict[str, Any]], None] | None = None

    @classmethod
    def spawn(cls, on_done: Callable[[dict[str, Any]], None]) -> _WorkerProcess:
        ctx = mp.get_context("spawn")
        cancel_upto = ctx.RawValue("q", 0)
        child_rx, parent_tx = ctx.Pipe(duplex=False)
        parent_rx, child_tx = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=worker.serve, args=(child_rx, child_tx, cancel_upto), name="voxdesk-llama-cpp", daemon=True
        )
        proc.start()
        # Our copies of the child's ends must go, or we would never see EOF when it dies.
        child_rx.close()
        child_tx.close()
        self = cls(proc=proc, tx=parent_tx, rx=parent_rx, cancel_upto=cancel_upto, on_done=on_done)
        self.reader = threading.Thread(target=self._read_loop, name="llama-cpp-reader", daemon=True)
        self.reader.start()
        return self

    # -- receiving -----------------------------------------------------------
    def _read_loop(self) -> None:
        while True:
            try:
                msg = self.rx.recv()
            except (EOFError, OSError):
                break
            except Exception:  # an unreadable message: the stream is out of step
                break
            if msg[0] == worker.HELLO:
                self.booted.set()
                continue
            if msg[0] == worker.DONE and self.on_done is not None:
                self.on_done(msg[2])
            with self.lock:
                deliver = self.sinks.get(msg[1])
            if deliver is not None:
                deliver(msg)
        self.gone.set()
        with self.lock:
            sinks, self.sinks = list(self.sinks.values()), {}
        for deliver in sinks:
            deliver((_GONE,))

    def register(self, request_id: int, deliver: Deliver) -> None:
        with self.lock:
            if not self.gone.is_set():
                self.sinks[request_id] = deliver
                return
        deliver((_GONE,))

    def unregister(self, request_id: int) -> None:
        with self.lock:
            self.sinks.pop(request_id, None)

    # -- sending -------------------------------------------------------------
    def send(self, msg: Message) -> None:
        """Blocking send; runs on the single sender thread so requests keep their order."""
        try:
            self.tx.send(msg)
        except (OSError, ValueError):
            raise VoiceError(
                OP, ErrorCode.UNAVAILABLE, "the llama.cpp worker stopped — the next reply restarts it"
            ) from None

    def cancel(self, request_id: int) -> None:
        with self.lock:
            if self.cancel_upto.value < request_id:
                self.cancel_upto.value = request_id

    @property
    def alive(self) -> bool:
        return not self.gone.is_set() and self.proc.is_alive()

    def stop(self, timeout: float, *, polite: bool = True) -> None:
        """Ask politely (unless it is busy loading and cannot listen), then terminate,
        then kill; always reap the process."""
        self.cancel(1 << 62)
        if polite and self.proc.is_alive():
            with contextlib.suppress(Exception):
                self.sender.submit(self.send, (worker.SHUTDOWN, 0, None)).result(timeout=min(1.0, timeout))
            self.proc.join(timeout)
        for end in (self.proc.terminate, self.proc.kill):
            if not self.proc.is_alive():
                break
            end()
            self.proc.join(1.0)
        self.sender.shutdown(wait=False, cancel_futures=True)
        if self.reader is not None:
            self.reader.join(1.0)
        for conn in (self.tx, self.rx):
            with contextlib.suppress(OSError):
                conn.close()
        self.exitcode = self.proc.exitcode
        with contextlib.suppress(Exception):
            self.proc.close()


class LlamaCppLLM(LLMProvider):
    name = "llama-cpp"

    def __init__(self, config: LlamaCppConfig) -> None:
        self.config = config
        self._worker: _WorkerProcess | None = None
        self._start_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._model_path: Path | None = None
        self._model_info: dict[str, Any] = {}
        self._load_error: VoiceError | None = None
        self._crashed = False
        #: Set while closing: a model load in progress gives up at once (its worker is
        #: stopped) instead of holding the close, and the exit, until it finishes.
        self._closing = threading.Event()
        #: Stats of recent replies, newest last, cancelled ones included.
        self.recent_stats: deque[GenerationStats] = deque(maxlen=32)

    # -- life cycle ----------------------------------------------------------
    async def warmup(self) -> None:
        await self._ensure_started()

    async def aclose(self, within_s: float = 3.0) -> None:
        """Stop the worker process (a load in progress is abandoned), reaped within `within_s`."""
        self._closing.set()
        try:
            await run_blocking(self._stop_worker, within_s)
        finally:
            self._closing.clear()

    def _stop_worker(self, timeout: float = 3.0) -> None:
        with self._start_lock:
            w, self._worker = self._worker, None
        if w is not None:
            w.stop(timeout)

    @property
    def worker_pid(self) -> int | None:
        w = self._worker
        return w.proc.pid if w is not None and w.alive else None

    @property
    def model_info(self) -> dict[str, Any]:
        """Architecture, n_ctx, threads and which chat template is in use."""
        return dict(self._model_info)

    @property
    def last_stats(self) -> GenerationStats | None:
        return self.recent_stats[-1] if self.recent_stats else None

    @property
    def usage(self) -> TokenUsage | None:
        stats = self.last_stats
        return None if stats is None else TokenUsage(stats.prompt_tokens, stats.completion_tokens)

    @property
    def model_name(self) -> str | None:
        return self.config.model or None

    async def _ensure_started(self) -> _WorkerProcess:
        w = self._worker
        if w is not None and w.alive:
            return w
        return await run_blocking(self._start_sync)

    def _start_sync(self) -> _WorkerProcess:
        """Spawn + load, once, whichever event loop or thread asks first."""
        with self._start_lock:
            w = self._worker
            if w is not None and w.alive:
                return w
            if w is not None:
                self._crashed = True
                self._worker = None
                w.stop(1.0)
            path = self._resolve_model_path()
            check_gguf_header(path, self._fetch_hint())
            w = _WorkerProcess.spawn(self._record_stats)
            try:
                info = self._request_sync(w, worker.LOAD, self._load_spec(path), self.config.load_timeout_s)
            except VoiceError as exc:
                # A worker still loading reads no message until it is done: just end it.
                w.stop(1.0, polite=exc.code is not ErrorCode.CANCELLED)
                if exc.code is ErrorCode.CANCELLED:
                    raise
                if exc.code is ErrorCode.UNAVAILABLE and not w.booted.is_set():
                    raise VoiceError(
                        OP,
                        ErrorCode.UNAVAILABLE,
                        f"the llama.cpp worker process could not start (exit code {w.exitcode}) — "
                        "see the log; a script starting VoxDesk needs an `if __name__ == '__main__':` guard",
                    ) from None
                self._load_error = self._explain_load_error(exc, path)
                raise self._load_error from None
            except BaseException:
                w.stop(1.0)
                raise
            self._worker, self._model_path, self._model_info = w, path, info
            self._load_error, self._crashed = None, False
            return w

    def _load_spec(self, path: Path) -> dict[str, Any]:
        cfg = self.config
        return {
            "model_path": str(path),
            "n_ctx": cfg.n_ctx,
            "n_threads": cfg.threads,
            "seed": cfg.seed,
            "chat_format": cfg.chat_format,
            "chat_template": cfg.chat_template,
            "stop": list(cfg.stop),
        }

    def _explain_load_error(self, exc: VoiceError, path: Path) -> VoiceError:
        if exc.code is ErrorCode.UNAVAILABLE:  # the loader died in native code
            return VoiceError(
                OP,
                ErrorCode.MODEL_MISSING,
                f"llama.cpp crashed while loading {path} — the file is probably truncated or corrupt; "
                f"{self._fetch_hint()}",
            )
        if exc.code is ErrorCode.MODEL_MISSING:
            return VoiceError(
                OP,
                ErrorCode.MODEL_MISSING,
                f"{path} is not a usable model: {exc.message} — the file may be truncated or corrupt, "
                f"or a model llama.cpp does not support; {self._fetch_hint()}",
            )
        return exc

    def _fetch_hint(self) -> str:
        model = self.config.model if not _looks_like_path(self.config.model) else DEFAULT_MODEL_ID
        return f"run `voxdesk models fetch {model}` or pick another model in Settings"

    def _resolve_model_path(self) -> Path:
        cfg = self.config
        if _looks_like_path(cfg.model):
            path = Path(cfg.model).expanduser()
            if not path.is_file():
                raise VoiceError(OP, ErrorCode.MODEL_MISSING, f"model file not found at {path} — {self._fetch_hint()}")
            return path
        try:
            from app.store.models import resolve_model

            return Path(resolve_model(cfg.model, cfg.model_path))
        except VoiceError as exc:
            raise explain_damaged_package(cfg.model, exc, OP) from None
        except ImportError as exc:
            raise VoiceError(
                OP,
                ErrorCode.MODEL_MISSING,
                f"cannot look up model {cfg.model!r} ({exc}) — set the path of a .gguf file in Settings",
            ) from None
        except Exception as exc:
            raise as_voice_error(OP, exc) from None

    def _record_stats(self, raw: dict[str, Any]) -> None:
        self.recent_stats.append(GenerationStats.from_worker(raw))

    # -- requests ------------------------------------------------------------
    def _request_sync(self, w: _WorkerProcess, op: str, payload: Any, timeout: float) -> Any:
        """One request/answer round trip, from a worker thread (never the event loop)."""
        request_id = next(self._ids)
        answers: queue.SimpleQueue[Message] = queue.SimpleQueue()
        w.register(request_id, answers.put)
        try:
            w.sender.submit(w.send, (op, request_id, payload)).result(timeout)
            deadline = time.monotonic() + timeout
            while True:
                if self._closing.is_set():
                    raise VoiceError(OP, ErrorCode.CANCELLED, "closed while the model was loading")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise VoiceError(
                        OP,
                        ErrorCode.TIMEOUT,
                        f"the model did not load within {timeout:.0f} s — raise load_timeout_s or pick a smaller model",
                    )
                try:
                    msg = answers.get(timeout=min(left, 0.05))
                    break
                except queue.Empty:
                    continue
        finally:
            w.unregister(request_id)
        return _answer(msg)

    async def _request(self, op: str, payload: Any) -> Any:
        w = await self._ensure_started()
        request_id = next(self._ids)
        loop = asyncio.get_running_loop()
        answers: asyncio.Queue[Message] = asyncio.Queue()
        w.register(request_id, _post_to(loop, answers))
        try:
            await asyncio.wrap_future(w.sender.submit(w.send, (op, request_id, payload)))
            return _answer(await answers.get())
        finally:
            w.unregister(request_id)

    async def fit_messages(self, messages: list[ChatMessage], *, budget: int | None = None) -> FittedPrompt:
        """The messages a chat would send (system + newest turns) and their token count.

        `budget` defaults to what `chat` uses: n_ctx minus max_tokens.
        """
        _require_user_message(messages)
        if budget is None:
            budget = self.config.n_ctx - self.config.max_tokens
        raw = await self._request(worker.FIT, {"messages": _wire(messages), "budget": budget})
        return FittedPrompt(
            [ChatMessage(role, content) for role, content in raw["messages"]],
            raw["prompt_tokens"],
            raw["dropped_messages"],
            raw["truncated"],
        )

    async def count_tokens(self, messages: list[ChatMessage]) -> int:
        """Prompt size of `messages` with this model's template and tokenizer, untrimmed."""
        _require_user_message(messages)
        raw = await self._request(worker.FIT, {"messages": _wire(messages), "budget": None})
        return int(raw["prompt_tokens"])

    async def chat(self, messages: list[ChatMessage]) -> AsyncGenerator[str, None]:
        """Stream the reply. Cancelling the consumer (or closing this) stops the worker at once."""
        async for text in self._generate(messages, self.config.max_tokens):
            yield text

    async def prime(self, messages: list[ChatMessage]) -> None:
        """Evaluate `messages` (one token of reply) so the KV cache holds their start: the
        first real turn then evaluates only what follows the system prompt."""
        async for _ in self._generate(messages, 1):
            pass

    async def _generate(self, messages: list[ChatMessage], max_tokens: int) -> AsyncGenerator[str, None]:
        _require_user_message(messages)
        w = await self._ensure_started()
        cfg = self.config
        request_id = next(self._ids)
        loop = asyncio.get_running_loop()
        answers: asyncio.Queue[Message] = asyncio.Queue()
        w.register(request_id, _post_to(loop, answers))
        payload = {
            "messages": _wire(messages),
            "max_tokens": max_tokens,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "top_k": cfg.top_k,
            "repeat_penalty": cfg.repeat_penalty,
            "seed": cfg.seed,
        }
        finished = False
        try:
            await asyncio.wrap_future(w.sender.submit(w.send, (worker.CHAT, request_id, payload)))
            while True:
                msg = await answers.get()
                if msg[0] == worker.TOKEN:
                    yield msg[2]
                elif msg[0] == worker.DONE:
                    finished = True
                    return
                else:
                    finished = True
                    if msg[0] == _GONE:
                        self._crashed = True
                    _answer(msg)  # raises the matching VoiceError
        finally:
            w.unregister(request_id)
            if not finished:
                w.cancel(request_id)

    # -- health ----------------------------------------------------------------
    async def health(self) -> Health:
        t0 = time.perf_counter()

        def done(status: HealthStatus, detail: str) -> Health:
            return Health(status, detail, time.perf_counter() - t0)

        w = self._worker
        if w is not None and w.alive:
            info = self._model_info
            return done(
                HealthStatus.OK,
                f"{info.get('name') or self._model_path} loaded (n_ctx {info.get('n_ctx')}, "
                f"{info.get('n_threads')} threads, {info.get('template')})",
            )
        if self._load_error is not None:
            return done(HealthStatus.DOWN, self._load_error.message)
        try:
            path = await run_blocking(self._resolve_model_path)
            await run_blocking(check_gguf_header, path, self._fetch_hint())
        except VoiceError as exc:
            return done(HealthStatus.DOWN, exc.message)
        if self._crashed or w is not None:
            return done(HealthStatus.DEGRADED, WORKER_GONE)
        return done(HealthStatus.DEGRADED, f"{path.name} not loaded yet — it loads on the first reply")


def check_gguf_header(path: Path, hint: str) -> None:
    """Reject what is clearly not a GGUF before spending a process on it."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise VoiceError(OP, ErrorCode.MODEL_MISSING, f"cannot read model file {path} ({exc}) — {hint}") from None
    if magic != GGUF_MAGIC:
        raise VoiceError(
            OP,
            ErrorCode.MODEL_MISSING,
            f"{path} is not a GGUF model file (empty, truncated or another format) — {hint}",
        )


def _looks_like_path(model: str) -> bool:
    return model.lower().endswith(".gguf") or os.sep in model or "/" in model or model.startswith("~")


def _require_user_message(messages: list[ChatMessage]) -> None:
    if not any(m.role == "user" for m in messages):
        raise VoiceError(OP, ErrorCode.INVALID_CONFIG, "nothing to answer — the conversation has no user message")


def _wire(messages: list[ChatMessage]) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in messages]


def _post_to(loop: asyncio.AbstractEventLoop, answers: asyncio.Queue[Message]) -> Deliver:
    """Deliver from the reader thread into a queue owned by `loop`."""

    def deliver(msg: Message) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed: nobody is listening any more
            loop.call_soon_threadsafe(answers.put_nowait, msg)

    return deliver


def _answer(msg: Message) -> Any:
    """Payload of an `ok` answer; the matching VoiceError for anything else."""
    kind = msg[0]
    if kind == worker.OK:
        return msg[2]
    if kind == worker.ERROR:
        raise VoiceError(OP, msg[2], msg[3])
    if kind == _GONE:
        raise VoiceError(OP, ErrorCode.UNAVAILABLE, WORKER_GONE)
    raise VoiceError(OP, ErrorCode.PROVIDER_ERROR, f"unexpected answer {kind!r} from the llama.cpp worker")


def _create(config: LlamaCppConfig) -> LlamaCppLLM:
    return LlamaCppLLM(config)


# -- what this provider declares: its models (llama_cpp_models) and its self-check ---

#: How long the self-test waits for the llama.cpp probe process.
PROBE_TIMEOUT_S = 120.0


def _llama_probe(answers: Any) -> None:
    """Runs in a child process: importing llama.cpp can crash hard (SIGILL on old CPUs)."""
    try:
        import llama_cpp

        info = llama_cpp.llama_print_system_info().decode(errors="replace").split("|")[0].strip()
        answers.put(("ok", f"{llama_cpp.__version__} ({info or 'system info unavailable'})"))
    except BaseException as exc:
        answers.put(("FAIL", f"{type(exc).__name__}: {exc}"))


def check_llama_cpp() -> str:
    ctx = mp.get_context("spawn")  # works frozen too (freeze_support in the entry point)
    answers = ctx.Queue()
    proc = ctx.Process(target=_llama_probe, args=(answers,), daemon=True)
    proc.start()
    try:
        status, detail = answers.get(timeout=PROBE_TIMEOUT_S)
    except Exception:
        proc.kill()
        proc.join(5)
        raise RuntimeError(
            f"llama.cpp probe process died (exit code {proc.exitcode}) — the library may not "
            "support this CPU or is missing from the install"
        ) from None
    proc.join(10)
    if status != "ok":
        raise RuntimeError(detail)
    return str(detail)


SPEC = ProviderSpec(
    kind="llm",
    name="llama-cpp",
    factory=_create,
    config_model=LlamaCppConfig,
    models=MODELS,
    model_option=ModelOption("model", default=DEFAULT_MODEL_ID, path_option="model_path", path_suffixes=(".gguf",)),
    self_checks=(SelfCheck("llama-cpp", check_llama_cpp),),
    info=ProviderInfo(
        display_name="llama.cpp (local)",
        description="Local GGUF chat models through llama.cpp; works offline, streams tokens.",
        local=True,
        streaming=True,
        requires=("llama_cpp",),
        extra={"prompt_cache": True, "cancellable": True},
    ),
)
