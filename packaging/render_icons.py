"""Render the application icon's PNG, ICO and ICNS files from the SVG.

    QT_QPA_PLATFORM=offscreen python packaging/render_icons.py

The SVG (resources/dino-desktop.svg) is the source; the renders
are committed so that neither a wheel build nor a bundle build needs Qt's SVG
renderer: PNGs at the freedesktop icon-theme sizes (package data, the fallback
of gui.app.app_icon and what packaging/linux/install.sh puts into hicolor),
a Windows .ico and a macOS .icns (for the PyInstaller spec).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ROOT = Path(__file__).resolve().parents[1]
SVG = ROOT / "resources" / "dino-desktop.svg"
PNG_DIR = ROOT / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def render(renderer: QSvgRenderer, size: int) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    return image


def main() -> None:
    app = QGuiApplication(sys.argv[:1])  # QPainter on a QImage wants one
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        raise SystemExit(f"cannot render {SVG}")
    PNG_DIR.mkdir(exist_ok=True)
    for size in SIZES:
        out = PNG_DIR / f"dino-desktop-{size}.png"
        render(renderer, size).save(str(out))
        print("wrote", out.relative_to(ROOT))
    del app
    # Pillow writes ICO and ICNS, downscaling the largest render for each size.
    master = Image.open(PNG_DIR / "dino-desktop-512.png").convert("RGBA")
    ico = ROOT / "packaging" / "windows" / "dino-desktop.ico"
    master.save(ico, sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])
    print("wrote", ico.relative_to(ROOT))
    icns = ROOT / "packaging" / "macos" / "dino-desktop.icns"
    master.save(icns)
    print("wrote", icns.relative_to(ROOT))


if __name__ == "__main__":
    main()
