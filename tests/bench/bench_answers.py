"""Answers check with the real default assistant: skills in front, the default LLM behind.

Asks the 32 factual questions and 5 open prompts of app/commands/bench_questions.py as
text through the engine (each in a new conversation) and holds them to issue 14's bars:
at least 80 % answered right, open replies at most two sentences on average. Its
figures are printed whether it passes or not.

Not collected by the suite (CI stays fast; the check takes about half a minute with
the embedded model on an idle 2-core machine, more when the machine is busy). Run:
    .venv/bin/python -m pytest -s tests/bench/bench_answers.py
    .venv/bin/python -m tests.bench.bench_answers        # the same, without pytest
or `voxdesk bench --answers`. VOXDESK_BENCH_SET="llm.options.model_path=/tmp/m.gguf;..."
adds `--set` overrides (semicolon-separated), e.g. to try another model.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from app.commands.bench_answers import RIGHT_BAR, SENTENCES_BAR, answers_text, run_answers
from app.store.paths import AppPaths, resolve_paths
from app.store.settings import Settings, apply_overrides


def bench_settings() -> Settings:
    items = [i for i in os.environ.get("VOXDESK_BENCH_SET", "").split(";") if i.strip()]
    return apply_overrides(Settings(), items) if items else Settings()


@pytest.fixture(autouse=True)
def voxdesk_home() -> None:
    """The user's own home (replacing the suite's per-test one): the embedded model is
    assembled into its model cache once, not into a fresh folder on every run."""


def answers_report() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="voxdesk-bench-answers-") as tmp:
        root = Path(tmp)
        # Settings and history are scratch; the model cache is the user's.
        paths = AppPaths(root / "config", root / "data", resolve_paths().cache_dir)
        return asyncio.run(run_answers(bench_settings(), paths))


def test_everyday_questions_are_answered_right_and_briefly() -> None:
    report = answers_report()
    print("\n" + "\n".join(answers_text(report)))
    f, o = report["factual"], report["open"]
    errors = [r["error"] for r in report["rows"] if r["error"]] + [x["error"] for x in o["replies"] if x["error"]]
    assert not errors, errors
    assert f["asked"] >= 30
    assert f["share_right"] >= RIGHT_BAR, [(r["question"], r["reply"]) for r in f["failed"]]
    assert o["length"]["mean_sentences"] <= SENTENCES_BAR, [x["reply"] for x in o["replies"]]


if __name__ == "__main__":
    print("\n".join(answers_text(answers_report())))
