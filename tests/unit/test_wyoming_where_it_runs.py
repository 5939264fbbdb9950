"""Where each provider runs (this computer / your server / cloud) and what it needs, as
`voxdesk providers` and Settings show it — the Wyoming ones on your server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from app.plugin.provider_api import KINDS
from app.plugin.registry import get_registry

REPO = Path(__file__).resolve().parents[2]


def test_every_provider_says_where_it_runs() -> None:
    reg = get_registry()
    for spec in reg.specs():
        assert spec.info.where in ("local", "server", "cloud", "server-or-cloud"), spec.name
        assert spec.info.where == "local" or not spec.info.local, spec.name  # `local` keeps its meaning
    for kind in ("stt", "tts"):
        info = reg.info(kind, "wyoming")
        assert (info.where, info.where_label, info.local) == ("server", "your server", False)
        assert info.needs and "Wyoming" in info.needs[0]
        assert info.capabilities["runs"] == "server"
    for kind in ("stt", "llm", "tts"):
        assert reg.info(kind, "openai-compatible").where_label == "your server or cloud"
    assert reg.info("stt", "faster-whisper").where_label == "this computer"
    assert reg.find("stt", runs="server") == ["wyoming"]


def _providers(*args: str, home: Path) -> str:
    env = {**os.environ, "VOXDESK_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-m", "app", "providers", *args], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_voxdesk_providers_shows_where_and_what_it_needs(tmp_path: Path) -> None:
    text = _providers(home=tmp_path)
    lines = {ln.split()[0]: ln for ln in text.splitlines() if ln.startswith("  ")}
    wyoming = [ln for ln in text.splitlines() if ln.strip().startswith("wyoming")]
    assert len(wyoming) == 2 and all("your server" in ln and "needs a Wyoming" in ln for ln in wyoming), wyoming
    assert "this computer" in lines["piper"] and "needs" not in lines["piper"]
    assert {k.upper() for k in KINDS} <= set(text.split())  # every stage is listed, not only four
    rows = json.loads(_providers("--json", home=tmp_path))
    row = next(r for r in rows if (r["kind"], r["name"]) == ("tts", "wyoming"))
    assert (row["runs"], row["where"]) == ("server", "your server")
    assert row["needs"] == ["a Wyoming text-to-speech server on your network"]
    cloud = next(r for r in rows if (r["kind"], r["name"]) == ("llm", "openai-compatible"))
    assert cloud["where"] == "your server or cloud" and cloud["needs"]


def test_settings_lists_where_each_provider_runs(qtbot: Any) -> None:
    from app.store.settings import Settings
    from ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(Settings(), get_registry())
    qtbot.addWidget(dialog)
    page = dialog.stage_pages["stt"]
    items = {page.list.item(i).data(256): page.list.item(i) for i in range(page.list.count())}
    assert items["wyoming"].text().endswith("·  your server")
    assert items["wyoming"].toolTip() == "Runs on your server; needs a Wyoming speech-to-text server on your network"
    assert items["faster-whisper"].text().endswith("·  this computer")
    page.select("wyoming")
    # Where it runs is read from the address: the default one is on this computer.
    assert "runs on this computer" in page.badges.text() and "needs a Wyoming" in page.badges.text()
    assert page.form is not None
    page.form.set_values({"uri": "tcp://192.168.1.20:10300"})
    assert "runs on your server" in page.badges.text()
    assert page.form is not None and page.form.editor("uri") is not None


async def test_settings_asks_the_server_what_it_offers(qtbot: Any) -> None:
    """Settings → Voice → Wyoming: the server's voices and languages become suggestions on
    the fields; a server that is not there is said so, in its words."""
    from PySide6.QtWidgets import QLineEdit

    from app.store.settings import Settings
    from tests.support.wyoming_servers import FakeServer
    from ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(Settings(), get_registry())
    qtbot.addWidget(dialog)
    page = dialog.stage_pages["tts"]
    page.select("piper")
    assert page.ask_server.isHidden()  # only providers that declare server choices get the button
    page.select("wyoming")
    assert not page.ask_server.isHidden()
    assert page.form is not None
    async with FakeServer("ok") as srv:
        page.form.set_values({"uri": srv.uri})
        await page.ask_server_choices()
    assert page.offers.text().startswith("The server offers 1 voice (voice-a); 1 language (en)"), page.offers.text()
    voice = page.form.editor("voice")
    assert isinstance(voice, QLineEdit) and voice.completer() is not None
    assert voice.completer().model().data(voice.completer().model().index(0, 0)) == "voice-a"
    await page.ask_server_choices()  # the fake has gone: its port is closed now
    assert page.offers.text() == f"Wyoming server at {srv.uri} is not answering: start it or check the address"
    # Closing stops the dialog's own background work (the Audio tab's device listing asks
    # the sound server for its names, which can outlast a short test).
    dialog.reject()
    await asyncio.sleep(0)
