"""The llama.cpp side of the `llama-cpp` provider, run in a child process.

Why a process and not a thread: native code that crashes (a corrupt model, an
out-of-memory abort) takes only this process down, the app reports it and starts a
new one; cancelling never waits on a C call to return; and `import llama_cpp`
(hundreds of MB mapped) never happens in the app itself.

Protocol — two one-way pipes of pickled tuples, plus one shared integer:

- parent → worker: ``(op, request_id, payload)`` with op ``load``, ``fit``, ``chat``
  or ``shutdown``; requests are served one at a time, in order.
- worker → parent: ``("hello", 0, pid)`` once at start (so a process that dies
  while booting is told apart from one that dies loading a model), then
  ``("ok", id, payload)``, ``("token", id, text)``,
  ``("done", id, stats)`` or ``("error", id, code, message)``.
- ``cancel_upto``: the parent raises it to a request id to stop that request (and
  every older one). The worker reads it between tokens, so a stop lands within one
  token's time without any message having to get through a busy pipe.

This module must stay importable without llama_cpp: the parent imports it for the
names below, only the child imports the library (inside `_LoadedModel.load`).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from app.memory import fix_mmap_threshold, limit_malloc_arenas
from app.plugin.priority import lower_this_process

# -- protocol names (shared with the parent) ---------------------------------
LOAD, FIT, CHAT, SHUTDOWN = "load", "fit", "chat", "shutdown"
HELLO, OK, TOKEN, DONE, ERROR = "hello", "ok", "token", "done", "error"

#: Built-in chat templates for GGUF files that carry none (base models, old
#: conversions). Keys are the values the `chat_format` setting accepts. Gemma folds
#: the system prompt into the first user turn, like Google's own template (the
#: library's "gemma" format drops the system prompt, which we cannot accept).
BUILTIN_TEMPLATES: dict[str, str] = {
    "gemma": (
        "{{ bos_token }}"
        "{% if messages[0]['role'] == 'system' %}"
        "{% set first_prefix = messages[0]['content'] + '\n\n' %}{% set turns = messages[1:] %}"
        "{% else %}{% set first_prefix = '' %}{% set turns = messages %}{% endif %}"
        "{% for m in turns %}"
        "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else 'user') + '\n' }}"
        "{{ (first_prefix if loop.first else '') + m['content'] | trim }}"
        "{{ '<end_of_turn>\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
    ),
    "chatml": (
        "{% for m in messages %}"
        "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
    "llama-3": (
        "{{ bos_token }}"
        "{% for m in messages %}"
        "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' }}"
        "{{ m['content'] | trim + '<|eot_id|>' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
    ),
    "plain": (
        "{% for m in messages %}"
        "{{ {'system': 'System', 'user': 'User', 'assistant': 'Assistant'}[m['role']] + ': ' }}"
        "{{ m['content'] | trim + '\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
    ),
}

#: Text stops per built-in template (end-of-generation tokens stop llama.cpp anyway).
BUILTIN_STOPS: dict[str, list[str]] = {
    "gemma": ["<end_of_turn>"],
    "chatml": ["<|im_end|>"],
    "llama-3": ["<|eot_id|>"],
    "plain": ["\nUser:", "\nSystem:"],
}

#: Template guessed from `general.architecture` when neither GGUF nor settings give one.
ARCHITECTURE_TEMPLATES: dict[str, str] = {
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "gemma3n": "gemma",
    "qwen2": "chatml",
    "qwen3": "chatml",
}

#: Tokens kept free for the template's wrapping when the newest message is cut.
_CUT_MARGIN_TOKENS = 16
#: Prompt tokens evaluated between two looks at the cancel flag. 64 evaluates as fast as
#: 128 here (Qwen2.5 0.5B, 2 cores: ~0.9 s for 256 tokens; 32 is ~15 % slower) and sees
#: a cancel (a discarded speculative reply, a barge-in) twice as soon.
_PREFILL_SLICE = 64


class CancelFlag(Protocol):
    value: int


class WorkerError(Exception):
    """An error the parent turns into a VoiceError with the same code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Turn:
    role: str
    content: str


