"""The skills responder answers time, date, sums and timers correctly, instantly and offline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import ChatMessage, HealthStatus
from app.plugin.registry import get_registry
from providers.llm.skills import MODEL_UNAVAILABLE, NEEDS_MODEL, SkillsConfig, SkillsLLM, parse_duration

TUESDAY_AFTERNOON = datetime(2024, 3, 5, 16, 5, 9)


def skills(moment: datetime = TUESDAY_AFTERNOON, **config: object) -> SkillsLLM:
    return SkillsLLM(SkillsConfig.model_validate(config), now=lambda: moment)


@pytest.mark.parametrize(
    ("moment", "twenty_four_hour", "spoken"),
    [
        (datetime(2024, 3, 5, 16, 5), False, "It's 4:05 PM."),
        (datetime(2024, 3, 5, 0, 30), False, "It's 12:30 AM."),
        (datetime(2024, 3, 5, 12, 0), False, "It's 12:00 PM."),
        (datetime(2024, 3, 5, 9, 7), False, "It's 9:07 AM."),
        (datetime(2024, 3, 5, 16, 5), True, "It's 16:05."),
        (datetime(2024, 3, 5, 0, 5), True, "It's 0:05."),
    ],
)
def test_time(moment: datetime, twenty_four_hour: bool, spoken: str) -> None:
    assert skills(moment, twenty_four_hour=twenty_four_hour).try_answer("What time is it?") == spoken


@pytest.mark.parametrize(
    "question",
    ["what's the time", "Tell me the time please", "what is the time right now", "time is it?"],
)
def test_time_phrasings(question: str) -> None:
    assert skills().try_answer(question) == "It's 4:05 PM."


@pytest.mark.parametrize(
    ("question", "spoken"),
    [
        ("What's the date today?", "Today is Tuesday, March 5, 2024."),
        ("what day is it", "Today is Tuesday, March 5, 2024."),
        ("what year is it", "It's 2024."),
        ("what month is it", "It's March."),
    ],
)
def test_date(question: str, spoken: str) -> None:
    assert skills().try_answer(question) == spoken


def test_configured_time_zone_converts_the_clock() -> None:
    noon_utc = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
    assert skills(noon_utc, timezone="America/New_York").try_answer("what time is it") == "It's 8:00 AM."
    assert skills(noon_utc, timezone="Asia/Tokyo").try_answer("what time is it") == "It's 9:00 PM."


def test_unknown_time_zone_is_rejected_by_the_registry() -> None:
    with pytest.raises(VoiceError) as err:
        get_registry().create("llm", "skills", {"timezone": "Mars/Olympus_Mons"})
    assert err.value.code is ErrorCode.INVALID_CONFIG
    assert "timezone" in err.value.message


@pytest.mark.parametrize(
    ("question", "spoken"),
    [
        ("what is 17 times 23", "17 times 23 is 391."),
        ("What's 17 × 23?", "17 times 23 is 391."),
        ("what is seventeen times twenty three", "17 times 23 is 391."),
        ("what's 2 + 2", "2 plus 2 is 4."),
        ("what is 3 minus 5", "3 minus 5 is minus 2."),
        ("what is one hundred and five plus a thousand", "105 plus 1000 is 1105."),
        ("what is 1,000 times 3", "1000 times 3 is 3000."),
        ("calculate 100 divided by 4", "100 divided by 4 is 25."),
        ("100 divided by 7", "100 divided by 7 is about 14.29."),
        ("what is 12 squared", "12 squared is 144."),
        ("what is 3 cubed", "3 cubed is 27."),
        ("what's 15% of 80", "15 percent of 80 is 12."),
        ("what is fifteen percent of eighty", "15 percent of 80 is 12."),
        ("what is the square root of 81", "the square root of 81 is 9."),
        ("what is 2 to the power of 10", "2 to the power of 10 is 1024."),
        ("what is 2 plus 3 times 4", "2 plus 3 times 4 is 14."),
        ("what is 2.5 times 4", "2.5 times 4 is 10."),
        ("what is 0.1 plus 0.2", "0.1 plus 0.2 is 0.3."),
        ("what is 250 times 400", "250 times 400 is 100,000."),
        ("what is 10 divided by 0", "You can't divide by zero."),
    ],
)
def test_arithmetic(question: str, spoken: str) -> None:
    assert skills().try_answer(question) == spoken


@pytest.mark.parametrize(
    "question",
    ["tell me a joke", "I have 2 cats and 3 dogs", "what is 5", "what is love", "summarise the news", "", "   "],
)
def test_unrecognised_is_passed_on(question: str) -> None:
    assert skills().try_answer(question) is None


@pytest.mark.parametrize(
    "question",
    [
        # A skill's words inside a question meant for the language model.
        "What is the time complexity of quicksort?",
        "what time is sunset",
        "current time in London",
        "what time is it in Tokyo",
        "what time does the store close",
        "What's the date of the French revolution?",
        "what is the date today in Sydney",
        "what day of the week was July 4 1776",
        "what year is it in the Chinese calendar",
        "time flies like an arrow",
        "What can you do about climate change?",
        "Who are you voting for?",
        "what are you doing",
        "help me write an email",
        "Which timer apps are best?",
        "what timers should I buy",
        "how do I cancel a timer on my iphone",
        "cancel my subscription",
        "how much time is left in the game",
        "set the table for dinner",
        "set a timer for the pasta",
        "count down the days",
        "remind me what the capital of France is",
        "what is the meaning of life",
        "what is 5 times 3 in binary",
        "tomorrow",
        "hey voxdesk, tell me about yourself",
        "please",
        "um",
        "what is 2 plus 2 " + "and some more words " * 30,
    ],
)
async def test_questions_for_the_language_model_are_passed_on(question: str) -> None:
    provider = SkillsLLM(now=lambda: TUESDAY_AFTERNOON, sleep=ManualSleep())
    assert provider.try_answer(question) is None
    assert provider.timers() == []
    await provider.aclose()


@pytest.mark.parametrize(
    ("question", "spoken"),
    [
        ("what's the time", "It's 4:05 PM."),
        ("What time is it now?", "It's 4:05 PM."),
        ("whats the time", "It's 4:05 PM."),
        ("Hey VoxDesk, what time is it?", "It's 4:05 PM."),
        ("What time is it, VoxDesk?", "It's 4:05 PM."),
        ("could you tell me what time it is please", "It's 4:05 PM."),
        ("do you know what time it is", "It's 4:05 PM."),
        ("Good morning, what’s the time?", "It's 4:05 PM."),
        ("current time", "It's 4:05 PM."),
        ("tell me the date", "Today is Tuesday, March 5, 2024."),
        ("what's today's date", "Today is Tuesday, March 5, 2024."),
        ("what is today", "Today is Tuesday, March 5, 2024."),
        ("what day of the week is it", "Today is Tuesday, March 5, 2024."),
        ("What day is it tomorrow?", "Tomorrow is Wednesday, March 6, 2024."),
        ("what's the date tomorrow", "Tomorrow is Wednesday, March 6, 2024."),
        ("what's 12 plus 30", "12 plus 30 is 42."),
        ("twenty-one plus four", "21 plus 4 is 25."),
        ("What is seventeen times twenty-three?", "17 times 23 is 391."),
        ("can you calculate 5 times 3 please", "5 times 3 is 15."),
        ("what is 10-5", "10 minus 5 is 5."),
        ("what can you do", None),
        ("hey voxdesk, what else can you do?", None),
        ("help", None),
        ("What’s your name?", "I'm VoxDesk, your desktop voice assistant."),
        ("ok thanks", "You're welcome."),
        ("hey voxdesk, repeat after me: I am a robot.", "I am a robot."),
    ],
)
def test_natural_phrasings_are_still_answered(question: str, spoken: str | None) -> None:
    answer = skills().try_answer(question)
    assert answer is not None
    if spoken is not None:
        assert answer == spoken


@pytest.mark.parametrize(
    ("request_text", "answer"),
    [
        ("set a timer for 5 minutes", "OK, timer set for 5 minutes."),
        ("Set a 5-minute timer, please.", "OK, timer set for 5 minutes."),
        ("can you set a timer for twenty-five minutes", "OK, timer set for 25 minutes."),
        ("hey voxdesk, 10 minute timer", "OK, timer set for 10 minutes."),
        ("remind me in 10 minutes to call mom", "OK, I'll remind you in 10 minutes to call mom."),
        ("in 5 minutes remind me to check the oven", "OK, I'll remind you in 5 minutes to check the oven."),
        (
            "remind me to put the pizza in the oven in 5 minutes",
            "OK, I'll remind you in 5 minutes to put the pizza in the oven.",
        ),
    ],
)
async def test_natural_timer_requests(request_text: str, answer: str) -> None:
    provider = SkillsLLM(sleep=ManualSleep())
    assert provider.try_answer(request_text) == answer
    assert len(provider.timers()) == 1
    for question in ("do I have any timers", "how much time is left", "what timers are running"):
        assert (provider.try_answer(question) or "").startswith("You have a ")
    assert provider.try_answer("stop the timer") == "Timer cancelled."
    await provider.aclose()


def test_long_or_odd_input_is_answered_fast() -> None:
    provider = skills()
    for text in (
        "one and " * 2000 + "timer",
        "!" * 5000,
        "remind me " + "in " * 2000,
        "a " * 3000 + "timer",
        "what is " + "1 plus " * 1000 + "1",
    ):
        started = time.perf_counter()
        provider.try_answer(text)
        assert time.perf_counter() - started < 0.05, text[:30]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2 minutes", 120),
        ("ten seconds", 10),
        ("a minute", 60),
        ("half an hour", 1800),
        ("one and a half hours", 5400),
        ("an hour and a half", 5400),
        ("1 hour 30 minutes", 5400),
        ("twenty five minutes", 1500),
        ("twenty-five minutes", 1500),
        ("90 s", 90),
        ("2 days", 172800),
        ("nothing", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


class ManualSleep:
    """Timer sleeps that end when the test says so, recording what was asked for."""

    def __init__(self) -> None:
        self.requested: list[float] = []
        self.release = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.requested.append(seconds)
        await self.release.wait()


async def test_timer_fires_with_the_spoken_message() -> None:
    sleep = ManualSleep()
    provider = SkillsLLM(now=lambda: TUESDAY_AFTERNOON, sleep=sleep)
    heard: list[str] = []
    fired = asyncio.Event()

    async def on_timer(message: str) -> None:
        heard.append(message)
        fired.set()

    provider.on_timer = on_timer
    assert provider.try_answer("set a timer for 2 minutes") == "OK, timer set for 2 minutes."
    await asyncio.sleep(0)  # let the timer task start its sleep
    assert sleep.requested == [120]
    assert heard == []
    sleep.release.set()
    await asyncio.wait_for(fired.wait(), 2)
    assert heard == ["Your timer for 2 minutes is done."]
    assert provider.timers() == []
    await provider.aclose()


async def test_reminder_fires_for_real_and_says_what_to_do() -> None:
    provider = SkillsLLM()
    fired: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def on_timer(message: str) -> None:
        fired.set_result(message)

    provider.on_timer = on_timer
    answer = provider.try_answer("remind me in 0.05 seconds to stretch my legs")
    assert answer == "OK, I'll remind you in less than a second to stretch your legs."
    assert await asyncio.wait_for(fired, 2) == "Reminder: stretch your legs."
    await provider.aclose()


@pytest.mark.parametrize(
    ("request_text", "answer"),
    [
        ("remind me to call mom in 5 minutes", "OK, I'll remind you in 5 minutes to call mom."),
        ("remind me in 10 seconds to stretch", "OK, I'll remind you in 10 seconds to stretch."),
        ("set a 5 minute timer", "OK, timer set for 5 minutes."),
        ("start a timer for one and a half hours", "OK, timer set for 1 hour and 30 minutes."),
        ("set a timer", "For how long? Say for example: set a timer for 5 minutes."),
        ("set a timer for 30 days", "I can only set timers for up to a week."),
    ],
)
async def test_timer_requests(request_text: str, answer: str) -> None:
    provider = SkillsLLM(sleep=ManualSleep())
    assert provider.try_answer(request_text) == answer
    await provider.aclose()


async def test_list_and_cancel_timers() -> None:
    provider = SkillsLLM(sleep=ManualSleep())
    assert provider.try_answer("what timers do I have") == "You have no timers running."
    provider.try_answer("set a timer for 2 minutes")
    provider.try_answer("remind me in 1 hour to stretch")
    listed = provider.try_answer("list my timers")
    assert listed is not None
    assert listed.startswith("You have 2 timers: a timer for 2 minutes, ")
    assert "a reminder to stretch, " in listed
    assert [t.label for t in provider.timers()] == [None, "stretch"]

    first = provider.timers()[0]
    assert provider.cancel_timer(first.id)
    assert not provider.cancel_timer(first.id)
    assert provider.try_answer("cancel all timers") == "Timer cancelled."
    assert provider.timers() == []
    assert provider.try_answer("cancel the timer") == "There are no timers to cancel."
    await provider.aclose()


async def test_aclose_cancels_pending_timers_so_none_fire() -> None:
    provider = SkillsLLM(sleep=ManualSleep())
    heard: list[str] = []

    async def on_timer(message: str) -> None:
        heard.append(message)

    provider.on_timer = on_timer
    provider.try_answer("set a timer for 1 minute")
    tasks = [t.task for t in provider.timers()]
    await provider.aclose()
    assert all(t is not None and t.cancelled() for t in tasks)
    assert heard == []
    assert provider.try_answer("set a timer for 1 minute") == "I can't set timers while shutting down."


async def test_timer_without_listener_keeps_the_message() -> None:
    sleep = ManualSleep()
    sleep.release.set()
    provider = SkillsLLM(sleep=sleep)
    provider.try_answer("set a timer for 3 seconds")
    task = provider.timers()[0].task
    assert task is not None
    await task
    assert provider.fired == ["Your timer for 3 seconds is done."]
    await provider.aclose()


def test_timer_outside_the_app_loop_is_explained() -> None:
    answer = skills().try_answer("set a timer for 2 minutes")
    assert answer == "I can only set timers while VoxDesk is running."


@pytest.mark.parametrize(
    ("question", "spoken"),
    [
        ("repeat after me: the quick brown fox", "the quick brown fox"),
        ("Repeat after me, I am a robot.", "I am a robot."),
        ("hello", "Hello! How can I help?"),
        ("Good morning!", "Hello! How can I help?"),
        ("thank you so much", "You're welcome."),
        ("who are you", "I'm VoxDesk, your desktop voice assistant."),
    ],
)
def test_small_talk(question: str, spoken: str) -> None:
    assert skills().try_answer(question) == spoken


def test_repeat_that_says_the_last_answer_again() -> None:
    provider = skills()
    assert provider.try_answer("say that again") == "I haven't said anything yet."
    provider.try_answer("what is 6 times 7")
    assert provider.try_answer("say that again") == "6 times 7 is 42."
    assert provider.try_answer("repeat that please") == "6 times 7 is 42."


def test_what_can_you_do_lists_the_skills() -> None:
    answer = skills().try_answer("What can you do?")
    assert answer is not None
    for skill in ("time", "date", "17 times 23", "timers", "repeat"):
        assert skill in answer


async def collect(stream: AsyncIterator[str]) -> str:
    return "".join([delta async for delta in stream])


async def test_chat_answers_the_last_user_message() -> None:
    provider = skills()
    reply = await collect(
        provider.chat(
            [
                ChatMessage("system", "You are helpful."),
                ChatMessage("user", "what is 2 plus 2"),
                ChatMessage("assistant", "4"),
                ChatMessage("user", "what time is it"),
            ]
        )
    )
    assert reply == "It's 4:05 PM."


async def test_chat_alone_explains_how_to_get_a_language_model() -> None:
    reply = await collect(skills().chat([ChatMessage("user", "write me a poem about autumn")]))
    assert reply == NEEDS_MODEL
    assert "Settings" in reply and "Assistant" in reply
    assert "llama.cpp" in reply and "--" not in reply  # spoken aloud: words, not command-line flags


async def test_behind_a_model_it_says_the_model_is_not_answering() -> None:
    fallback = SkillsLLM(SkillsConfig(unanswered="model_unavailable"))
    reply = await collect(fallback.chat([ChatMessage("user", "write me a poem about autumn")]))
    assert reply == MODEL_UNAVAILABLE and "need a language model" not in reply
    assert await collect(fallback.chat([ChatMessage("user", "what is 2 plus 2")])) == "2 plus 2 is 4."


async def test_registry_builds_it_and_it_is_healthy() -> None:
    registry = get_registry()
    info = registry.info("llm", "skills")
    assert info.local and info.streaming and not info.needs_api_key
    provider = registry.create("llm", "skills", {"twenty_four_hour": True})
    assert isinstance(provider, SkillsLLM)
    assert (await provider.health()).status is HealthStatus.OK
    await provider.aclose()
    await provider.aclose()  # safe twice
