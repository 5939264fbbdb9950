"""`voxdesk bench --stt`: which offline speech recognizer should be the default?

Recorded human speech with its transcripts, never synthetic voices:
- Debian's pocketsphinx-testdata: all five LibriVox clips (Sense and Sensibility, transcripts
  from `librivox/transcription`), the five `cards` clips (`cards/cards.transcription`), and
  `goforward.raw` / `something.raw` (16 kHz raw; their words are those of pocketsphinx's own
  tests and of `goforward.gram`, as the package ships no transcription for them);
- alsa-utils' channel-name recordings (`/usr/share/sounds/alsa/Front_Left.wav` …, 48 kHz,
  the words from the file name; `Noise.wav` has none).

Per model: the word error rate over all clips (text normalised the same way on both sides:
case, punctuation, hyphens, numbers as words, Mr/Mrs/Dr spelt out), the final decode
(`transcribe()` of the whole clip, after one untimed decode) and the STT latency after the endpoint: the clip streamed
through `stream()` at real-time pace in the engine's 32 ms chunks, partials and all, then
200 ms of silence (the turn detector's least pause) and the end of input; the time from there
to the final transcript is what the turn waits for. Models run one after another on each clip,
so they share whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.audio.files import load_wav
from app.commands.bench_machine import load_average, machine
from app.commands.bench_stats import percentile_ms
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import SAMPLE_RATE, STTProvider
from app.plugin.registry import get_registry
from app.store.paths import AppPaths
from app.store.settings import Settings

HUMAN_DIR = Path("/usr/share/pocketsphinx/test/data")
ALSA_DIR = Path("/usr/share/sounds/alsa")
ALSA_NAMES = (
    "Front_Left",
    "Front_Center",
    "Front_Right",
    "Rear_Left",
    "Rear_Center",
    "Rear_Right",
    "Side_Left",
    "Side_Right",
)
#: The raw clips' words (pocketsphinx's tests; `goforward.gram` has "go forward ten meters").
RAW_CLIPS = {"goforward.raw": "go forward ten meters", "something.raw": "go somewhere and do something"}
CHUNK = 512  # the engine's 32 ms capture frame
TAIL_S = 0.2  # silence before the endpoint: the turn detector's least pause (turn_min_silence_ms 160)
#: (label, provider, options): tiny.en is today's default; whisper-base with a language and with
#: `auto` (detection needs Whisper's full 30 s window); Moonshine base.
MODELS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("whisper tiny.en", "faster-whisper", {"model": "whisper-tiny.en"}),
    ("whisper base (en)", "faster-whisper", {"model": "whisper-base", "language": "en"}),
    ("whisper base (auto)", "faster-whisper", {"model": "whisper-base", "language": None}),
    ("moonshine base", "moonshine", {}),
)
BASELINE = "whisper tiny.en"
BARS = {"default_wer_percent": 8.0}


@dataclass(frozen=True)
class Clip:
    name: str
    group: str  # "librivox", "commands" (cards, goforward, something) or "alsa"
    reference: str
    audio: np.ndarray

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def _transcripts(path: Path) -> dict[str, str]:
    """pocketsphinx's `<s> words </s> (id)` lines, by id."""
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"\s*(?:<s>)?(.*?)(?:</s>)?\s*\(([^)]+)\)\s*$", line)
        if m:
            out[m.group(2).strip()] = m.group(1).strip()
    return out


def _raw(path: Path) -> np.ndarray:
    return (np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0).astype(np.float32)


