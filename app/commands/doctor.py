"""`voxdesk providers` and `voxdesk doctor`: what is installed and usable on this machine."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TextIO

from app.plugin.errors import VoiceError
from app.plugin.provider_api import KINDS
from app.plugin.registry import get_registry
from app.store.paths import AppPaths
from app.store.settings import Settings


def providers_report() -> list[dict[str, Any]]:
    """One row per registered provider; imports provider modules but no heavy library."""
    reg = get_registry()
    rows: list[dict[str, Any]] = []
    for kind in KINDS:
        for name in reg.list_providers(kind):
            row: dict[str, Any] = {"kind": kind, "name": name}
            try:
                info = reg.info(kind, name)
            except VoiceError as exc:
                rows.append({**row, "usable": False, "why": exc.message})
                continue
            missing = info.missing_requirements()
            rows.append(
                {
                    **row,
                    "display_name": info.display_name,
                    "description": info.description,
                    "local": info.local,
                    "runs": info.where,
                    "where": info.where_label,
                    "needs": list(info.needs) + (["an API key"] if info.needs_api_key and not info.needs else []),
                    "capabilities": info.capabilities,
                    "usable": not missing,
                    "why": f"missing Python package(s): {', '.join(missing)} — pip install 'voxdesk[all]'"
                    if missing
                    else "",
                }
            )
    return rows


def _line(out: TextIO, ok: bool | None, label: str, detail: str = "") -> None:
    mark = {True: "ok  ", False: "FAIL", None: "--  "}[ok]
    out.write(f"[{mark}] {label}{': ' + detail if detail else ''}\n")


def _configured_devices(settings: Settings, out: TextIO) -> int:
    """The microphone and speaker this configuration would open; returns problems found."""
    from app.audio.devices import choose_device

    problems = 0
    a = settings.audio
    for direction, what, name, api in (
        ("input", "microphone", a.input_device, a.input_host_api),
        ("output", "speaker", a.output_device, a.output_host_api),
    ):
        try:
            choice = choose_device(direction, name, api)  # type: ignore[arg-type]
        except VoiceError as exc:
            _line(out, False, what, exc.message)
            problems += 1
            continue
        _line(out, None if choice.notice else True, what, choice.notice or choice.device.label)
    return problems


EXIT_MISSING = 3


def _model_files(paths: AppPaths, settings: Settings, out: TextIO) -> int:
    """Every model the configured pipeline loads, fully checked (hashes, or the format of a
    file Settings point at); then the rest of the catalogue. Returns the models that fail."""
    from app.store.models import configured_models, list_models, verify_model

    failed = 0
    checked: set[str] = set()
    try:
        for c in configured_models(settings):
            label = f"{c.model_id} ({c.stage}: {c.provider}" + (f", {c.setting}" if c.setting else "") + ")"
            try:
                report = verify_model(c.model_id, c.path, paths=paths, setting=c.setting)
            except VoiceError as exc:
                _line(out, False, label, exc.message)
                failed += 1
                continue
            checked.add(c.model_id)
            where = f"{report.location}: " if report.location else ""
            _line(out, report.ok, label, f"{where}{report.detail}")
            failed += not report.ok
        for row in list_models(paths):
            if row.id in checked:
                continue
            location = row.location
            _line(out, True if location else None, row.id, str(location or "not installed"))
    except Exception as exc:  # a broken cache must not stop the rest of the report
        _line(out, False, "models", str(exc))
        failed += 1
    return failed


def doctor(paths: AppPaths, settings: Settings, out: TextIO) -> int:
    """Human report; exit 0 when the configured pipeline can run here, 3 when a model or
    device it needs is missing or damaged, 1 for other problems."""
    problems = 0
    device_problems = 0
    out.write(f"VoxDesk home: config {paths.config_dir}, data {paths.data_dir}, cache {paths.cache_dir}\n\n")
    out.write("Audio devices\n")
    try:
        from app.audio.devices import doctor_audio_report

        for line in doctor_audio_report():
            out.write(f"  {line}\n")
        device_problems = _configured_devices(settings, out)
    except Exception as exc:
        _line(out, False, "audio", str(exc))
        device_problems = 1
    problems += device_problems
    missing = device_problems

    out.write("\nConfigured providers\n")
    reg = get_registry()

    async def health_all() -> list[tuple[str, str, bool, str]]:
        rows: list[tuple[str, str, bool, str]] = []
        for kind in KINDS:
            cfg = settings.stage(kind)
            prov = None
            try:
                prov = reg.create(kind, cfg.provider, cfg.options)
                h = await asyncio.wait_for(prov.health(), 10)
                rows.append((kind, cfg.provider, h.status.value != "down", f"{h.status.value} {h.detail}"))
            except TimeoutError:
                rows.append((kind, cfg.provider, False, "no answer to a health check within 10 s"))
            except Exception as exc:  # a broken plug-in is a finding, not a crash of doctor
                rows.append((kind, cfg.provider, False, str(exc) or type(exc).__name__))
            finally:
                if prov is not None:
                    with contextlib.suppress(Exception):
                        await prov.aclose()
        return rows

    for kind, name, ok, detail in asyncio.run(health_all()):
        _line(out, ok, f"{kind}: {name}", detail.strip())
        problems += not ok

    out.write("\nModel files\n")
    model_problems = _model_files(paths, settings, out)
    problems += model_problems
    missing += model_problems

    out.write("\nKeychain\n")
    try:
        from app.store.secrets import has_keychain, keychain_status

        # No keychain is not fatal (keys come from the environment), but not "ok" either.
        _line(out, True if has_keychain() else None, "keychain", keychain_status())
    except Exception as exc:
        _line(out, None, "keychain", str(exc))
    out.write("\n" + ("All set.\n" if not problems else f"{problems} problem(s) found — see above.\n"))
    # README: 3 when a model or device is missing (or damaged), 1 for other problems.
    return EXIT_MISSING if missing else (1 if problems else 0)
