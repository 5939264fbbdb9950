"""What each stage is called in the window (Settings tabs, apply results, the health table)."""

from __future__ import annotations

STAGE_TITLES = {
    "vad": "Voice detection",
    "stt": "Speech-to-text",
    "llm": "Assistant",
    "tts": "Voice",
    "turn": "Turn detection",
    "echo": "Echo cancellation",
    "wake": "Wake word",
}


def stage_title(kind: str) -> str:
    """A stage's title; a third-party kind without one shows its id."""
    return STAGE_TITLES.get(kind, kind)
