"""`voxdesk bench --wake-word`: does each wake-word model wake on its phrase, and only on it?

Per provider and per phrase it ships, a stream of the phrase said by voices other than
the reply voice — espeak-ng in ten voices and speeds, and the reply voice's own engine
(the `tts` stage) with other speeds and variation settings — each clean and again under white or pink noise at
10 dB SNR, with quiet between them. The stream goes through the detector in the
engine's 512-sample frames, with reset() after each detection as the engine does.
Reported: the share detected, the delay from the phrase's end (known from where it was
placed) to the detection, and how far `ended_ago_s` is off.

Then ≥ 10 minutes of speech without the phrase: recorded people from Debian's
pocketsphinx-testdata (LibriVox and others, looped at varied levels), conversation
spoken by espeak-ng, and VoxDesk's own typical replies in its reply voice (the `tts` stage
as configured).
Reported: false wakes per 10 minutes (and any from the replies), and the detector's
CPU-seconds per second of audio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.audio.files import load_wav
from app.commands.bench_machine import machine
from app.commands.bench_speech import espeak_program, speak_with_espeak
from app.commands.bench_stats import percentile_ms
from app.commands.bench_turns import HUMAN_DIR, VOICES, room_noise, trim_silence
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import SAMPLE_RATE, WakeWordDetector
from app.plugin.registry import get_registry
from app.store.paths import AppPaths
from app.store.settings import Settings

PROVIDERS = ("micro-wake-word", "open-wake-word")
#: The engine's capture frame.
FRAME = 512
#: The reply voice's engine (one voice is installed) with settings other than the reply's
#: (1.0, 0.667, 0.8 for the default voice): (speaking_rate, noise_scale, noise_w_scale),
#: each applied where the engine's options have it.
TTS_VARIANTS: tuple[tuple[float, float, float], ...] = (
    (1.0, 1.0, 1.0),
    (0.8, 0.9, 1.0),
    (1.25, 0.4, 0.5),
    (0.9, 1.2, 1.2),
    (1.1, 0.2, 0.3),
    (0.7, 0.667, 0.8),
)
SNR_DB = 10.0
#: Noise before and after the speech in a noisy copy.
NOISE_LEAD_S, NOISE_TAIL_S = 2.0, 0.5
#: A detection counts for a phrase if it comes this soon before its end (a model may
#: decide on the last syllable) … or this long after.
EARLY_S, LATE_S = 0.4, 1.5
#: Quiet between utterances, and noise-floor level under everything (dBFS RMS).
GAP_S, FLOOR_DBFS = 2.0, -60.0
NEGATIVE_MINUTES = 10.0
#: The synthesised speech's active level: a microphone at talking distance, no clipping under noise.
SPEECH_DBFS = -20.0
#: The sensitivity the providers are measured at (their default).
SENSITIVITY = 0.5
BARS = {"detected_percent": 90.0, "false_wakes_per_10_min": 1.0, "reply_false_wakes": 0, "cpu_percent": 2.0}

#: Everyday talk without a wake phrase, spoken by espeak-ng.
CONVERSATION = (
    "Did you see the game last night? It went to extra time.",
    "I think we should leave around eight, the traffic gets bad after that.",
    "Can you pass me the salt, please?",
    "My sister is coming over for dinner on Sunday.",
    "The printer on the second floor is jammed again.",
    "Okay, let me know when you're done with the report.",
    "Hey, have you got a minute? I need a hand with this box.",
    "We ran out of milk, could you pick some up on the way home?",
    "The meeting moved to Thursday afternoon at three.",
    "I'm not sure the bus runs this late on a weekday.",
    "Honestly, the first season was better than the second one.",
    "Alex said the new café by the station is really good.",
    "Let's try the recipe with a little less sugar next time.",
    "Where did I put my keys? They were on the table a minute ago.",
    "It's supposed to rain all weekend, so bring an umbrella.",
    "Okay, now turn left at the lights and then it's the second house.",
    "Hey you, long time no see! How have you been?",
    "My computer keeps restarting whenever I open the browser.",
    "Nobody knows who ate the last piece of cake.",
    "Can we book a table for four at seven thirty?",
)
#: Typical replies of VoxDesk, in its own reply voice: it must never wake itself.
REPLIES = (
    "It's twenty past three in the afternoon.",
    "Okay, I set a timer for ten minutes.",
    "Today is Tuesday, the first of December.",
    "Twelve plus thirty is forty-two.",
    "Sure. Boil the egg for about seven minutes for a firm yolk.",
    "I can't check the weather without an internet connection, but you can add a weather service in settings.",
    "Here's a quick one: why did the scarecrow win an award? Because he was outstanding in his field.",
    "Your timer is done.",
    "I've added milk to your shopping list.",
    "Okay, I'll remind you to call your mother at six.",
    "Paris is the capital of France, with about two million people in the city itself.",
    "Sorry, I didn't catch that. Could you say it again?",
    "Hello! How can I help you today?",
    "The meeting is at three on Thursday.",
    "A kilometre is about zero point six two miles.",
)


@dataclass(frozen=True, slots=True)
class Utterance:
    audio: np.ndarray  # 16 kHz float32: the speech, trimmed (clean), or in noise that starts before it
    voice: str  # who says it: "espeak-ng en-gb 155 wpm", "reply engine rate 0.8 …", "pocketsphinx-testdata …"
    noise: str | None = None  # "white 10 dB SNR"; None when clean
    tail: int = 0  # samples of noise after the speech ends

    @property
    def speech_end(self) -> int:
        """Samples from the start of `audio` to the end of the speech."""
        return len(self.audio) - self.tail


@dataclass(frozen=True, slots=True)
class Fired:
    at_s: float  # end of the audio fed when the detection came
    ended_ago_s: float
    probability: float


@dataclass
class Layout:
    """A stream and where each utterance in it lies, in samples."""

    audio: np.ndarray
    spans: list[tuple[int, int]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # each piece's source, where it matters


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise (equal power per octave), like a fan or distant traffic, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0
    pink = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    return (pink / (np.sqrt(np.mean(pink**2)) or 1.0)).astype(np.float32)


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0


def active_level(speech: np.ndarray, floor_db: float = 30.0) -> float:
    """RMS of the speech while it is active: over the 10 ms frames within `floor_db` of the
    loudest (a simple form of ITU-T P.56), so the gaps between words do not count."""
    n = len(speech) // 160
    if n == 0:
        return rms(speech)
    power = np.mean(np.square(speech[: n * 160].reshape(n, 160), dtype=np.float64), axis=1)
    active = power[power >= power.max() * 10 ** (-floor_db / 10)]
    return float(np.sqrt(np.mean(active))) if len(active) else 0.0


def at_level(audio: np.ndarray, dbfs: float = SPEECH_DBFS) -> np.ndarray:
    """Speech scaled to `dbfs` active level, as a microphone at talking distance would give it."""
    return (audio * (10 ** (dbfs / 20) / (active_level(audio) or 1.0))).astype(np.float32)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float, lead: int, tail: int) -> np.ndarray:
    """`speech` with `lead` and `tail` samples of quiet around it, all under `noise` scaled so
    that the speech's active level is `snr_db` above the noise's RMS."""
    padded = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(tail, np.float32)])
    scale = active_level(speech) / (10 ** (snr_db / 20) * (rms(noise) or 1.0))
    return np.clip(padded + noise[: len(padded)] * scale, -1.0, 1.0).astype(np.float32)


def noisy_copies(utterances: Sequence[Utterance], rng: np.random.Generator, snr_db: float = SNR_DB) -> list[Utterance]:
    """Each utterance again under noise (white and pink in turn). The noise starts
    `NOISE_LEAD_S` before the speech, as a steady background would (the models' front ends
    adapt to it), and ends `NOISE_TAIL_S` after."""
    lead, tail = int(NOISE_LEAD_S * SAMPLE_RATE), int(NOISE_TAIL_S * SAMPLE_RATE)
    out = []
    for i, u in enumerate(utterances):
        kind, make = (("white", white_noise), ("pink", pink_noise))[i % 2]
        noise = make(lead + len(u.audio) + tail, rng)
        mixed = mix_at_snr(u.audio, noise, snr_db, lead, tail)
        out.append(Utterance(mixed, u.voice, f"{kind} {snr_db:.0f} dB SNR", tail))
    return out


def lay_out(pieces: Sequence[np.ndarray], rng: np.random.Generator, gap_s: float = GAP_S) -> Layout:
    """Pieces one after another with `gap_s` of noise floor before each and after the last."""
    gap = room_noise(gap_s, rng, FLOOR_DBFS)
    chunks, spans, at = [gap], [], len(gap)
    for p in pieces:
        chunks += [p, room_noise(gap_s, rng, FLOOR_DBFS)]
        spans.append((at, at + len(p)))
        at += len(p) + len(chunks[-1])
    return Layout(np.concatenate(chunks).astype(np.float32), spans)


def feed(detector: WakeWordDetector, audio: np.ndarray, frame: int = FRAME) -> tuple[list[Fired], float]:
    """The stream through `detector` frame by frame, as the engine feeds it: reset() after
    each detection. The detections, and the CPU-seconds the process used meanwhile (all
    threads: TFLite may run its own; nothing else works during the feed)."""
    fired: list[Fired] = []
    cpu = 0.0
    for start in range(0, len(audio), frame):
        chunk = audio[start : start + frame]
        t0 = time.process_time()
        hit = detector.process(chunk)
        if hit is not None:
            detector.reset()
        cpu += time.process_time() - t0
        if hit is not None:
            fired.append(Fired((start + len(chunk)) / SAMPLE_RATE, hit.ended_ago_s, hit.probability))
    return fired, cpu


def match(fired: Sequence[Fired], ends_s: Sequence[float]) -> tuple[list[Fired | None], list[Fired]]:
    """For each phrase end, the first detection within [end - EARLY_S, end + LATE_S] (or None);
    and the detections that belong to no phrase (false wakes)."""
    used: set[int] = set()
    per_phrase: list[Fired | None] = []
    for end in ends_s:
        found = None
        for i, f in enumerate(fired):
            if i not in used and end - EARLY_S <= f.at_s <= end + LATE_S:
                found = f
                used.add(i)
                break
        per_phrase.append(found)
    return per_phrase, [f for i, f in enumerate(fired) if i not in used]


def source_of(at_s: float, layout: Layout, labels: Sequence[str]) -> str:
    """Which piece of a stream a detection at `at_s` fell in (or just after)."""
    at = int(at_s * SAMPLE_RATE)
    for (start, end), label in zip(layout.spans, labels, strict=True):
        if start <= at <= end + int(LATE_S * SAMPLE_RATE):
            return label
    return "quiet"


def positives_summary(utterances: Sequence[Utterance], hits: Sequence[Fired | None], ends_s: Sequence[float]) -> dict:
    found = [(u, h, e) for u, h, e in zip(utterances, hits, ends_s, strict=True) if h is not None]
    latency = [h.at_s - e for _, h, e in found]
    error = [(h.at_s - h.ended_ago_s) - e for _, h, e in found]
    groups: dict[str, list[bool]] = {}
    for u, h in zip(utterances, hits, strict=True):
        key = ("espeak-ng" if u.voice.startswith("espeak-ng") else "reply engine") + (" noisy" if u.noise else " clean")
        groups.setdefault(key, []).append(h is not None)
    return {
        "utterances": len(utterances),
        "detected": len(found),
        "detected_percent": round(100 * len(found) / len(utterances), 1) if utterances else None,
        "by_group": {k: f"{sum(v)}/{len(v)}" for k, v in groups.items()},
        "latency_ms": {"p50": percentile_ms(latency, 0.5), "p95": percentile_ms(latency, 0.95)},
        # How far the detector's own `ended_ago_s` put the phrase's end from the truth.
        "ended_ago_error_ms": {
            "p50": percentile_ms([abs(x) for x in error], 0.5),
            "p95": percentile_ms([abs(x) for x in error], 0.95),
        },
        "missed": [_who(u) for u, h in zip(utterances, hits, strict=True) if h is None],
    }


def _who(u: Utterance) -> str:
    return f"{u.voice}, {u.noise}" if u.noise else u.voice


def meets(result: dict[str, Any]) -> dict[str, bool]:
    """Each bar, met or not, for one provider and phrase."""
    neg = result["negatives"]
    return {
        "detected": (result["positives"]["detected_percent"] or 0.0) >= BARS["detected_percent"],
        "false_wakes": neg["per_10_min"] <= BARS["false_wakes_per_10_min"],
        "replies": neg["by_source"].get("replies", 0) <= BARS["reply_false_wakes"],
        "cpu": neg["cpu_percent_of_one_core"] <= BARS["cpu_percent"],
    }


# --- the corpora (real synthesisers and recordings) -------------------------------------------------


async def _espeak(text: str, voice: tuple[str, int], out: Path, program: str) -> np.ndarray:
    path = await speak_with_espeak(text, out, program, voice=voice, pad=False)
    return at_level(trim_silence(await asyncio.to_thread(load_wav, path, SAMPLE_RATE)))


class ReplyEngine:
    """The `tts` stage's provider, as configured or with a variant's settings, resampled to
    16 kHz and trimmed."""

    def __init__(self, provider: str, options: dict[str, Any]) -> None:
        self.provider, self.options = provider, dict(options)
        self._fields = set(get_registry().spec("tts", provider).config_model.model_fields)
        self._voices: dict[tuple[float, float, float] | None, Any] = {}

    def variant_options(self, variant: tuple[float, float, float] | None) -> dict[str, Any]:
        """The options for `variant` (None: the reply voice itself), where the engine has them."""
        cfg = dict(self.options)
        wanted: dict[str, Any] = {"sentence_pause_s": 0.0}
        if variant is not None:
            wanted |= dict(zip(("speaking_rate", "noise_scale", "noise_w_scale"), variant, strict=True))
        cfg |= {k: v for k, v in wanted.items() if k in self._fields}
        return cfg

    async def say(self, text: str, variant: tuple[float, float, float] | None = None) -> np.ndarray:
        import soxr

        if variant not in self._voices:
            self._voices[variant] = get_registry().create("tts", self.provider, self.variant_options(variant))
        tts = self._voices[variant]
        parts = [c async for c in tts.synthesize(text)]
        if not parts:
            return np.zeros(0, np.float32)
        audio = np.concatenate([c.samples for c in parts])
        return at_level(trim_silence(soxr.resample(audio, parts[0].sample_rate, SAMPLE_RATE).astype(np.float32)))

    async def aclose(self) -> None:
        for tts in self._voices.values():
            await tts.aclose()


async def phrase_utterances(
    text: str, out_dir: Path, engine: ReplyEngine, rng: np.random.Generator, program: str
) -> list[Utterance]:
    clean = [
        Utterance(await _espeak(text, v, out_dir / f"p{i}.wav", program), f"espeak-ng {v[0]} {v[1]} wpm")
        for i, v in enumerate(VOICES)
    ]
    for rate, noise, noise_w in TTS_VARIANTS:
        audio = await engine.say(text, (rate, noise, noise_w))
        clean.append(Utterance(audio, f"reply engine {engine.provider} rate {rate} noise {noise}/{noise_w}"))
    return clean + noisy_copies(clean, rng)


def human_recordings(human_dir: Path = HUMAN_DIR) -> list[tuple[str, np.ndarray]]:
    """Every recording of pocketsphinx-testdata (WAV, and the raw 16 kHz 16-bit ones)."""
    found = []
    for path in sorted(human_dir.rglob("*")):
        if path.suffix == ".wav":
            found.append((str(path.relative_to(human_dir)), load_wav(path, SAMPLE_RATE)))
        elif path.suffix == ".raw":
            pcm = np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0
            found.append((str(path.relative_to(human_dir)), pcm))
    if not found:
        raise VoiceError(
            "bench.wake",
            ErrorCode.MODEL_MISSING,
            f"no recordings in {human_dir} — install them (Debian/Ubuntu: sudo apt install pocketsphinx-testdata)",
        )
    return found


def looped(recordings: Sequence[tuple[str, np.ndarray]], seconds: float, rng: np.random.Generator) -> list[Utterance]:
    """The recordings in turn, each at a random level (−12…+3 dB), until `seconds` are filled."""
    out: list[Utterance] = []
    total, i = 0.0, 0
    while total < seconds:
        name, audio = recordings[i % len(recordings)]
        gain = 10 ** (rng.uniform(-12, 3) / 20)
        out.append(Utterance(np.clip(audio * gain, -1, 1).astype(np.float32), f"pocketsphinx-testdata {name}"))
        total += len(audio) / SAMPLE_RATE + GAP_S
        i += 1
    return out


async def negative_corpus(
    out_dir: Path, engine: ReplyEngine, rng: np.random.Generator, program: str, minutes: float
) -> tuple[list[Utterance], list[str]]:
    """Speech without a wake phrase, ≥ `minutes` long with the gaps: (utterances, their source)."""
    third = minutes * 60 / 3
    talk: list[Utterance] = []
    said = 0.0
    while said < third:
        i = len(talk)
        voice = VOICES[i % len(VOICES)]
        audio = await _espeak(CONVERSATION[i % len(CONVERSATION)], voice, out_dir / f"c{i}.wav", program)
        talk.append(Utterance(audio, f"espeak-ng {voice[0]} {voice[1]} wpm"))
        said += len(audio) / SAMPLE_RATE + GAP_S
    replies: list[Utterance] = []
    said = 0.0
    while said < third:
        audio = await engine.say(REPLIES[len(replies) % len(REPLIES)])
        replies.append(Utterance(audio, f"reply voice ({engine.provider})"))
        said += len(audio) / SAMPLE_RATE + GAP_S
    people = looped(human_recordings(), third, rng)
    utterances = people + talk + replies
    return utterances, ["people"] * len(people) + ["conversation"] * len(talk) + ["replies"] * len(replies)


# --- running -----------------------------------------------------------------------------------------


def make_detector(provider: str, phrase: str, sensitivity: float = SENSITIVITY) -> WakeWordDetector:
    """The detector for any phrase its package ships, offered or not (the bench says why not)."""
    spec = get_registry().spec("wake", provider)
    config = spec.config_model.model_construct(phrase=phrase, sensitivity=sensitivity)
    detector = spec.factory(config)
    assert isinstance(detector, WakeWordDetector)
    return detector


@dataclass(frozen=True, slots=True)
class Options:
    providers: tuple[str, ...] = PROVIDERS
    minutes: float = NEGATIVE_MINUTES
    seed: int = 17
    sensitivity: float = SENSITIVITY
    #: The reply voice: the `tts` stage's provider and options.
    tts: tuple[str, dict[str, Any]] = ("", {})


async def bench_phrase(
    provider: str, phrase: str, positives: Sequence[Utterance], negatives: Layout, options: Options
) -> dict[str, Any]:
    """One detector on its phrase's stream, then on the stream without it (`negatives.labels`
    names each piece's source)."""
    detector = make_detector(provider, phrase, options.sensitivity)
    await detector.warmup()
    try:
        layout = lay_out([u.audio for u in positives], np.random.default_rng(options.seed))
        ends_s = [(start + u.speech_end) / SAMPLE_RATE for (start, _), u in zip(layout.spans, positives, strict=True)]
        fired, _ = await asyncio.to_thread(feed, detector, layout.audio)
        hits, stray = match(fired, ends_s)
        detector.reset()
        neg_fired, cpu = await asyncio.to_thread(feed, detector, negatives.audio)
    finally:
        await detector.aclose()
    seconds = len(negatives.audio) / SAMPLE_RATE
    by_source: dict[str, int] = {}
    for f in neg_fired:
        src = source_of(f.at_s, negatives, negatives.labels)
        by_source[src] = by_source.get(src, 0) + 1
    return {
        "positives": positives_summary(positives, hits, ends_s) | {"false_wakes_between": len(stray)},
        "negatives": {
            "minutes": round(seconds / 60, 1),
            "false_wakes": len(neg_fired),
            "per_10_min": round(len(neg_fired) * 600 / seconds, 2),
            "by_source": by_source,
            "cpu_seconds_per_audio_second": round(cpu / seconds, 5),
            "cpu_percent_of_one_core": round(100 * cpu / seconds, 2),
        },
    }


