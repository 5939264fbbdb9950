"""Shared fixtures: every test gets its own VOXDESK_HOME (its model cache seeded with the
run's one assembled copy of each split model); leaked asyncio tasks fail the test."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.model_cache import Seed

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Never contact a model hub, whatever a library would like to do.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def _model_seeds(tmp_path_factory: pytest.TempPathFactory) -> list[Seed]:
    # Imported here: the app's imports at conftest load time race PySide's import hook.
    from tests.support.model_cache import build_seeds

    return build_seeds(tmp_path_factory.mktemp("model-seeds"))


@pytest.fixture(autouse=True)
def voxdesk_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("VOXDESK_HOME", str(home))
    if request.node.get_closest_marker("own_model_cache") is not None:
        yield home
        return
    from tests.support.model_cache import damaged_seeds, rebuild, seed_home

    seeds: list[Seed] = request.getfixturevalue("_model_seeds")
    seed_home(home, seeds)
    yield home
    if bad := damaged_seeds(seeds):
        rebuild(seeds, bad)
        names = ", ".join(str(s.file) for s in bad)
        pytest.fail(f"the test wrote into the shared model copy {names}; mark it own_model_cache")


@pytest.fixture(autouse=True)
def _no_leaked_tasks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail an async test that leaves tasks running on its event loop.

    Requesting pytest-asyncio's runner here makes this teardown run after the test's
    own async fixtures have closed but before the runner cancels what is left (which
    would hide the leak)."""
    if request.node.get_closest_marker("asyncio") is None:
        yield
        return
    runner = request.getfixturevalue("_function_scoped_runner")
    yield
    loop = runner.get_loop()
    if loop.is_closed() or loop.is_running():
        return
    # A few turns of the loop let finishing work settle (a cancelled task unwinding, the
    # loop closing an abandoned async generator); what is still pending was left running.
    for _ in range(5):
        loop.run_until_complete(asyncio.sleep(0))
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if pending:
        for t in pending:
            t.cancel()
        pytest.fail(f"leaked asyncio tasks: {pending}")
