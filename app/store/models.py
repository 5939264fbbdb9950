"""Model files: where a model is found, fetching, verifying and assembling it.

Providers declare their models on their spec (`ProviderSpec.models`, a tuple of
`app.plugin.model_spec.ModelSpec`); this module works for any of them and names none.
A local provider names a model by id and asks `resolve_model` for a path. The order is fixed so
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
import importlib.metadata
import importlib.util
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.model_spec import (
    FileCheck,
    ModelFile,
    ModelKind,
    ModelOption,
    ModelPackage,
    ModelSpec,
    PathCheckResult,
)
from app.plugin.registry import Registry, get_registry
from app.store.paths import AppPaths, resolve_paths

if TYPE_CHECKING:
    from app.store.settings import Settings

log = logging.getLogger(__name__)

Source = Literal["settings", "package", "cache"]

MANIFEST = "manifest.json"  # written after a download: {file: {sha256, size}}

_assemble_lock = threading.Lock()


def catalogue(registry: Registry | None = None) -> dict[str, ModelSpec]:
    """Every model the registered providers declare, by id (the first declaration of an
    id wins). Loads the providers' spec modules only, never their libraries."""
    reg = registry or get_registry()
    found: dict[str, ModelSpec] = {}
    for provider in reg.specs():
        for spec in provider.models:
            if spec.id in found and found[spec.id] != spec:
                log.warning("model %s is declared by more than one provider; using the first", spec.id)
            found.setdefault(spec.id, spec)
    return found


def _what_to_do(model_id: str) -> str:
    return f"run `voxdesk models fetch {model_id}` or pick another in Settings"


def _lookup(model_id: str, known: dict[str, ModelSpec]) -> ModelSpec | None:
    spec = known.get(model_id)
    if spec is None:
        spec = next((s for s in known.values() if model_id in s.aliases), None)
    return spec


def get_spec(model_id: str) -> ModelSpec:
    """Model spec for an id or alias; NOT_FOUND lists the known ids."""
    known = catalogue()
    spec = _lookup(model_id, known)
    if spec is None:
        names = ", ".join(sorted(known)) or "none (no model-backed provider is installed)"
        raise VoiceError("models.resolve", ErrorCode.NOT_FOUND, f"unknown model {model_id!r}; known: {names}")
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


def _located(distribution: str, inner: str) -> Path | None:
    """A file of an installed distribution, found from its metadata (None if absent)."""
    try:
        path = Path(str(importlib.metadata.distribution(distribution).locate_file(inner)))
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None
    return path if path.is_file() else None


def _package_parts(spec: ModelSpec) -> list[Path] | None:
    """The installed chunks of a model split across packages, in order; None if any is
    missing (or any file a folder model ships beside them).

    Each part is a file of an installed distribution, found from its metadata: the part
    packages are data only and are never imported (or even looked up as modules)."""
    if spec.package is None or not spec.package.parts:
        return None
    parts = [_located(distribution, inner) for distribution, inner in spec.package.parts]
    if any(p is None for p in parts) or _beside_files(spec) is None:
        return None
    return [p for p in parts if p is not None]


def _beside_files(spec: ModelSpec) -> dict[str, Path] | None:
    """A split folder model's other files, by their name in the folder; None if any is missing."""
    found: dict[str, Path] = {}
    for name, distribution, inner in spec.package.beside if spec.package else ():
        path = _located(distribution, inner)
        if path is None:
            return None
        found[name] = path
    return found


def _assembled_file(spec: ModelSpec) -> tuple[str, str]:
    """(name, SHA-256) of the file a split package is joined into: the package's `joined`
    file of a folder model, else the spec's only file."""
    pkg = spec.package
    name = pkg.joined if pkg is not None and pkg.joined else spec.files[0].name
    declared = next((f.sha256 for f in spec.files if f.name == name), None)
    sha = declared or spec.packaged_sha256.get(name)
    if sha is None or (not (pkg and pkg.joined) and len(spec.files) != 1):
        raise VoiceError(
            "models.resolve",
            ErrorCode.INVALID_CONFIG,
            f"model {spec.id}: a split package needs one joined file with a known SHA-256",
        )
    return name, sha


def _split_names(spec: ModelSpec) -> tuple[str, ...]:
    """The files a split package puts in the model's cache folder: the joined one first."""
    beside = tuple(name for name, _, _ in spec.package.beside) if spec.package else ()
    return (_assembled_file(spec)[0], *beside)


