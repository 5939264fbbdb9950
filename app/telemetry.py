"""OpenTelemetry for VoxDesk: fixed span/metric names, an in-process snapshot for the UI,
and an optional OTLP export that can never block or slow a turn.

Names (docs/architecture.md, "Telemetry"): spans `voice.turn` with children `voice.vad|stt|llm|tts|playback`;
histograms `voxdesk.stage.duration` and `voxdesk.turn.voice_to_voice` (seconds), counters
`voxdesk.errors` and `voxdesk.speculative_replies` (outcome: used | discarded), gauge
`voxdesk.provider.health` (0 down, 1 degraded, 2 ok). A turn whose reply was started
speculatively carries `voxdesk.speculative` on its span.

Each `Telemetry` owns its own tracer/meter providers (not the global ones), so tests
and a settings change can build a fresh one without process-wide side effects.

Recording is split in two: the pipeline only timestamps and enqueues (about a
microsecond); a `telemetry` thread builds the spans and records the metrics, in
order. So the SDK's per-span cost (~15–30 µs on a laptop core) never lands on the
audio path, and `snapshot()` first waits for the queue to drain.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import NoOpTracerProvider, Span

from app import __version__
from app.store.settings import TelemetrySettings

log = logging.getLogger(__name__)

STAGES = ("vad", "stt", "llm", "tts", "playback")
#: Per-turn timing keys shown in the latency panel, in pipeline order.
TIMING_KEYS = ("vad_endpoint", "stt", "llm_first_token", "llm", "tts_first_audio", "tts", "playback_start")
HISTORY = 200  # turns kept for the UI


@dataclass(frozen=True)
class TurnTiming:
    turn_id: str
    at: float
    stages: dict[str, float]
    voice_to_voice_s: float | None
    speculative: bool = False  # the reply was started at the pause, before the endpoint
    echo_erle_db: float | None = None  # echo the canceller removed over the reply


@dataclass(frozen=True)
class StageStats:
    count: int = 0
    p50: float = 0.0
    p95: float = 0.0

    @staticmethod
    def of(values: Sequence[float]) -> StageStats:
        if not values:
            return StageStats()
        s = sorted(values)
        return StageStats(len(s), _percentile(s, 0.50), _percentile(s, 0.95))


def _percentile(sorted_vals: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    pos = (len(sorted_vals) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


@dataclass(frozen=True)
class TelemetrySnapshot:
    turns: list[TurnTiming] = field(default_factory=list)
    stages: dict[str, StageStats] = field(default_factory=dict)
    voice_to_voice: StageStats = field(default_factory=StageStats)
    errors: dict[tuple[str, str, str], int] = field(default_factory=dict)
    health: dict[tuple[str, str], int] = field(default_factory=dict)
    exporter: str = "off"
    #: Speculative replies by outcome: "used" (played) and "discarded" (never heard).
    speculative: dict[str, int] = field(default_factory=dict)


class _SnapshotSpanProcessor(SpanProcessor):
    """Keeps recent turn timings and stage durations; on_end is O(1) and lock-short."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.turns: deque[TurnTiming] = deque(maxlen=HISTORY)
        self.stage_durations: dict[str, deque[float]] = {}

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if span.start_time is None or span.end_time is None:
            return
        attrs = span.attributes or {}
        if span.name == "voice.turn":
            stages = {
                k.removeprefix("voxdesk.timing."): float(v)  # type: ignore[arg-type]
                for k, v in attrs.items()
                if k.startswith("voxdesk.timing.")
            }
            v2v = attrs.get("voxdesk.voice_to_voice_s")
            erle = attrs.get("voxdesk.echo.erle_db")
            timing = TurnTiming(
                str(attrs.get("voxdesk.turn_id", "")),
                span.end_time / 1e9,
                stages,
                float(v2v) if v2v is not None else None,  # type: ignore[arg-type]
                bool(attrs.get("voxdesk.speculative", False)),
                float(erle) if erle is not None else None,  # type: ignore[arg-type]
            )
            with self._lock:
                self.turns.append(timing)
        elif span.name.startswith("voice."):
            stage = span.name.removeprefix("voice.")
            with self._lock:
                self.stage_durations.setdefault(stage, deque(maxlen=HISTORY)).append(
                    (span.end_time - span.start_time) / 1e9
                )

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class _SnapshotMetricReader(MetricReader):
    """Pull-only reader: the UI asks, we collect. Nothing runs in the background."""

    def __init__(self) -> None:
        super().__init__(preferred_temporality={})
        self.latest: MetricsData | None = None

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kw: Any) -> None:
        self.latest = metrics_data

    def shutdown(self, timeout_millis: float = 30_000, **kw: Any) -> None:
        pass