def load_clips(human_dir: Path = HUMAN_DIR, alsa_dir: Path = ALSA_DIR) -> list[Clip]:
    """Every clip of the set, 16 kHz mono; NOT_FOUND naming the package when one is missing."""
    needed = [human_dir / "librivox" / "transcription", human_dir / "cards" / "cards.transcription"]
    needed += [human_dir / n for n in RAW_CLIPS] + [alsa_dir / f"{n}.wav" for n in ALSA_NAMES]
    missing = [p for p in needed if not p.is_file()]
    if missing:
        raise VoiceError(
            "bench.stt",
            ErrorCode.NOT_FOUND,
            f"{missing[0]} is missing — install the recordings (Debian/Ubuntu: "
            "sudo apt install pocketsphinx-testdata alsa-utils)",
        )
    clips = []
    for name, text in sorted(_transcripts(human_dir / "librivox" / "transcription").items()):
        clips.append(Clip(f"librivox/{name}", "librivox", text, load_wav(human_dir / "librivox" / f"{name}.wav")))
    for name, text in sorted(_transcripts(human_dir / "cards" / "cards.transcription").items()):
        clips.append(Clip(f"cards/{name}", "commands", text, load_wav(human_dir / "cards" / f"{name}.wav")))
    for name, text in RAW_CLIPS.items():
        clips.append(Clip(name, "commands", text, _raw(human_dir / name)))
    for name in ALSA_NAMES:
        clips.append(Clip(f"alsa/{name}", "alsa", name.replace("_", " ").lower(), load_wav(alsa_dir / f"{name}.wav")))
    return clips


# -- text normalisation and word error rate ------------------------------------------

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
_ONES += "seventeen eighteen nineteen"
ONES = _ONES.split()
TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint", "ok": "okay"}
#: British spellings as American ones (the references are American; a model may write either).
SPELLINGS = {"metre": "meter", "metres": "meters", "centre": "center", "colour": "color", "favourite": "favorite"}


def number_words(n: int) -> str:
    """0 ≤ n < 1,000,000 in words, as people say them ("one hundred twenty three")."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    if n < 1_000_000:
        rest = n % 1000
        return number_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + number_words(rest))
    return " ".join(ONES[int(d)] for d in str(n))  # digit by digit


def normalise(text: str) -> list[str]:
    """Words to compare: lower case, no punctuation or apostrophes, hyphens and slashes as
    spaces, digits as words (10 → ten, 1,000 → one thousand), Mr/Mrs/Dr spelt out, British
    spellings as American ones (metres → meters)."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,000 → 1000
    text = re.sub(r"[-/–—]", " ", text)
    text = re.sub(r"\d+", lambda m: f" {number_words(int(m.group()))} ", text)
    text = re.sub(r"[^a-z' ]", " ", text).replace("'", "")
    return [SPELLINGS.get(w, ABBREVIATIONS.get(w, w)) for w in text.split()]