def _damaged_split(spec: ModelSpec, what: str) -> VoiceError:
    return VoiceError(
        "models.resolve",
        ErrorCode.MODEL_MISSING,
        f"the {spec.id} model package is damaged ({what}) — reinstall it: pip install --force-reinstall "
        f"{_distribution(spec)}",
    )


def _ensure_beside(spec: ModelSpec, folder: Path) -> list[str]:
    """Copy a split folder model's other files next to its joined file, each checked;
    returns the names of damaged copies that were replaced. Copies, not links: a reinstall of the
    package must not change a file the loader already has open (they are small)."""
    import shutil

    repaired: list[str] = []
    for name, source in (_beside_files(spec) or {}).items():
        sha = spec.packaged_sha256.get(name)
        target = folder / name
        if target.is_file() and sha is not None and _intact(target, sha):
            continue
        if target.is_file():
            repaired.append(name)
        if sha is not None and _hash_file(source).hexdigest() != sha:
            raise _damaged_split(spec, f"{name} fails the SHA-256 check")
        tmp = target.with_name(f"{name}.{os.getpid()}.assembling")
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        if sha is not None:
            _record_intact(target, sha)
    return repaired


def _ensure_assembled(spec: ModelSpec, parts: list[Path], target: Path) -> tuple[Path, tuple[str, ...]]:
    """Join the package's chunks into one file in the cache (a folder model's other files
    copied beside it), checked, atomically; returns (path, the damaged files rebuilt).

    Packages split big files to stay under index size limits; the loader needs one
    file, so it is built once and reused. A copy whose size, time and hash were
    recorded when it was built is reused without hashing; one that changed since is
    hashed, and rebuilt when it no longer matches (a loader would load a damaged
    file and answer nonsense, or crash).
    """
    _name, sha = _assembled_file(spec)
    expected = sum(p.stat().st_size for p in parts)
    pinned = spec.package.joined_size if spec.package else None
    with _assemble_lock:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            beside_repaired = _ensure_beside(spec, target.parent)
        except OSError as exc:
            raise _cannot_assemble(spec, target, exc) from exc
        damaged = target.is_file()
        if damaged:
            if target.stat().st_size == expected and _intact(target, sha):
                return target, tuple(beside_repaired)
            log.warning("%s is damaged (truncated or SHA-256 mismatch); rebuilding it from the model package", target)
        if pinned is not None and expected != pinned:
            raise _damaged_split(spec, f"its parts hold {expected} bytes, expected {pinned}")
        tmp = target.with_name(f"{target.name}.{os.getpid()}.assembling")
        digest = hashlib.sha256()
        try:
            with tmp.open("wb") as out:
                for part in parts:
                    with part.open("rb") as src:
                        while block := src.read(1 << 20):
                            digest.update(block)
                            out.write(block)
            if digest.hexdigest() != sha:
                raise _damaged_split(spec, "hash mismatch")
            os.replace(tmp, target)
        except OSError as exc:
            raise _cannot_assemble(spec, target, exc) from exc
        finally:
            tmp.unlink(missing_ok=True)
        _record_intact(target, sha)
    return target, (*((target.name,) if damaged else ()), *beside_repaired)


def _cannot_assemble(spec: ModelSpec, target: Path, exc: OSError) -> VoiceError:
    return VoiceError(
        "models.resolve",
        ErrorCode.PROVIDER_ERROR,
        f"could not assemble the {spec.id} model into {target.parent} ({exc.strerror or exc}) — "
        "free some disk space or set a model path in Settings",
    )


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
    if entry.get("sha256") == sha256 and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
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
    """Path inside an installed model package, or None if it is not installed. A model
    split across packages is joined into the cache (only checked for, with `assemble=False`)."""
    spec = get_spec(model_id)
    pkg = spec.package
    if pkg is None:
        return None
    if pkg.parts:
        parts = _package_parts(spec)
        if parts is None:
            return None
        folder = cache_dir(spec.id, paths)
        if assemble:
            _ensure_assembled(spec, parts, folder / _assembled_file(spec)[0])
        return _point(spec, folder)
    d = _package_dir(pkg.module) if pkg.module else None
    if d is None:
        return None
    folder = d / pkg.folder if pkg.folder else d
    return _point(spec, folder) if _complete(spec, folder) else None


