"""`voxdesk` command line. JSON to stdout, logs to stderr, exit 0 only on success.

Every command accepts `--home DIR` (or VOXDESK_HOME) and repeated `--set KEY=VALUE`.
Exit codes: 0 ok, 1 the command ran and failed (for `converse`, also: its --timeout
ran out), 2 bad usage or bad settings, 3 a needed part (model, device, library) is
missing, 130 interrupted (Ctrl+C).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app import __version__
from app.commands.exit_codes import EXIT_INTERRUPTED, EXIT_MISSING, EXIT_OK, EXIT_USAGE, exit_code_for
from app.commands.terminal_text import escape_control
from app.memory import limit_malloc_arenas, settle_app_heap
from app.plugin.errors import VoiceError
from app.store.paths import AppPaths, resolve_paths
from app.store.settings import Settings, SettingsStore, apply_overrides

log = logging.getLogger("voxdesk")


def _global_options(p: argparse.ArgumentParser, *, sub: bool) -> None:
    # On sub-commands the defaults are suppressed so `voxdesk --home X doctor` keeps X.
    d = argparse.SUPPRESS if sub else None
    p.add_argument("--home", metavar="DIR", default=d, help="keep settings, history and models under DIR")
    # A separate dest on sub-commands: argparse would otherwise replace the list given
    # before the command with the one given after it.
    p.add_argument(
        "--set",
        dest="sub_overrides" if sub else "overrides",
        metavar="KEY=VALUE",
        action="append",
        default=argparse.SUPPRESS if sub else [],
        help="override a setting for this run, e.g. --set llm.provider=llama-cpp",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS if sub else False,
        help="debug logging on stderr",
    )


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, sub=True)
    parser = argparse.ArgumentParser(
        prog="voxdesk",
        description="VoxDesk — a desktop voice assistant. Without a command, opens the window.",
    )
    _global_options(parser, sub=False)
    parser.add_argument("--version", action="version", version=f"voxdesk {__version__}")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check native libraries, models, the window and one turn; exit 0 if all work",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("providers", parents=[common], help="list providers per stage and whether usable here")
    p.add_argument("--json", action="store_true")

    sub.add_parser("doctor", parents=[common], help="check audio devices, model files, providers, keychain")

    p = sub.add_parser("converse", parents=[common], help="talk to the assistant headlessly (files or devices)")
    p.add_argument("--input", action="append", default=[], metavar="WAV", help="a spoken question (repeatable)")
    p.add_argument("--text", action="append", default=[], help="a typed question (repeatable)")
    p.add_argument("--output", metavar="WAV", help="write the assistant's audio here")
    p.add_argument("--mic", metavar="DEVICE", help="capture from this input device (see `voxdesk doctor`)")
    p.add_argument("--speaker", metavar="DEVICE", help="play to this output device")
    p.add_argument("--turns", type=int, default=1, help="turns to run on real devices")
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="end the whole run after S seconds (exit code 1; the turns so far are kept)",
    )
    p.add_argument("--fast", action="store_true", help="feed files as fast as possible, not at real-time pace")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("bench", parents=[common], help="measure voice-to-voice latency on this machine")
    p.add_argument("--turns", type=int, default=10, help="spoken questions per group (skills, open)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-telemetry-compare", action="store_true", help="skip the telemetry-off run")
    p.add_argument(
        "--answers",
        action="store_true",
        help="instead: ask everyday questions as text; report the share answered right and the spoken length",
    )
    p.add_argument(
        "--turn-taking",
        action="store_true",
        help="instead: a labelled set of finished and paused sentences; end-of-turn delay and cut-offs per detector",
    )
    p.add_argument(
        "--wake-word",
        action="store_true",
        help="instead: each wake-word model on its phrase in other voices (clean and noisy) and on 10 min of other "
        "speech; detected share, false wakes, delay and CPU",
    )
    p.add_argument(
        "--stt",
        action="store_true",
        help="instead: word error rate on recorded people and STT latency after the endpoint for the offline "
        "speech models (tiny.en, whisper-base, Moonshine base)",
    )

    p = sub.add_parser(
        "echo-check", parents=[common], help="play a test sound and measure how much echo the canceller removes"
    )
    p.add_argument("--mic", metavar="DEVICE", help="the microphone (default: the one in the settings)")
    p.add_argument("--speaker", metavar="DEVICE", help="the speaker (default: the one in the settings)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("history", parents=[common], help="list past conversations or export one")
    p.add_argument("action", choices=["list", "export"])
    p.add_argument("ids", nargs="*", metavar="CONVERSATION")
    p.add_argument("--format", choices=["markdown", "json"], default="markdown")
    p.add_argument("--output", metavar="FILE", help="write the export here instead of printing it")

    p = sub.add_parser("models", parents=[common], help="list, fetch, verify, time or delete model files")
    p.add_argument("action", choices=["list", "fetch", "verify", "speed", "delete"])
    p.add_argument("ids", nargs="*", metavar="MODEL")
    return parser


def load_settings(paths: AppPaths, overrides: Sequence[str]) -> tuple[Settings, SettingsStore, list[str]]:
    store = SettingsStore(paths.config_dir)
    result = store.load()
    if not overrides:
        return result.settings, store, result.notices
    settings = apply_overrides(result.settings, overrides)
    store.remember_overrides(result.settings, settings)
    return settings, store, result.notices


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from app.plugin.redaction import SecretRedactor

    for handler in logging.getLogger().handlers:
        handler.addFilter(SecretRedactor())


def main(argv: Sequence[str] | None = None) -> int:
    limit_malloc_arenas()  # before any worker thread exists (see app.memory)
    settle_app_heap()  # per-sentence buffers must not pile up in the heap (see app.memory)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.overrides = [*args.overrides, *getattr(args, "sub_overrides", [])]
    # Only the program itself (not an in-process caller passing argv) may bound its own exit.
    args.exit_guard = argv is None
    _setup_logging(args.verbose)
    try:
        paths = resolve_paths(args.home).ensure()
        if args.home:
            # Providers resolve model files on their own; they must see the same home.
            os.environ["VOXDESK_HOME"] = str(Path(args.home).expanduser().resolve())
        settings, store, notices = load_settings(paths, args.overrides)
    except VoiceError as exc:
        print(f"voxdesk: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"voxdesk: cannot use the VoxDesk home ({exc}) — pass --home DIR with a writable folder", file=sys.stderr)
        return EXIT_USAGE
    for n in notices:
        print(f"voxdesk: {escape_control(n, keep_newlines=False)}", file=sys.stderr)
    try:
        return _dispatch(args, paths, settings, store, notices)
    except VoiceError as exc:
        print(f"voxdesk: {escape_control(str(exc), keep_newlines=False)}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        print("voxdesk: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _dispatch(
    args: argparse.Namespace, paths: AppPaths, settings: Settings, store: SettingsStore, notices: list[str]
) -> int:
    if args.self_test:
        from app.commands.self_test import run_self_test

        return run_self_test(paths, settings, sys.stdout)
    cmd = args.command
    if cmd is None:
        # The window lives in ui/ (Qt); imported only here so the engine never needs Qt.
        try:
            ui_app = importlib.import_module("ui.app")
            importlib.import_module("PySide6.QtWidgets")
            importlib.import_module("qasync")
        except ImportError as exc:
            print(
                f"voxdesk: the window needs Qt ({exc.name or exc} is not installed) — run: "
                "pip install 'voxdesk[ui]'   (the headless commands work without it)",
                file=sys.stderr,
            )
            return EXIT_MISSING
        # Notices (a settings file moved aside...) were printed above; the window shows them too.
        return int(ui_app.run(sys.argv[:1], paths, settings, store, notices=notices))
    if cmd == "providers":
        from app.commands.doctor import providers_report

        return _print(providers_report(), args.json, _providers_text)
    if cmd == "doctor":
        from app.commands.doctor import doctor

        return doctor(paths, settings, sys.stdout)
    if cmd == "models":
        from app.commands.models import models_command

        return models_command(args.action, args.ids, paths, sys.stdout, settings=settings)
    if cmd == "history":
        from app.commands.history import HistoryRequest, history_command

        request = HistoryRequest(args.action, args.ids, args.format, args.output)
        return history_command(request, paths, sys.stdout)
    if cmd == "converse":
        from app.commands.converse import converse_command

        return converse_command(args, paths, settings)
    if cmd == "echo-check":
        from app.commands.echo_check import echo_check_command

        return echo_check_command(args, settings, sys.stdout)
    if cmd == "bench":
        from app.commands.bench import bench_command

        return bench_command(args, paths, settings)
    raise AssertionError(cmd)


def _print(data: Any, as_json: bool, text: Any) -> int:
    if as_json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text(data))
    return EXIT_OK


def _providers_text(rows: list[dict[str, Any]]) -> str:
    """Per stage: name, where it runs (this computer / your server / cloud), whether it is
    usable here, and what it needs besides this install."""
    out = []
    for kind in dict.fromkeys(r["kind"] for r in rows):
        out.append(f"{kind.upper()}")
        for r in (r for r in rows if r["kind"] == kind):
            status = "usable" if r["usable"] else f"not usable: {r['why']}"
            needs = f" · needs {', '.join(r['needs'])}" if r.get("needs") else ""
            out.append(f"  {r['name']:<20} {r.get('where', '?'):<21} {status}{needs}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