async def run_wake_bench(
    out_dir: Path, options: Options = Options(), progress: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    registry = get_registry()
    rng = np.random.default_rng(options.seed)
    program = espeak_program()
    if not options.tts[0]:
        raise VoiceError("bench.wake", ErrorCode.INVALID_CONFIG, "no reply voice: set the tts stage's provider")
    engine = ReplyEngine(*options.tts)
    started_on = machine()
    t0 = time.monotonic()
    try:
        progress("synthesising speech without a wake phrase …")
        negatives, labels = await negative_corpus(out_dir, engine, rng, program, options.minutes)
        neg_layout = lay_out([u.audio for u in negatives], rng)
        neg_layout.labels = labels
        spoken: dict[str, list[Utterance]] = {}
        report: dict[str, Any] = {}
        for provider in options.providers:
            info = registry.info("wake", provider)
            shipped: dict[str, str] = dict(info.extra["shipped_phrases"])
            offered = list(info.extra["phrases"])
            rows: dict[str, Any] = {}
            for phrase, text in shipped.items():
                if text not in spoken:
                    progress(f"synthesising “{text}” …")
                    spoken[text] = await phrase_utterances(text, out_dir, engine, rng, program)
                progress(f"{provider} {phrase} …")
                row = await bench_phrase(provider, phrase, spoken[text], neg_layout, options)
                rows[phrase] = {"offered": phrase in offered, "text": text, **row, "meets": {}}
                rows[phrase]["meets"] = meets(rows[phrase])
            report[provider] = rows
    finally:
        await engine.aclose()
    neg_sources = {s: sum(lbl == s for lbl in labels) for s in dict.fromkeys(labels)}
    return {
        "machine": started_on,
        "bars": BARS,
        "sensitivity": options.sensitivity,
        "reply_voice": options.tts[0],
        "frame_samples": FRAME,
        "negative_utterances": neg_sources,
        "negative_minutes": round(len(neg_layout.audio) / SAMPLE_RATE / 60, 1),
        "wall_s": round(time.monotonic() - t0, 1),
        "providers": report,
    }


def _tick(ok: bool) -> str:
    return "✓" if ok else "✗"


def wake_table(report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    lines = [
        f"{m['cpu']} ({m['cores']} cores, load {m['load_average_1m']} at the start); {report['wall_s']} s",
        f"false wakes over {report['negative_minutes']} min of speech without the phrase "
        f"({', '.join(f'{n} {s}' for s, n in report['negative_utterances'].items())} utterances)",
        f"bars: detected ≥ {BARS['detected_percent']:.0f} %, ≤ {BARS['false_wakes_per_10_min']:.0f} false wake "
        f"per 10 min and none from the replies, detector ≤ {BARS['cpu_percent']:.0f} % of one core",
        "",
        f"{'provider':<16}{'phrase':<13}{'offered':<9}{'detected':>14}  {'latency p50/p95':>16}  "
        f"{'ended_ago err':>14}  {'false/10 min':>13}  {'replies':>8}  {'CPU %':>7}",
    ]
    for provider, rows in report["providers"].items():
        for phrase, r in rows.items():
            pos, neg, ok = r["positives"], r["negatives"], r["meets"]
            lat, err = pos["latency_ms"], pos["ended_ago_error_ms"]
            det = f"{pos['detected']}/{pos['utterances']} {pos['detected_percent']:.0f}% {_tick(ok['detected'])}"
            lines.append(
                f"{provider:<16}{phrase:<13}{'yes' if r['offered'] else 'no':<9}{det:>14}  "
                f"{_num(lat['p50'])}/{_num(lat['p95']):<6} ms  {_num(err['p50'])}/{_num(err['p95']):<5} ms  "
                f"{neg['per_10_min']:>11.1f} {_tick(ok['false_wakes'])}  "
                f"{neg['by_source'].get('replies', 0):>6} {_tick(ok['replies'])}  "
                f"{neg['cpu_percent_of_one_core']:>5.2f} {_tick(ok['cpu'])}"
            )
    lines.append("")
    for provider, rows in report["providers"].items():
        for phrase, r in rows.items():
            pos = r["positives"]
            lines.append(f"{provider} {phrase}: {', '.join(f'{k} {v}' for k, v in pos['by_group'].items())}")
    return lines


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}"


def wake_word_command(args: argparse.Namespace, paths: AppPaths, settings: Settings) -> int:
    def progress(msg: str) -> None:
        if not args.json:
            print(msg, file=sys.stderr, flush=True)

    async def run() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="voxdesk-bench-wake-") as tmp:
            tts = settings.stage("tts")
            return await run_wake_bench(Path(tmp), Options(tts=(tts.provider, dict(tts.options))), progress=progress)

    report = asyncio.run(run())
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print("\n".join(wake_table(report)))
    offered_ok = all(
        all(r["meets"].values()) for rows in report["providers"].values() for r in rows.values() if r["offered"]
    )
    return 0 if offered_ok else 1
