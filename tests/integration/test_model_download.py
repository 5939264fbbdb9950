"""Downloading a language model, as the model manager and `voxdesk models fetch` do it:
a real GGUF (SmolLM2-135M, 98 MB) served by an HTTP server on 127.0.0.1, never a hub.

Full download with its hash checked, a cut connection resumed with HTTP Range (in the
same call and, after a failure, from the partial file on the next), a wrong hash deleted
and reported, a cancel that leaves a resumable partial file — and the downloaded model
then loads in llama.cpp, answers, and has its speed measured and listed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import threading
from collections.abc import Iterator

import pytest

from app.commands.models import models_command
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import ChatMessage, LLMProvider
from app.plugin.registry import get_registry
from app.store import model_speed
from app.store.models import cache_dir, fetch_model, model_status, resolve_model, verify_model
from app.store.paths import AppPaths, resolve_paths
from tests.support.gguf_server import (
    GGUF_NAME,
    SERVED_ID,
    SERVED_PROVIDER,
    ServeState,
    gguf_server,
    served_model,
    served_spec,
    smollm2_gguf,
    smollm2_sha256,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed"),
]

MB = 1_000_000


@pytest.fixture
def paths() -> AppPaths:
    return resolve_paths().ensure()


@pytest.fixture
def served() -> Iterator[tuple[str, ServeState]]:
    with gguf_server() as (url, state):
        yield url, state


@pytest.fixture
def model(served: tuple[str, ServeState]) -> Iterator[str]:
    """The served GGUF in the catalogue with its real size and SHA-256."""
    url, _ = served
    with served_model(served_spec(url, sha256=smollm2_sha256(), size=smollm2_gguf().stat().st_size)):
        yield SERVED_ID


def _part(paths: AppPaths) -> int:
    part = cache_dir(SERVED_ID, paths) / f"{GGUF_NAME}.part"
    return part.stat().st_size if part.exists() else 0


def test_full_download_checks_the_hash_then_the_model_loads_answers_and_is_timed(model, served, paths) -> None:
    _, state = served
    assert model_status(model, paths=paths).state == "not installed"
    seen: list[tuple[int, int | None]] = []
    result = fetch_model(model, paths=paths, progress=lambda d, t: seen.append((d, t)))

    size = smollm2_gguf().stat().st_size
    assert result.source == "cache" and result.downloaded[0].sha256 == smollm2_sha256()
    assert result.downloaded[0].size == size and not result.downloaded[0].resumed
    assert state.ranges == [None]  # one request, from the start
    assert seen[-1] == (size, size) and len(seen) > 100  # progress all along, not just at the end
    assert model_status(model, paths=paths).state == "installed"
    assert verify_model(model, paths=paths).ok
    assert not (cache_dir(model, paths) / f"{GGUF_NAME}.part").exists()

    # The copy in the cache is what llama.cpp loads, through the provider's own lookup by id.
    assert resolve_model(model, paths=paths) == cache_dir(model, paths) / GGUF_NAME
    llm = get_registry().create("llm", SERVED_PROVIDER, {"model": model, "max_tokens": 24, "temperature": 0.0})
    assert isinstance(llm, LLMProvider)

    async def ask() -> str:
        try:
            return "".join([d async for d in llm.chat([ChatMessage("user", "Say hello to me.")])])
        finally:
            await llm.aclose()

    reply = asyncio.run(ask())
    assert len(reply.split()) >= 2, reply

    record = model_speed.measure_speed(model, paths)
    assert record.tokens >= model_speed.MIN_TOKENS and record.words_per_s > 0 and record.first_token_s > 0
    assert model_speed.load_speeds(paths)[model] == record
    out = io.StringIO()
    assert models_command("list", [model], paths, out) == 0
    line = next(ln for ln in out.getvalue().splitlines() if ln.startswith(model))
    rate = record.phrase().removeprefix("about ").removesuffix(" words a second here")
    assert f"{rate} words/s" in line and "cache" in line and "250 MB" in line


def test_a_connection_cut_midway_is_resumed_with_a_range_request(model, served, paths) -> None:
    _, state = served
    state.cut_after, state.cuts = 30 * MB, 1
    result = fetch_model(model, paths=paths)
    assert result.downloaded[0].resumed
    assert state.ranges[0] is None and state.ranges[1] == f"bytes={30 * MB}-"
    assert result.downloaded[0].sha256 == smollm2_sha256()


def test_a_failed_download_resumes_from_its_partial_file_on_the_next_try(model, served, paths) -> None:
    _, state = served
    state.cut_after, state.cuts = 10 * MB, 4  # one cut more than one call retries
    with pytest.raises(VoiceError) as info:
        fetch_model(model, paths=paths)
    assert info.value.code is ErrorCode.UNAVAILABLE and "resumes" in info.value.message
    kept = _part(paths)
    assert 10 * MB <= kept < smollm2_gguf().stat().st_size  # each response got up to 10 MB further
    status = model_status(model, paths=paths)
    assert status.state == "partial" and status.partial_bytes == kept and "resume" in status.detail

    state.ranges.clear()
    result = fetch_model(model, paths=paths)
    assert state.ranges == [f"bytes={kept}-"]  # the rest only
    assert result.downloaded[0].resumed and result.downloaded[0].sha256 == smollm2_sha256()
    assert model_status(model, paths=paths).state == "installed"


def test_a_wrong_hash_is_deleted_and_reported(served, paths) -> None:
    url, _ = served
    with served_model(served_spec(url, sha256="0" * 64)):
        with pytest.raises(VoiceError) as info:
            fetch_model(SERVED_ID, paths=paths)
        assert "it was deleted" in info.value.message and "SHA-256" in info.value.message
        directory = cache_dir(SERVED_ID, paths)
        assert not (directory / GGUF_NAME).exists() and _part(paths) == 0
        assert model_status(SERVED_ID, paths=paths).state == "not installed"


def test_cancel_leaves_a_partial_file_the_next_download_resumes(model, served, paths) -> None:
    _, state = served
    cancel = threading.Event()

    def progress(done: int, total: int | None) -> None:
        if done >= 20 * MB:
            cancel.set()

    with pytest.raises(VoiceError) as info:
        fetch_model(model, paths=paths, progress=progress, cancel=cancel)
    assert info.value.code is ErrorCode.CANCELLED
    kept = _part(paths)
    assert 20 * MB <= kept < smollm2_gguf().stat().st_size
    assert model_status(model, paths=paths).state == "partial"

    state.ranges.clear()
    result = fetch_model(model, paths=paths)
    assert state.ranges == [f"bytes={kept}-"]
    assert result.downloaded[0].sha256 == smollm2_sha256()


def test_a_cached_copy_damaged_later_is_reported_as_damaged(model, paths) -> None:
    fetch_model(model, paths=paths)
    target = cache_dir(model, paths) / GGUF_NAME
    with target.open("r+b") as f:  # same size, other bytes: only the hash can tell
        f.seek(1000)
        f.write(b"\0" * 64)
    status = model_status(model, paths=paths)
    assert status.state == "damaged" and "SHA-256" in status.detail


def test_a_reply_too_short_to_time_is_refused_not_recorded(paths) -> None:
    from app.store.models import catalogue

    packaged = min(  # the smallest model a package ships (no download, no assembly)
        (s for s in catalogue().values() if s.kind == "llm" and s.package is not None and not s.package.parts),
        key=lambda s: s.approx_mb,
    ).id
    with pytest.raises(VoiceError) as info:
        model_speed.measure_speed(packaged, paths, options={"max_tokens": 4})
    assert "too short to time" in info.value.message
    assert model_speed.load_speeds(paths) == {}


def test_voxdesk_models_fetch_times_a_new_language_model_and_delete_removes_it(model, paths) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert models_command("fetch", [model], paths, out, err=err) == 0
    assert smollm2_sha256() in out.getvalue()
    assert "words a second here" in out.getvalue() and "measuring its speed" in err.getvalue()
    assert model in model_speed.load_speeds(paths)

    out = io.StringIO()
    assert models_command("delete", [model], paths, out) == 0
    assert f"{model}: deleted (98 MB freed)" in out.getvalue()
    assert model_status(model, paths=paths).state == "not installed"
    assert model not in model_speed.load_speeds(paths)  # a new download is timed again
    assert not cache_dir(model, paths).exists()


def test_a_model_shipped_with_voxdesk_is_never_deleted(paths) -> None:
    from app.store.models import catalogue

    packaged = [s for s in catalogue().values() if s.kind == "llm" and s.package is not None]
    assert packaged
    for spec in packaged:
        err = io.StringIO()
        assert models_command("delete", [spec.id], paths, io.StringIO(), err=err) == 1
        assert "ships with VoxDesk and cannot be deleted" in err.getvalue()
    assert all(model_status(s.id, paths=paths).state == "embedded" for s in packaged)
