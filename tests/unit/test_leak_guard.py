"""The suite's guard against leaked asyncio tasks must itself be able to fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

LEAKY = """
import asyncio

async def test_leaks() -> None:
    asyncio.get_running_loop().create_task(asyncio.sleep(30))

async def test_clean() -> None:
    await asyncio.sleep(0)
"""


def test_a_leaked_task_fails_the_test(tmp_path: Path) -> None:
    shutil.copy(REPO / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_leaky.py").write_text(LEAKY)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},  # the conftest's helpers live in tests/support
        timeout=120,
    )
    assert out.returncode == 1, out.stdout
    assert "leaked asyncio tasks" in out.stdout
    assert "1 error" in out.stdout and "ERROR test_leaky.py::test_leaks" in out.stdout
