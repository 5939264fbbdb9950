"""The one error type that crosses a stage boundary.

Providers translate their library's exceptions into `VoiceError` so the engine,
the window and the command line can react by *code* (retry, fall back, tell the
user) without knowing which library failed.
"""

from __future__ import annotations

from enum import StrEnum

from app.plugin.redaction import redact


class ErrorCode(StrEnum):
    NOT_FOUND = "NOT_FOUND"
    INVALID_CONFIG = "INVALID_CONFIG"
    CONFLICT = "CONFLICT"
    PROVIDER_ERROR = "PROVIDER_ERROR"
    TIMEOUT = "TIMEOUT"
    RATE_LIMIT = "RATE_LIMIT"
    AUTH = "AUTH"
    UNAVAILABLE = "UNAVAILABLE"
    CANCELLED = "CANCELLED"
    AUDIO_DEVICE = "AUDIO_DEVICE"
    MODEL_MISSING = "MODEL_MISSING"


class VoiceError(Exception):
    """`op: CODE: cause` — op names what was being done, cause says what to do."""

    #: Already counted against its provider (by the stage runner): the engine reports it
    #: to the user without counting it twice.
    counted: bool = False

    def __init__(
        self,
        op: str,
        code: ErrorCode | str,
        cause: str | BaseException = "",
        *,
        retry_after: float | None = None,
    ) -> None:
        self.op = op
        self.code = ErrorCode(code)
        self.cause = cause
        self.retry_after = retry_after
        super().__init__(str(self))

    @property
    def message(self) -> str:
        """The human part, without op and code: what the UI shows inline."""
        if isinstance(self.cause, BaseException):
            return str(self.cause) or type(self.cause).__name__
        return self.cause

    def __str__(self) -> str:
        return f"{self.op}: {self.code.value}: {self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        # Picklable across the llama.cpp worker process boundary.
        return (VoiceError, (self.op, self.code.value, self.message))


def as_voice_error(op: str, exc: BaseException) -> VoiceError:
    """Wrap anything unexpected so nothing but VoiceError leaves a stage."""
    if isinstance(exc, VoiceError):
        return exc
    if isinstance(exc, TimeoutError):
        return VoiceError(op, ErrorCode.TIMEOUT, "no answer in time — try again or pick a faster provider")
    # A library's message may quote a request (and its key): scrub before it is shown or stored.
    return VoiceError(op, ErrorCode.PROVIDER_ERROR, redact(f"{type(exc).__name__}: {exc}"))
