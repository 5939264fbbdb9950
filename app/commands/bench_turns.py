"""`voxdesk bench --turn-taking`: how soon, and how rightly, the engine decides a user has finished.

A labelled set of utterances in voices other than the reply voice: espeak-ng in ten
voices and speeds, and recorded people from Debian's pocketsphinx-testdata. "complete"
ones are questions and commands said in one go; "incomplete" ones carry a 0.5–1.2 s
pause where the sentence is plainly unfinished ("Set a timer for … five minutes"),
made by speaking the halves apart (or cutting a recording at a word gap) and laying
room-level noise between them. Every utterance has lead-in noise and trailing silence
longer than the patience on an unfinished sentence, so the endpointer always decides.

Each turn detector (`turn.provider`) hears the whole set through a real Session at
real-time pace, with the local skills as the LLM (no model: the measure is the
turn-taking). Per detector: end of speech → endpoint on complete utterances, the share
of incomplete ones cut off before the user finished, the STT wait after the endpoint,
CPU-seconds per turn and the CPU of listening to a quiet room.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from app.audio.files import WavFileSource, load_wav, write_wav
from app.commands.bench_machine import cpu_seconds, machine
from app.commands.bench_run import bench_session
from app.commands.bench_speech import espeak_program, speak_with_espeak
from app.commands.bench_stats import percentile_ms
from app.commands.converse import TurnCollector
from app.engine.events import SpeechEnded, TurnFinished
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import SAMPLE_RATE
from app.store.paths import AppPaths
from app.store.settings import Settings, apply_overrides

Label = Literal["complete", "incomplete"]

#: espeak-ng voices and words a minute, taken in turn (Piper's "joe" replies; none of these is it).
VOICES: tuple[tuple[str, int], ...] = (
    ("en-us", 140),
    ("en-gb", 155),
    ("en-us+f3", 165),
    ("en+m3", 130),
    ("en-gb-scotland", 150),
    ("en-029", 145),
    ("en-us+f4", 175),
    ("en-gb-x-rp+m5", 135),
    ("en-us-nyc", 160),
    ("en-gb+f2", 170),
)
#: The pause inside an incomplete utterance, taken in turn: a hesitation, not an end.
PAUSES_S = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2)
#: Lead-in before speech; trailing quiet longer than any patience (1.5–2 s) so the endpointer always decides.
LEAD_S, TAIL_S = 0.5, 2.2
#: Room noise under everything (and in the pauses), RMS in dBFS.
NOISE_DBFS = -60.0
#: The quiet room the idle CPU is measured in.
IDLE_S = 20.0

COMPLETE_TEXTS = (
    "What time is it?",
    # Twenty, not five: a timer that rang during the run would close the microphone (half duplex) mid-utterance.
    "Set a timer for twenty minutes.",
    "What's the weather in Paris?",
    "Remind me to call mum.",
    "What is the date today?",
    "Turn off the lights in the kitchen.",
    "What is twelve plus thirty?",
    "Play some music.",
    "How long does it take to boil an egg?",
    "Add milk to my shopping list.",
    "What day is it tomorrow?",
    "Stop the music.",
    "Call my sister.",
    "What is fifteen percent of two hundred?",
    "Wake me up at seven tomorrow.",
    "Tell me a joke.",
    "How far away is the moon?",
    "Open the calendar.",
    "What is seventeen times twenty three?",
    "Send a message to Anna.",
)

#: (first half, second half, words of the second half a transcript that heard it contains).
#: The first half ends with a comma so espeak keeps the voice up, as a person pausing mid-sentence does.
INCOMPLETE_TEXTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("What's the weather in,", "Paris?", ("paris",)),
    ("Set a timer for,", "twenty minutes.", ("minute", "twenty", "20")),
    ("Remind me to,", "call mum.", ("call", "mum", "mom")),
    ("What is twelve plus,", "thirty?", ("thirty", "30", "42")),
    ("Turn off the lights in the,", "kitchen.", ("kitchen",)),
    ("Add eggs to my,", "shopping list.", ("shopping", "list")),
    ("Can you tell me how long it takes to,", "boil an egg?", ("boil", "egg")),
    ("Wake me up at,", "seven tomorrow.", ("seven", "7", "tomorrow")),
    ("Send a message to,", "Anna saying I'm late.", ("anna", "late")),
    ("What is the capital of,", "Japan?", ("japan",)),
    ("How many days are there in,", "February?", ("february",)),
    ("Call my,", "sister.", ("sister",)),
    ("Read me the,", "news headlines.", ("news", "headline")),
    ("Set an alarm for,", "half past six.", ("half", "past", "six", "6")),
    ("What is fifteen percent of,", "two hundred?", ("hundred", "200", "30")),
    ("Tell me a joke about,", "cats.", ("cat",)),
    ("Translate good morning into,", "French.", ("french",)),
    ("Remind me to buy,", "bread and butter.", ("bread", "butter")),
)


@dataclass(frozen=True)
class Recording:
    """One file of pocketsphinx-testdata: what is said, and where it may be cut into an unfinished part."""

    path: str
    text: str
    #: A word gap after which the sentence is plainly unfinished (seconds), or None.
    split_s: float | None = None
    #: Words of the part after the gap, as Whisper writes them (it mishears "clubs" as "close").
    tail_words: tuple[str, ...] = ()


HUMAN_DIR = Path("/usr/share/pocketsphinx/test/data")
_LIBRIVOX = "librivox/sense_and_sensibility_01_austen_64kb-0"
RECORDINGS = (
    Recording("cards/001.wav", "ten of clubs"),
    Recording("cards/002.wav", "four queen of clubs", 1.22, ("club", "close", "cloth")),
    Recording("cards/003.wav", "seven of clubs"),
    Recording("cards/004.wav", "five five"),
    Recording("cards/005.wav", "eight of spades four of clubs seven of hearts", 1.67, ("seven", "7", "heart")),
    Recording(
        f"{_LIBRIVOX}870.wav",
        "and mister john dashwood had then leisure to consider how much there might be prudently in his power "
        "to do for them",
        2.23,
        ("leisure", "consider", "prudent", "power"),
    ),
    Recording(f"{_LIBRIVOX}880.wav", "he was not an ill disposed young man"),
    Recording(
        f"{_LIBRIVOX}890.wav",
        "unless to be rather cold hearted and rather selfish is to be ill disposed",
        0.62,
        ("rather", "cold", "selfish", "heart"),
    ),
    Recording(
        f"{_LIBRIVOX}920.wav",
        "had he married a more amiable woman he might have been made still more respectable than he was",
        2.54,
        ("might", "respectable", "still"),
    ),
    Recording(
        f"{_LIBRIVOX}930.wav", "he might even have been made amiable himself", 1.10, ("made", "amiable", "himself")
    ),
    Recording("goforward.raw", "go forward ten meters"),
    Recording("numbers.raw", "thirty three four six nine two"),
    Recording("something.raw", "go somewhere and do something"),
    Recording("tidigits/dhd.2934z.raw", "two nine three four zero"),
)


@dataclass(frozen=True)
class Utterance:
    name: str
    label: Label
    text: str
    #: Who speaks it: "espeak-ng en-gb 155 wpm" or "pocketsphinx-testdata cards/002.wav".
    voice: str
    wav: Path
    #: The pause inside an incomplete utterance, and where its second half starts in the file.
    pause_s: float | None = None
    second_at_s: float | None = None
    tail_words: tuple[str, ...] = ()


# -- audio ------------------------------------------------------------------------------
def room_noise(seconds: float, rng: np.random.Generator, dbfs: float = NOISE_DBFS) -> np.ndarray:
    """Steady noise at `dbfs` RMS: the quiet of a room, which a VAD hears as no speech."""
    n = round(seconds * SAMPLE_RATE)
    return (rng.standard_normal(n) * 10 ** (dbfs / 20)).astype(np.float32)


def trim_silence(audio: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    """Without the leading and trailing quiet espeak-ng puts around a piece, so pauses are exact."""
    loud = np.flatnonzero(np.abs(audio) > threshold)
    return audio[loud[0] : loud[-1] + 1] if len(loud) else audio[:0]


def lay_out(pieces: Sequence[np.ndarray], pause_s: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Lead-in, the pieces with `pause_s` of room noise between them, trailing quiet, noise under all.

    Returns the audio and where the last piece starts (seconds)."""
    parts: list[np.ndarray] = [np.zeros(round(LEAD_S * SAMPLE_RATE), np.float32)]
    last_at = 0.0
    for i, piece in enumerate(pieces):
        if i:
            parts.append(np.zeros(round(pause_s * SAMPLE_RATE), np.float32))
        last_at = sum(len(p) for p in parts) / SAMPLE_RATE
        parts.append(piece.astype(np.float32))
    parts.append(np.zeros(round(TAIL_S * SAMPLE_RATE), np.float32))
    audio = np.concatenate(parts)
    return np.clip(audio + room_noise(len(audio) / SAMPLE_RATE, rng), -1.0, 1.0), last_at


