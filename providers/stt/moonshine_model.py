"""Moonshine base on ONNX Runtime: its tokenizer and the encoder / merged-decoder loop.

Moonshine takes raw 16 kHz samples (no log-Mel, no 30 s window: the encoder's cost
grows with the audio), and its decoder is one "merged" graph with two branches: the
first step (`use_cache_branch` false) also computes the cross-attention keys and
values of the encoder output, later steps reuse them and feed one token each with
the self-attention cache. Decoding is greedy, from BOS (1) until EOS (2), capped by
the audio's length, and can be cancelled between steps (each costs ~10 ms).

`tokenizer.bin` (the format of moonshine's C++ BinTokenizer): token i is the i-th
length-prefixed byte string; a length byte 0 is an empty token, 1-127 is the length,
128 and up takes a second byte (length = second × 128 + first − 128). Tokens are
SentencePiece pieces with "▁" for a space; ids 3-258 are the raw bytes 0x00-0xFF.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from providers.stt.moonshine_graph import fold_weights

log = logging.getLogger(__name__)

BOS, EOS = 1, 2
SPACE = "▁".encode()
#: Moonshine speaks ~6.5 tokens a second of audio at most (upstream's own cap); the margin
#: covers a short command's punctuation. A decode that loops stops there.
TOKENS_PER_S, TOKENS_BASE = 6.5, 10
SAMPLE_RATE = 16000
#: The encoder needs this much audio (its three convolutions stride 64 × 3 × 2 samples).
MIN_SAMPLES = 1024
#: Bump when `fold_weights` changes what it writes: older folded files are then not reused.
FOLD_VERSION = 1


class TokenizerError(ValueError):
    pass


class Tokenizer:
    """Decodes Moonshine token ids to text (encoding is never needed)."""

    def __init__(self, pieces: Sequence[bytes]) -> None:
        self.pieces = list(pieces)

    @classmethod
    def parse(cls, data: bytes) -> Tokenizer:
        pieces: list[bytes] = []
        i, n = 0, len(data)
        while i < n:
            length = data[i]
            i += 1
            if length >= 128:
                if i >= n:
                    raise TokenizerError(f"tokenizer.bin ends inside the length of token {len(pieces)}")
                length = data[i] * 128 + length - 128
                i += 1
            if i + length > n:
                raise TokenizerError(f"tokenizer.bin ends inside token {len(pieces)}")
            pieces.append(data[i : i + length])
            i += length
        if len(pieces) <= EOS:
            raise TokenizerError(f"tokenizer.bin holds {len(pieces)} tokens, not a Moonshine vocabulary")
        return cls(pieces)

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        return cls.parse(path.read_bytes())

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids`: special tokens (<unk>, <s>, </s>) and ids outside the vocabulary dropped,
        byte tokens joined before UTF-8 decoding (a character may span several)."""
        out = b"".join(self.pieces[i] for i in ids if EOS < i < len(self.pieces))
        return out.replace(SPACE, b" ").decode("utf-8", errors="replace").strip()


def token_budget(samples: int) -> int:
    return TOKENS_BASE + math.ceil(TOKENS_PER_S * samples / SAMPLE_RATE)


@dataclass(frozen=True)
class Decoded:
    text: str
    tokens: int
    #: The decode stopped at the length cap, not at EOS (it was looping or the audio is odd).
    capped: bool


def folded(source: Path, sha256: str, cache: Path) -> Path:
    """`source` with its weights folded (`moonshine_graph`), written once into `cache` and reused.

    ONNX Runtime keeps a model given as bytes in memory for the session's life (the decoder
    then took 800 MB instead of 480), so the folded model is loaded from a file. Folding takes
    seconds; the file is named after the source's SHA-256, so a changed source is folded again.
    """
    target = cache / f"{source.stem}.{sha256[:16]}.v{FOLD_VERSION}.ort"
    if target.is_file():
        return target
    data = fold_weights(source.read_bytes())
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    for old in cache.glob(f"{source.stem}.*.ort"):  # folds of an older source or FOLD_VERSION
        if old != target:
            old.unlink(missing_ok=True)
    return target


