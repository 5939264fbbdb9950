"""The messages a spoken conversation sends to the model: who it is, the spoken style,
the date and hour, the user's own prompt, and "tell me more"."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app.engine.spoken_prompt import MORE_NOTE, context_messages, limits_for, system_prompt, wants_more
from app.engine.spoken_reply import BRIEF, DETAILED
from app.plugin.provider_api import ChatMessage

AFTERNOON = datetime(2026, 12, 1, 14, 5)


def test_the_system_prompt_says_what_it_is_how_to_answer_and_when_it_is() -> None:
    prompt = system_prompt("Call me Sam.", AFTERNOON)
    assert prompt.startswith("You are VoxDesk, a voice assistant running on the user's computer.")
    assert "spoken aloud" in prompt and "one or two short sentences" in prompt
    for banned in ("markdown", "lists", "code", "emoji", "web addresses"):
        assert banned in prompt
    assert "Tuesday, 1 December 2026" in prompt and "between 2 pm and 3 pm" in prompt
    assert "\n\nCall me Sam.\n\n" in prompt  # the user's own instructions, kept whole
    assert len(prompt) < 600  # short: it is evaluated on every cold start


def test_an_empty_user_prompt_leaves_no_gap() -> None:
    assert "\n\n\n" not in system_prompt("  ", AFTERNOON)


@pytest.mark.parametrize(("hour", "said"), [(0, "between 12 am and 1 am"), (11, "between 11 am and 12 pm")])
def test_the_hour_is_said_in_twelve_hour_time(hour: int, said: str) -> None:
    assert said in system_prompt("", AFTERNOON.replace(hour=hour))


def test_the_prompt_stays_the_same_all_hour_so_the_models_cache_is_reused() -> None:
    a = system_prompt("Be kind.", AFTERNOON.replace(minute=0))
    assert system_prompt("Be kind.", AFTERNOON.replace(minute=59)) == a
    later = system_prompt("Be kind.", AFTERNOON + timedelta(hours=1))
    assert later != a
    # When the hour changes only the end changes: the identity, style and user prompt stay cached.
    common = a[: next(i for i, (x, y) in enumerate(zip(a, later, strict=False)) if x != y)]
    assert common.endswith("between ") and "Be kind." in common


@pytest.mark.parametrize(
    "text",
    ["Tell me more.", "tell me more about it", "Go on", "OK, go on please", "Continue.", "Keep going!", "Elaborate",
     "Can you explain that in more detail?", "More please", "And then?", "What else?"],
)  # fmt: skip
def test_asking_to_continue_is_recognised(text: str) -> None:
    assert wants_more(text)
    assert limits_for(text) is DETAILED


@pytest.mark.parametrize(
    "text", ["Who wrote Hamlet?", "When was he born?", "Tell me a joke.", "Continuity errors in films", "Gone fishing"]
)
def test_other_questions_get_a_brief_answer(text: str) -> None:
    assert not wants_more(text)
    assert limits_for(text) is BRIEF


def test_the_conversation_goes_between_the_system_prompt_and_the_new_message() -> None:
    history = [ChatMessage("user", "Who wrote Hamlet?"), ChatMessage("assistant", "William Shakespeare.")]
    messages = context_messages("", history, "When was he born?", AFTERNOON)
    assert messages[0].role == "system" and "VoxDesk" in messages[0].content
    assert messages[1:] == [*history, ChatMessage("user", "When was he born?")]


def test_tell_me_more_asks_the_model_to_continue_its_previous_answer() -> None:
    history = [ChatMessage("user", "Who wrote Hamlet?"), ChatMessage("assistant", "William Shakespeare.")]
    last = context_messages("", history, "Tell me more.", AFTERNOON)[-1]
    assert last.role == "user" and last.content.startswith("Tell me more.") and MORE_NOTE in last.content
    # With nothing said yet there is nothing to continue: the words go as they are.
    assert context_messages("", [], "Tell me more.", AFTERNOON)[-1] == ChatMessage("user", "Tell me more.")
