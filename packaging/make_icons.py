"""Regenerate the Windows and macOS application icons from resources/icons/voxdesk.svg.

    QT_QPA_PLATFORM=offscreen PYTHONPATH=/path/to/pillow python packaging/make_icons.py

Writes packaging/windows/voxdesk.ico (16–256 px) and packaging/macos/voxdesk.icns
(16–1024 px); both are committed, so builds need neither this script nor Pillow.
Each size is rendered from the SVG with Qt's QSvgRenderer (small sizes stay sharp
instead of being scaled down from a large bitmap). Pillow is only a tool here, never a
dependency of VoxDesk: install it anywhere (`pip install --target DIR Pillow`).
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SVG = ROOT / "resources" / "icons" / "voxdesk.svg"
ICO = ROOT / "packaging" / "windows" / "voxdesk.ico"
ICNS = ROOT / "packaging" / "macos" / "voxdesk.icns"
ICO_SIZES = (16, 20, 24, 32, 40, 48, 64, 128, 256)
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)


def render(size: int):  # -> PIL.Image.Image
    from PIL import Image
    from PySide6.QtCore import QBuffer, QIODevice, Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        raise SystemExit(f"cannot read {SVG}")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return Image.open(io.BytesIO(bytes(buffer.data()))).convert("RGBA")


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    ico = {size: render(size) for size in ICO_SIZES}
    largest = ico[max(ICO_SIZES)]
    largest.save(ICO, format="ICO", sizes=[(s, s) for s in ICO_SIZES],
                 append_images=[ico[s] for s in ICO_SIZES if s != max(ICO_SIZES)])
    icns = {size: render(size) for size in ICNS_SIZES}
    icns[max(ICNS_SIZES)].save(ICNS, format="ICNS",
                               append_images=[icns[s] for s in ICNS_SIZES if s != max(ICNS_SIZES)])
    for path in (ICO, ICNS):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
