"""Where the time went: the last turn as a stacked bar, recent turns as a rolling chart.

Everything comes from the telemetry snapshot (the same numbers the OpenTelemetry
metrics carry). The window polls it often so the panel feels live, but a redraw
only happens when the snapshot actually changed, which keeps idle CPU near zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPaintEvent
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from app.telemetry import StageStats, TelemetrySnapshot
from ui import theme
from ui.latency_timeline import SEGMENTS, segments

#: Segments of the voice-to-voice path, in the order they happen (gaps between points).
TIMELINE = SEGMENTS
ROLLING_WINDOW = 20  # turns per rolling percentile
MAX_TURNS = 200


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _speak_value(label: QLabel, name: str, value: str) -> None:
    """A screen reader reads a label's accessible name instead of its text: the name must
    carry the value, or the value is hidden behind it."""
    spoken = "no value yet" if value.strip() in ("", "—") else value
    label.setAccessibleName(f"{name}: {spoken}")


def _after_colon(label: QLabel) -> str:
    return label.text().partition(":")[2].strip()


class StackedBar(QWidget):
    """One horizontal bar, one coloured segment per stage; painted, not a chart, so it is cheap."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._segments: list[tuple[str, float, str]] = []
        self._total: float | None = None
        self.setMinimumHeight(34)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setAccessibleName("Last turn latency bar")

    def sizeHint(self) -> QSize:
        return QSize(300, 34)

    def set_turn(self, stages: Mapping[str, float], total: float | None) -> None:
        """`stages` are the engine's raw turn timings; drawn as consecutive segments."""
        parts_s = segments(stages, total)
        self._segments = [(label, parts_s[key], colour) for key, label, colour in TIMELINE if key in parts_s]
        self._total = total
        parts = ", ".join(f"{label} {_ms(v)}" for label, v, _ in self._segments)
        self.setAccessibleDescription(f"{parts}; voice-to-voice {_ms(total)}")
        self.setAccessibleName(f"Last turn latency bar: voice-to-voice {_ms(total)}")
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:
        p = QPainter(self)
        rect = QRectF(self.rect()).adjusted(1, 4, -1, -4)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(theme.colours()["assistant_bg"]))
        p.drawRoundedRect(rect, 5, 5)
        span = max(sum(v for _, v, _ in self._segments), self._total or 0.0)
        if span <= 0:
            p.setPen(QColor(theme.colours()["muted"]))
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, "no turn yet")
            p.end()
            return
        x = rect.left()
        fm = QFontMetrics(self.font())
        for _label, v, colour in self._segments:
            w = rect.width() * v / span
            seg = QRectF(x, rect.top(), w, rect.height())
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(colour))
            p.drawRect(seg)
            text = _ms(v)
            if fm.horizontalAdvance(text) + 6 < w:
                p.setPen(QColor("#ffffff"))
                p.drawText(seg, Qt.AlignmentFlag.AlignCenter, text)
            x += w
        p.end()

    def segment_values(self) -> list[tuple[str, float]]:
        """(label, seconds) as drawn, for tests and screen readers."""
        return [(label, v) for label, v, _ in self._segments]


