"""`voxdesk --self-test`: prove an installed VoxDesk (venv or packaged bundle) works.

Why this exists: a PyInstaller bundle fails in ways a test suite run from a venv
never sees — a native library left out, package metadata (entry points!) dropped,
Qt platform plugins missing, a model package not collected. This check exercises
each of those the way the app uses them and prints one line per check:

    ok name: detail
    FAIL name: detail
    missing name: detail      (a model that is not installed; see `require_models`)

and exits 0 only if nothing failed. The checks of provider libraries are the
providers' own (`ProviderSpec.self_checks`), read from the registry. Every check is isolated: one crash or hang
becomes a FAIL line, never a traceback that hides the rest.

app/ never imports Qt: the window check goes through `ui.smoke`, imported lazily.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import KINDS
from app.store.paths import AppPaths, resolve_paths
from app.store.settings import Settings

Status = Literal["ok", "FAIL", "missing"]

#: Generous: the first model load on a cold disk in CI can take a while.
MODEL_TIMEOUT_S = 180.0
TURN_TIMEOUT_S = 60.0
TURN_QUESTION = "what is 2 plus 2"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str

    def line(self) -> str:
        detail = " ".join(self.detail.split())  # one line, whatever a library said
        return f"{self.status} {self.name}: {detail}"


class Reporter:
    """Prints each result as soon as it is known, so a later hard crash still leaves a trail."""

    def __init__(self, out: TextIO, *, require_models: bool) -> None:
        self.out = out
        self.require_models = require_models
        self.results: list[CheckResult] = []

    def add(self, result: CheckResult) -> None:
        self.results.append(result)
        print(result.line(), file=self.out, flush=True)

    def run(self, name: str, fn: Callable[[], str]) -> None:
        try:
            self.add(CheckResult(name, "ok", fn()))
        except Exception as exc:
            self.add(CheckResult(name, "FAIL", _describe(exc)))

    async def arun(self, name: str, fn: Callable[[], Awaitable[str]], timeout_s: float) -> None:
        try:
            detail = await asyncio.wait_for(fn(), timeout_s)
            self.add(CheckResult(name, "ok", detail))
        except VoiceError as exc:
            if exc.code is ErrorCode.MODEL_MISSING:
                self.add(CheckResult(name, "missing", f"missing — {_with_fetch_hint(exc.message)}"))
            else:
                self.add(CheckResult(name, "FAIL", str(exc)))
        except TimeoutError:
            self.add(CheckResult(name, "FAIL", f"no result within {timeout_s:.0f} s"))
        except Exception as exc:
            self.add(CheckResult(name, "FAIL", _describe(exc)))

    def failures(self) -> list[CheckResult]:
        bad: tuple[Status, ...] = ("FAIL", "missing") if self.require_models else ("FAIL",)
        return [r for r in self.results if r.status in bad]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, VoiceError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _with_fetch_hint(message: str) -> str:
    if "voxdesk models fetch" in message:
        return message
    return f"{message} — run `voxdesk models fetch ID` (see `voxdesk models list`)"


def _version(dist: str, module: Any = None) -> str:
    """Distribution version from metadata, else the module's own `__version__`."""
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        return importlib.metadata.version(dist)
    return str(getattr(module, "__version__", "unknown version"))


# -- native backends ------------------------------------------------------------


def check_python() -> str:
    frozen = "bundle" if getattr(sys, "frozen", False) else "venv"
    return f"{platform.python_version()} ({frozen}, {platform.system()} {platform.machine()})"


def check_numpy() -> str:
    import numpy as np

    total = float(np.arange(4, dtype=np.float32).sum())
    if total != 6.0:
        raise RuntimeError(f"numpy arithmetic is wrong ({total})")
    return str(np.__version__)


def check_portaudio() -> str:
    try:
        import sounddevice as sd
    except OSError as exc:  # sounddevice raises OSError when libportaudio cannot be found
        raise RuntimeError(f"{exc} — install PortAudio (Debian/Ubuntu: `sudo apt install libportaudio2`)") from None
    pa_version = sd.get_portaudio_version()[1]
    try:
        n_devices = len(sd.query_devices())
        devices = f"{n_devices} audio devices"
    except Exception as exc:  # no audio server is not a broken install
        devices = f"devices not listed ({type(exc).__name__})"
    lib = os.path.basename(str(getattr(sd, "_libname", "?")))
    return f"sounddevice {sd.__version__}, {pa_version} ({lib}), {devices}"


def check_soxr() -> str:
    import numpy as np
    import soxr

    out = soxr.resample(np.zeros(4800, dtype=np.float32), 48_000, 16_000)
    if len(out) != 1600:
        raise RuntimeError(f"resampling 48k→16k gave {len(out)} samples, expected 1600")
    return str(soxr.__version__)


