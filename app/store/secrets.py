"""API keys: the OS keychain first, environment variables where there is none.

Keys never live in settings files or provider configs. They are stored with
`keyring` (service ``voxdesk``, username ``<kind>.<provider>``, e.g.
``llm.openai-compatible``). On machines without a keychain backend (headless
Linux, CI) keys come from ``VOXDESK_<KIND>_<PROVIDER>_API_KEY`` (non-alphanumerics
→ ``_``, e.g. ``VOXDESK_LLM_OPENAI_COMPATIBLE_API_KEY``) and, for the
``openai-compatible`` providers, ``OPENAI_API_KEY``.

Every key this module hands out is remembered (in memory only) by
``app.plugin.redaction``, so ``redact()`` and the ``SecretRedactor`` log filter can
scrub it from any text (both are re-exported here). No function here puts a key in
an exception message.
"""

from __future__ import annotations

import os
import re
from typing import Any

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.redaction import REDACTED, SecretRedactor, redact, remember_secret

__all__ = [
    "REDACTED",
    "SERVICE",
    "SecretRedactor",
    "delete_api_key",
    "env_var_name",
    "env_var_names",
    "get_api_key",
    "has_keychain",
    "keychain_status",
    "redact",
    "remember_secret",
    "set_api_key",
    "username",
]

SERVICE = "voxdesk"


def username(kind: str, provider: str) -> str:
    return f"{kind}.{provider}"


def env_var_name(kind: str, provider: str) -> str:
    """``VOXDESK_<KIND>_<PROVIDER>_API_KEY`` with every non-alphanumeric turned into ``_``."""
    raw = f"VOXDESK_{kind}_{provider}_API_KEY".upper()
    return re.sub(r"[^A-Z0-9]", "_", raw)


def env_var_names(kind: str, provider: str) -> list[str]:
    names = [env_var_name(kind, provider)]
    if provider.startswith("openai"):
        names.append("OPENAI_API_KEY")
    return names


# -- keychain --------------------------------------------------------------


def _backend() -> Any | None:
    """The usable keyring backend, or None (no backend installed, or it is broken)."""
    try:
        import keyring
        from keyring.backends import fail

        kr = keyring.get_keyring()
    except Exception:
        return None
    if isinstance(kr, fail.Keyring):
        return None
    # A chainer with nothing behind it is a "no keychain" too.
    backends = getattr(kr, "backends", None)
    if backends is not None and not backends:
        return None
    return kr


def keychain_status() -> str:
    """One line for `voxdesk doctor`."""
    kr = _backend()
    if kr is None:
        return (
            "no keychain — API keys are read from environment variables "
            "(e.g. VOXDESK_LLM_OPENAI_COMPATIBLE_API_KEY or OPENAI_API_KEY)"
        )
    name = getattr(kr, "name", None) or type(kr).__name__
    return f"keychain: {name}"


def has_keychain() -> bool:
    return _backend() is not None


def get_api_key(kind: str, provider: str) -> str | None:
    """The key for a provider: keychain, then environment. None if there is none."""
    value: str | None = None
    kr = _backend()
    if kr is not None:
        try:
            value = kr.get_password(SERVICE, username(kind, provider))
        except Exception:
            value = None  # a locked or broken keychain falls through to the environment
    if not value:
        for var in env_var_names(kind, provider):
            value = os.environ.get(var) or None
            if value:
                break
    value = value.strip() if value else None
    remember_secret(value)
    return value or None


def set_api_key(kind: str, provider: str, value: str) -> None:
    """Store a key in the keychain. Without one, says which environment variable to set."""
    value = value.strip()
    if not value:
        delete_api_key(kind, provider)
        return
    remember_secret(value)
    kr = _backend()
    if kr is None:
        raise VoiceError(
            "secrets.set",
            ErrorCode.UNAVAILABLE,
            f"no keychain on this system — set the environment variable {env_var_name(kind, provider)} instead",
        )
    try:
        kr.set_password(SERVICE, username(kind, provider), value)
    except Exception as exc:
        raise VoiceError(
            "secrets.set",
            ErrorCode.UNAVAILABLE,
            f"the keychain refused to store the key ({type(exc).__name__}) — unlock it, or set "
            f"{env_var_name(kind, provider)} instead",
        ) from None


def delete_api_key(kind: str, provider: str) -> None:
    """Forget a stored key; a missing one is fine."""
    kr = _backend()
    if kr is None:
        return
    try:
        kr.delete_password(SERVICE, username(kind, provider))
    except Exception:
        pass  # PasswordDeleteError (absent) or a locked keychain: nothing more we can do
