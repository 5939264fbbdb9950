"""README screenshots.

Run: `xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python -m tests.ui.screenshots`

Drives the real window and engine (a typed turn, then spoken ones through Silero,
faster-whisper, skills and Piper), grabs the main window while the user is still speaking
(a real partial transcript) and the settings dialog into docs/screenshots/.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def main() -> int:
    import qasync
    from PySide6.QtWidgets import QApplication

    from app.engine.session import Session
    from app.store.paths import resolve_paths
    from app.store.settings import Settings, SettingsStore
    from ui import theme
    from ui.main_window import MainWindow

    app = QApplication(sys.argv[:1])
    theme.apply_theme(app, dark="--dark" in sys.argv)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    paths = resolve_paths(tempfile.mkdtemp(prefix="voxdesk-shots-")).ensure()
    settings = Settings.model_validate({"activation": {"mode": "always"}})
    store = SettingsStore(paths.config_dir)
    window = MainWindow(paths, settings, store)
    window.resize(1240, 760)
    window.show()
    session = Session(settings, paths, store=store)
    suffix = "-dark" if "--dark" in sys.argv else ""

    async def scenario() -> None:
        from app.audio.files import WavFileSink, WavFileSource
        from tests.support.speech import speak_to_wav

        await window.start_session(session)
        await session.ready.wait()
        from app.engine import events as ev

        await session.send_text("what is 1250 divided by 5")
        # Spoken questions next, so the latency panel shows real voice-to-voice turns.
        sink = WavFileSink(None)
        for i, q in enumerate(("what time is it", "what is seventeen times twenty three")):
            wav = speak_to_wav(q, paths.data_dir / f"q{i}.wav")
            await session.set_audio(WavFileSource(wav), sink)
            await session.wait_capture_done()
            await session.wait_idle()
        # Then one more, caught while the user is still speaking: a real partial transcript,
        # the listening state and the live meter — nothing staged.
        partial = asyncio.Event()
        session.add_listener(lambda e: partial.set() if isinstance(e, ev.PartialTranscript) else None)
        wav = speak_to_wav("set a timer for five minutes please", paths.data_dir / "q2.wav")
        await session.set_audio(WavFileSource(wav, realtime=True), sink)
        await asyncio.wait_for(partial.wait(), 30)
        await asyncio.sleep(0.15)  # let the 10 Hz panels catch up
        OUT.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(OUT / f"main-window{suffix}.png"))
        dialog = window.open_settings()
        dialog.stage_pages["tts"].select("piper")
        dialog.tabs.setCurrentWidget(dialog.stage_pages["tts"])
        form = dialog.stage_pages["tts"].form
        if form is not None and "speaking_rate" in form.fields_by_name():
            form.set_values({"speaking_rate": 1.2})  # a spin box: out-of-range values cannot be typed
        await asyncio.sleep(0.2)
        dialog.grab().save(str(OUT / f"settings-dialog{suffix}.png"))
        dialog.close()
        await session.wait_capture_done()
        await session.wait_idle()
        await window.shutdown()

    with loop:
        loop.run_until_complete(scenario())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
