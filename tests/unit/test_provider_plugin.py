"""A model-backed provider in one file, registered by an entry point, picked up by `voxdesk
models list|verify|fetch`, `doctor` and `--self-test` with no change to app/.

The provider below is the worked example of CONTRIBUTING.md ("Writing a provider"): a
package `voxdesk_canned` with its SPEC declaring its model (one JSON file, fetched from
a local HTTP server on 127.0.0.1 here) and its self-check, installed into a temporary
folder with its dist-info (what `pip install` leaves behind).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VOXDESK = Path(sys.executable).with_name("voxdesk")
REPLIES = json.dumps({"what is 2 plus 2": "Four.", "": "I only know canned answers."}).encode()

#: The provider's whole module, as CONTRIBUTING.md shows it (URL and hash filled in).
PLUGIN = '''
"""LLM `canned`: answers from a table of canned replies (its "model" is one JSON file)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic import BaseModel, Field

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.model_spec import ModelFile, ModelOption, ModelSpec, SelfCheck
from app.plugin.provider_api import ChatMessage, Health, HealthStatus, LLMProvider
from app.plugin.registry import ProviderInfo, ProviderSpec

MODEL_ID = "canned-replies-v1"


class CannedConfig(BaseModel):
    model: str = Field(MODEL_ID, description="Model id, or the path of a replies .json file")
    model_path: str | None = Field(None, description="Use this file for the model id above")


class CannedLLM(LLMProvider):
    name = "canned"

    def __init__(self, config: CannedConfig) -> None:
        self.config = config
        self.replies: dict[str, str] | None = None

    async def warmup(self) -> None:
        from app.store.models import resolve_model  # Settings path, package, cache, or MODEL_MISSING

        path = resolve_model(self.config.model, self.config.model_path)
        try:
            self.replies = json.loads(Path(path).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise VoiceError("llm.canned", ErrorCode.MODEL_MISSING,
                             f"{path} is not a replies file ({exc}) — run `voxdesk models fetch {MODEL_ID}`")

    async def chat(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        if self.replies is None:
            await self.warmup()
        assert self.replies is not None
        question = messages[-1].content.strip().lower().rstrip("?")
        yield self.replies.get(question, self.replies.get("", ""))

    async def health(self) -> Health:
        return Health(HealthStatus.OK, "replies loaded" if self.replies else "loads on first use")


def check_json() -> str:
    """Self-test: the library this provider needs works (here: the standard json module)."""
    return f"json {json.dumps({'ok': True})}"


SPEC = ProviderSpec(
    kind="llm",
    name="canned",
    factory=CannedLLM,
    config_model=CannedConfig,
    info=ProviderInfo("Canned replies", "Answers from a table; a worked example", local=True),
    models=(
        ModelSpec(
            id=MODEL_ID,
            kind="llm",
            description="Canned replies, one JSON file",
            files=(ModelFile("replies.json", "@URL@", sha256="@SHA256@", size=@SIZE@),),
            licence="CC0",
            main="replies.json",
        ),
    ),
    model_option=ModelOption("model", default=MODEL_ID, path_option="model_path", path_suffixes=(".json",)),
    self_checks=(SelfCheck("canned-json", check_json),),
)
'''


class _Files(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def plugin_path(tmp_path: Path) -> Iterator[Path]:
    """The plug-in installed into a folder of its own (module + dist-info), and the server of its model."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "replies.json").write_bytes(REPLIES)
    handler = lambda *a, **kw: _Files(*a, directory=str(served), **kw)  # noqa: E731
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    site = tmp_path / "site"
    site.mkdir()
    url = f"http://127.0.0.1:{srv.server_address[1]}/replies.json"
    source = (
        PLUGIN.replace("@URL@", url)
        .replace("@SHA256@", hashlib.sha256(REPLIES).hexdigest())
        .replace("@SIZE@", str(len(REPLIES)))
    )
    (site / "voxdesk_canned.py").write_text(source)
    dist = site / "voxdesk_canned-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: voxdesk-canned\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[voxdesk.providers]\nllm.canned = voxdesk_canned:SPEC\n")
    try:
        yield site
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


def voxdesk(*args: str, site: Path, home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "VOXDESK_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
    }
    return subprocess.run([str(VOXDESK), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=home)


def test_app_does_not_know_the_example_provider() -> None:
    text = "".join(p.read_text() for p in (REPO / "app").rglob("*.py"))
    assert "voxdesk_canned" not in text and "canned-replies" not in text and '"canned"' not in text


def test_models_list_verify_fetch_pick_up_a_plugin_model(plugin_path: Path, voxdesk_home: Path) -> None:
    listed = voxdesk("models", "list", site=plugin_path, home=voxdesk_home)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("canned-replies-v1"))
    # ID, KIND, SIZE (2 words), MEMORY, INSTALLED: declared, not installed yet
    assert row.split()[1] == "llm" and row.split()[5] == "no", row

    missing = voxdesk("models", "verify", "canned-replies-v1", site=plugin_path, home=voxdesk_home)
    assert missing.returncode == 3, missing.stdout + missing.stderr
    assert "voxdesk models fetch canned-replies-v1" in missing.stdout

    fetched = voxdesk("models", "fetch", "canned-replies-v1", site=plugin_path, home=voxdesk_home)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert f"SHA-256 {hashlib.sha256(REPLIES).hexdigest()}" in fetched.stdout
    cached = voxdesk_home / "cache" / "models" / "canned-replies-v1" / "replies.json"
    assert cached.read_bytes() == REPLIES

    ok = voxdesk("models", "verify", "canned-replies-v1", site=plugin_path, home=voxdesk_home)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "canned-replies-v1: ok (cache)" in ok.stdout

    cached.write_bytes(REPLIES[:-3] + b"!!}")  # damaged, same size: verify finds it, fetch repairs it
    assert voxdesk("models", "verify", "canned-replies-v1", site=plugin_path, home=voxdesk_home).returncode == 3
    repaired = voxdesk("models", "fetch", "canned-replies-v1", site=plugin_path, home=voxdesk_home)
    assert repaired.returncode == 0 and "repaired replies.json" in repaired.stdout, repaired.stdout
    assert cached.read_bytes() == REPLIES


def test_doctor_and_self_test_pick_up_a_plugin_provider(plugin_path: Path, voxdesk_home: Path) -> None:
    assert voxdesk("models", "fetch", "canned-replies-v1", site=plugin_path, home=voxdesk_home).returncode == 0

    doctor = voxdesk("--set", "llm.provider=canned", "doctor", site=plugin_path, home=voxdesk_home)
    assert "canned-replies-v1 (llm: canned)" in doctor.stdout, doctor.stdout
    line = next(x for x in doctor.stdout.splitlines() if "canned-replies-v1 (llm: canned)" in x)
    assert line.startswith("[ok  ]") and "all files ok" in line, line

    report = voxdesk("--self-test", site=plugin_path, home=voxdesk_home)
    lines = report.stdout.splitlines()
    assert 'ok canned-json: json {"ok": true}' in lines, report.stdout
    loaded = next(
        x
        for x in lines
        if x.startswith(("ok model llm/canned:", "FAIL model llm/canned:", "missing model llm/canned:"))
    )
    assert loaded.startswith("ok model llm/canned: loaded"), loaded
