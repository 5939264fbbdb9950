"""Keeping a conversation alive when a provider misbehaves.

Used by every stage, remote and local. The pieces, smallest first:

``Deadline``
    An absolute point in time for the whole turn (``Deadline(30)``); every wait
    in the turn is capped by ``deadline.timeout(limit)``. Clock injectable.

``classify_status`` / ``classify_exception`` / ``parse_retry_after``
    Map an HTTP status or an exception to a ``VoiceError`` code:
    401/403 → AUTH (never retried; the provider is disabled until settings
    change), 400/404/422 → INVALID_CONFIG, 429 → RATE_LIMIT (``retry_after`` set
    from the header), 5xx and connection errors → UNAVAILABLE (retried with
    jittered exponential backoff), timeouts → TIMEOUT.

``CircuitBreaker``
    One per provider. Opens after ``failure_threshold`` consecutive failures,
    then fails fast for ``reset_timeout_s`` (doubling on every failed probe up to
    ``max_reset_timeout_s``), then lets exactly one probe through (half-open); a
    success closes it. ``disable()`` (AUTH) keeps it open until ``reset()``.
    ``asyncio.CancelledError`` (barge-in) is never a failure. ``snapshot()`` is
    what the health panel shows.

``StageRunner``
    An ordered list of providers for one stage (primary first, then the
    fallbacks from settings), each with its breaker::

        runner = StageRunner("llm", [("openai-compatible", remote), ("llama-cpp", local)],
                             observer=my_telemetry_adapter)
        async for delta in runner.stream(lambda p: p.chat(messages),
                                         first_output_timeout=8, idle_timeout=10,
                                         deadline=turn_deadline):
            ...
        text = await runner.call(lambda p: p.transcribe(audio), timeout=10, deadline=turn_deadline)
        await runner.aclose()   # stops background probes

    ``stream`` retries and falls back **only before the first item was
    yielded** — once a sentence reached the user, a failure is raised, never
    replayed by another provider. Every provider gets its own first-output
    window (``first_output_timeout``) covering all of its attempts, so a turn
    with a dead primary still starts speaking after at most that window plus the
    fallback's own latency. ``idle_timeout`` bounds the gap between items, so a
    trickling stream cannot hang a turn. If every provider fails, the last
    ``VoiceError`` is raised; a provider whose breaker is open is skipped in
    microseconds. When a breaker opens, a background task probes the provider's
    ``health()`` after the reset timeout and closes the breaker when it answers.

Telemetry stays outside this module: pass any object with
``on_error(stage, provider, code)`` and ``on_event(name, attrs)``
(``ResilienceObserver``). Events: ``"retry"``, ``"fallback"``,
``"breaker_open"``, ``"provider_restored"``, ``"provider_disabled"``.
Observer exceptions are swallowed: telemetry can never break a turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.redaction import redact

log = logging.getLogger(__name__)

MAX_RATE_LIMIT_PAUSE_S = 600.0  # a Retry-After beyond this is capped (the user can retry via Settings)

T = TypeVar("T")
R = TypeVar("R")
P = TypeVar("P")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# --------------------------------------------------------------------------
# Deadline
# --------------------------------------------------------------------------


class Deadline:
    """An absolute end time; ``seconds=None`` means no limit.

    Remaining time is computed from ``clock`` (``time.monotonic`` by default,
    the same base asyncio's loop uses), so it can be handed to ``asyncio.timeout``.
    """

    __slots__ = ("_clock", "at")

    def __init__(self, seconds: float | None, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.at = float("inf") if seconds is None else clock() + max(0.0, seconds)

    def remaining(self) -> float:
        return max(0.0, self.at - self._clock())

    @property
    def expired(self) -> bool:
        return self._clock() >= self.at

    def timeout(self, limit: float | None = None) -> float | None:
        """The smaller of ``limit`` and the time left; ``None`` when both are unlimited."""
        left = self.at - self._clock()
        if limit is not None:
            left = min(left, limit)
        if left == float("inf"):
            return None
        return max(0.0, left)

    def child(self, seconds: float | None) -> Deadline:
        """A deadline that ends after ``seconds`` or with this one, whichever is first."""
        d = Deadline(seconds, clock=self._clock)
        d.at = min(d.at, self.at)
        return d

    def check(self, op: str) -> None:
        if self.expired:
            raise deadline_error(op)

    def __repr__(self) -> str:
        return f"Deadline(remaining={self.remaining():.3f}s)"


def deadline_error(op: str) -> VoiceError:
    return VoiceError(op, ErrorCode.TIMEOUT, "the turn ran out of time — try again or pick a faster provider")


# --------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------

#: How long a 429 without a usable Retry-After keeps a provider cooling down.
DEFAULT_RATE_LIMIT_WAIT_S = 1.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date. None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        secs = when.timestamp() - (time.time() if now is None else now)
    if secs != secs or secs == float("inf"):  # NaN / inf
        return None
    return max(0.0, secs)


def classify_status(op: str, status: int, *, retry_after: str | float | None = None, detail: str = "") -> VoiceError:
    """The VoiceError for an HTTP error status. ``detail`` (server's message) must be redacted."""
    suffix = f" ({detail})" if detail else ""
    if status in (401, 403):
        return VoiceError(
            op,
            ErrorCode.AUTH,
            f"the server rejected the API key (HTTP {status}){suffix} — update the key in Settings",
        )
    if status == 429:
        wait = retry_after if isinstance(retry_after, float | int) else parse_retry_after(retry_after)
        hint = f"; it asks to wait {wait:.0f} s" if wait is not None else ""
        return VoiceError(
            op,
            ErrorCode.RATE_LIMIT,
            f"the service is rate limiting requests (HTTP 429){hint}{suffix} — wait or pick another provider",
            retry_after=float(wait) if wait is not None else None,
        )
    if status in (400, 404, 405, 409, 413, 415, 422) or (400 <= status < 500 and status not in (408, 425)):
        what = "the model or endpoint was not found" if status == 404 else "the request was refused"
        return VoiceError(
            op,
            ErrorCode.INVALID_CONFIG,
            f"{what} (HTTP {status}){suffix} — check the base URL and model in Settings",
        )
    if status == 408:
        return VoiceError(op, ErrorCode.TIMEOUT, f"the server timed out (HTTP {status}){suffix} — try again")
    if status >= 500:
        return VoiceError(
            op,
            ErrorCode.UNAVAILABLE,
            f"the service is failing (HTTP {status}){suffix} — try again later or pick another provider",
        )
    return VoiceError(op, ErrorCode.PROVIDER_ERROR, f"unexpected HTTP status {status}{suffix}")


def classify_exception(op: str, exc: BaseException) -> VoiceError:
    """Anything raised by a provider → VoiceError. Never puts request headers in the text."""
    if isinstance(exc, VoiceError):
        return exc
    if isinstance(exc, TimeoutError):
        return VoiceError(op, ErrorCode.TIMEOUT, "no answer in time — try again or pick a faster provider")
    if isinstance(exc, ConnectionError | OSError):
        return VoiceError(
            op,
            ErrorCode.UNAVAILABLE,
            f"could not reach the service ({type(exc).__name__}) — check it is running and reachable",
        )
    return VoiceError(op, ErrorCode.PROVIDER_ERROR, redact(f"{type(exc).__name__}: {exc}"))


# --------------------------------------------------------------------------
# Retry policy
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded attempts per provider with full-jitter exponential backoff.

    Only UNAVAILABLE and RATE_LIMIT are retried on the same provider. TIMEOUT is
    not: the time-to-first-output window is already spent, so the next provider
    gets its turn instead. A 429's ``Retry-After`` is honoured but capped at
    ``max_retry_after_s``; a longer wait moves on to the fallback.
    """

    max_attempts: int = 2
    base_delay_s: float = 0.1
    max_delay_s: float = 1.0
    max_retry_after_s: float = 2.0
    retry_codes: frozenset[ErrorCode] = frozenset({ErrorCode.UNAVAILABLE, ErrorCode.RATE_LIMIT})

    def delay(self, attempt: int, error: VoiceError, rng: random.Random) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None for "do not retry"."""
        if attempt >= self.max_attempts or error.code not in self.retry_codes:
            return None
        if error.code is ErrorCode.RATE_LIMIT:
            wait = error.retry_after if error.retry_after is not None else DEFAULT_RATE_LIMIT_WAIT_S
            return None if wait > self.max_retry_after_s else wait
        cap = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        return rng.uniform(0.0, cap)


# --------------------------------------------------------------------------
# Circuit breaker
# --------------------------------------------------------------------------


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerSnapshot:
    """What the health panel shows for one provider."""

    state: BreakerState
    failures: int
    last_error: str | None
    last_error_code: ErrorCode | None
    last_error_at: float | None  # wall-clock time.time()
    disabled: bool
    retry_in_s: float | None  # when open: seconds until a probe is allowed


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 3
    reset_timeout_s: float = 15.0
    max_reset_timeout_s: float = 300.0


class CircuitBreaker:
    """Consecutive-failure breaker with a single half-open probe.

    Not thread-safe by design: it lives on the engine's event loop.
    """

    def __init__(self, name: str = "", config: BreakerConfig | None = None, *, clock: Clock = time.monotonic) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self._clock = clock
        self._state = BreakerState.CLOSED
        self.failures = 0
        self._opened_at = 0.0
        self._reset_timeout = self.config.reset_timeout_s
        self._probe_in_flight = False
        self.last_error: VoiceError | None = None
        self.last_error_at: float | None = None
        self.disabled_reason: str | None = None
        self._listeners: list[Callable[[CircuitBreaker, BreakerState], None]] = []

    # -- state -------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        if (
            self._state is BreakerState.OPEN
            and self.disabled_reason is None
            and self._clock() - self._opened_at >= self._reset_timeout
        ):
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def disabled(self) -> bool:
        return self.disabled_reason is not None

    @property
    def closed(self) -> bool:
        return self.state is BreakerState.CLOSED

    def retry_in(self) -> float | None:
        if self._state is not BreakerState.OPEN or self.disabled:
            return None
        return max(0.0, self._opened_at + self._reset_timeout - self._clock())

    def allow(self) -> bool:
        """May a call go through now? In half-open, only the first caller gets True."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            self._state = BreakerState.HALF_OPEN
            return True
        return False

    def on_change(self, listener: Callable[[CircuitBreaker, BreakerState], None]) -> None:
        self._listeners.append(listener)

    def _set(self, state: BreakerState) -> None:
        old = self._state
        self._state = state
        if old is not state:
            for fn in list(self._listeners):
                with contextlib.suppress(Exception):
                    fn(self, state)

    # -- outcomes ----------------------------------------------------------
    def record_success(self) -> None:
        self.failures = 0
        self._probe_in_flight = False
        self._reset_timeout = self.config.reset_timeout_s
        if not self.disabled:
            self._set(BreakerState.CLOSED)

    def record_failure(self, error: VoiceError | None = None) -> None:
        self.failures += 1
        if error is not None:
            self.last_error = error
            self.last_error_at = time.time()
        was_probe = self._probe_in_flight or self._state is BreakerState.HALF_OPEN
        self._probe_in_flight = False
        if was_probe:
            # A failed probe: back off further before the next one.
            self._reset_timeout = min(self._reset_timeout * 2, self.config.max_reset_timeout_s)
        if was_probe or self.failures >= self.config.failure_threshold:
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN)

    def pause(self, seconds: float, error: VoiceError) -> None:
        """The service asked us to wait (429 with a long Retry-After): stay open that
        long — later turns use the fallback instead of asking again — then probe once."""
        self.last_error = error
        self.last_error_at = time.time()
        self.failures += 1
        self._probe_in_flight = False
        self._opened_at = self._clock()
        self._reset_timeout = max(self._reset_timeout, seconds)
        self._set(BreakerState.OPEN)

    def record_cancelled(self) -> None:
        """Barge-in: not a failure and not a success; frees the half-open probe slot."""
        self._probe_in_flight = False

    def disable(self, error: VoiceError) -> None:
        """Keep the breaker open until ``reset()`` (AUTH: the key will not start working by itself)."""
        self.last_error = error
        self.last_error_at = time.time()
        self.failures += 1
        self.disabled_reason = error.message
        self._probe_in_flight = False
        self._opened_at = self._clock()
        self._set(BreakerState.OPEN)

    def reset(self) -> None:
        """Settings changed: forget everything."""
        self.failures = 0
        self.disabled_reason = None
        self._probe_in_flight = False
        self._reset_timeout = self.config.reset_timeout_s
        self._set(BreakerState.CLOSED)

    def snapshot(self) -> BreakerSnapshot:
        err = self.last_error
        return BreakerSnapshot(
            state=self.state,
            failures=self.failures,
            last_error=str(err) if err else None,
            last_error_code=err.code if err else None,
            last_error_at=self.last_error_at,
            disabled=self.disabled,
            retry_in_s=self.retry_in(),
        )


# --------------------------------------------------------------------------
# Observer (telemetry seam)
# --------------------------------------------------------------------------


class ResilienceObserver(Protocol):
    def on_error(self, stage: str, provider: str, code: str) -> None: ...

    def on_event(self, name: str, attrs: Mapping[str, Any]) -> None: ...


class NullObserver:
    def on_error(self, stage: str, provider: str, code: str) -> None:
        pass

    def on_event(self, name: str, attrs: Mapping[str, Any]) -> None:
        pass


@dataclass
class RecordingObserver:
    """Keeps what it saw: handy for tests, `voxdesk doctor` and the CLI's JSON."""

    errors: list[tuple[str, str, str]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def on_error(self, stage: str, provider: str, code: str) -> None:
        self.errors.append((stage, provider, code))

    def on_event(self, name: str, attrs: Mapping[str, Any]) -> None:
        self.events.append((name, dict(attrs)))

    def names(self) -> list[str]:
        return [n for n, _ in self.events]


# --------------------------------------------------------------------------
# Stream helpers
# --------------------------------------------------------------------------


async def _next_within(it: AsyncIterator[T], limit: float | None) -> T:
    """``anext`` within ``limit`` seconds, in the caller's task (no extra task per item)."""
    if limit is None:
        return await it.__anext__()
    async with asyncio.timeout(limit):
        return await it.__anext__()


def _timeout_error(op: str, first: bool, deadline: Deadline) -> VoiceError:
    if deadline.expired:
        return deadline_error(op)
    if first:
        return VoiceError(
            op,
            ErrorCode.TIMEOUT,
            "no first output in time — the service is too slow; pick a faster provider",
        )
    return VoiceError(op, ErrorCode.TIMEOUT, "the reply stalled mid-way — the service stopped sending")


async def _aclose(it: Any) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


# --------------------------------------------------------------------------
# Stage runner: retries, breakers, fallback, background probes
# --------------------------------------------------------------------------


@dataclass
class Member(Generic[P]):
    name: str
    provider: P
    breaker: CircuitBreaker


@dataclass(frozen=True)
class _Opened(Generic[T]):
    """A stream that produced its first item in time."""

    it: AsyncIterator[T]
    first: T


@dataclass(frozen=True)
class _GaveUp:
    """Every attempt on one provider failed with ``error``: try the next one."""

    error: VoiceError


class StageRunner(Generic[P]):
    """Ordered providers for one stage with retries, breakers and fallback. See module doc."""

    # Public contract (engine, tests, benches): two positional arguments, the rest are
    # keyword-only options with defaults (policy, telemetry, and the test seams clock/sleep/rng).
    def __init__(  # noqa: PLR0913
        self,
        stage: str,
        members: Iterable[tuple[str, P] | tuple[str, P, CircuitBreaker] | Member[P]],
        *,
        retry: RetryPolicy | None = None,
        breaker_config: BreakerConfig | None = None,
        observer: ResilienceObserver | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        probe_timeout_s: float = 5.0,
        background_probes: bool = True,
    ) -> None:
        self.stage = stage
        self.retry = retry or RetryPolicy()
        self.observer: ResilienceObserver = observer or NullObserver()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.probe_timeout_s = probe_timeout_s
        self.background_probes = background_probes
        self._probes: dict[str, asyncio.Task[None]] = {}
        self._closed = False
        self.members: list[Member[P]] = []
        for m in members:
            if isinstance(m, Member):
                member = m
            else:
                breaker = m[2] if len(m) == 3 else CircuitBreaker(m[0], breaker_config, clock=clock)
                member = Member(m[0], m[1], breaker)
            self.members.append(member)
        if not self.members:
            raise VoiceError(f"{stage}.fallback", ErrorCode.INVALID_CONFIG, f"no {stage} provider configured")
        for member in self.members:
            member.breaker.on_change(self._breaker_changed(member))

    # -- public views ------------------------------------------------------
    def breaker(self, name: str) -> CircuitBreaker:
        for m in self.members:
            if m.name == name:
                return m.breaker
        raise KeyError(name)

    def snapshot(self) -> dict[str, BreakerSnapshot]:
        """Breaker state per provider name, in fallback order (health panel)."""
        return {m.name: m.breaker.snapshot() for m in self.members}

    def reset(self, name: str | None = None) -> None:
        """Settings changed: clear breakers (all, or one provider's)."""
        for m in self.members:
            if name is None or m.name == name:
                m.breaker.reset()

    # -- observer helpers (never raise) ------------------------------------
    def _emit(self, name: str, **attrs: Any) -> None:
        try:
            self.observer.on_event(name, {"stage": self.stage, **attrs})
        except Exception:
            log.debug("observer.on_event failed", exc_info=True)

    def _error(self, provider: str, code: ErrorCode) -> None:
        try:
            self.observer.on_error(self.stage, provider, code.value)
        except Exception:
            log.debug("observer.on_error failed", exc_info=True)

    def _breaker_changed(self, member: Member[P]) -> Callable[[CircuitBreaker, BreakerState], None]:
        def changed(breaker: CircuitBreaker, state: BreakerState) -> None:
            if state is BreakerState.OPEN:
                if breaker.disabled:
                    reason = breaker.disabled_reason or ""
                    self._emit("provider_disabled", provider=member.name, reason=reason)
                else:
                    self._emit("breaker_open", provider=member.name, failures=breaker.failures)
                    self._start_probe(member)
            elif state is BreakerState.CLOSED:
                self._emit("provider_restored", provider=member.name)

        return changed

    # -- outcome bookkeeping -----------------------------------------------
    def _fail(self, member: Member[P], error: VoiceError) -> None:
        """Count a failed attempt and book it on the provider's breaker."""
        self._error(member.name, error.code)
        if error.code is ErrorCode.AUTH:
            member.breaker.disable(error)
        elif (
            error.code is ErrorCode.RATE_LIMIT
            and error.retry_after is not None
            and error.retry_after > self.retry.max_retry_after_s
        ):
            # Too long to wait inside a turn: honour it across turns (capped), not just this one.
            member.breaker.pause(min(error.retry_after, MAX_RATE_LIMIT_PAUSE_S), error)
        else:
            member.breaker.record_failure(error)

    def _skipped_error(self, m: Member[P]) -> VoiceError:
        last = m.breaker.last_error
        op = self._op(m)
        if m.breaker.disabled and last is not None:
            return VoiceError(op, last.code, last.message)
        why = f" ({last.message})" if last is not None else ""
        retry = m.breaker.retry_in()
        when = f"; retrying in {retry:.0f} s" if retry else ""
        return VoiceError(
            op,
            last.code if last is not None else ErrorCode.UNAVAILABLE,
            f"{m.name} is paused after repeated failures{why}{when}",
            retry_after=retry,
        )

    def _op(self, member: Member[P]) -> str:
        return f"{self.stage}.{member.name}"

    def _after_failure(
        self, member: Member[P], error: VoiceError, attempt: int, window: Deadline, deadline: Deadline
    ) -> float | None:
        """Book a failed attempt; the delay before retrying the same provider, or None to move on."""
        self._fail(member, error)
        if deadline.expired:
            raise deadline_error(self._op(member)) from None
        delay = self.retry.delay(attempt, error, self._rng)
        if delay is None or member.breaker.state is not BreakerState.CLOSED or delay >= window.remaining():
            return None
        self._emit("retry", provider=member.name, attempt=attempt + 1, code=error.code.value, delay_s=round(delay, 3))
        return delay

    def _fallback_event(self, member: Member[P], left: tuple[str, str, str] | None) -> None:
        """Emit "fallback" when a provider after another one is about to be tried."""
        if left is not None:
            self._emit("fallback", **{"from": left[0], "to": member.name, "code": left[1], "reason": left[2]})

    # -- the attempt loop (shared by stream and call) ----------------------
    async def _first_success(
        self, attempt: Callable[[P, Deadline], Awaitable[R]], window_s: float | None, deadline: Deadline
    ) -> tuple[Member[P], R]:
        """The provider that got through and what its ``attempt`` returned: the attempt policy.

        Providers are tried in order; one whose breaker is open is skipped. Each one tried
        gets its own window of ``window_s`` (never past ``deadline``) for all its attempts.
        Success is not recorded here: the caller knows when the provider's work is done.
        Raises the last error when no provider got through (or the first skip's, when none
        was tried), or TIMEOUT as soon as ``deadline`` has passed.
        """
        last_error: VoiceError | None = None
        first_skip: VoiceError | None = None
        left: tuple[str, str, str] | None = None  # (provider, code, reason) we moved on from
        for member in self.members:
            if not member.breaker.allow():
                skip = self._skipped_error(member)
                first_skip = first_skip or skip
                left = (member.name, skip.code.value, "circuit_open")
                continue
            self._fallback_event(member, left)
            outcome = await self._attempts(member, attempt, deadline.child(window_s), deadline)
            if not isinstance(outcome, _GaveUp):
                return member, outcome
            last_error = outcome.error
            left = (member.name, last_error.code.value, "failed")
        raise (
            last_error
            or first_skip
            or VoiceError(self.stage, ErrorCode.UNAVAILABLE, f"no {self.stage} provider available")
        )

    async def _attempts(
        self, member: Member[P], attempt: Callable[[P, Deadline], Awaitable[R]], window: Deadline, deadline: Deadline
    ) -> R | _GaveUp:
        """Attempts on one provider: retried with backoff while the policy, its breaker and
        the window allow. Every failure is translated to a VoiceError, counted and booked;
        a cancel (barge-in) is no one's failure and only frees a half-open probe slot."""
        op = self._op(member)
        n = 0
        while True:
            n += 1
            try:
                return await attempt(member.provider, window)
            except Exception as exc:
                error = (
                    _timeout_error(op, True, deadline) if isinstance(exc, TimeoutError) else classify_exception(op, exc)
                )
                delay = self._after_failure(member, error, n, window, deadline)
                if delay is None:
                    return _GaveUp(error)
            except BaseException:
                member.breaker.record_cancelled()
                raise
            await self._sleep(delay)

    # -- stream ------------------------------------------------------------
    async def stream(
        self,
        call: Callable[[P], AsyncIterator[T]],
        *,
        first_output_timeout: float | None = None,
        idle_timeout: float | None = None,
        deadline: Deadline | None = None,
    ) -> AsyncIterator[T]:
        """Items from the first provider that produces output; see the module doc for the rules."""
        deadline = deadline or Deadline(None, clock=self._clock)

        async def opening(provider: P, window: Deadline) -> _Opened[T] | None:
            it = call(provider)
            try:
                return _Opened(it, await _next_within(it, window.timeout()))
            except StopAsyncIteration:
                await _aclose(it)
                return None
            except BaseException:
                await _aclose(it)
                raise

        member, opened = await self._first_success(opening, first_output_timeout, deadline)
        if opened is None:
            # An empty reply is a valid (if odd) answer: nothing to say, no fallback.
            member.breaker.record_success()
            return
        # First item arrived: this provider owns the turn from here on. Success is recorded
        # only when the stream completes, so a provider that always drops mid-reply still
        # opens its breaker.
        rest = self._rest(opened, member, idle_timeout, deadline)
        completed = False
        try:
            async for item in rest:
                yield item
            completed = True
        finally:
            # A consumer that stops early (barge-in via aclose/break) must close the
            # provider's stream now, not whenever the generator is collected.
            await rest.aclose()
            if completed:
                member.breaker.record_success()
            else:  # a failure was recorded by _rest; a cancel only frees the probe
                member.breaker.record_cancelled()

    async def _rest(
        self, opened: _Opened[T], member: Member[P], idle_timeout: float | None, deadline: Deadline
    ) -> AsyncGenerator[T, None]:
        """Yield the first item and the rest; failures now are raised, never retried."""
        it, op = opened.it, self._op(member)
        try:
            yield opened.first
            while True:
                try:
                    item = await _next_within(it, deadline.timeout(idle_timeout))
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    error = _timeout_error(op, False, deadline)
                    self._fail(member, error)
                    raise error from None
                except Exception as exc:
                    error = classify_exception(op, exc)
                    self._fail(member, error)
                    raise error from (None if exc is error else exc)
                yield item
        finally:
            await _aclose(it)

    # -- single result -----------------------------------------------------
    async def call(
        self,
        fn: Callable[[P], Awaitable[R]],
        *,
        # Public contract (the engine passes it): each provider's window, not a limit on
        # the whole call, so asyncio.timeout around it would mean something else.
        timeout: float | None = None,  # noqa: ASYNC109
        deadline: Deadline | None = None,
    ) -> R:
        """One result (e.g. a transcript) from the first provider that gives it, within ``timeout``."""
        deadline = deadline or Deadline(None, clock=self._clock)

        async def once(provider: P, window: Deadline) -> R:
            limit = window.timeout()
            if limit is None:
                return await fn(provider)
            async with asyncio.timeout(limit):
                return await fn(provider)

        member, result = await self._first_success(once, timeout, deadline)
        member.breaker.record_success()
        return result

    # -- background probes -------------------------------------------------
    def _start_probe(self, member: Member[P]) -> None:
        if not self.background_probes or self._closed:
            return
        task = self._probes.get(member.name)
        if task is not None and not task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._probes[member.name] = loop.create_task(
            self._probe_loop(member), name=f"voxdesk-probe-{self.stage}-{member.name}"
        )

    async def _probe_loop(self, member: Member[P]) -> None:
        breaker = member.breaker
        while not self._closed and breaker.state is not BreakerState.CLOSED and not breaker.disabled:
            wait = breaker.retry_in()
            if wait:
                await self._sleep(wait)
                continue
            await self.probe(member.name)

    async def probe(self, name: str) -> bool:
        """Ask a provider's ``health()`` now; close its breaker if it answers. True if restored.

        Takes the half-open probe slot, so it never races a real call's probe.
        """
        member = next(m for m in self.members if m.name == name)
        breaker = member.breaker
        if breaker.disabled:
            return False
        if breaker.state is BreakerState.CLOSED:
            return True
        if not breaker.allow():
            # A real call holds the probe slot; let it decide, look again soon.
            await self._sleep(min(1.0, self.probe_timeout_s))
            return breaker.closed
        health_fn = getattr(member.provider, "health", None)
        op = f"{self.stage}.{name}.health"
        try:
            if health_fn is None:
                raise VoiceError(op, ErrorCode.UNAVAILABLE, "provider has no health check")
            async with asyncio.timeout(self.probe_timeout_s):
                health = await health_fn()
            status = getattr(health, "status", "ok")
            if str(status) == "down":
                raise VoiceError(op, ErrorCode.UNAVAILABLE, getattr(health, "detail", "") or "still down")
        except asyncio.CancelledError:
            breaker.record_cancelled()
            raise
        except Exception as exc:
            error = classify_exception(op, exc)
            breaker.record_failure(error)
            return False
        breaker.record_success()
        return True

    async def aclose(self) -> None:
        """Stop background probes (providers themselves are closed by their owner)."""
        self._closed = True
        tasks = [t for t in self._probes.values() if not t.done()]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._probes.clear()
