"""Turn-taking of the real pipeline: end-of-turn delay and cut-offs per turn detector.

A labelled set (espeak-ng in ten voices and recorded people from pocketsphinx-testdata;
finished sentences, and sentences with a 0.5–1.2 s pause where they are unfinished) is
streamed at real-time pace through a real Session per detector, with the skills as the
LLM (app/commands/bench_turns.py). Held to issue 16's bars for smart-turn: complete
utterances end of speech → endpoint p50 ≤ 250 ms, incomplete ones cut off ≤ 5 %; the
table is printed whether it passes or not, with the machine's load (on a shared machine
the figures are noisy).

Not collected by the suite (about 15 minutes: two passes over the set). Run:
    .venv/bin/python -m pytest -s tests/bench/bench_turns.py
    VOXDESK_BENCH_SET="k=v;k=v" (e.g. conversation.turn_patience_ms=1800)
or `voxdesk bench --turn-taking [--json]`.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from app.commands.bench_turns import BARS, run_turn_bench, turn_table
from app.store.paths import AppPaths, resolve_paths
from app.store.settings import Settings, apply_overrides


@pytest.fixture(autouse=True)
def voxdesk_home() -> None:
    """The user's own home (replacing the suite's per-test one): models are assembled
    into its cache once, not into a fresh folder on every run."""


def turns_report() -> dict[str, Any]:
    items = [i for i in os.environ.get("VOXDESK_BENCH_SET", "").split(";") if i.strip()]
    settings = apply_overrides(Settings(), items) if items else Settings()
    with tempfile.TemporaryDirectory(prefix="voxdesk-bench-turns-") as tmp:
        paths = AppPaths(Path(tmp) / "config", Path(tmp) / "data", resolve_paths().cache_dir)
        return asyncio.run(run_turn_bench(settings, paths, Path(tmp)))


def test_the_turn_detector_ends_finished_sentences_soon_and_waits_on_unfinished_ones() -> None:
    report = turns_report()
    print("\n" + "\n".join(turn_table(report)))
    assert "smart-turn" in report["detectors"], report["skipped"]
    smart = report["detectors"]["smart-turn"]
    assert not smart["errors"], smart["errors"]
    assert smart["turn_detectors_used"] == ["smart-turn"], "the model did not decide (fell back to silence)"
    got = {
        "endpoint_p50_ms": smart["complete"]["endpoint_p50_ms"],
        "cut_off_share": smart["incomplete"]["cut_off_share"],
    }
    misses = [f"{k} {v} > {BARS[k]}" for k, v in got.items() if v is None or v > BARS[k]]
    assert not misses, misses


if __name__ == "__main__":
    print("\n".join(turn_table(turns_report())))
