"""Rebuild pyopen-wakeword's TFLite interpreters on one thread.

The library creates its interpreters with default options, and TFLite then runs the
mel-spectrogram and embedding models on a thread pool whose workers spin between the
80 ms hops: ~6 % of one core, where one thread does the same work on ~3.5–4 %
(2-core EPYC VM).
The C API cannot change an interpreter's threads, so each is created again from the
same model with one thread, and the library's handles are swapped for the new ones.
Written against pyopen-wakeword 1.1.0 (pinned); on other versions it leaves them be.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)


def _interpreter(lib: Any, model: int, shape: Sequence[int] | None) -> tuple[int, int, int]:
    lib.TfLiteInterpreterOptionsCreate.restype = ctypes.c_void_p
    lib.TfLiteInterpreterOptionsSetNumThreads.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    lib.TfLiteInterpreterOptionsDelete.argtypes = [ctypes.c_void_p]
    options = lib.TfLiteInterpreterOptionsCreate()
    lib.TfLiteInterpreterOptionsSetNumThreads(options, 1)
    interpreter = lib.TfLiteInterpreterCreate(model, options)
    lib.TfLiteInterpreterOptionsDelete(options)  # the interpreter keeps its own copy
    if not interpreter:
        raise RuntimeError("TfLiteInterpreterCreate returned NULL")
    if shape is not None:
        dims = (ctypes.c_int32 * len(shape))(*shape)
        lib.TfLiteInterpreterResizeInputTensor(interpreter, ctypes.c_int32(0), dims, ctypes.c_int32(len(shape)))
    lib.TfLiteInterpreterAllocateTensors(interpreter)
    return (
        interpreter,
        lib.TfLiteInterpreterGetInputTensor(interpreter, ctypes.c_int32(0)),
        lib.TfLiteInterpreterGetOutputTensor(interpreter, ctypes.c_int32(0)),
    )


def _swap(obj: Any, prefix: str, model_attr: str, shape: Sequence[int] | None) -> None:
    old = getattr(obj, f"{prefix}interpreter")
    new, inp, out = _interpreter(obj.lib, getattr(obj, model_attr), shape)
    setattr(obj, f"{prefix}interpreter", new)
    setattr(obj, f"{prefix}input_tensor", inp)
    setattr(obj, f"{prefix}output_tensor", out)
    obj.lib.TfLiteInterpreterDelete(old)


def run_on_one_thread(features: Any, model: Any) -> bool:
    """Swap the interpreters of an OpenWakeWordFeatures and an OpenWakeWord for
    one-thread ones; False (and nothing changed) when their layout is not the known one."""
    try:
        from pyopen_wakeword.openwakeword import EMB_SHAPE, MEL_SHAPE
    except ImportError:
        return False
    known = all(hasattr(features, a) for a in ("lib", "mel_model", "mel_interpreter", "emb_model", "emb_interpreter"))
    if not known or not all(hasattr(model, a) for a in ("lib", "model", "interpreter", "input_tensor")):
        log.info("pyopen-wakeword's layout is not the known one; its interpreters keep their default threads")
        return False
    _swap(features, "mel_", "mel_model", MEL_SHAPE)
    _swap(features, "emb_", "emb_model", EMB_SHAPE)
    _swap(model, "", "model", None)
    return True