def check_keyring() -> str:
    import keyring
    import keyring.backend

    native = {"Linux": "SecretService", "Darwin": "macOS", "Windows": "Windows"}.get(platform.system())
    if native:  # the OS keychain backend must be bundled even when no keychain runs here (CI)
        importlib.import_module(f"keyring.backends.{native}")
    names = sorted(ep.name for ep in importlib.metadata.entry_points(group="keyring.backends"))
    if not names:
        raise RuntimeError("keyring found no backends (package metadata missing from the install)")
    active = keyring.get_keyring()
    return f"{_version('keyring', keyring)}, active {type(active).__module__}.{type(active).__name__}"


def check_certifi() -> str:
    import certifi

    path = certifi.where()
    size = os.path.getsize(path)
    if size < 10_000:
        raise RuntimeError(f"CA bundle at {path} looks truncated ({size} bytes)")
    return f"{certifi.__version__} ({size // 1024} KiB CA bundle)"


def check_opentelemetry() -> str:
    from opentelemetry import propagate
    from opentelemetry.sdk.trace import TracerProvider

    fields = sorted(propagate.get_global_textmap().fields)
    if "traceparent" not in fields:  # propagators come from entry points: metadata must be bundled
        raise RuntimeError(f"W3C trace-context propagator missing (fields: {fields})")
    provider = TracerProvider()
    with provider.get_tracer("voxdesk.self_test").start_as_current_span("voice.turn") as span:
        if not span.get_span_context().is_valid:
            raise RuntimeError("the SDK produced an invalid span")
    provider.shutdown()
    return f"sdk {_version('opentelemetry-sdk')}, propagators ok"


def check_provider_entry_points() -> str:
    from app.plugin.registry import ENTRY_POINT_GROUP, get_registry

    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    if not eps:
        raise RuntimeError(f"no `{ENTRY_POINT_GROUP}` entry points found — the voxdesk package metadata is missing")
    registry = get_registry()
    listed = "; ".join(f"{kind}: {', '.join(registry.list_providers(kind)) or '-'}" for kind in KINDS)
    return f"{len(eps)} entry points ({listed})"


def check_qt() -> str:
    smoke = importlib.import_module("ui.smoke")
    return str(smoke.qt_versions())


def check_window(paths: AppPaths, settings: Settings) -> str:
    smoke = importlib.import_module("ui.smoke")
    return str(smoke.open_and_close_main_window(paths, settings))


BASE_CHECKS: tuple[tuple[str, Callable[[], str]], ...] = (
    ("python", check_python),
    ("numpy", check_numpy),
    ("portaudio", check_portaudio),
    ("soxr", check_soxr),
)
APP_CHECKS: tuple[tuple[str, Callable[[], str]], ...] = (
    ("qt", check_qt),
    ("keyring", check_keyring),
    ("certifi", check_certifi),
    ("opentelemetry", check_opentelemetry),
    ("providers", check_provider_entry_points),
)


# -- models and a typed turn ------------------------------------------------------


def provider_checks() -> list[tuple[str, Callable[[], str]]]:
    """The self-checks every registered provider declares (`ProviderSpec.self_checks`),
    in registry order; a name two providers share runs once."""
    from app.plugin.registry import get_registry

    seen: set[str] = set()
    checks: list[tuple[str, Callable[[], str]]] = []
    for spec in get_registry().specs():
        for check in spec.self_checks:
            if check.name not in seen:
                seen.add(check.name)
                checks.append((check.name, check.run))
    return checks


