"""The model's view of the conversation moves in steps, so its prompt cache survives."""

from __future__ import annotations

import itertools

from app.engine.history_window import stable_window
from app.plugin.provider_api import ChatMessage


def _conversation(turns: int, chars: int = 20) -> list[ChatMessage]:
    out = []
    for i in range(turns):
        out += [ChatMessage("user", f"q{i}".ljust(chars)), ChatMessage("assistant", f"a{i}".ljust(chars))]
    return out


def _first_turn(window: list[ChatMessage]) -> int | None:
    return int(window[0].content.split()[0][1:]) if window else None


def test_the_window_holds_at_most_max_turns_and_its_start_moves_in_half_windows() -> None:
    starts = []
    for n in range(1, 31):
        window = stable_window(_conversation(n), max_turns=8, budget_chars=10_000)
        assert 0 < len(window) // 2 <= 8
        assert window[-1].content.startswith(f"a{n - 1}")  # the newest turn is always there
        starts.append(_first_turn(window))
    changes = sum(a != b for a, b in itertools.pairwise(starts))
    assert changes == len(set(starts)) - 1 <= 6  # sliding turn by turn would change 22 times
    assert all(s is not None and s % 4 == 0 for s in starts)
    assert min(len(stable_window(_conversation(n), 8, 10_000)) // 2 for n in range(8, 31)) >= 5


def test_the_character_budget_drops_whole_steps() -> None:
    # 20 turns of 40 chars: 8 turns are 320 chars, the budget 200 allows 5.
    window = stable_window(_conversation(20), max_turns=8, budget_chars=200)
    assert len(window) // 2 <= 5 and _first_turn(window) in (16, 17)
    assert _first_turn(stable_window(_conversation(21), 8, 200)) == _first_turn(window)


def test_huge_turns_leave_the_newest_that_fit() -> None:
    window = stable_window(_conversation(6, chars=300), max_turns=8, budget_chars=700)
    assert [m.content.split()[0] for m in window] == ["q5", "a5"]
    assert stable_window(_conversation(3, chars=5000), max_turns=8, budget_chars=700) == []


def test_no_history_or_no_room() -> None:
    assert stable_window([], 8, 6000) == []
    assert stable_window(_conversation(3), 0, 6000) == []
