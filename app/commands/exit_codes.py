"""What every ``voxdesk`` command exits with (README lists them; docs/architecture.md too).

0 ok; 1 it ran and failed (or ran out of ``--timeout``); 2 bad usage, settings or
input; 3 a missing or damaged model, device or library; 130 interrupted (Ctrl+C,
as shells report a SIGINT).
"""

from __future__ import annotations

from app.plugin.errors import ErrorCode, VoiceError

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_MISSING = 3
EXIT_INTERRUPTED = 130
#: ``--timeout`` ran out: the command ran and did not finish.
EXIT_TIMED_OUT = EXIT_FAIL


def exit_code_for(exc: VoiceError) -> int:
    """Bad usage or settings → 2; a missing model, device or library → 3; the rest → 1."""
    if exc.code in (ErrorCode.INVALID_CONFIG, ErrorCode.NOT_FOUND, ErrorCode.CONFLICT):
        return EXIT_USAGE
    if exc.code in (ErrorCode.MODEL_MISSING, ErrorCode.AUDIO_DEVICE):
        return EXIT_MISSING
    return EXIT_FAIL