def resolve_model(model_id: str, configured_path: str | None = None, *, paths: AppPaths | None = None) -> Path:
    """Where model `model_id` lives: Settings path → package → cache → MODEL_MISSING.

    The path is the spec's `main` file inside the model's folder, or the folder itself
    when `main` is empty.
    """
    if configured_path:
        p = Path(configured_path).expanduser()
        if not p.exists():
            raise VoiceError(
                "models.resolve",
                ErrorCode.MODEL_MISSING,
                f"model path {p} does not exist — fix the path in Settings or clear it to use the default model",
            )
        known = _lookup(model_id, catalogue())
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
                "models.resolve",
                ErrorCode.MODEL_MISSING,
                f"model {spec.id} in {cached} is damaged ({', '.join(damaged)} fail the SHA-256 check) — "
                f"run `voxdesk models fetch {spec.id}` to download it again",
            )
        return _point(spec, cached)
    raise VoiceError(
        "models.resolve",
        ErrorCode.MODEL_MISSING,
        f"model {spec.id} is not installed (looked in the model packages and {cached}) — {_what_to_do(spec.id)}",
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
        "models.download",
        ErrorCode.PROVIDER_ERROR,
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
            return VoiceError(
                op,
                ErrorCode.NOT_FOUND,
                f"{url} answered 404 — the file moved; update VoxDesk or set a model path in Settings",
            )
        if exc.code in (401, 403):
            return VoiceError(op, ErrorCode.AUTH, f"{url} refused access (HTTP {exc.code})")
        return VoiceError(op, ErrorCode.UNAVAILABLE, f"{url} answered HTTP {exc.code} — try again later")
    reason = getattr(exc, "reason", None) or exc
    return VoiceError(
        op,
        ErrorCode.UNAVAILABLE,
        f"could not download {url} ({reason}) — check the network connection and run the fetch again (it resumes)",
    )


def _resume_point(part: Path, size: int | None) -> int:
    """Bytes of `part` worth continuing from: a partial file longer than the file it is
    part of is not a prefix of it, so it is discarded."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        log.warning("%s is longer than the %d-byte file it belongs to; starting again", part, size)
        part.unlink(missing_ok=True)
        return 0
    return offset


def _range_start(content_range: str | None) -> int | None:
    """START of a `Content-Range: bytes START-END/TOTAL` header (None if absent or odd)."""
    if not content_range or not content_range.startswith("bytes "):
        return None
    first = content_range[6:].split("-", 1)[0].strip()
    return int(first) if first.isdigit() else None


def _cancelled() -> VoiceError:
    return VoiceError(
        "models.download",
        ErrorCode.CANCELLED,
        "download cancelled — the part already downloaded is kept; download again to resume where it stopped",
    )


@dataclass(frozen=True)
class _Transfer:
    """How one request goes: where to continue and what to report."""

    url: str
    part: Path
    timeout: float
    size: int | None  # the whole file's size when the catalogue knows it
    progress: ProgressFn | None
    cancel: threading.Event | None


def _transfer_once(t: _Transfer) -> tuple[int, bool]:
    """One HTTP request that continues `t.part`; returns (bytes on disk, resumed?).

    A cut connection surfaces as OSError / http.client.HTTPException so the
    caller can retry from whatever reached the disk.
    """
    import shutil
    import urllib.error
    import urllib.request

    if t.cancel is not None and t.cancel.is_set():
        raise _cancelled()
    offset = _resume_point(t.part, t.size)
    if offset and offset == t.size:  # every byte is already here (cancelled at the very end)
        return offset, True
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(t.url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=t.timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # Range past the end: we already have every byte
            return offset, True
        raise
    with resp:
        resumed = offset > 0 and resp.status == 206
        if resumed and _range_start(resp.headers.get("Content-Range")) not in (None, offset):
            # The server continues from elsewhere: appending would corrupt the file.
            t.part.unlink(missing_ok=True)
            raise ConnectionError("the server resumed at another offset; starting again")
        if not resumed:  # fresh start, or a server that ignores Range
            offset = 0
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length is not None else t.size
        if total is not None and shutil.disk_usage(t.part.parent).free < total - offset:
            raise _no_space(t.part, total - offset)
        done = offset
        if t.progress:
            t.progress(done, total)
        with t.part.open("ab" if resumed else "wb") as out:
            while True:
                if t.cancel is not None and t.cancel.is_set():
                    raise _cancelled()
                block = resp.read(_CHUNK)
                if not block:
                    break
                out.write(block)
                done += len(block)
                if t.progress:
                    t.progress(done, total)
        if total is not None and done < total:
            raise ConnectionError(f"connection closed after {done} of {total} bytes")
        return done, resumed


def partial_bytes(dest: Path) -> int:
    """Bytes of an unfinished download of `dest` on disk (0 when none): what a resume keeps."""
    part = dest.with_name(dest.name + ".part")
    try:
        return part.stat().st_size
    except OSError:
        return 0


def _reject(part: Path, dest: Path, what: str) -> VoiceError:
    part.unlink(missing_ok=True)
    return VoiceError(
        "models.download",
        ErrorCode.PROVIDER_ERROR,
        f"{dest.name} is damaged or not the expected file ({what}) — it was deleted; "
        "download it again, and if it repeats the upstream file changed",
    )


def download(  # noqa: PLR0913 - keyword-only options of one download
    url: str,
    dest: Path,
    sha256: str | None = None,
    *,
    size: int | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    retries: int = 3,
    timeout: float = 30.0,
) -> Downloaded:
    """Fetch `url` to `dest` via `dest.part`: resumable, hash-checked, atomic.

    A cut connection is resumed with an HTTP Range request (up to `retries`
    times in this call, and on the next call from the `.part` left behind, so a
    cancelled or failed fetch never starts from zero). The file only appears at
    `dest` once complete and, if `sha256` (and `size`) are given, matching; a
    mismatching download is deleted so the next try starts clean. With
    `sha256=None` the hash that was computed is returned so the caller can report
    and record it. `cancel` stops it within one block (CANCELLED), keeping the part.
    """
    import errno
    import http.client
    import urllib.error

    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VoiceError(
            "models.download",
            ErrorCode.PROVIDER_ERROR,
            f"cannot create {dest.parent} ({exc.strerror or exc}) — check permissions",
        ) from exc
    transfer = _Transfer(url, part, timeout, size, progress, cancel)
    resumed_any = False
    attempt = 0
    while True:
        try:
            got_size, resumed = _transfer_once(transfer)
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
    if size is not None and got_size != size:
        raise _reject(part, dest, f"{got_size} bytes, expected {size}")
    # One full read to hash: simpler and safer than a running digest across restarts.
    got = _hash_file(part).hexdigest()
    if sha256 is not None and got != sha256.lower():
        raise _reject(part, dest, f"SHA-256 {got}, expected {sha256}")
    try:
        os.replace(part, dest)
    except OSError as exc:
        raise VoiceError(
            "models.download", ErrorCode.PROVIDER_ERROR, f"cannot move {part} into place ({exc.strerror or exc})"
        ) from exc
    return Downloaded(dest, got, got_size, resumed_any)


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
    return [
        f.name
        for f in spec.files
        if (expected := spec.packaged_sha256.get(f.name)) is not None
        and _hash_file(directory / f.name).hexdigest() != expected
    ]


def fetch_model(  # noqa: PLR0913 - keyword-only hooks, used by the CLI and the window
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
    is downloaded again (into `.part`, then moved over it) and a damaged file
    assembled from its package is rebuilt — what `verify` finds broken, fetch repairs.
    A damaged package cannot be repaired from here: MODEL_MISSING says how to reinstall it.
    `on_file(name, index, count)` announces each file before its `progress`.
    """
    spec = get_spec(model_id)
    paths = paths or resolve_paths()
    if not force:
        if (parts := _package_parts(spec)) is not None:
            name = _assembled_file(spec)[0]
            target, rebuilt = _ensure_assembled(spec, parts, cache_dir(spec.id, paths) / name)
            return FetchResult(spec.id, _point(spec, target.parent), "package", repaired=rebuilt)
        packaged = package_location(spec.id, paths=paths)
        if packaged is not None:
            bad = _damaged_package_files(spec, packaged)
            if bad:
                raise VoiceError(
                    "models.fetch",
                    ErrorCode.MODEL_MISSING,
                    f"the {_distribution(spec)} package is damaged ({', '.join(bad)} fail the SHA-256 check) — "
                    f"reinstall it: pip install --force-reinstall {_distribution(spec)}",
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
        result = download(f.url, dest, f.sha256, size=f.size, progress=progress, cancel=cancel)
        got.append(result)
        manifest = _read_manifest(directory)
        manifest[f.name] = {"sha256": result.sha256, "size": result.size, "url": f.url}
        _write_manifest(directory, manifest)
        _record_intact(dest, result.sha256)
    return FetchResult(spec.id, _point(spec, directory), "cache", tuple(got), tuple(repaired))


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


def check_file(path: Path, expected: str | None, size: int | None) -> FileCheck:
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


def _distribution(spec: ModelSpec) -> str:
    return spec.package.distribution if spec.package is not None else spec.id


def _verify_assembled(spec: ModelSpec, parts: list[Path], paths: AppPaths) -> VerifyReport:
    """The file assembled from a split package, as it is on disk (verify repairs nothing)."""
    name, sha = _assembled_file(spec)
    folder = cache_dir(spec.id, paths)
    target, location = folder / name, _point(spec, folder)
    reinstall = f"reinstall it: pip install --force-reinstall {_distribution(spec)}"
    beside = _beside_files(spec) or {}
    if not target.is_file():
        ok = _parts_sha(parts) == sha
        checks = [
            FileCheck(name, parts[0], ok, "package parts: SHA-256 ok" if ok else "package parts: SHA-256 mismatch")
        ]
        checks += [check_file(src, spec.packaged_sha256.get(n), None) for n, src in beside.items()]
        good = all(c.ok for c in checks)
        detail = (
            "package ok; assembled into the cache on first use" if good else f"the package is damaged — {reinstall}"
        )
        return VerifyReport(spec.id, good, "package", location, detail, tuple(checks))
    size = spec.package.joined_size if spec.package else None
    declared = next((f.size for f in spec.files if f.name == name), None)
    checks = [check_file(target, sha, size or declared)]
    checks += [check_file(folder / n, spec.packaged_sha256.get(n), None) for n in beside]
    if all(c.ok for c in checks):
        _record_intact(target, sha)
        return VerifyReport(spec.id, True, "package", location, "all files ok", tuple(checks))
    detail = (
        f"the copy assembled in {folder} is damaged — run `voxdesk models fetch {spec.id}` "
        "to rebuild it from the package"
    )
    return VerifyReport(spec.id, False, "package", location, detail, tuple(checks))


def verify_model(
    model_id: str,
    configured_path: str | None = None,
    *,
    paths: AppPaths | None = None,
    setting: str | None = None,
) -> VerifyReport:
    """Find the model as the app would, then check every file's hash (or, for a file
    Settings point at, its format). Changes nothing: repairing is `fetch_model`'s job."""
    paths = paths or resolve_paths()
    spec = get_spec(model_id)
    if configured_path:
        return _verify_settings_path(spec, Path(configured_path).expanduser(), setting)
    if (parts := _package_parts(spec)) is not None:
        return _verify_assembled(spec, parts, paths)
    packaged = package_location(spec.id, paths=paths)
    if packaged is not None:
        directory = packaged.parent if spec.main else packaged
        checks = tuple(check_file(directory / f.name, spec.packaged_sha256.get(f.name), None) for f in spec.files)
        bad = [c.name for c in checks if not c.ok]
        detail = (
            "all files ok"
            if not bad
            else f"bad files: {', '.join(bad)} — reinstall it: pip install --force-reinstall {_distribution(spec)}"
        )
        return VerifyReport(spec.id, not bad, "package", packaged, detail, checks)
    directory = cache_dir(spec.id, paths)
    if not any((directory / f.name).exists() for f in spec.files):
        return VerifyReport(
            spec.id,
            False,
            None,
            None,
            f"not installed (looked in the model packages and {directory}) — {_what_to_do(spec.id)}",
        )
    manifest = _read_manifest(directory)
    checks = tuple(check_file(directory / f.name, _expected_sha(spec, f.name, manifest), f.size) for f in spec.files)
    for f, c in zip(spec.files, checks, strict=True):
        if c.ok and (expected := _expected_sha(spec, f.name, manifest)) is not None:
            _record_intact(directory / f.name, expected)
    bad = [c.name for c in checks if not c.ok]
    detail = (
        "all files ok"
        if not bad
        else f"bad files: {', '.join(bad)} — run `voxdesk models fetch {spec.id}` to download them again"
    )
    return VerifyReport(spec.id, not bad, "cache", _point(spec, directory), detail, checks)


# -- files Settings point at -------------------------------------------------------


def check_json(path: Path) -> FileCheck:
    """Present and readable JSON."""
    if not path.is_file():
        return FileCheck(path.name, path, False, "missing")
    try:
        json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return FileCheck(path.name, path, False, f"not readable JSON ({type(exc).__name__})")
    return FileCheck(path.name, path, True, "present, valid JSON")


def check_nonempty(path: Path) -> FileCheck:
    if not path.is_file():
        return FileCheck(path.name, path, False, "missing")
    ok = path.stat().st_size > 0
    return FileCheck(path.name, path, ok, "present" if ok else "empty file")


def first_bytes(path: Path, n: int) -> bytes:
    """The first `n` bytes of a file (b"" when it cannot be read): for format checks."""
    try:
        with path.open("rb") as f:
            return f.read(n)
    except OSError:
        return b""


def recorded_sha256(folder: Path, name: str) -> str | None:
    """The hash a download recorded for `folder/name`, if any."""
    value = _read_manifest(folder).get(name, {}).get("sha256")
    return value if isinstance(value, str) else None


def _default_path_checks(spec: ModelSpec, p: Path) -> PathCheckResult:
    """Without a provider's own check: the model's files present and non-empty."""
    if p.is_file():
        return p, (check_nonempty(p),)
    target = p / spec.main if spec.main else p
    return target, tuple(check_file(p / f.name, recorded_sha256(p, f.name), None) for f in spec.files)


def _settings_checks(spec: ModelSpec, p: Path) -> PathCheckResult:
    """(the file or folder the provider would load, the checks of what it needs there)."""
    return (spec.check_path or _default_path_checks)(spec, p)


def _verify_settings_path(spec: ModelSpec, p: Path, setting: str | None) -> VerifyReport:
    where = f"the path in Settings ({setting})" if setting else "the path in Settings"
    if not p.exists():
        return VerifyReport(
            spec.id,
            False,
            "settings",
            p,
            f"{p} does not exist — fix {where} or clear it to use the default model",
            (FileCheck(p.name, p, False, "missing"),),
            setting,
        )
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


def _looks_like_path(value: str, suffixes: tuple[str, ...]) -> bool:
    return (
        "/" in value
        or "\\" in value
        or value.startswith((".", "~"))
        or Path(value).is_absolute()
        or (bool(suffixes) and value.lower().endswith(suffixes))
    )


def _model_id(option: ModelOption, value: str) -> str:
    if option.id_prefix and not value.startswith(option.id_prefix):
        value = f"{option.id_prefix}{value}"
    spec = _lookup(value, catalogue())
    return spec.id if spec is not None else value


def option_model_id(option: ModelOption, value: object) -> str | None:
    """The catalogue id a provider's model option names (`value` unset: its default), or
    None when the value is a file path rather than an id (Settings' model manager)."""
    text = str(value or option.default)
    return None if _looks_like_path(text, option.path_suffixes) else _model_id(option, text)


def _configured_entry(
    option: ModelOption, options: dict[str, object], prefix: str, kind: str, provider: str
) -> ConfiguredModel:
    value = str(options.get(option.id_option) or option.default)
    path_value = options.get(option.path_option) if option.path_option else None
    if _looks_like_path(value, option.path_suffixes):
        return ConfiguredModel(_model_id(option, option.default), value, f"{prefix}.{option.id_option}", kind, provider)
    if path_value:
        return ConfiguredModel(
            _model_id(option, value), str(path_value), f"{prefix}.{option.path_option}", kind, provider
        )
    return ConfiguredModel(_model_id(option, value), None, None, kind, provider)


def configured_models(settings: Settings | None) -> list[ConfiguredModel]:
    """The models the settings' local providers (chosen and fallbacks) would load, as
    their specs' `model_option` says."""
    found: list[ConfiguredModel] = []
    seen: set[tuple[str, str | None]] = set()
    if settings is None:
        return found
    reg = get_registry()
    for kind in ("stt", "llm", "tts", "turn", "wake"):
        stage = settings.stage(kind)
        chosen = [(stage.provider, stage.options or {}, f"{kind}.options")]
        fallbacks = [
            (name, (stage.fallback_options or {}).get(name, {}), f"{kind}.fallback_options.{name}")
            for name in stage.fallbacks or []
        ]
        for provider, options, prefix in chosen + fallbacks:
            try:
                option = reg.spec(kind, provider).model_option
            except VoiceError:
                continue
            if option is None or not isinstance(options, dict):
                continue
            entry = _configured_entry(option, options, prefix, kind, provider)
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
    #: Memory the loaded model needs, MB (0: not known).
    memory_mb: int = 0

    def get(self, key: str, default: object = None) -> object:
        """Dict-style access, for callers that treat rows as mappings."""
        return getattr(self, key, default)


def _disk_size(spec: ModelSpec, location: Path) -> int:
    directory = location.parent if spec.main else location
    return sum((directory / f.name).stat().st_size for f in spec.files if (directory / f.name).is_file())


def _split_size(spec: ModelSpec) -> int:
    """Bytes a split package's model takes once assembled (from the installed files' sizes)."""
    files = [*(_package_parts(spec) or []), *(_beside_files(spec) or {}).values()]
    return sum(p.stat().st_size for p in files)


def list_models(paths: AppPaths | None = None) -> list[ModelRow]:
    """Every model the providers declare and where it is installed; cheap (no hashing, no
    assembly, no provider library imported)."""
    paths = paths or resolve_paths()
    rows = []
    order = {"stt": 0, "tts": 1, "llm": 2}
    for spec in sorted(catalogue().values(), key=lambda m: order.get(m.kind, 3)):
        source: Source | None = None
        location: Path | None = None
        split = _package_parts(spec) is not None
        if split:
            source, location = "package", package_location(spec.id, paths=paths, assemble=False)
        elif (packaged := package_location(spec.id, paths=paths)) is not None:
            source, location = "package", packaged
        elif _complete(spec, cache_dir(spec.id, paths)):
            source, location = "cache", _point(spec, cache_dir(spec.id, paths))
        if split:
            size: int | None = _split_size(spec)
        elif location is not None:
            size = _disk_size(spec, location)
        else:
            known = [f.size for f in spec.files]
            size = sum(s for s in known if s is not None) if all(s is not None for s in known) else None
        rows.append(
            ModelRow(
                spec.id,
                spec.kind,
                spec.description,
                spec.licence,
                source,
                location,
                size,
                spec.approx_mb,
                spec.memory_mb,
            )
        )
    return rows


# -- the model manager's view: state of each model, and deleting a download ----------

ModelState = Literal["embedded", "installed", "partial", "damaged", "not installed"]


@dataclass(frozen=True)
class ModelStatus:
    """Where a model stands on this computer, in the words the model manager shows."""

    id: str
    state: ModelState
    location: Path | None
    #: One line for the user: what is wrong, or how much of a download is already here.
    detail: str = ""
    #: Bytes of unfinished downloads on disk (a resume keeps them).
    partial_bytes: int = 0


def download_bytes(spec: ModelSpec) -> int | None:
    """What fetching the model downloads: the files' sizes when all are known, else the
    catalogue's approximate figure (None when neither is known)."""
    sizes = [f.size for f in spec.files]
    if sizes and all(s is not None for s in sizes):
        return sum(s or 0 for s in sizes)
    return spec.approx_mb * 1_000_000 if spec.approx_mb else None


def _packaged_status(spec: ModelSpec, paths: AppPaths) -> ModelStatus | None:
    if _package_parts(spec) is not None:
        target = package_location(spec.id, paths=paths, assemble=False)
        return ModelStatus(spec.id, "embedded", target, "ships with VoxDesk")
    if spec.package is not None and not spec.package.parts:
        located = package_location(spec.id, paths=paths)
        if located is not None:
            return ModelStatus(spec.id, "embedded", located, f"ships in the {spec.package.distribution} package")
    return None


def _cached_file_problem(spec: ModelSpec, directory: Path, f: ModelFile, check_hash: bool) -> str | None:
    """Why a cached file is not usable, or None when it is."""
    path = directory / f.name
    actual = path.stat().st_size
    if f.size is not None and actual != f.size:
        return f"{f.name} is {actual} bytes, expected {f.size}"
    expected = _expected_sha(spec, f.name, _read_manifest(directory))
    if check_hash and expected is not None and not _intact(path, expected):
        return f"{f.name} fails the SHA-256 check"
    return None


def model_status(model_id: str, *, paths: AppPaths | None = None, check_hash: bool = True) -> ModelStatus:
    """The state of one model. With `check_hash`, a cached file is hashed unless its
    integrity stamp still matches (seconds for a big model the first time): call it from
    a worker. Packaged models are not hashed here (`verify_model` does that)."""
    paths = paths or resolve_paths()
    spec = get_spec(model_id)
    packaged = _packaged_status(spec, paths)
    if packaged is not None:
        return packaged
    directory = cache_dir(spec.id, paths)
    present = [f for f in spec.files if (directory / f.name).is_file()]
    partial = sum(partial_bytes(directory / f.name) for f in spec.files)
    if len(present) < len(spec.files):
        if partial or present:
            total = download_bytes(spec)
            have = partial + sum((directory / f.name).stat().st_size for f in present)
            of = f" of {total / 1e6:.0f} MB" if total else ""
            detail = f"{have / 1e6:.0f} MB{of} downloaded — download again to resume"
            return ModelStatus(spec.id, "partial", None, detail, partial)
        return ModelStatus(spec.id, "not installed", None)
    for f in spec.files:
        problem = _cached_file_problem(spec, directory, f, check_hash)
        if problem is not None:
            return ModelStatus(spec.id, "damaged", _point(spec, directory), f"{problem} — download it again", partial)
    return ModelStatus(spec.id, "installed", _point(spec, directory), "downloaded", partial)


def delete_model(model_id: str, *, paths: AppPaths | None = None) -> int:
    """Delete a downloaded model (and any unfinished download of it) from the cache;
    returns the bytes freed. A model that ships in a package is refused: its files belong
    to the install (pip removes them), and deleting its assembled copy would only make
    the next start build it again."""
    paths = paths or resolve_paths()
    spec = get_spec(model_id)
    if _packaged_status(spec, paths) is not None:
        raise VoiceError(
            "models.delete",
            ErrorCode.INVALID_CONFIG,
            f"{spec.id} ships with VoxDesk and cannot be deleted here — choose another model instead",
        )
    directory = cache_dir(spec.id, paths)
    freed = 0
    names = [f.name for f in spec.files] + [f"{f.name}.part" for f in spec.files]
    try:
        for name in names:
            path = directory / name
            if path.is_file():
                freed += path.stat().st_size
                path.unlink()
        manifest = _read_manifest(directory)
        for f in spec.files:
            manifest.pop(f.name, None)
        if manifest:
            _write_manifest(directory, manifest)
        else:
            (directory / MANIFEST).unlink(missing_ok=True)
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
    except OSError as exc:
        raise VoiceError(
            "models.delete",
            ErrorCode.PROVIDER_ERROR,
            f"could not delete {spec.id} from {directory} ({exc.strerror or exc}) — check its permissions",
        ) from exc
    return freed


def check_model(model_id: str, *, paths: AppPaths | None = None) -> tuple[VerifyReport, int]:
    """The model manager's "Check": verify every file's hash; a downloaded copy that fails
    is deleted at once (loading it would give nonsense or a crash) and the bytes freed are
    returned with the report, so the user is told and offered the download again. A
    packaged model is only reported: its files belong to the install."""
    paths = paths or resolve_paths()
    report = verify_model(model_id, paths=paths)
    if report.ok or report.source != "cache":
        return report, 0
    return report, delete_model(model_id, paths=paths)


# -- a damaged split package, explained -----------------------------------------------


def _record_sha256(path: Path) -> str:
    """A file's SHA-256 as a wheel's RECORD writes it (urlsafe base64, no padding)."""
    import base64

    return base64.urlsafe_b64encode(_hash_file(path).digest()).rstrip(b"=").decode()


def part_problems(package: ModelPackage, *, check_hashes: bool = True) -> list[tuple[str, str]]:
    """(distribution, what is wrong) for each part (or file beside them) that is not
    installed, lacks its file, or no longer matches what its wheel installed (the size and
    hash in its RECORD). A distribution is named once, with its first problem."""
    problems: dict[str, str] = {}
    for name, inner in package.split_files():
        if name in problems:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            problems[name] = "is not installed"
            continue
        path = Path(str(dist.locate_file(inner)))
        if not path.is_file():
            problems[name] = f"lacks its file {inner}"
            continue
        record = next((f for f in dist.files or () if f.as_posix() == inner), None)
        if record is None or record.hash is None or record.hash.mode != "sha256":
            continue
        if record.size is not None and path.stat().st_size != record.size:
            problems[name] = f"has a truncated {inner} ({path.stat().st_size} of {record.size} bytes)"
        elif check_hashes and _record_sha256(path) != record.hash.value:
            problems[name] = f"has a changed {inner} (its SHA-256 differs from the wheel's)"
    return list(problems.items())


def explain_damaged_package(model_id: str, exc: VoiceError, op: str) -> VoiceError:
    """The store's error for a model split across packages, narrowed to the part to reinstall.

    The store knows the joined file is missing or fails its hash, not which wheel is at
    fault; users need the one command that repairs it. A model none of whose parts is
    installed keeps the store's advice (fetch it, or pick another); any other error, or
    a model that is not split, is returned as it is."""
    try:
        spec = get_spec(model_id)
    except VoiceError:
        return exc
    package = spec.package
    if exc.code is not ErrorCode.MODEL_MISSING or package is None or not package.parts:
        return exc
    problems = part_problems(package)
    distributions = package.split_distributions()
    none_installed = len(problems) == len(distributions) and all(why == "is not installed" for _, why in problems)
    if not problems or none_installed:
        return exc
    what = "; ".join(f"{name} {why}" for name, why in problems)
    fix = package.reinstall_command(*(name for name, _ in problems))
    return VoiceError(
        op, ErrorCode.MODEL_MISSING, f"the {spec.id} model package is damaged ({what}) — reinstall it: {fix}"
    )
