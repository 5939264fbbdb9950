"""Resilience rules users notice: a dead service is skipped fast, a reply is never spoken twice,
a turn never outlives its deadline, a rejected key is not retried, keys never leak."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import Health, HealthStatus
from app.plugin.resilience import (
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    Deadline,
    RecordingObserver,
    RetryPolicy,
    StageRunner,
    classify_status,
    parse_retry_after,
)
from app.store import secrets


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, s: float) -> None:
        self.now += s


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


@dataclass
class Scripted:
    """A provider whose stream follows a script: items, then maybe an error or a hang."""

    name: str
    items: list[str] = field(default_factory=lambda: ["Hello.", " Bye."])
    fail_before: list[VoiceError | BaseException] = field(default_factory=list)  # one per attempt
    fail_after_first: VoiceError | None = None
    hang_before: bool = False
    hang_after_first: bool = False
    healthy: bool = True
    calls: int = 0
    closed: int = 0

    async def stream(self) -> AsyncIterator[str]:
        self.calls += 1
        attempt_error = self.fail_before.pop(0) if self.fail_before else None
        try:
            if attempt_error is not None:
                raise attempt_error
            if self.hang_before:
                await asyncio.Event().wait()
            for i, item in enumerate(self.items):
                yield item
                if i == 0 and self.fail_after_first is not None:
                    raise self.fail_after_first
                if i == 0 and self.hang_after_first:
                    await asyncio.Event().wait()
        finally:
            self.closed += 1

    async def result(self) -> str:
        async for item in self.stream():
            return item
        return ""

    async def health(self) -> Health:
        return Health(HealthStatus.OK if self.healthy else HealthStatus.DOWN)


def unavailable(name: str = "p") -> VoiceError:
    return VoiceError(name, ErrorCode.UNAVAILABLE, "HTTP 503")


def runner(
    *providers: Scripted,
    clock: FakeClock | None = None,
    threshold: int = 3,
    attempts: int = 2,
    observer: RecordingObserver | None = None,
) -> StageRunner[Scripted]:
    return StageRunner(
        "llm",
        [(p.name, p) for p in providers],
        retry=RetryPolicy(max_attempts=attempts, base_delay_s=0.01, max_retry_after_s=2.0),
        breaker_config=BreakerConfig(failure_threshold=threshold, reset_timeout_s=10.0),
        observer=observer,
        clock=clock or FakeClock(),
        sleep=no_sleep,
        rng=random.Random(1),
        background_probes=False,
    )


async def collect(r: StageRunner[Scripted], **kw: float) -> list[str]:
    return [x async for x in r.stream(lambda p: p.stream(), **kw)]  # type: ignore[arg-type]


# -- classification --------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, ErrorCode.AUTH),
        (403, ErrorCode.AUTH),
        (400, ErrorCode.INVALID_CONFIG),
        (404, ErrorCode.INVALID_CONFIG),
        (422, ErrorCode.INVALID_CONFIG),
        (429, ErrorCode.RATE_LIMIT),
        (500, ErrorCode.UNAVAILABLE),
        (502, ErrorCode.UNAVAILABLE),
        (503, ErrorCode.UNAVAILABLE),
        (504, ErrorCode.UNAVAILABLE),
        (408, ErrorCode.TIMEOUT),
    ],
)
def test_http_status_classification(status: int, code: ErrorCode) -> None:
    err = classify_status("llm.remote", status)
    assert err.code is code
    assert "HTTP" in err.message  # the user sees what the server said


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None
    assert classify_status("x", 429, retry_after="3").retry_after == 3.0


def test_retry_policy_honours_capped_retry_after_and_never_retries_auth() -> None:
    policy = RetryPolicy(max_attempts=3, max_retry_after_s=2.0)
    rng = random.Random(0)
    short = VoiceError("x", ErrorCode.RATE_LIMIT, "", retry_after=1.5)
    long = VoiceError("x", ErrorCode.RATE_LIMIT, "", retry_after=60)
    assert policy.delay(1, short, rng) == 1.5
    assert policy.delay(1, long, rng) is None  # too long to wait in a voice turn: fall back
    assert policy.delay(1, VoiceError("x", ErrorCode.AUTH, ""), rng) is None
    assert policy.delay(1, VoiceError("x", ErrorCode.TIMEOUT, ""), rng) is None
    delays = [policy.delay(1, unavailable(), rng) for _ in range(50)]
    assert all(d is not None and 0 <= d <= policy.base_delay_s for d in delays)
    assert len(set(delays)) > 1  # jittered
    assert policy.delay(3, unavailable(), rng) is None  # bounded attempts


# -- deadline and breaker --------------------------------------------------


def test_deadline_caps_every_wait() -> None:
    clock = FakeClock()
    d = Deadline(5, clock=clock)
    assert d.timeout(10) == 5 and d.timeout(2) == 2
    clock.advance(4)
    assert d.child(3).remaining() == pytest.approx(1.0)
    clock.advance(2)
    assert d.expired
    with pytest.raises(VoiceError) as e:
        d.check("turn")
    assert e.value.code is ErrorCode.TIMEOUT
    assert Deadline(None).timeout() is None


def test_breaker_opens_fails_fast_probes_once_and_closes() -> None:
    clock = FakeClock()
    b = CircuitBreaker("remote", BreakerConfig(failure_threshold=3, reset_timeout_s=10), clock=clock)
    for _ in range(3):
        assert b.allow()
        b.record_failure(unavailable())
    assert b.state is BreakerState.OPEN and not b.allow()
    snap = b.snapshot()
    assert snap.failures == 3 and snap.last_error_code is ErrorCode.UNAVAILABLE and snap.last_error_at
    clock.advance(10)
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow() and not b.allow()  # exactly one probe
    b.record_failure(unavailable())
    assert b.state is BreakerState.OPEN
    clock.advance(10)
    assert b.state is BreakerState.OPEN  # failed probe doubled the wait
    clock.advance(10)
    assert b.allow()
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.failures == 0


def test_breaker_cancel_is_not_a_failure_and_frees_the_probe() -> None:
    clock = FakeClock()
    b = CircuitBreaker("remote", BreakerConfig(failure_threshold=1, reset_timeout_s=1), clock=clock)
    b.record_failure(unavailable())
    clock.advance(1)
    assert b.allow()
    b.record_cancelled()
    assert b.allow()  # the slot is free again
    assert b.failures == 1


# -- stage runner ----------------------------------------------------------


async def test_fallback_before_first_output() -> None:
    obs = RecordingObserver()
    primary = Scripted("cloud", fail_before=[unavailable(), unavailable()])
    local = Scripted("local", items=["Local answer."])
    r = runner(primary, local, observer=obs)
    assert await collect(r) == ["Local answer."]
    assert primary.calls == 2  # one retry, then fall back
    assert obs.names() == ["retry", "fallback"]
    assert obs.events[1][1] == {
        "stage": "llm",
        "from": "cloud",
        "to": "local",
        "code": "UNAVAILABLE",
        "reason": "failed",
    }
    assert obs.errors == [("llm", "cloud", "UNAVAILABLE")] * 2


async def test_no_fallback_after_output_started() -> None:
    primary = Scripted("cloud", fail_after_first=unavailable())
    local = Scripted("local")
    r = runner(primary, local)
    got: list[str] = []
    with pytest.raises(VoiceError) as e:
        async for item in r.stream(lambda p: p.stream()):
            got.append(item)
    assert got == ["Hello."]  # spoken once, never replayed by the fallback
    assert e.value.code is ErrorCode.UNAVAILABLE
    assert local.calls == 0


async def test_auth_is_not_retried_and_disables_until_settings_change() -> None:
    obs = RecordingObserver()
    primary = Scripted("cloud", fail_before=[classify_status("llm.cloud", 401)] * 5)
    local = Scripted("local")
    r = runner(primary, local, observer=obs)
    assert await collect(r) == ["Hello.", " Bye."]
    assert primary.calls == 1
    snap = r.snapshot()["cloud"]
    assert snap.disabled and snap.state is BreakerState.OPEN and snap.last_error_code is ErrorCode.AUTH
    assert "provider_disabled" in obs.names()
    await collect(r)
    assert primary.calls == 1  # skipped while the key is wrong
    r.reset()
    await collect(r)
    assert primary.calls == 2


async def test_open_breaker_skips_primary_and_all_failing_raises_last_error() -> None:
    clock = FakeClock()
    primary = Scripted("cloud", fail_before=[unavailable()] * 10)
    local = Scripted("local", fail_before=[VoiceError("llm.local", ErrorCode.PROVIDER_ERROR, "boom")])
    r = runner(primary, local, clock=clock, threshold=2)
    with pytest.raises(VoiceError) as e:
        await collect(r)
    assert e.value.code is ErrorCode.PROVIDER_ERROR and "boom" in str(e.value)
    assert r.breaker("cloud").state is BreakerState.OPEN
    calls = primary.calls
    assert await collect(r) == ["Hello.", " Bye."]
    assert primary.calls == calls  # failed fast: not even called
    # Half-open after the reset timeout: one real call probes it and closes the breaker.
    primary.fail_before.clear()
    clock.advance(10)
    assert await collect(r) == ["Hello.", " Bye."]
    assert primary.calls == calls + 1 and r.breaker("cloud").state is BreakerState.CLOSED


async def test_first_output_timeout_falls_back_and_idle_gap_ends_the_stream() -> None:
    stalled = Scripted("cloud", hang_before=True)
    local = Scripted("local", items=["Local."])
    r = runner(stalled, local)
    assert await collect(r, first_output_timeout=0.05) == ["Local."]
    assert stalled.closed == 1  # the hung request was closed, not left running
    assert r.snapshot()["cloud"].last_error_code is ErrorCode.TIMEOUT

    trickle = Scripted("cloud", hang_after_first=True)
    r2 = runner(trickle, Scripted("local"))
    got: list[str] = []
    with pytest.raises(VoiceError) as e:
        async for item in r2.stream(lambda p: p.stream(), idle_timeout=0.05):
            got.append(item)
    assert got == ["Hello."] and e.value.code is ErrorCode.TIMEOUT


async def test_turn_deadline_bounds_everything() -> None:
    r = runner(Scripted("a", hang_before=True), Scripted("b", hang_before=True))
    with pytest.raises(VoiceError) as e:
        await collect(r, first_output_timeout=5.0, deadline=Deadline(0.05))  # type: ignore[arg-type]
    assert e.value.code is ErrorCode.TIMEOUT
    assert "ran out of time" in e.value.message


async def test_barge_in_cancel_is_not_a_failure() -> None:
    primary = Scripted("cloud", hang_after_first=True)
    r = runner(primary, Scripted("local"), threshold=1)
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in r.stream(lambda p: p.stream()):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert primary.closed == 1
    snap = r.snapshot()["cloud"]
    assert snap.state is BreakerState.CLOSED and snap.failures == 0


async def test_consumer_stopping_early_closes_the_provider_stream_at_once() -> None:
    primary = Scripted("cloud", items=["One.", " Two.", " Three."])
    r = runner(primary)
    stream = r.stream(lambda p: p.stream())
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    assert primary.closed == 1  # the HTTP response behind it would be closed now
    assert r.snapshot()["cloud"].failures == 0


async def test_call_falls_back_for_single_result_stages() -> None:
    obs = RecordingObserver()
    r = runner(Scripted("cloud", fail_before=[classify_status("stt.cloud", 404)]), Scripted("local"), observer=obs)
    assert await r.call(lambda p: p.result(), timeout=1.0) == "Hello."
    assert obs.names() == ["fallback"]  # INVALID_CONFIG: no retry


async def test_background_probe_restores_a_recovered_provider() -> None:
    primary = Scripted("cloud", fail_before=[unavailable()] * 2, healthy=False)
    restored = asyncio.Event()

    class Obs(RecordingObserver):
        def on_event(self, name: str, attrs: Mapping[str, Any]) -> None:
            super().on_event(name, attrs)
            if name == "provider_restored":
                restored.set()

    r: StageRunner[Scripted] = StageRunner(
        "llm",
        [("cloud", primary), ("local", Scripted("local"))],
        retry=RetryPolicy(max_attempts=2, base_delay_s=0.001),
        breaker_config=BreakerConfig(failure_threshold=2, reset_timeout_s=0.01),
        observer=Obs(),
    )
    try:
        await collect(r)
        assert r.breaker("cloud").state is not BreakerState.CLOSED
        assert not await r.probe("cloud")  # still down: stays open
        primary.healthy = True
        await asyncio.wait_for(restored.wait(), 5)
        assert r.breaker("cloud").state is BreakerState.CLOSED
    finally:
        await r.aclose()


# -- secrets ---------------------------------------------------------------

CANARY = "sk-canary-0123456789abcdefXYZ"


def test_api_key_from_environment_without_keychain(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backends import fail

    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())
    assert secrets.env_var_name("llm", "openai-compatible") == "VOXDESK_LLM_OPENAI_COMPATIBLE_API_KEY"
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("VOXDESK_LLM_OPENAI_COMPATIBLE_API_KEY", raising=False)
    assert secrets.get_api_key("llm", "openai-compatible") is None
    monkeypatch.setenv("OPENAI_API_KEY", "generic-key-1234")
    assert secrets.get_api_key("llm", "openai-compatible") == "generic-key-1234"
    monkeypatch.setenv("VOXDESK_LLM_OPENAI_COMPATIBLE_API_KEY", CANARY)
    assert secrets.get_api_key("llm", "openai-compatible") == CANARY
    assert secrets.keychain_status().startswith("no keychain")
    with pytest.raises(VoiceError) as e:
        secrets.set_api_key("llm", "openai-compatible", CANARY)
    assert "VOXDESK_LLM_OPENAI_COMPATIBLE_API_KEY" in str(e.value) and CANARY not in str(e.value)


def test_api_key_in_keychain(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):
        priority = 1

        def __init__(self) -> None:
            self.store: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.store.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.store[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.store.pop((service, username), None)

    kr = MemoryKeyring()
    monkeypatch.setattr(keyring, "get_keyring", lambda: kr)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    secrets.set_api_key("tts", "openai-compatible", CANARY)
    assert kr.store[("voxdesk", "tts.openai-compatible")] == CANARY
    assert secrets.get_api_key("tts", "openai-compatible") == CANARY
    assert secrets.keychain_status().startswith("keychain")
    secrets.delete_api_key("tts", "openai-compatible")
    assert secrets.get_api_key("tts", "openai-compatible") is None


def test_redactor_scrubs_known_keys_from_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    secrets.remember_secret(CANARY)
    caplog.handler.addFilter(secrets.SecretRedactor())
    log = logging.getLogger("voxdesk.test")
    with caplog.at_level(logging.INFO):
        log.info("calling with key %s", CANARY)
        log.info("header Authorization: Bearer abcdefghijklmnop1234")
        try:
            raise RuntimeError(f"boom {CANARY}")
        except RuntimeError:
            log.exception("failed")
    text = caplog.text
    assert CANARY not in text and "abcdefghijklmnop1234" not in text
    assert text.count(secrets.REDACTED) >= 3


async def test_a_provider_that_always_drops_mid_reply_opens_its_breaker() -> None:
    """Output then failure, every turn: the first item must not wipe the failure count."""
    primary = Scripted("cloud", fail_after_first=unavailable())
    local = Scripted("local")
    r = runner(primary, local, threshold=2)
    for _ in range(2):
        with pytest.raises(VoiceError):
            await collect(r)
    assert r.snapshot()["cloud"].state is BreakerState.OPEN
    assert await collect(r) == ["Hello.", " Bye."] and local.calls == 1  # the next turn skips it


async def test_a_completed_stream_closes_a_half_open_breaker() -> None:
    clock = FakeClock()
    primary = Scripted("cloud", fail_before=[unavailable()] * 4)
    r = runner(primary, Scripted("local"), clock=clock, threshold=1, attempts=1)
    await collect(r)
    assert r.snapshot()["cloud"].state is BreakerState.OPEN
    clock.advance(11)
    primary.fail_before.clear()
    assert await collect(r) == ["Hello.", " Bye."]
    assert r.snapshot()["cloud"].state is BreakerState.CLOSED


def test_an_unexpected_error_quoting_a_key_is_redacted() -> None:
    from app.plugin.errors import as_voice_error
    from app.plugin.resilience import classify_exception

    secrets.remember_secret("sk-canary-0123456789abcdef")
    exc = RuntimeError("request failed: headers={'Authorization': 'Bearer sk-canary-0123456789abcdef'}")
    for err in (as_voice_error("llm.x", exc), classify_exception("llm.x", exc)):
        assert "sk-canary-0123456789abcdef" not in str(err)
        assert "request failed" in str(err)


async def test_a_long_retry_after_is_honoured_on_later_turns_too() -> None:
    clock = FakeClock()
    limited = VoiceError("cloud", ErrorCode.RATE_LIMIT, "HTTP 429", retry_after=120.0)
    primary = Scripted("cloud", fail_before=[limited])
    local = Scripted("local")
    r = runner(primary, local, clock=clock, threshold=3)
    assert await collect(r) == ["Hello.", " Bye."] and local.calls == 1  # fell back at once
    clock.advance(60)
    await collect(r)
    assert primary.calls == 1 and local.calls == 2  # still within Retry-After: not asked again
    clock.advance(61)
    await collect(r)
    assert primary.calls == 2  # the wait is over: one probe, which succeeds
    assert r.snapshot()["cloud"].state is BreakerState.CLOSED
