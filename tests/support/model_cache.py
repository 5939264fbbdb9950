"""One assembled copy of each split-package model per test run, linked into each test's home.

A default start joins the 491 MB embedded GGUF into the home's model cache. Done in
every test's fresh home, a run wrote ~20 GB and filled CI's disk; linking one checked
copy in is what a user's second start sees (the cache is kept between starts). Tests
marked `own_model_cache` start from an empty cache (they check assembly and damage).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from app.store.models import MANIFEST, catalogue, package_location
from app.store.paths import AppPaths


@dataclass(frozen=True)
class Seed:
    """One file of a model's assembled folder, with its (size, mtime) when it was built."""

    folder: Path
    file: Path
    stamp: tuple[int, int]


def build_seeds(root: Path) -> list[Seed]:
    paths = AppPaths(root / "config", root / "data", root / "cache").ensure()
    seeds = []
    for spec in catalogue().values():
        if spec.package is None or not spec.package.parts:
            continue
        built = package_location(spec.id, paths=paths)
        if built is None:
            continue
        # A single-file model points at its file; a folder model (whisper-base) at its folder.
        files = [built] if built.is_file() else sorted(p for p in built.iterdir() if p.name != MANIFEST)
        for file in files:
            st = file.stat()
            seeds.append(Seed(file.parent, file, (st.st_size, st.st_mtime_ns)))
    return seeds


def rebuild(seeds: list[Seed], bad: list[Seed]) -> None:
    """Assemble the damaged seeds again (in place in `seeds`), so one bad test fails alone."""
    for seed in bad:
        seed.file.unlink(missing_ok=True)
    root = seeds[0].folder.parents[2]
    seeds[:] = build_seeds(root)


def seed_home(home: Path, seeds: list[Seed]) -> None:
    """Hard-link each seed's file (and copy its manifest) into `home`'s model cache."""
    failed: set[str] = set()
    for seed in seeds:
        dest = home / "cache" / "models" / seed.folder.name
        if seed.folder.name in failed:
            continue
        dest.mkdir(parents=True, exist_ok=True)
        try:
            os.link(seed.file, dest / seed.file.name)
        except OSError:
            failed.add(seed.folder.name)
            shutil.rmtree(dest, ignore_errors=True)  # another filesystem: the app assembles its own
            continue
        shutil.copy2(seed.folder / MANIFEST, dest / MANIFEST)


def damaged_seeds(seeds: list[Seed]) -> list[Seed]:
    """Seeds a test wrote through its link (the app itself replaces, never writes in place)."""
    bad = []
    for seed in seeds:
        try:
            st = seed.file.stat()
        except OSError:
            bad.append(seed)
            continue
        if (st.st_size, st.st_mtime_ns) != seed.stamp:
            bad.append(seed)
    return bad
