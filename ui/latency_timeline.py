"""Turn timings → consecutive segments of the voice-to-voice path.

The engine's timings are not all durations (see `Session._turn` / `_reply`):
`vad_endpoint` (end of speech → endpoint) and `stt` (endpoint → transcript) are
durations, but `llm_first_token`, `tts_first_audio` and `playback_start` are points
measured from the start of the reply. Stacking them as they come would count the
same time several times, so the bar and table use the gaps between successive
points instead; those add up to the voice-to-voice time.
"""

from __future__ import annotations

from collections.abc import Mapping

#: (key, label, colour) of each segment, in the order they happen.
SEGMENTS: tuple[tuple[str, str, str], ...] = (
    ("vad_endpoint", "End of speech → endpoint", "#8b5cf6"),
    ("stt", "Endpoint → transcript", "#0ea5e9"),
    ("reply_setup", "Transcript → reply start", "#64748b"),
    ("llm_first_token", "Reply start → first token", "#f59e0b"),
    ("tts_first_audio", "First token → first audio", "#10b981"),
    ("playback_start", "First audio → playback", "#ef4444"),
)
#: Points on the reply's own clock (seconds since the reply started), in order.
REPLY_POINTS = ("llm_first_token", "tts_first_audio", "playback_start")


def segments(timings: Mapping[str, float], v2v: float | None) -> dict[str, float]:
    """Segment key → seconds; a segment is absent when its end point was not measured."""
    out: dict[str, float] = {}
    for key in ("vad_endpoint", "stt"):
        if (v := timings.get(key)) is not None and v >= 0:
            out[key] = float(v)
    previous = 0.0
    for key in REPLY_POINTS:
        point = timings.get(key)
        if point is None:
            continue
        # Clamped: `playback_start` is the sink's estimate of its first sample and can land
        # a hair before the moment the engine stamped the first audio.
        out[key] = max(0.0, float(point) - previous)
        previous = max(previous, float(point))
    if v2v is not None and "playback_start" in timings:
        # What the engine does between the transcript and the reply (history, speaker).
        rest = v2v - sum(out.values())
        out["reply_setup"] = max(0.0, rest)
    return out
