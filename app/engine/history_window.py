"""Which earlier turns the model is sent: a window that moves in steps, not turn by turn.

Why: a local model reuses its KV cache only for the unchanged start of the prompt. A
window that drops the oldest turn every turn changes the prompt right after the system
prompt each time, so once the conversation is longer than the window every turn
re-evaluates the whole history (on 2 cores: ~1 s more before the first word, growing
until the first-output deadline is hit). Dropping half the window at once keeps the
start fixed for several turns; in between only the new turn is evaluated.
"""

from __future__ import annotations

from app.plugin.provider_api import ChatMessage

Pair = tuple[ChatMessage, ChatMessage]


def _size(pairs: list[Pair]) -> int:
    return sum(len(u.content) + len(a.content) for u, a in pairs)


def stable_window(messages: list[ChatMessage], max_turns: int, budget_chars: int) -> list[ChatMessage]:
    """At most `max_turns` of the turns in `messages` (user/assistant pairs, oldest first)
    and at most `budget_chars` of their text, starting at a multiple of half the window."""
    if max_turns <= 0:
        return []
    pairs: list[Pair] = [(messages[i], messages[i + 1]) for i in range(0, len(messages) - 1, 2)]
    n = len(pairs)
    step = max(1, max_turns // 2)
    start = max(0, -(-(n - max_turns) // step) * step)  # ceil to a multiple of `step`
    while start < n and _size(pairs[start:]) > budget_chars:
        start += step
    if start >= n:  # a few huge turns: the newest that fit, turn by turn
        start = n
        while start > 0 and _size(pairs[start - 1 :]) <= budget_chars:
            start -= 1
    return [m for pair in pairs[start:] for m in pair]
