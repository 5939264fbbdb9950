"""Screen-reader announcements ("live region" messages) from any widget.

Qt ≥ 6.8 has `QAccessibleAnnouncementEvent`, which AT-SPI / UIA / NSAccessibility read out
without moving focus. Older bindings lack it; there we fall back to a hidden label, one per
window, whose accessible name is the message and which emits a NameChanged event — Orca and
NVDA read such a change the way they read a live region.
"""

from __future__ import annotations

import logging
from collections import deque

from PySide6.QtGui import QAccessible, QAccessibleEvent
from PySide6.QtWidgets import QLabel, QWidget

log = logging.getLogger(__name__)

try:  # Qt 6.8+
    from PySide6.QtGui import QAccessibleAnnouncementEvent as _Announcement
except ImportError:  # pragma: no cover - depends on the installed PySide6
    _Announcement = None  # type: ignore[assignment,misc]

#: objectName of the fallback live-region label.
LIVE_REGION_NAME = "a11yLiveRegion"
#: The latest announcements, newest last (tests and the log read them; screen readers don't).
recent: deque[str] = deque(maxlen=50)


def announce(widget: QWidget, text: str, *, assertive: bool = False) -> None:
    """Ask screen readers to say `text`; `assertive` interrupts what they are saying (errors)."""
    text = " ".join(text.split())
    if not text:
        return
    recent.append(text)
    log.debug("announce%s: %s", " (assertive)" if assertive else "", text)
    if _Announcement is not None:
        event = _Announcement(widget, text)
        event.setPoliteness(
            QAccessible.AnnouncementPoliteness.Assertive if assertive else QAccessible.AnnouncementPoliteness.Polite
        )
        QAccessible.updateAccessibility(event)
        return
    _announce_by_live_region(widget, text)  # pragma: no cover - old Qt only


def _announce_by_live_region(widget: QWidget, text: str) -> None:
    host = widget.window() or widget
    label = host.findChild(QLabel, LIVE_REGION_NAME)
    if label is None:
        label = QLabel(host)
        label.setObjectName(LIVE_REGION_NAME)
        label.setFixedSize(1, 1)  # present for AT, invisible on screen
        label.move(-10, -10)
        label.show()
    label.setText(text)
    label.setAccessibleName(text)
    QAccessible.updateAccessibility(QAccessibleEvent(label, QAccessible.Event.NameChanged))