def quietest_near(audio: np.ndarray, at_s: float, within_s: float = 0.06, frame_s: float = 0.01) -> int:
    """The sample index of the quietest 10 ms frame within `within_s` of `at_s`: the word gap to cut at."""
    frame = round(frame_s * SAMPLE_RATE)
    lo = max(0, round((at_s - within_s) * SAMPLE_RATE))
    hi = min(len(audio) - frame, round((at_s + within_s) * SAMPLE_RATE))
    if hi <= lo:
        raise ValueError(f"{at_s} s is outside a {len(audio) / SAMPLE_RATE:.2f} s recording")
    starts = range(lo, hi + 1, frame // 2)
    energy = [float(np.mean(audio[s : s + frame] ** 2)) for s in starts]
    return starts[int(np.argmin(energy))] + frame // 2


def load_recording(path: Path) -> np.ndarray:
    """A test recording as 16 kHz mono float32 (.raw files there are 16 kHz 16-bit little-endian)."""
    if path.suffix == ".raw":
        return (np.fromfile(path, "<i2").astype(np.float32) / 32768.0).astype(np.float32)
    return load_wav(path, SAMPLE_RATE)


# -- the labelled set ---------------------------------------------------------------------
def check_human_dir(human_dir: Path) -> None:
    missing = [r.path for r in RECORDINGS if not (human_dir / r.path).is_file()]
    if missing:
        raise VoiceError(
            "bench.turns",
            ErrorCode.MODEL_MISSING,
            f"the recorded voices of the turn-taking bench are not in {human_dir} ({len(missing)} files missing, "
            f"e.g. {missing[0]}) — install them (Debian/Ubuntu: sudo apt install pocketsphinx-testdata)",
        )


def _human(human_dir: Path, out_dir: Path, rng: np.random.Generator) -> list[Utterance]:
    found: list[Utterance] = []
    for i, rec in enumerate(RECORDINGS):
        audio = load_recording(human_dir / rec.path)
        voice = f"pocketsphinx-testdata {rec.path}"
        stem = f"human{i:02d}"
        whole, _ = lay_out([audio], 0.0, rng)
        found.append(
            Utterance(stem, "complete", rec.text, voice, write_wav(out_dir / f"{stem}.wav", whole, SAMPLE_RATE))
        )
        if rec.split_s is not None:
            cut = quietest_near(audio, rec.split_s)
            pause = PAUSES_S[i % len(PAUSES_S)]
            halves, second_at = lay_out([audio[:cut], audio[cut:]], pause, rng)
            wav = write_wav(out_dir / f"{stem}-paused.wav", halves, SAMPLE_RATE)
            found.append(
                Utterance(
                    f"{stem}-paused", "incomplete", rec.text, voice, wav, pause, round(second_at, 3), rec.tail_words
                )
            )
    return found


async def _spoken(text: str, out: Path, voice: tuple[str, int], program: str) -> np.ndarray:
    wav = await speak_with_espeak(text, out, program, voice=voice, pad=False)
    audio = trim_silence(await asyncio.to_thread(load_wav, wav, SAMPLE_RATE))
    wav.unlink(missing_ok=True)
    return audio


async def _synthetic(out_dir: Path, rng: np.random.Generator) -> list[Utterance]:
    program = espeak_program()
    found: list[Utterance] = []
    for i, text in enumerate(COMPLETE_TEXTS):
        voice = VOICES[i % len(VOICES)]
        audio, _ = lay_out([await _spoken(text, out_dir / "piece.wav", voice, program)], 0.0, rng)
        wav = write_wav(out_dir / f"say{i:02d}.wav", audio, SAMPLE_RATE)
        found.append(Utterance(f"say{i:02d}", "complete", text, f"espeak-ng {voice[0]} {voice[1]} wpm", wav))
    for i, (first, second, tail) in enumerate(INCOMPLETE_TEXTS):
        # Offset by 3 so a sentence is not always said by the voice that says its complete twin.
        voice, pause = VOICES[(i + 3) % len(VOICES)], PAUSES_S[i % len(PAUSES_S)]
        halves = [await _spoken(t, out_dir / "piece.wav", voice, program) for t in (first, second)]
        audio, second_at = lay_out(halves, pause, rng)
        wav = write_wav(out_dir / f"pause{i:02d}.wav", audio, SAMPLE_RATE)
        text = f"{first.rstrip(',')} … {second}"
        name = f"pause{i:02d}"
        found.append(
            Utterance(
                name, "incomplete", text, f"espeak-ng {voice[0]} {voice[1]} wpm", wav, pause, round(second_at, 3), tail
            )
        )
    return found


async def build_corpus(out_dir: Path, human_dir: Path = HUMAN_DIR, *, seed: int = 16) -> list[Utterance]:
    """The labelled set as WAV files in out_dir (the same audio on every run: the noise is seeded)."""
    check_human_dir(human_dir)
    rng = np.random.default_rng(seed)
    human = await asyncio.to_thread(_human, human_dir, out_dir, rng)
    return await _synthetic(out_dir, rng) + human


# -- judging ------------------------------------------------------------------------------
_WORDS = re.compile(r"[a-z0-9]+")


def heard_words(transcript: str, words: Sequence[str]) -> bool:
    """Any of `words` begins a word of the transcript ("minute" matches "minutes")."""
    said = _WORDS.findall(transcript.lower())
    return any(w.startswith(want) for w in said for want in words)


@dataclass(frozen=True)
class Heard:
    """What one utterance made: its turns, and how long each utterance the engine ended lasted
    (SpeechEnded.duration_s, in capture time: a cut at the pause is as long as the first half)."""

    utterance: Utterance
    turns: Sequence[TurnFinished]
    speech_s: Sequence[float] = ()


def judge(h: Heard) -> str:
    """ "unheard", "ok", "split" (a complete one ended more than once) or "cut_off" (an incomplete one
    ended at its pause: two endpoints or turns — the first may have no words — or one utterance that
    ended before the second half began: the half-duplex engine may not hear it while it answers)."""
    u = h.utterance
    heard = [t for t in h.turns if t.user_text.strip()]
    if not heard:
        return "unheard"
    ended_twice = len(h.turns) > 1 or len(h.speech_s) > 1
    if u.label == "complete":
        return "split" if ended_twice else "ok"
    if ended_twice:
        return "cut_off"
    if h.speech_s and u.second_at_s is not None:
        # Speech up to the second half's start: a whole one is that long plus the second half, a cut
        # one the first half plus the VAD's pre-roll and hangover (~0.3 s, under the 0.5 s least pause).
        return "cut_off" if max(h.speech_s) < u.second_at_s - LEAD_S else "ok"
    return "ok" if heard_words(heard[0].user_text, u.tail_words) else "cut_off"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _row(h: Heard) -> dict[str, Any]:
    u, turns = h.utterance, h.turns
    return {
        "name": u.name,
        "label": u.label,
        "text": u.text,
        "voice": u.voice,
        "pause_s": u.pause_s,
        "outcome": judge(h),
        "speech_s": [round(x, 3) for x in h.speech_s],
        # Whisper heard the words after the pause in the first turn (a check on the judge above).
        "second_half_in_transcript": heard_words(turns[0].user_text, u.tail_words) if u.tail_words and turns else None,
        "turns": [
            {
                "user": t.user_text,
                "turn": t.providers.get("turn"),
                "stages_ms": {k: round(v * 1000, 1) for k, v in t.timings.items()},
                "voice_to_voice_ms": _ms(t.voice_to_voice_s),
                "error": t.error,
            }
            for t in turns
        ],
    }


def summarise(heard: Sequence[Heard], cpu_s: float, idle_cpu_percent: float | None) -> dict[str, Any]:
    """One detector's figures over the utterances it heard (pure: tested with made-up turns)."""
    rows = [_row(h) for h in heard]
    # Complete utterances heard as one turn: how long the user waited after speaking, and for the reply.
    done = [h.turns[-1] for h in heard if h.utterance.label == "complete" and judge(h) == "ok"]
    endpoint = [t.timings["vad_endpoint"] for t in done if "vad_endpoint" in t.timings]
    v2v = [t.voice_to_voice_s for t in done if t.voice_to_voice_s is not None]
    complete = [r for r in rows if r["label"] == "complete"]
    incomplete = [r for r in rows if r["label"] == "incomplete"]
    all_turns = [t for h in heard for t in h.turns if t.user_text.strip()]
    stt = [t.timings["stt"] for t in all_turns if "stt" in t.timings]
    judged = [r for r in incomplete if r["outcome"] != "unheard"]
    cut = sum(r["outcome"] == "cut_off" for r in judged)
    return {
        "turn_detectors_used": sorted({str(t.providers.get("turn")) for t in all_turns if t.providers.get("turn")}),
        "complete": {
            "utterances": len(complete),
            "measured": len(endpoint),
            "split": sum(r["outcome"] == "split" for r in rows),
            "unheard": sum(r["outcome"] == "unheard" and r["label"] == "complete" for r in rows),
            "endpoint_p50_ms": percentile_ms(endpoint, 0.5),
            "endpoint_p95_ms": percentile_ms(endpoint, 0.95),
            "voice_to_voice_p50_ms": percentile_ms(v2v, 0.5),
        },
        "incomplete": {
            "utterances": len(incomplete),
            "judged": len(judged),
            "cut_off": cut,
            "cut_off_share": round(cut / len(judged), 3) if judged else None,
            "unheard": len(incomplete) - len(judged),
            # Whisper missed the words after the pause though the turn held them (misheard, not cut).
            "second_half_misheard": sum(
                r["outcome"] == "ok" and r["second_half_in_transcript"] is False for r in judged
            ),
        },
        "stt_wait_p50_ms": percentile_ms(stt, 0.5),
        "stt_wait_p95_ms": percentile_ms(stt, 0.95),
        "turns": len(all_turns),
        "cpu_seconds": round(cpu_s, 2),
        "cpu_seconds_per_turn": round(cpu_s / len(all_turns), 2) if all_turns else None,
        "idle_cpu_percent_of_one_core": idle_cpu_percent,
        # Failed turns that had words; a fragment Whisper found no words in ("didn't catch that") is
        # an outcome of the turn-taking (a cut), counted apart.
        "errors": [t.error for h in heard for t in h.turns if t.error and t.user_text.strip()],
        "no_words_turns": sum(not t.user_text.strip() for h in heard for t in h.turns),
        "rows": rows,
    }


# -- running ------------------------------------------------------------------------------
#: Issue 16's bars, for the detector that replaces the silence rule.
BARS: dict[str, float] = {
    "endpoint_p50_ms": 250.0,
    "cut_off_share": 0.05,
    "voice_to_voice_p50_ms": 450.0,
    "stt_wait_p50_ms": 60.0,
    "cpu_seconds_per_turn": 1.5,
    "idle_cpu_percent_of_one_core": 5.0,
}
DETECTORS = ("smart-turn", "silence")


def detector_settings(settings: Settings, detector: str) -> Settings:
    """The settings one detector is measured with: skills alone as the LLM, telemetry kept local."""
    s = apply_overrides(settings, ["llm.provider=skills", "llm.fallbacks=[]", f"turn.provider={detector}"])
    s.telemetry.otlp_endpoint = None
    return s


async def _hear_all(settings: Settings, paths: AppPaths, corpus: Sequence[Utterance], idle_wav: Path) -> dict[str, Any]:
    heard: list[Heard] = []
    ended: list[float] = []
    async with bench_session(settings, paths) as (session, sink):
        collector = TurnCollector(session)
        session.add_listener(lambda ev: ended.append(ev.duration_s) if isinstance(ev, SpeechEnded) else None)
        cpu0 = cpu_seconds()
        for u in corpus:
            before, ended_before = len(collector.turns), len(ended)
            await session.set_audio(WavFileSource(u.wav, realtime=True), sink)
            await session.wait_capture_done()
            await session.wait_idle()
            # Every turn the utterance made is kept (ask_spoken keeps the last): two mean it was cut.
            heard.append(Heard(u, collector.turns[before:], ended[ended_before:]))
        cpu = cpu_seconds() - cpu0
        cpu0, t0 = cpu_seconds(), time.monotonic()
        await session.set_audio(WavFileSource(idle_wav, realtime=True), sink)
        await session.wait_capture_done()
        idle = round(100 * (cpu_seconds() - cpu0) / (time.monotonic() - t0), 1)
        spurious = len(collector.turns) - sum(len(h.turns) for h in heard)
    summary = summarise(heard, cpu, idle)
    summary["idle_turns"] = spurious
    return summary


async def run_turn_bench(settings: Settings, paths: AppPaths, out_dir: Path) -> dict[str, Any]:
    """Both detectors over the same labelled set; out_dir holds the WAVs (and a scratch history)."""
    started_on = machine()
    corpus = await build_corpus(out_dir)
    idle_wav = write_wav(out_dir / "idle.wav", room_noise(IDLE_S, np.random.default_rng(0)), SAMPLE_RATE)
    bench_paths = AppPaths(paths.config_dir, out_dir / "data", paths.cache_dir)
    detectors: dict[str, Any] = {}
    limit = 120 + 15 * len(corpus)
    for detector in DETECTORS:
        try:
            async with asyncio.timeout(limit):
                detectors[detector] = await _hear_all(
                    detector_settings(settings, detector), bench_paths, corpus, idle_wav
                )
        except TimeoutError:
            raise VoiceError(
                "bench",
                ErrorCode.TIMEOUT,
                f"the {detector} run took over {limit} s — close other programs and run the bench again",
            ) from None
    return {
        "machine": started_on,
        "load_average_1m_after": machine()["load_average_1m"],
        "corpus": corpus_summary(corpus),
        "bars": BARS,
        "detectors": detectors,
    }


def corpus_summary(corpus: Sequence[Utterance]) -> dict[str, Any]:
    return {
        "utterances": len(corpus),
        "complete": sum(u.label == "complete" for u in corpus),
        "incomplete": sum(u.label == "incomplete" for u in corpus),
        "recorded_people": sum(u.voice.startswith("pocketsphinx") for u in corpus),
        "voices": sorted({u.voice.rsplit(" ", 2)[0] if u.voice.startswith("espeak") else "recorded" for u in corpus}),
        "items": [{k: v for k, v in asdict(u).items() if k != "wav"} for u in corpus],
    }


# -- report -------------------------------------------------------------------------------
def _num(v: float | None, unit: str = "", digits: int = 0) -> str:
    return "—" if v is None else f"{v:.{digits}f}{unit}"


def _bar(key: str, got: float | None) -> str:
    bar = BARS[key]
    return "" if got is None else (" ✓" if got <= bar else " ✗")


def turn_table(report: dict[str, Any]) -> list[str]:
    """The turn-taking bench as a terminal table: one row per detector (✓/✗ against issue 16's bars)."""
    m, c = report["machine"], report["corpus"]
    lines = [
        f"{m['cpu']} ({m['cores']} cores, load {m['load_average_1m']} at the start, "
        f"{report.get('load_average_1m_after')} at the end)",
        f"{c['utterances']} utterances ({c['complete']} complete, {c['incomplete']} with a pause inside; "
        f"{c['recorded_people']} recorded people, the rest espeak-ng in {len(c['voices']) - 1} voices)",
        "",
        f"{'detector':<12}{'endpoint p50/p95':>18}{'cut off':>14}{'voice-to-voice':>16}"
        f"{'STT wait':>10}{'CPU s/turn':>12}{'idle CPU':>10}",
    ]
    for name, d in report["detectors"].items():
        comp, inc = d["complete"], d["incomplete"]
        share = None if inc["cut_off_share"] is None else inc["cut_off_share"] * 100
        p50, p95 = comp["endpoint_p50_ms"], comp["endpoint_p95_ms"]
        cells = [
            f"{_num(p50)}/{_num(p95)} ms{_bar('endpoint_p50_ms', p50)}",
            f"{inc['cut_off']}/{inc['judged']} {_num(share, '%')}{_bar('cut_off_share', inc['cut_off_share'])}",
            f"{_num(comp['voice_to_voice_p50_ms'])} ms{_bar('voice_to_voice_p50_ms', comp['voice_to_voice_p50_ms'])}",
            f"{_num(d['stt_wait_p50_ms'])} ms{_bar('stt_wait_p50_ms', d['stt_wait_p50_ms'])}",
            f"{_num(d['cpu_seconds_per_turn'], digits=2)}{_bar('cpu_seconds_per_turn', d['cpu_seconds_per_turn'])}",
            f"{_num(d['idle_cpu_percent_of_one_core'], ' %', 1)}"
            f"{_bar('idle_cpu_percent_of_one_core', d['idle_cpu_percent_of_one_core'])}",
        ]
        lines.append(f"{name:<12}{cells[0]:>18}{cells[1]:>14}{cells[2]:>16}{cells[3]:>10}{cells[4]:>12}{cells[5]:>10}")
    lines.append("")
    lines.append(
        "endpoint: end of speech → turn ended, complete utterances heard as one turn; cut off: incomplete ones "
        "ended at their pause; STT wait: transcript after the endpoint (p50); "
        f"✓/✗: issue 16's bars ({', '.join(f'{k} ≤ {v:g}' for k, v in BARS.items())})"
    )
    for name, d in report["detectors"].items():
        notes = _detector_notes(d)
        if notes:
            lines.append(f"{name}: " + "; ".join(notes))
    return lines


def _detector_notes(d: dict[str, Any]) -> list[str]:
    comp, inc = d["complete"], d["incomplete"]
    notes = [f"turns decided by {', '.join(d['turn_detectors_used']) or 'the engine (no turn provider named)'}"]
    if comp["split"] or comp["unheard"] or inc["unheard"]:
        notes.append(
            f"{comp['split']} complete utterances heard as two turns, {comp['unheard'] + inc['unheard']} unheard"
        )
    if d.get("idle_turns"):
        notes.append(f"{d['idle_turns']} turns started by the quiet room")
    cut = [r["name"] for r in d["rows"] if r["outcome"] == "cut_off"]
    if cut and len(cut) <= 10:
        notes.append("cut off: " + ", ".join(cut))
    if d.get("no_words_turns"):
        notes.append(f"{d['no_words_turns']} turns of a fragment with no words in it")
    if d["errors"]:
        notes.append("errors: " + "; ".join(f"{e} (×{d['errors'].count(e)})" for e in dict.fromkeys(d["errors"])))
    return notes


def turn_taking_command(args: argparse.Namespace, paths: AppPaths, settings: Settings) -> int:
    """`voxdesk bench --turn-taking [--json]`: exit 1 when a detector's turns failed."""

    async def run() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="voxdesk-bench-turns-") as tmp:
            return await run_turn_bench(settings, paths, Path(tmp))

    report = asyncio.run(run())
    if args.json:
        json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print("\n".join(turn_table(report)))
    return 0 if not any(d["errors"] for d in report["detectors"].values()) else 1