class MoonshineModel:
    """The two ONNX Runtime sessions and the tokenizer. Not thread-safe: one decode at a time.

    `files`: (encoder, decoder, tokenizer) paths; `shas`: the SHA-256 of the two .ort files
    (names their folded copies in `cache`)."""

    def __init__(self, files: tuple[Path, Path, Path], shas: tuple[str, str], cache: Path, threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Busy-waiting threads steal the cores the audio, the voice and the language model
        # share; measured on 2 cores, a decoder step took 170 ms spinning against 73 ms not.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Pre-packed weight copies cost 150 MB for ~2 ms a token.
        opts.add_session_config_entry("session.disable_prepacking", "1")
        opts.log_severity_level = 3
        encoder, decoder, tokenizer = files
        self.tokenizer = Tokenizer.load(tokenizer)
        self.encoder = self._session(ort, opts, encoder, shas[0], cache)
        self.decoder = self._session(ort, opts, decoder, shas[1], cache)
        self._past_names = [i.name for i in self.decoder.get_inputs() if i.name.startswith("past_key_values.")]
        outputs = [o.name for o in self.decoder.get_outputs()]
        if outputs[0] != "logits" or len(outputs) != len(self._past_names) + 1:
            raise ValueError(f"unexpected decoder outputs {outputs[:3]}…")
        self._present = [n.replace("present.", "past_key_values.", 1) for n in outputs[1:]]
        shape = self.decoder.get_inputs()[2].shape  # [batch, heads, past length, head size]
        self._empty = np.zeros((1, shape[1], 0, shape[3]), np.float32)
        self._vocab = len(self.tokenizer.pieces)

    @staticmethod
    def _session(ort: Any, opts: Any, source: Path, sha256: str, cache: Path) -> Any:
        cpu = ["CPUExecutionProvider"]
        try:
            path = folded(source, sha256, cache)
        except OSError as exc:  # a read-only or full cache: fold into a temporary file instead
            log.warning("cannot keep the folded Moonshine model in %s (%s); folding it for this run only", cache, exc)
            with tempfile.TemporaryDirectory(prefix="voxdesk-moonshine-") as tmp:
                return ort.InferenceSession(str(folded(source, sha256, Path(tmp))), opts, providers=cpu)
        try:
            return ort.InferenceSession(str(path), opts, providers=cpu)
        except Exception:  # a damaged folded copy (disk error): fold it again, once
            log.warning("the folded Moonshine model %s does not load; folding it again", path)
            path.unlink(missing_ok=True)
            return ort.InferenceSession(str(folded(source, sha256, cache)), opts, providers=cpu)

    def transcribe(self, samples: np.ndarray, cancel: threading.Event | None = None) -> Decoded | None:
        """Greedy transcript of 16 kHz float32 `samples`; None when `cancel` was set meanwhile."""
        audio = np.ascontiguousarray(samples, np.float32)[None]
        if audio.shape[1] < MIN_SAMPLES:
            audio = np.pad(audio, ((0, 0), (0, MIN_SAMPLES - audio.shape[1])))
        hidden = self.encoder.run(None, {"input_values": audio})[0]
        past: dict[str, Any] = dict.fromkeys(self._past_names, self._empty)
        ids: list[int] = []
        budget = token_budget(audio.shape[1])
        token = BOS
        for step in range(budget):
            if cancel is not None and cancel.is_set():
                return None
            feed = {
                "input_ids": np.array([[token]], np.int64),
                "encoder_hidden_states": hidden,
                "use_cache_branch": np.array([step > 0]),
                **past,
            }
            logits, *present = self.decoder.run(None, feed)
            for name, value in zip(self._present, present, strict=True):
                # The cross-attention cache comes out of the first step only (later ones echo it).
                if step == 0 or ".decoder." in name:
                    past[name] = value
            token = int(np.argmax(logits[0, -1, : self._vocab]))
            if token == EOS:
                return Decoded(self.tokenizer.decode(ids), len(ids), capped=False)
            ids.append(token)
        return Decoded(self.tokenizer.decode(ids), len(ids), capped=True)
