"""Spin boxes (and a slider for short ranges) for the numbers of a generated settings form.

Bounds come from the schema (`ge`/`gt`/`le`/`lt`), so a value out of range cannot be
typed; the unit is shown in the box ("30.0 s"). An optional number (`x: float | None`)
gets one more step below its minimum that reads "default" and means None — a spin box
cannot be empty.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QSlider, QSpinBox, QWidget

INT32 = (-(2**31) + 1, 2**31 - 1)  # QSpinBox's range, less one step for "default"
FLOAT_LIMIT = 1e9
MAX_DECIMALS = 6
#: Floats whose whole range is at most this wide also get a slider.
SLIDER_SPAN = 10.0


class _SpinBox(QSpinBox):
    """Ignores the mouse wheel unless focused: scrolling the form must not change values."""

    def wheelEvent(self, event: QWheelEvent) -> None:
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()


class _DoubleSpinBox(QDoubleSpinBox):
    def wheelEvent(self, event: QWheelEvent) -> None:
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()


def decimals_of(value: float) -> int:
    """Digits after the point that `value` needs (0.125 → 3), at most MAX_DECIMALS."""
    if not math.isfinite(value) or float(value).is_integer():
        return 0
    text = f"{value:.{MAX_DECIMALS}f}".rstrip("0")
    return min(len(text.split(".")[1]), MAX_DECIMALS)


def step_for(lo: float | None, hi: float | None) -> tuple[float, int]:
    """A float's arrow step and shown decimals, from the width of its range."""
    span = (hi - lo) if lo is not None and hi is not None else math.inf
    if span <= 2.5:
        return 0.05, 2
    if span <= 25:
        return 0.1, 2
    return 1.0, 1


class NumberInput(QWidget):
    """A spin box for an int or float field; `spin` is the widget to focus and label."""

    valueChanged = Signal()

    def __init__(  # noqa: PLR0913 - the schema's facts about one number
        self,
        *,
        integer: bool,
        bounds: tuple[float | None, float | None, float | None, float | None],
        nullable: bool,
        unit: str = "",
        default: Any = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        minimum, maximum, ex_min, ex_max = bounds
        self.integer = integer
        self.nullable = nullable
        step, decimals = (1.0, 0) if integer else step_for(_first(minimum, ex_min), _first(maximum, ex_max))
        if isinstance(default, int | float) and not isinstance(default, bool):
            decimals = max(decimals, decimals_of(float(default)))
        tick = 1.0 if integer else 10.0**-decimals
        lo = minimum if minimum is not None else (ex_min + tick if ex_min is not None else None)
        hi = maximum if maximum is not None else (ex_max - tick if ex_max is not None else None)
        wide = integer and ((lo is not None and lo < INT32[0]) or (hi is not None and hi > INT32[1]))
        self.spin: QSpinBox | QDoubleSpinBox
        self._lo: float
        self._hi: float
        if integer and not wide:
            self.spin = _SpinBox()
            self._lo, self._hi = int(lo if lo is not None else INT32[0]), int(hi if hi is not None else INT32[1])
        else:
            self.spin = _DoubleSpinBox()
            self.spin.setDecimals(decimals)
            self._lo = float(lo) if lo is not None else -FLOAT_LIMIT
            self._hi = float(hi) if hi is not None else FLOAT_LIMIT
        self.step = step
        self.spin.setSingleStep(step)  # type: ignore[arg-type]
        self.spin.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.spin.setAccelerated(True)
        self.spin.setKeyboardTracking(True)
        self._none_at = self._lo - step if nullable else None
        self.spin.setRange(self._none_at if self._none_at is not None else self._lo, self._hi)  # type: ignore[arg-type]
        if nullable:
            self.spin.setSpecialValueText("default" if default is None else "none")
        if unit:
            self.spin.setSuffix(f" {unit}")
        self.unit = unit
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.slider: QSlider | None = None
        if not integer and not nullable and lo is not None and hi is not None and hi - lo <= SLIDER_SPAN:
            self.slider = QSlider(Qt.Orientation.Horizontal)
            self.slider.setRange(0, round((self._hi - self._lo) / step))
            self.slider.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            self.slider.valueChanged.connect(self._from_slider)
            lay.addWidget(self.slider, 1)
        lay.addWidget(self.spin, 0 if self.slider is not None else 1)
        self.spin.valueChanged.connect(self._from_spin)
        self._syncing = False
        self.set_value(default if default is not None or nullable else self._start())

    def _start(self) -> float:
        return min(max(0, self._lo), self._hi)

    def _from_spin(self) -> None:
        if self.slider is not None and not self._syncing:
            self._syncing = True
            self.slider.setValue(round((self.spin.value() - self._lo) / self.step))
            self._syncing = False
        self.valueChanged.emit()

    def _from_slider(self, position: int) -> None:
        if self._syncing:
            return
        self._syncing = True
        self.spin.setValue(min(self._lo + position * self.step, self._hi))  # type: ignore[arg-type]
        self._syncing = False
        self.valueChanged.emit()

    def set_value(self, value: Any) -> None:
        if value is None or isinstance(value, bool) or not isinstance(value, int | float | str):
            if self._none_at is not None:
                self.spin.setValue(self._none_at)  # type: ignore[arg-type]
            return
        try:
            number = float(value)
        except ValueError:
            return
        if isinstance(self.spin, QDoubleSpinBox) and decimals_of(number) > self.spin.decimals():
            self.spin.setDecimals(decimals_of(number))  # a saved 0.125 stays 0.125, not 0.13
        self.spin.setValue(int(number) if isinstance(self.spin, QSpinBox) else number)  # type: ignore[arg-type]
        self._from_spin()

    def value(self) -> int | float | None:
        v = self.spin.value()
        if self._none_at is not None and v <= self._none_at:
            return None
        return round(v) if self.integer else float(v)

    def minimum(self) -> float:
        return self._lo

    def maximum(self) -> float:
        return self._hi


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)
