"""Moved to ``providers.openai_compatible.stt`` (issue 13).

Only the entry point of an installed-but-not-reinstalled checkout still names this
path; delete this file once `make setup` has re-read pyproject.toml.
"""

from providers.openai_compatible.stt import SPEC

__all__ = ["SPEC"]