class _StatusTrackingSpanExporter(SpanExporter):
    """Wraps the OTLP exporter to remember whether the collector answers."""

    def __init__(self, inner: SpanExporter, owner: Telemetry) -> None:
        self._inner, self._owner = inner, owner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        except Exception as exc:  # exporter bugs must never reach a turn
            self._owner._exporter_state = f"failing: {type(exc).__name__}"
            return SpanExportResult.FAILURE
        self._owner._exporter_state = "ok" if result == SpanExportResult.SUCCESS else "failing: collector not answering"
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 1000) -> bool:
        return True


class _StatusTrackingMetricExporter(MetricExporter):
    def __init__(self, inner: MetricExporter) -> None:
        super().__init__(preferred_temporality={}, preferred_aggregation={})
        self._inner = inner

    def export(self, metrics_data: MetricsData, timeout_millis: float = 1_000, **kw: Any) -> MetricExportResult:
        try:
            return self._inner.export(metrics_data, timeout_millis=timeout_millis)
        except Exception:
            return MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 1_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 1_000, **kw: Any) -> None:
        self._inner.shutdown()


_QUEUE_MAX = 20_000


class Telemetry:
    def __init__(self, settings: TelemetrySettings | None = None) -> None:
        self.settings = settings or TelemetrySettings()
        self.enabled = self.settings.enabled
        self._exporter_state = "off"
        self.notices: list[str] = []
        self._spans = _SnapshotSpanProcessor()
        self._reader = _SnapshotMetricReader()
        self._tracer_provider: TracerProvider | None = None
        self._meter_provider: MeterProvider | None = None
        if not self.enabled:
            self.tracer: trace.Tracer = NoOpTracerProvider().get_tracer("voxdesk")
            meter = NoOpMeterProvider().get_meter("voxdesk")
        else:
            resource = Resource.create({"service.name": "voxdesk", "service.version": __version__})
            # Our own shutdown() closes the providers once, within its time budget; the
            # SDK's exit hooks would close them a second time ("shutdown can only be
            # called once") and wait on a collector that is down.
            self._tracer_provider = TracerProvider(resource=resource, sampler=ALWAYS_ON, shutdown_on_exit=False)
            self._tracer_provider.add_span_processor(self._spans)
            readers: list[MetricReader] = [self._reader]
            if self.settings.otlp_endpoint:
                readers += self._setup_otlp(self.settings.otlp_endpoint.rstrip("/"))
            self._meter_provider = MeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False)
            self.tracer = self._tracer_provider.get_tracer("voxdesk", __version__)
            meter = self._meter_provider.get_meter("voxdesk", __version__)
        self._stage_hist = meter.create_histogram("voxdesk.stage.duration", unit="s")
        self._v2v_hist = meter.create_histogram("voxdesk.turn.voice_to_voice", unit="s")
        self._errors = meter.create_counter("voxdesk.errors")
        self._health = meter.create_gauge("voxdesk.provider.health")
        self._health_values: dict[tuple[str, str], int] = {}
        self._error_counts: dict[tuple[str, str, str], int] = {}
        self._speculative = meter.create_counter("voxdesk.speculative_replies")
        self._speculative_counts = {"used": 0, "discarded": 0}
        self._wakes = meter.create_counter("voxdesk.wake_words")
        self._wake_hist = meter.create_histogram("voxdesk.wake.latency", unit="s")
        # Bounded: if the telemetry thread ever stalls, the pipeline drops records rather
        # than growing without limit (dropped ones are counted in `dropped`).
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=_QUEUE_MAX)
        self.dropped = 0
        self._shutdown_lock = threading.Lock()
        self._shut_down = False
        self._worker: threading.Thread | None = None
        if self.enabled:
            self._worker = threading.Thread(target=self._drain, name="voxdesk-telemetry", daemon=True)
            self._worker.start()

    def _drain(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                job()
            except Exception:  # telemetry must never take anything down
                log.debug("telemetry job failed", exc_info=True)

    def _defer(self, job: Callable[[], None]) -> None:
        if self._worker is not None:
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                self.dropped += 1

    def flush(self, timeout_s: float = 1.0) -> bool:
        """Wait until everything recorded so far is in the snapshot (and the SDK)."""
        if self._worker is None or not self._worker.is_alive():
            return True
        done = threading.Event()
        try:
            self._queue.put(done.set, timeout=timeout_s)
        except queue.Full:
            return False
        return done.wait(timeout_s)

    def _setup_otlp(self, endpoint: str) -> list[MetricReader]:
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            self._exporter_state = "unavailable: install voxdesk[otlp]"
            self.notices.append("OTLP export needs the `otlp` extra — pip install 'voxdesk[otlp]'")
            return []
        # A collector that is down is shown in the health panel (exporter status); the
        # exporter's own retry warnings every few seconds would only flood the console.
        logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)
        span_exporter = _StatusTrackingSpanExporter(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=2), self)
        # Bounded queue, background thread, short timeout: a dead collector costs nothing per turn.
        assert self._tracer_provider is not None
        self._tracer_provider.add_span_processor(
            BatchSpanProcessor(
                span_exporter,
                max_queue_size=1024,
                schedule_delay_millis=2000,
                max_export_batch_size=256,
                export_timeout_millis=2000,
            )
        )
        metric_exporter = _StatusTrackingMetricExporter(
            OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics", timeout=2, preferred_temporality={})
        )
        self._exporter_state = f"pending: {endpoint}"
        return [
            PeriodicExportingMetricReader(metric_exporter, export_interval_millis=15_000, export_timeout_millis=2_000)
        ]

    # -- recording ---------------------------------------------------------
    def start_turn(self, turn_id: str) -> Span:
        span = self.tracer.start_span("voice.turn", attributes={"voxdesk.turn_id": turn_id})
        return span

    def record_stage(  # noqa: PLR0913 - one span's fields, called from the engine's hot path
        self,
        turn: Span | None,
        stage: str,
        provider: str,
        start: float,
        end: float,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        """A finished stage, timed by the caller on `time.monotonic()`.

        Streaming stages overlap, so spans are recorded after the fact with their real
        start and end rather than as nested context managers.
        """
        self._defer(lambda: self._record_stage(turn, stage, provider, start, end, attributes))

    def _record_stage(  # noqa: PLR0913 - the same fields, on the telemetry thread
        self,
        turn: Span | None,
        stage: str,
        provider: str,
        start: float,
        end: float,
        attributes: Mapping[str, Any] | None,
    ) -> None:
        self._stage_hist.record(max(0.0, end - start), {"stage": stage, "provider": provider})
        offset_ns = time.time_ns() - int(time.monotonic() * 1e9)
        ctx = trace.set_span_in_context(turn) if turn is not None else None
        attrs = {"voxdesk.stage": stage, "voxdesk.provider": provider, **(attributes or {})}
        span = self.tracer.start_span(
            f"voice.{stage}", context=ctx, attributes=attrs, start_time=int(start * 1e9) + offset_ns
        )
        span.end(end_time=int(end * 1e9) + offset_ns)

    @contextmanager
    def stage(self, turn: Span | None, stage: str, provider: str) -> Iterator[dict[str, Any]]:
        """Time a block as one stage; yields a dict for extra span attributes."""
        attrs: dict[str, Any] = {}
        start = time.monotonic()
        try:
            yield attrs
        finally:
            self.record_stage(turn, stage, provider, start, time.monotonic(), attrs)

    def end_turn(  # noqa: PLR0913 - keyword-only content fields, off unless content capture is on
        self,
        span: Span,
        timings: Mapping[str, float],
        voice_to_voice_s: float | None,
        *,
        interrupted: bool = False,
        error: str | None = None,
        user_text: str | None = None,
        reply_text: str | None = None,
        speculative: bool = False,
        echo: tuple[float | None, float] | None = None,
    ) -> None:
        """`echo` is (ERLE dB, double-talk seconds) over the reply, when a canceller ran."""
        timings = dict(timings)
        if self.settings.capture_content and span is not None:
            # Content only when the user turned it on (off by default: transcripts are private).
            content = {"voxdesk.user_text": user_text or "", "voxdesk.reply_text": reply_text or ""}
            self._defer(lambda: span.set_attributes(content))
        if speculative and span is not None:
            self._defer(lambda: span.set_attribute("voxdesk.speculative", True))
        if echo is not None and span is not None:
            erle, double_talk = echo
            attributes = {"voxdesk.echo.double_talk_s": double_talk}
            if erle is not None:
                attributes["voxdesk.echo.erle_db"] = erle
            self._defer(lambda: span.set_attributes(attributes))
        self._defer(lambda: self._end_turn(span, timings, voice_to_voice_s, interrupted, error))

    def _end_turn(
        self,
        span: Span,
        timings: Mapping[str, float],
        voice_to_voice_s: float | None,
        interrupted: bool,
        error: str | None,
    ) -> None:
        if voice_to_voice_s is not None:
            self._v2v_hist.record(voice_to_voice_s)
        for key, value in timings.items():
            span.set_attribute(f"voxdesk.timing.{key}", float(value))
        if voice_to_voice_s is not None:
            span.set_attribute("voxdesk.voice_to_voice_s", voice_to_voice_s)
        span.set_attribute("voxdesk.interrupted", interrupted)
        if error:
            span.set_status(trace.Status(trace.StatusCode.ERROR, error))
        span.end()

    def record_error(self, stage: str, provider: str, code: str) -> None:
        key = (stage, provider, code)
        self._error_counts[key] = self._error_counts.get(key, 0) + 1
        self._defer(lambda: self._errors.add(1, {"stage": stage, "provider": provider, "code": code}))

    def record_speculation(self, outcome: str) -> None:
        """A reply started at the pause was "used" (played) or "discarded" (never heard)."""
        self._speculative_counts[outcome] = self._speculative_counts.get(outcome, 0) + 1
        self._defer(lambda: self._speculative.add(1, {"outcome": outcome}))

    def record_wake(self, phrase: str, latency_s: float) -> None:
        """The wake phrase was heard `latency_s` after it ended (the detector's delay)."""

        def record() -> None:
            self._wakes.add(1, {"phrase": phrase})
            self._wake_hist.record(latency_s, {"phrase": phrase})

        self._defer(record)

    def speculative_counts(self) -> dict[str, int]:
        """Speculative replies so far by outcome ("used", "discarded"), counted in-process."""
        return dict(self._speculative_counts)

    def set_health(self, stage: str, provider: str, level: int) -> None:
        self._health_values[(stage, provider)] = level
        self._defer(lambda: self._health.set(level, {"stage": stage, "provider": provider}))

    def add_event(self, span: Span | None, name: str, attributes: Mapping[str, Any]) -> None:
        if span is not None:
            attrs = dict(attributes)
            self._defer(lambda: span.add_event(name, attrs))

    # -- reading -----------------------------------------------------------
    def snapshot(self, *, wait_s: float = 0.1) -> TelemetrySnapshot:
        """Recent turns and statistics; waits up to `wait_s` for queued records (the GUI
        calls this on its own thread, so the wait is short and normally microseconds)."""
        self.flush(wait_s)
        with self._spans._lock:
            turns = list(self._spans.turns)
            durations = {k: list(v) for k, v in self._spans.stage_durations.items()}
        stages = {k: StageStats.of(v) for k, v in durations.items()}
        for key in ("llm_first_token", "tts_first_audio", "vad_endpoint"):
            vals = [t.stages[key] for t in turns if key in t.stages]
            if vals:
                stages[key] = StageStats.of(vals)
        v2v = StageStats.of([t.voice_to_voice_s for t in turns if t.voice_to_voice_s is not None])
        errors, health = self._read_metrics()
        return TelemetrySnapshot(turns, stages, v2v, errors, health, self.exporter_status, self.speculative_counts())

    def _read_metrics(self) -> tuple[dict[tuple[str, str, str], int], dict[tuple[str, str], int]]:
        if not self.enabled:
            return dict(self._error_counts), dict(self._health_values)
        self._reader.collect()
        errors: dict[tuple[str, str, str], int] = {}
        health: dict[tuple[str, str], int] = {}
        data = self._reader.latest
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == "voxdesk.errors":
                        for p in metric.data.data_points:
                            a = p.attributes or {}
                            key = (str(a.get("stage")), str(a.get("provider")), str(a.get("code")))
                            errors[key] = int(p.value)  # type: ignore[union-attr]
                    elif metric.name == "voxdesk.provider.health":
                        for p in metric.data.data_points:
                            a = p.attributes or {}
                            health[(str(a.get("stage")), str(a.get("provider")))] = int(p.value)  # type: ignore[union-attr]
        return errors, health

    @property
    def exporter_status(self) -> str:
        return self._exporter_state

    def shutdown(self, timeout_s: float = 1.5) -> None:
        """Flush what can be flushed within the budget; never hang quit. Only the first
        call does anything (the session, the window and a test may all call it)."""
        with self._shutdown_lock:
            if self._shut_down:
                return
            self._shut_down = True

        def _close() -> None:
            if self._worker is not None:
                with contextlib.suppress(queue.Full):
                    self._queue.put(None, timeout=timeout_s)
                self._worker.join(timeout_s)
            if self._tracer_provider is not None:
                self._tracer_provider.shutdown()
            if self._meter_provider is not None:
                self._meter_provider.shutdown(timeout_millis=timeout_s * 1000)

        t = threading.Thread(target=_close, name="telemetry-shutdown", daemon=True)
        t.start()
        t.join(timeout_s)


__all__ = ["TIMING_KEYS", "StageStats", "Telemetry", "TelemetrySnapshot", "TurnTiming"]