def rolling_percentiles(values: Sequence[float], window: int = ROLLING_WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """p50 and p95 over the last `window` values at each position."""
    arr = np.asarray(values, dtype=float)
    p50 = np.empty_like(arr)
    p95 = np.empty_like(arr)
    for i in range(len(arr)):
        w = arr[max(0, i - window + 1) : i + 1]
        w = w[~np.isnan(w)]
        p50[i] = np.percentile(w, 50) if len(w) else np.nan
        p95[i] = np.percentile(w, 95) if len(w) else np.nan
    return p50, p95


def barge_in_text(turns: Sequence[Any]) -> str:
    """The last barge-in's reaction (speech start → speaker silent), its p95, and the echo removed."""
    stops = [t.stages["barge_in_stop"] for t in turns if "barge_in_stop" in t.stages]
    erle = next((t.echo_erle_db for t in reversed(turns) if getattr(t, "echo_erle_db", None) is not None), None)
    text = "Barge-in reaction: —"
    if stops:
        _, p95 = rolling_percentiles(stops)
        text = f"Barge-in reaction: {_ms(stops[-1])} (p95 {_ms(float(p95[-1]))} over {min(len(stops), ROLLING_WINDOW)})"
    if erle is not None:
        text += f" · echo removed {erle:.0f} dB"
    return text


class LatencyPanel(QWidget):
    """Last-turn bar, per-stage p50/p95 table, rolling chart. Feed it with `update_snapshot`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Latency panel")
        self._key: tuple[Any, ...] | None = None
        self.redraws = 0
        lay = QVBoxLayout(self)
        title = QLabel("Latency")
        title.setObjectName("panel_title")
        lay.addWidget(title)

        self.total_label = QLabel("Voice-to-voice: —")
        _speak_value(self.total_label, "Last voice-to-voice latency", "—")
        lay.addWidget(self.total_label)
        self.bar = StackedBar()
        lay.addWidget(self.bar)
        # Replies started at the pause (app/engine/speculation.py): played, or thrown away unheard.
        self.speculative_label = QLabel("Replies started in the pause: —")
        _speak_value(self.speculative_label, "Replies started in the pause", "—")
        lay.addWidget(self.speculative_label)
        # Talking over a reply: how fast it went quiet, and how much echo the canceller removed.
        self.barge_in_label = QLabel("Barge-in reaction: —")
        _speak_value(self.barge_in_label, "Barge-in reaction", "—")
        lay.addWidget(self.barge_in_label)

        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(1)
        for col, head in enumerate(("Stage", "Last", "p50", "p95")):
            h = QLabel(f"<b>{head}</b>")
            grid.addWidget(h, 0, col)
        self._cells: dict[str, tuple[QLabel, QLabel, QLabel]] = {}
        self._labels: dict[str, str] = {}
        rows = [*TIMELINE, ("voice_to_voice", "Voice-to-voice", theme.colours()["text"])]
        for r, (key, label, colour) in enumerate(rows, start=1):
            name = QLabel(f'<span style="color:{colour}">■</span> {label}')
            cells = (QLabel("—"), QLabel("—"), QLabel("—"))
            grid.addWidget(name, r, 0)
            for c, cell in enumerate(cells, start=1):
                cell.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                _speak_value(cell, f"{label} {('last', 'p50', 'p95')[c - 1]}", "—")
                grid.addWidget(cell, r, c)
            self._cells[key] = cells
            self._labels[key] = label
        lay.addLayout(grid)

        self._chart_holder = QVBoxLayout()
        lay.addLayout(self._chart_holder, 1)
        self.plot: Any = None
        self._pending: TelemetrySnapshot | None = None
        # pyqtgraph takes ~0.5 s to import: build the chart after the window is on screen.
        QTimer.singleShot(0, self._build_chart)

    def _build_chart(self) -> None:
        if self.plot is not None:
            return
        import pyqtgraph as pg

        pg.setConfigOptions(antialias=False, foreground=theme.colours()["text"], background=None)
        self.plot = pg.PlotWidget()
        self.plot.setAccessibleName("Rolling latency chart")
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("left", "ms")
        self.plot.setLabel("bottom", "turn")
        self.plot.showGrid(x=False, y=True, alpha=0.2)
        self.plot.setMinimumHeight(140)
        # One row along the top; the y range leaves headroom for it (see _draw_chart).
        self.plot.addLegend(offset=(5, 1), labelTextSize="8pt", colCount=3)
        self._v2v_points = self.plot.plot(
            [],
            [],
            pen=None,
            symbol="o",
            symbolSize=5,
            symbolBrush=theme.colours()["muted"],
            name="voice-to-voice",
        )
        self._p50 = self.plot.plot([], [], pen=pg.mkPen(theme.colours()["accent"], width=2), name="p50")
        self._p95 = self.plot.plot([], [], pen=pg.mkPen("#ef4444", width=2, style=Qt.PenStyle.DashLine), name="p95")
        self._stage_curves = {
            # colours match the table's squares, which act as this chart's legend
            key: self.plot.plot([], [], pen=pg.mkPen(colour, width=1))
            for key, _, colour in TIMELINE
        }
        self._chart_holder.addWidget(self.plot)
        if self._pending is not None:
            self._draw_chart(self._pending)

    # -- data --------------------------------------------------------------
    @staticmethod
    def _snapshot_key(snap: TelemetrySnapshot) -> tuple[Any, ...]:
        turns = snap.turns
        last = turns[-1] if turns else None
        v2v = snap.voice_to_voice
        return (
            len(turns),
            getattr(last, "turn_id", None),
            getattr(v2v, "count", None),
            tuple(sorted((k, getattr(s, "count", 0)) for k, s in snap.stages.items())),
            tuple(sorted(snap.speculative.items())),
        )

    def update_snapshot(self, snap: TelemetrySnapshot) -> bool:
        """Redraw if the snapshot differs from the last one; True when it redrew."""
        key = self._snapshot_key(snap)
        if key == self._key:
            return False
        self._key = key
        self.redraws += 1
        turns = list(snap.turns)[-MAX_TURNS:]
        last = turns[-1] if turns else None
        last_stages: Mapping[str, float] = getattr(last, "stages", {}) if last else {}
        last_v2v = getattr(last, "voice_to_voice_s", None) if last else None
        self.bar.set_turn(last_stages, last_v2v)
        early = " (reply started in the pause)" if getattr(last, "speculative", False) else ""
        self.total_label.setText(f"Voice-to-voice: <b>{_ms(last_v2v)}</b>{early}")
        used, discarded = snap.speculative.get("used", 0), snap.speculative.get("discarded", 0)
        if used or discarded:
            self.speculative_label.setText(f"Replies started in the pause: {used} used, {discarded} discarded")
        self.barge_in_label.setText(barge_in_text(turns))
        _speak_value(self.total_label, "Last voice-to-voice latency", _ms(last_v2v) + early)
        _speak_value(self.speculative_label, "Replies started in the pause", _after_colon(self.speculative_label))
        _speak_value(self.barge_in_label, "Barge-in reaction", _after_colon(self.barge_in_label))
        # Rows are segments (gaps between the engine's points), so every column is
        # computed from the turns here, not from the snapshot's per-stage durations.
        per_turn = [segments(t.stages, t.voice_to_voice_s) for t in turns]
        last_parts = per_turn[-1] if per_turn else {}
        for key_, cells in self._cells.items():
            if key_ == "voice_to_voice":
                stats: StageStats | None = snap.voice_to_voice
                last_v = last_v2v
            else:
                stats = StageStats.of([p[key_] for p in per_turn if key_ in p])
                last_v = last_parts.get(key_)
            has = stats is not None and stats.count > 0
            cells[0].setText(_ms(last_v))
            cells[1].setText(_ms(stats.p50) if has and stats is not None else "—")
            cells[2].setText(_ms(stats.p95) if has and stats is not None else "—")
            for column, cell in zip(("last", "p50", "p95"), cells, strict=True):
                _speak_value(cell, f"{self._labels[key_]} {column}", cell.text())
        self._pending = snap
        if self.plot is not None:
            self._draw_chart(snap)
        return True

    def _draw_chart(self, snap: TelemetrySnapshot) -> None:
        turns = list(snap.turns)[-MAX_TURNS:]
        xs = np.arange(1, len(turns) + 1, dtype=float)
        v2v = [t.voice_to_voice_s * 1000 if t.voice_to_voice_s is not None else np.nan for t in turns]
        p50, p95 = rolling_percentiles(v2v)
        finite = ~np.isnan(np.asarray(v2v, dtype=float))
        self._v2v_points.setData(xs[finite], np.asarray(v2v, dtype=float)[finite])
        self._p50.setData(xs, p50, connect="finite")
        self._p95.setData(xs, p95, connect="finite")
        per_turn = [segments(t.stages, t.voice_to_voice_s) for t in turns]
        top = float(np.nanmax(v2v)) if np.isfinite(v2v).any() else 0.0
        for key_, curve in self._stage_curves.items():
            ys = np.array([p.get(key_, np.nan) * 1000 for p in per_turn], dtype=float)
            curve.setData(xs, ys, connect="finite")
            if np.isfinite(ys).any():
                top = max(top, float(np.nanmax(ys)))
        # Whole turns on the x axis (at most ~8 labels), headroom above the data for the legend.
        n = max(len(turns), 1)
        step = max(1, math.ceil(n / 8))
        assert self.plot is not None
        self.plot.getAxis("bottom").setTicks([[(i, str(i)) for i in range(1, n + 1, step)], []])
        self.plot.setXRange(0.5, max(n, 2) + 0.5, padding=0)
        self.plot.setYRange(0, max(top, 100.0) * 1.3, padding=0)

    def cell_text(self, stage: str, column: str) -> str:
        """For tests and screen readers: the text shown for a stage's last/p50/p95."""
        return self._cells[stage][("last", "p50", "p95").index(column)].text()