@dataclass
class FitResult:
    messages: list[Turn]
    tokens: list[int]
    dropped: int
    truncated: bool


def normalize(turns: list[Turn]) -> list[Turn]:
    """Shape any history into one that strict templates (Gemma's) accept.

    Why: a barge-in leaves two user turns in a row, an app notice adds a system
    turn mid-way, a greeting puts the assistant first — none of which should make
    the next reply fail. So: all system text becomes one leading system turn,
    assistant turns before the first user turn go, same-role neighbours merge.
    """
    system = [t.content for t in turns if t.role == "system" and t.content.strip()]
    rest: list[Turn] = []
    for t in turns:
        if t.role == "system" or (t.role == "assistant" and not rest):
            continue
        if rest and rest[-1].role == t.role:
            rest[-1] = Turn(t.role, rest[-1].content + "\n" + t.content)
        else:
            rest.append(Turn(t.role, t.content))
    head = [Turn("system", "\n\n".join(system))] if system else []
    return head + rest


class _LoadedModel:
    """One llama.cpp model plus its chat template, reused across turns.

    Reusing the same `Llama` object is what makes the prompt cache work: llama.cpp
    keeps the KV cache of the previous prompt + reply, and `generate` only
    evaluates the part of the new prompt after the shared prefix.
    """

    def __init__(self, llm: Any, formatter: Any, stops: list[str], info: dict[str, Any]) -> None:
        self.llm = llm
        self.formatter = formatter
        self.stops = stops
        self.info = info
        self.bos_text: str = info["bos_token"]

    @classmethod
    def load(cls, spec: dict[str, Any]) -> _LoadedModel:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        t0 = time.perf_counter()
        try:
            llm = Llama(
                model_path=spec["model_path"],
                n_ctx=spec["n_ctx"],
                n_batch=min(512, spec["n_ctx"]),
                n_threads=spec["n_threads"],
                n_threads_batch=spec["n_threads"],
                seed=spec["seed"] if spec.get("seed") is not None else 0xFFFFFFFF,
                # Full-size sliding-window cache: without it llama.cpp cannot drop
                # the tail of the KV cache on SWA models (Gemma 3), and every turn
                # would re-evaluate the whole prompt.
                swa_full=True,
                verbose=False,
            )
        except Exception as exc:  # llama.cpp reports every load failure as ValueError
            raise WorkerError("MODEL_MISSING", f"llama.cpp could not load it ({exc})") from None

        model = llm._model
        eos_id, bos_id = llm.token_eos(), llm.token_bos()
        eos = model.token_get_text(eos_id) if eos_id != -1 else ""
        bos = model.token_get_text(bos_id) if bos_id != -1 else ""
        arch = str(llm.metadata.get("general.architecture", ""))

        template, stops = spec.get("chat_template"), list(spec.get("stop") or [])
        if template:
            source = "configured template"
            stops.append(eos)
        elif spec.get("chat_format"):
            name = spec["chat_format"]
            template, source = BUILTIN_TEMPLATES[name], f"built-in {name} template"
            stops += BUILTIN_STOPS[name]
        elif llm.metadata.get("tokenizer.chat_template"):
            template, source = llm.metadata["tokenizer.chat_template"], "template from the GGUF"
            stops.append(eos)
        else:
            name = ARCHITECTURE_TEMPLATES.get(arch, "plain")
            template = BUILTIN_TEMPLATES[name]
            source = f"built-in {name} template (the GGUF has none)"
            stops += BUILTIN_STOPS[name]
        try:
            formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        except Exception as exc:
            raise WorkerError(
                "INVALID_CONFIG",
                f"the chat template does not compile ({exc}) — fix chat_template in Settings",
            ) from None

        # Touch every weight once so the first real turn does not pay for paging
        # the memory-mapped file in.
        if bos_id != -1:
            llm.eval([bos_id])
        info = {
            "architecture": arch,
            "name": str(llm.metadata.get("general.name", "")),
            "n_ctx": llm.n_ctx(),
            "n_threads": spec["n_threads"],
            "template": source,
            "bos_token": bos,
            "load_s": time.perf_counter() - t0,
        }
        return cls(llm, formatter, [s for s in dict.fromkeys(stops) if s], info)

    # -- prompt building ---------------------------------------------------
    def tokens_for(self, turns: list[Turn]) -> list[int]:
        """Render with the chat template and tokenize exactly as generation will."""
        try:
            prompt = self.formatter(messages=[asdict(t) for t in turns]).prompt
        except Exception as exc:
            raise WorkerError(
                "PROVIDER_ERROR",
                f"the chat template rejected the conversation ({exc}) — set chat_format in Settings",
            ) from None
        add_bos = bool(self.bos_text) and not prompt.startswith(self.bos_text)
        return list(self.llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True))

    def fit(self, turns: list[Turn], budget: int) -> FitResult:
        """Keep the system prompt and the newest turns whose prompt fits `budget` tokens.

        Oldest turns go first; a turn list never starts with an assistant turn. If
        the newest user turn alone is too long, its oldest text is cut.
        """
        msgs = normalize(turns)
        head = msgs[:1] if msgs and msgs[0].role == "system" else []
        rest = msgs[len(head) :]
        if not any(t.role == "user" for t in rest):
            raise WorkerError("INVALID_CONFIG", "the conversation has no user message to answer")
        dropped, truncated = 0, False
        while True:
            tokens = self.tokens_for(head + rest)
            if len(tokens) <= budget:
                return FitResult(head + rest, tokens, dropped, truncated)
            if len(rest) > 1:
                rest.pop(0)
                dropped += 1
                while len(rest) > 1 and rest[0].role != "user":
                    rest.pop(0)
                    dropped += 1
                continue
            rest = [self._cut_oldest_text(rest[0], len(tokens) - budget)]
            truncated = True

    def _cut_oldest_text(self, turn: Turn, excess: int) -> Turn:
        toks = self.llm.tokenize(turn.content.encode("utf-8"), add_bos=False, special=False)
        keep = len(toks) - excess - _CUT_MARGIN_TOKENS
        if keep < _CUT_MARGIN_TOKENS:
            raise WorkerError(
                "INVALID_CONFIG",
                "the system prompt leaves no room for the conversation — shorten it or raise n_ctx in Settings",
            )
        text = self.llm.detokenize(toks[-keep:]).decode("utf-8", errors="ignore")
        return Turn(turn.role, text)

    # -- generation ----------------------------------------------------------
    def cached_prefix(self, tokens: list[int]) -> int:
        """How many leading prompt tokens are already in the KV cache."""
        held = self.llm.input_ids[: self.llm.n_tokens]
        n = 0
        for a, b in zip(held, tokens, strict=False):
            if a != b:
                break
            n += 1
        return min(n, len(tokens) - 1)

    def prefill(self, tokens: list[int], cached: int, cancelled: Callable[[], bool]) -> bool:
        """Evaluate the uncached prompt in slices; False if cancelled on the way.

        Why: llama.cpp evaluates a prompt in one uninterruptible call, so a barge-in
        during a long first prompt would keep the worker busy for seconds. Done in
        slices, the stop flag is seen within one slice; `generate` then finds all
        but the last token cached and only evaluates that one (for its logits).
        """
        llm = self.llm
        todo = tokens[:-1]
        if cached >= len(todo) or not llm._ctx.kv_cache_seq_rm(-1, cached, -1):
            return True  # nothing to do, or a model that cannot drop part of its cache
        llm.n_tokens = cached
        for start in range(cached, len(todo), _PREFILL_SLICE):
            if cancelled():
                return False
            llm.eval(todo[start : start + _PREFILL_SLICE])
        return True

    def chat(
        self,
        request_id: int,
        payload: dict[str, Any],
        send: Callable[[tuple[Any, ...]], None],
        cancelled: Callable[[], bool],
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        max_tokens = int(payload["max_tokens"])
        fitted = self.fit([Turn(r, c) for r, c in payload["messages"]], self.llm.n_ctx() - max_tokens)
        cached = self.cached_prefix(fitted.tokens)
        stats: dict[str, Any] = {
            "request_id": request_id,
            "prompt_tokens": len(fitted.tokens),
            "cached_tokens": cached,
            "kept_messages": len(fitted.messages),
            "dropped_messages": fitted.dropped,
            "truncated": fitted.truncated,
            "completion_tokens": 0,
            "first_token_s": None,
            "cancelled": False,
            "finish_reason": None,
        }
        if not self.prefill(fitted.tokens, cached, cancelled):
            stats.update(cancelled=True, total_s=time.perf_counter() - t0)
            return stats
        stream = self.llm.create_completion(
            prompt=fitted.tokens,
            max_tokens=max_tokens,
            temperature=payload["temperature"],
            top_p=payload["top_p"],
            top_k=payload["top_k"],
            repeat_penalty=payload["repeat_penalty"],
            stop=self.stops,
            seed=payload.get("seed"),
            stream=True,
        )
        chunks = 0
        try:
            for chunk in stream:
                if cancelled():
                    stats["cancelled"] = True
                    break
                chunks += 1
                choice = chunk["choices"][0]
                if choice.get("finish_reason"):
                    stats["finish_reason"] = choice["finish_reason"]
                if choice["text"]:
                    if stats["first_token_s"] is None:
                        stats["first_token_s"] = time.perf_counter() - t0
                    send((TOKEN, request_id, choice["text"]))
        finally:
            stream.close()
        stats["completion_tokens"] = max(0, self.llm.n_tokens - len(fitted.tokens)) or chunks
        stats["total_s"] = time.perf_counter() - t0
        return stats


def serve(rx: Connection, tx: Connection, cancel_upto: CancelFlag) -> None:
    """Child process entry point: serve requests until `shutdown` or the parent goes."""
    # The parent decides when this process ends; Ctrl+C in a terminal reaches the
    # whole process group and must not print a traceback from here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lower_this_process()  # generation must not make the window stutter (app.plugin.priority)
    limit_malloc_arenas()
    fix_mmap_threshold()  # per-token buffers must not fragment the heap (app.memory)
    model: _LoadedModel | None = None
    try:
        tx.send((HELLO, 0, os.getpid()))
    except OSError:
        return
    while True:
        try:
            msg = rx.recv()
        except (EOFError, OSError):
            return  # parent gone
        op, request_id, payload = msg
        if op == SHUTDOWN:
            return
        try:
            if op == LOAD:
                model = _LoadedModel.load(payload)
                tx.send((OK, request_id, {k: v for k, v in model.info.items() if k != "bos_token"}))
            elif model is None:
                raise WorkerError("UNAVAILABLE", "no model loaded")
            elif op == FIT:
                budget = payload["budget"] if payload["budget"] is not None else 1 << 62
                fitted = model.fit([Turn(r, c) for r, c in payload["messages"]], budget)
                tx.send(
                    (
                        OK,
                        request_id,
                        {
                            "messages": [(t.role, t.content) for t in fitted.messages],
                            "prompt_tokens": len(fitted.tokens),
                            "dropped_messages": fitted.dropped,
                            "truncated": fitted.truncated,
                        },
                    )
                )
            elif op == CHAT:

                def cancelled(rid: int = request_id) -> bool:
                    return cancel_upto.value >= rid

                if cancelled():
                    tx.send((DONE, request_id, {"request_id": request_id, "cancelled": True}))
                    continue
                stats = model.chat(request_id, payload, tx.send, cancelled)
                tx.send((DONE, request_id, stats))
            else:
                raise WorkerError("PROVIDER_ERROR", f"unknown request {op!r}")
        except (BrokenPipeError, ConnectionResetError):
            return  # parent gone mid-reply
        except WorkerError as exc:
            _send_quietly(tx, (ERROR, request_id, exc.code, exc.message))
        except Exception as exc:
            _send_quietly(tx, (ERROR, request_id, "PROVIDER_ERROR", f"{type(exc).__name__}: {exc}"))


def _send_quietly(tx: Connection, msg: tuple[Any, ...]) -> None:
    try:
        tx.send(msg)
    except OSError:
        pass
