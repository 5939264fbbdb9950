"""Distributions on disk for the split-model tests, without touching the venv.

`importlib.metadata` finds the first distribution of a name along `sys.path`, so a
folder put in front (`monkeypatch.syspath_prepend`, or PYTHONPATH for a child process)
can hold made-up part packages, or shadow the installed ones with a damaged copy.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import shutil
from pathlib import Path


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_distribution(site: Path, name: str, version: str, files: dict[str, bytes]) -> None:
    """A minimal installed distribution: METADATA, RECORD (hash and size per file) and `files`."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    rows = []
    for inner, data in files.items():
        path = site / inner
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        rows.append(f"{inner},{_record_hash(data)},{len(data)}")
    rows += [f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]
    (info / "RECORD").write_text("\n".join(rows) + "\n")


def shadow_installed(site: Path, parts: tuple[tuple[str, str], ...]) -> dict[str, Path]:
    """Copies of the installed part distributions in `site`: their metadata copied, each
    data file a symlink to the installed one (cheap). Returns the linked file per name;
    replace or delete one to damage that part only."""
    linked: dict[str, Path] = {}
    for name, inner in parts:
        dist = importlib.metadata.distribution(name)
        for f in dist.files or ():
            if f.parts[0].endswith(".dist-info") and Path(str(dist.locate_file(f))).is_file():
                dest = site / f
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(str(dist.locate_file(f))), dest)
        link = site / inner
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(Path(str(dist.locate_file(inner))), link)
        linked[name] = link
    return linked


def flip_a_byte(link: Path, offset: int = 1 << 20) -> None:
    """Turn a linked part into a copy of it with one byte changed (same size, other hash)."""
    data = bytearray(link.read_bytes())
    data[offset] ^= 0xFF
    link.unlink()
    link.write_bytes(bytes(data))
