"""Scrubbing API keys out of any text that may be shown, logged or stored.

Every key ``app.store.secrets`` hands out is remembered here (in memory only), so
``redact()`` can replace it wherever it turns up — a library's exception message
quoting a request, a server's error body, a log line. Text shaped like a key
(``Bearer …`` headers, ``sk-…`` keys, ``api_key=…`` parameters) is scrubbed even
when the key was never seen. ``SecretRedactor`` does the same for log records.

It imports nothing from the app, so errors, resilience, HTTP and the key store can
all use it.
"""

from __future__ import annotations

import logging
import re
import threading

REDACTED = "[REDACTED]"

_known: set[str] = set()
_known_lock = threading.Lock()
# Shapes of keys we never saw but should still not print (Bearer headers, sk-… keys).
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{16,}\b"),
    re.compile(r"(?i)((?:api[_-]?key|access_token|token)=)[^&\s\"']{8,}"),
)
_MIN_SECRET_LEN = 4  # redacting "a" would wreck every log line


def remember_secret(value: str | None) -> None:
    """Register a value for redaction (keys read from elsewhere, e.g. a test's canary)."""
    if value and len(value) >= _MIN_SECRET_LEN:
        with _known_lock:
            _known.add(value)


def redact(text: str) -> str:
    """``text`` with every known key and anything shaped like a key replaced."""
    if not text:
        return text
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pat in _PATTERNS:
        text = pat.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    return text


class SecretRedactor(logging.Filter):
    """Scrubs known keys from a record's message, args and exception text. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        clean = redact(message)
        if clean != message:
            record.msg = clean
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(exc_text)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
