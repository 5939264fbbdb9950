"""Memory stays bounded in long file-mode runs: reply audio nobody asked for is not kept."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from app.commands.converse import run_files
from app.engine.events import TurnFinished
from app.plugin.provider_api import AudioChunk, Health, HealthStatus, TTSProvider
from app.plugin.registry import ProviderInfo, get_registry
from app.store.paths import resolve_paths
from app.store.settings import Settings

TURNS = 60
WARM_UP = 10
#: Each reply is 5 s of 16 kHz float32 audio: 320 kB. Kept, 50 turns would add 16 MB.
REPLY_SAMPLES = 5 * 16_000
BOUND_MB = 4.0


class _Cfg(BaseModel):
    pass


class _LongVoice(TTSProvider):
    """A voice that answers instantly with a long reply (the engine, not synthesis, is measured)."""

    name = "long-voice"
    sample_rate = 16_000

    def __init__(self, cfg: _Cfg) -> None:
        pass

    #: RSS (MB) when each reply starts, after a full collection: what earlier turns left behind.
    rss: list[float] = []

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        gc.collect()
        self.rss.append(_rss_mb())
        rng = np.random.default_rng(len(text))
        yield AudioChunk((rng.standard_normal(REPLY_SAMPLES) * 0.1).astype(np.float32), self.sample_rate)

    async def health(self) -> Health:
        return Health(HealthStatus.OK, "ok")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _settings() -> Settings:
    reg = get_registry()
    if not reg.is_registered("tts", "long-voice"):
        reg.register("tts", "long-voice", _LongVoice, config_model=_Cfg, info=ProviderInfo("Long", "test double"))
    s = Settings()
    s.tts.provider, s.tts.fallbacks = "long-voice", []
    s.vad.provider, s.vad.fallbacks = "energy", []
    return s


def _run(texts: list[str], output: Path | None) -> list[TurnFinished]:
    _LongVoice.rss = []
    return asyncio.run(
        run_files(
            _settings(), resolve_paths().ensure(), inputs=[], texts=texts, output=output, realtime=False, timeout=600
        )
    )


def test_reply_audio_is_not_kept_without_output() -> None:
    turns = _run([f"what is {i} plus {i}" for i in range(TURNS)], None)
    rss = _LongVoice.rss
    assert len(turns) == TURNS and all(t.error is None for t in turns), [t.error for t in turns][:3]
    growth = rss[-1] - rss[WARM_UP - 1]
    print(
        f"RSS after turn {WARM_UP}: {rss[WARM_UP - 1]:.1f} MB, after turn {TURNS}: "
        f"{rss[-1]:.1f} MB (+{growth:.1f} MB over {TURNS - WARM_UP} turns)"
    )
    assert growth <= BOUND_MB, f"RSS grew {growth:.1f} MB over {TURNS - WARM_UP} turns"


def test_reply_audio_is_written_when_asked_for(tmp_path: Path) -> None:
    from app.audio.files import read_wav

    out = tmp_path / "reply.wav"
    turns = _run(["what is 2 plus 2", "what is 3 plus 3"], out)
    assert [t.error for t in turns] == [None, None]
    samples, rate = read_wav(out)
    assert rate == 16_000 and len(samples) == 2 * REPLY_SAMPLES