def model_checks(settings: Settings) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, provider, options) for every configured stage, plus the default model of
    every other provider that declares models.

    Those are loaded even when another provider is configured: they are the offline
    ones users switch to, and their native libraries are the classic bundling trap.
    """
    from app.plugin.registry import get_registry

    checks: list[tuple[str, str, dict[str, Any]]] = [
        (k, settings.stage(k).provider, dict(settings.stage(k).options)) for k in KINDS
    ]
    configured = {(k, settings.stage(k).provider) for k in KINDS}
    for spec in get_registry().specs():
        if spec.models and (spec.kind, spec.name) not in configured:
            checks.append((spec.kind, spec.name, {}))
    return checks


async def load_model(kind: str, name: str, options: dict[str, Any]) -> str:
    from app.plugin.registry import get_registry

    started = time.perf_counter()
    provider = get_registry().create(kind, name, options)
    try:
        await provider.warmup()
        health = await provider.health()
    finally:
        await provider.aclose()
    if health.status.value == "down":
        raise RuntimeError(f"loaded but reports down: {health.detail}")
    detail = f": {health.detail}" if health.detail else ""
    return f"loaded in {time.perf_counter() - started:.1f} s ({health.status.value}{detail})"


async def typed_turn(paths: AppPaths, settings: Settings) -> str:
    """One typed question answered by the local skills, as a user would type it."""
    try:
        session_module: Any = importlib.import_module("app.engine.session")
    except ModuleNotFoundError as exc:
        if exc.name != "app.engine.session":
            raise
        session_module = None
    if session_module is not None and hasattr(session_module, "Session"):
        reply = await _turn_through_session(session_module, paths, settings)
        via = "session"
    else:
        reply = await _turn_through_skills()
        via = "skills provider (app.engine.session not present)"
    if "4" not in reply and "four" not in reply.lower():
        raise RuntimeError(f"expected 4 in the reply to {TURN_QUESTION!r}, got {reply!r}")
    return f"{TURN_QUESTION!r} → {reply.strip()!r} via {via}"


async def _turn_through_session(session_module: Any, paths: AppPaths, settings: Settings) -> str:
    """Typed turn on the real engine (no audio devices), with skills as the assistant."""
    from app.engine.events import Event, TurnFinished

    turn_settings = settings.model_copy(deep=True)
    turn_settings.llm.provider = "skills"
    turn_settings.llm.options = {}
    finished: list[TurnFinished] = []

    def on_event(event: Event) -> None:
        if isinstance(event, TurnFinished):
            finished.append(event)

    session = session_module.Session(turn_settings, paths)
    session.add_listener(on_event)
    try:
        await session.start()
        await session.send_text(TURN_QUESTION)
    finally:
        await session.aclose()
    if not finished:
        raise RuntimeError("the session finished no turn for a typed question")
    turn = finished[-1]
    if turn.error and not turn.reply_text:
        raise RuntimeError(f"the turn failed: {turn.error}")
    return turn.reply_text


async def _turn_through_skills() -> str:
    from app.plugin.provider_api import ChatMessage, LLMProvider
    from app.plugin.registry import get_registry

    provider = get_registry().create("llm", "skills", {})
    assert isinstance(provider, LLMProvider)
    try:
        await provider.warmup()
        parts = [delta async for delta in provider.chat([ChatMessage("user", TURN_QUESTION)])]
    finally:
        await provider.aclose()
    return "".join(parts)


# -- entry ----------------------------------------------------------------------------


@contextlib.contextmanager
def _offline_environment() -> Iterator[None]:
    """The self-test must never reach a model hub, even on a machine with internet."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def _async_checks(report: Reporter, paths: AppPaths, settings: Settings) -> None:
    for kind, name, options in model_checks(settings):
        await report.arun(
            f"model {kind}/{name}",
            lambda k=kind, n=name, o=options: load_model(k, n, o),  # type: ignore[misc]
            MODEL_TIMEOUT_S,
        )
    await report.arun("typed turn", lambda: typed_turn(paths, settings), TURN_TIMEOUT_S)


def run_self_test(paths: AppPaths, settings: Settings, out: TextIO, *, require_models: bool | None = None) -> int:
    """Run every check, print one line each, return the process exit code (0 = all good,
    3 = only models missing or damaged, 1 = something else broken).

    A model that is not installed is reported as `missing` with what to run; it fails
    the self-test only with `require_models` (the "full" bundle ships every model);
    left unset, `VOXDESK_SELF_TEST_REQUIRE_MODELS=1` in the environment turns it on.
    """
    if require_models is None:
        require_models = os.environ.get("VOXDESK_SELF_TEST_REQUIRE_MODELS") == "1"
    report = Reporter(out, require_models=require_models)
    started = time.perf_counter()
    with _offline_environment():
        for name, check in BASE_CHECKS:
            report.run(name, check)
        try:
            declared = provider_checks()
        except Exception as exc:  # pragma: no cover - specs() skips broken plug-ins
            declared = []
            report.add(CheckResult("provider checks", "FAIL", _describe(exc)))
        for name, check in [*declared, *APP_CHECKS]:
            report.run(name, check)
        try:
            asyncio.run(_async_checks(report, paths, settings))
        except Exception as exc:  # pragma: no cover - arun already isolates each check
            report.add(CheckResult("models", "FAIL", _describe(exc)))
        report.run("window", lambda: check_window(paths, settings))
    failures = report.failures()
    elapsed = time.perf_counter() - started
    if failures:
        names = ", ".join(r.name for r in failures)
        print(
            f"self-test FAILED: {len(failures)} of {len(report.results)} checks ({names}) in {elapsed:.1f} s",
            file=out,
            flush=True,
        )
        # README: 3 when what is wrong is a missing (or damaged) model, 1 for anything else.
        return 3 if all(r.status == "missing" for r in failures) else 1
    print(f"self-test passed: {len(report.results)} checks in {elapsed:.1f} s", file=out, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone form (`python -m app.commands.self_test`), also used by bundles built without app.commands.cli."""
    parser = argparse.ArgumentParser(prog="voxdesk --self-test", description=__doc__.splitlines()[0])
    parser.add_argument("--self-test", action="store_true", help="(accepted for the bundle entry point)")
    parser.add_argument("--home", help="use this directory for settings, data and models")
    parser.add_argument(
        "--require-models", action="store_true", help="fail when a default model is not installed (full bundles)"
    )
    args, _unknown = parser.parse_known_args(argv)
    from app.store.settings import SettingsStore

    paths = resolve_paths(args.home)
    settings = SettingsStore(paths.config_dir).load().settings
    return run_self_test(paths, settings, sys.stdout, require_models=args.require_models or None)


if __name__ == "__main__":
    raise SystemExit(main())