def word_errors(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Substitutions + deletions + insertions (Levenshtein distance over words)."""
    prev = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        cur = [i] + [0] * len(hypothesis)
        for j, h in enumerate(hypothesis, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer_percent(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Word error rate over (reference, hypothesis) pairs: all errors / all reference words."""
    words = sum(len(normalise(r)) for r, _ in pairs)
    if not words:
        return None
    errors = sum(word_errors(normalise(r), normalise(h)) for r, h in pairs)
    return round(100 * errors / words, 1)


# -- measuring -------------------------------------------------------------------------


async def _paced(audio: np.ndarray) -> AsyncIterator[np.ndarray]:
    """`audio` then TAIL_S of silence, in 32 ms chunks at real-time pace."""
    full = np.concatenate([audio, np.zeros(int(TAIL_S * SAMPLE_RATE), np.float32)])
    start = time.monotonic()
    for i in range(0, len(full), CHUNK):
        due = start + i / SAMPLE_RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        yield full[i : i + CHUNK]
    await asyncio.sleep(max(0.0, start + len(full) / SAMPLE_RATE - time.monotonic()))


async def after_endpoint(stt: STTProvider, audio: np.ndarray) -> tuple[float, str, int]:
    """(seconds from the end of input to the final transcript, its text, partials seen)."""
    ended: list[float] = []

    async def audio_then_endpoint() -> AsyncIterator[np.ndarray]:
        async for chunk in _paced(audio):
            yield chunk
        ended.append(time.perf_counter())

    partials, final = 0, ""
    async for t in stt.stream(audio_then_endpoint()):
        if t.is_final:
            final = t.text
            break
        partials += 1
    return time.perf_counter() - ended[0], final, partials


def _rss_mb() -> float | None:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 1e6
    except (OSError, IndexError, ValueError):
        return None


async def _load(label: str, provider: str, options: dict[str, Any]) -> tuple[STTProvider, dict[str, Any]]:
    stt = get_registry().create("stt", provider, options)
    assert isinstance(stt, STTProvider)
    before, t = _rss_mb(), time.perf_counter()
    await stt.warmup()
    after = _rss_mb()
    grew = round(after - before) if after is not None and before is not None else None
    return stt, {
        "label": label,
        "provider": provider,
        "options": options,
        "load_s": round(time.perf_counter() - t, 2),
        "rss_growth_mb": grew,
    }


def _summary(row: dict[str, Any], clips: list[Clip]) -> None:
    finals, streamed = row.pop("_finals"), row.pop("_stream")
    pairs = [(c.reference, finals[c.name]["text"]) for c in clips]
    row["wer_percent"] = wer_percent(pairs)
    row["wer_by_group"] = {
        g: wer_percent([(c.reference, finals[c.name]["text"]) for c in clips if c.group == g])
        for g in dict.fromkeys(c.group for c in clips)
    }
    decode = [finals[c.name]["s"] for c in clips]
    row["decode_ms"] = {"p50": percentile_ms(decode, 0.5), "p90": percentile_ms(decode, 0.9)}
    row["decode_ms_per_audio_s"] = round(1000 * sum(decode) / sum(c.seconds for c in clips), 1)
    if streamed:
        waits = [streamed[c.name]["s"] for c in clips]
        row["after_endpoint_ms"] = {"p50": percentile_ms(waits, 0.5), "p90": percentile_ms(waits, 0.9)}
        row["streamed_wer_percent"] = wer_percent([(c.reference, streamed[c.name]["text"]) for c in clips])
    row["clips"] = [
        {
            "clip": c.name,
            "reference": c.reference,
            "text": finals[c.name]["text"],
            "errors": word_errors(normalise(c.reference), normalise(finals[c.name]["text"])),
            "words": len(normalise(c.reference)),
            "decode_ms": round(finals[c.name]["s"] * 1000, 1),
            **({"after_endpoint_ms": round(streamed[c.name]["s"] * 1000, 1)} if streamed else {}),
        }
        for c in clips
    ]


async def run_stt_bench(
    models: Sequence[tuple[str, str, dict[str, Any]]] = MODELS, *, stream: bool = True, clips: list[Clip] | None = None
) -> dict[str, Any]:
    started_on = machine()
    clips = clips if clips is not None else load_clips()
    loaded: list[tuple[STTProvider, dict[str, Any]]] = []
    try:
        for label, provider, options in models:
            loaded.append(await _load(label, provider, options))
        for stt, row in loaded:
            row["_finals"], row["_stream"] = {}, {}
            await stt.transcribe(clips[0].audio)  # untimed: first-run allocations are not the model's speed
        for clip in clips:  # every model on a clip before the next clip: they share the machine's state
            for stt, row in loaded:
                t = time.perf_counter()
                text = await stt.transcribe(clip.audio)
                row["_finals"][clip.name] = {"text": text, "s": time.perf_counter() - t}
        if stream:
            for clip in clips:
                for stt, row in loaded:
                    wait, text, partials = await after_endpoint(stt, clip.audio)
                    row["_stream"][clip.name] = {"text": text, "s": wait, "partials": partials}
    finally:
        for stt, _row in loaded:
            await stt.aclose()
    rows = [row for _stt, row in loaded]
    for row in rows:
        _summary(row, clips)
    return {
        "machine": started_on,
        "load_average_1m_after": load_average(),
        "clips": len(clips),
        "audio_s": round(sum(c.seconds for c in clips), 1),
        "reference_words": sum(len(normalise(c.reference)) for c in clips),
        "bars": BARS,
        "models": rows,
        "suggested_default": suggest(rows),
    }


def suggest(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The most accurate model within the WER bar; ties and latency are the reader's call (the
    voice-to-voice bars are measured by `voxdesk bench`, not here)."""
    ok = [r for r in rows if r["wer_percent"] is not None and r["wer_percent"] <= BARS["default_wer_percent"]]
    if not ok:
        return None
    base = next((r for r in rows if r["label"] == BASELINE), None)
    best = min(ok, key=lambda r: (r["wer_percent"], (r.get("after_endpoint_ms") or r["decode_ms"])["p50"] or 0))
    extra = None
    if base is not None and "after_endpoint_ms" in best and "after_endpoint_ms" in base:
        extra = round(best["after_endpoint_ms"]["p50"] - base["after_endpoint_ms"]["p50"], 1)
    return {"label": best["label"], "wer_percent": best["wer_percent"], "after_endpoint_p50_ms_over_tiny_en": extra}


def _ms(d: dict[str, float | None] | None) -> str:
    if not d:
        return "—"
    return "/".join("—" if d[k] is None else f"{d[k]:.0f}" for k in ("p50", "p90"))


def stt_table(report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    groups = list(report["models"][0]["wer_by_group"]) if report["models"] else []
    lines = [
        f"{m['cpu']} ({m['cores']} cores, load {m['load_average_1m']} at the start, "
        f"{report['load_average_1m_after']} at the end)",
        f"{report['clips']} recorded clips, {report['audio_s']} s, {report['reference_words']} words",
        "",
        f"{'model':<22}{'WER %':>7}"
        + "".join(f"{g:>10}" for g in groups)
        + f"{'decode p50/p90':>16}{'after endpoint':>16}{'load s':>8}{'RSS +MB':>9}",
    ]
    for r in report["models"]:
        lines.append(
            f"{r['label']:<22}{r['wer_percent']:>7}"
            + "".join(f"{r['wer_by_group'][g]:>10}" for g in groups)
            + f"{_ms(r['decode_ms']):>16}{_ms(r.get('after_endpoint_ms')):>16}{r['load_s']:>8}"
            + f"{r['rss_growth_mb'] if r['rss_growth_mb'] is not None else '?':>9}"
        )
    lines.append("(latency in ms, p50/p90 over the clips; after endpoint = streamed, partials running)")
    s = report["suggested_default"]
    bar = report["bars"]["default_wer_percent"]
    if s is None:
        lines.append(f"no model meets the default's WER bar (≤ {bar:.0f} %)")
    else:
        extra = s["after_endpoint_p50_ms_over_tiny_en"]
        lines.append(
            f"most accurate within the WER bar (≤ {bar:.0f} %): {s['label']} ({s['wer_percent']} %)"
            + ("" if extra is None else f", {extra:+.0f} ms after the endpoint against {BASELINE} (p50)")
        )
    lines.append("")
    for r in report["models"]:
        wrong = [c for c in r["clips"] if c["errors"]]
        lines.append(f"{r['label']}: {len(wrong)} of {len(r['clips'])} clips with errors")
        lines += [f"  {c['clip']}: {c['text']!r} ({c['errors']}/{c['words']})" for c in wrong]
    return lines


def stt_command(args: argparse.Namespace, paths: AppPaths, settings: Settings) -> int:
    del paths, settings  # the models are the bench's own, not the configured stage
    report = asyncio.run(run_stt_bench())
    if getattr(args, "json", False):
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print("\n".join(stt_table(report)))
    return 0 if report["suggested_default"] is not None else 1


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-stream", action="store_true", help="skip the streamed after-endpoint pass")
    args = p.parse_args(argv)
    report = asyncio.run(run_stt_bench(stream=not args.no_stream))
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print("\n".join(stt_table(report)))
    return 0 if report["suggested_default"] is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
