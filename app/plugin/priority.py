"""Inference yields the CPU to the window and the audio.

On a 2-core laptop, speech recognition, the voice and the language model can keep both
cores busy for a second at a time; a GUI thread that wakes up then waits its turn and
the window stutters (the soak saw 40–75 ms stalls at every question). Threads and
processes that only compute run one step nicer, so the scheduler lets the latency-
critical threads in first; when nothing else wants the CPU they run at full speed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

#: Nice steps added to inference work (0 = normal, 19 = lowest).
INFERENCE_NICE = 5


def lower_this_thread() -> None:
    """Run the calling thread (and threads it starts later) `INFERENCE_NICE` steps nicer.
    Linux only (a thread id is a process id there); elsewhere nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):  # a sandbox may forbid it: then it runs as before
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + INFERENCE_NICE))


def lower_this_process() -> None:
    """The same for a worker process that only computes (llama.cpp)."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(INFERENCE_NICE)
