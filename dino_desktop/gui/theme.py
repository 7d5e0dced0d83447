"""Light and dark palettes that follow the system's colour scheme, and the view icons.

Qt's Fusion style looks the same on every platform; we give it a light or a
dark palette according to the system setting (Qt ≥ 6.5 reports it), and switch
when the system does. The palettes are package data
(`dino_desktop/resources/themes/*.toml`, loaded through importlib.resources),
so a wheel or a PyInstaller bundle carries them like the icons.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from functools import cache
from importlib.resources import files

from PySide6.QtCore import QByteArray, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QImage, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication, QListWidget, QListWidgetItem, QStyleFactory

ACCENT = QColor(59, 111, 216)
RESOURCES = "dino_desktop.resources"
VIEW_ICONS = ("photos", "similar", "duplicates", "folders", "sorting")


@cache
def _palette_spec(name: str) -> dict[str, object]:
    text = (files(RESOURCES) / "themes" / f"{name}.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def load_palette(name: str) -> QPalette:
    """The palette `name` ("light" or "dark") from the package's theme files."""
    spec = _palette_spec(name)
    p = QStyleFactory.create("Fusion").standardPalette() if spec["base"] == "fusion" else QPalette()
    colors = spec.get("colors", {})
    disabled = spec.get("disabled", {})
    assert isinstance(colors, dict) and isinstance(disabled, dict)
    for role, color in colors.items():
        p.setColor(getattr(QPalette.ColorRole, role), QColor(color))
    for role, color in disabled.items():
        p.setColor(QPalette.ColorGroup.Disabled, getattr(QPalette.ColorRole, role), QColor(color))
    return p


def dark_palette() -> QPalette:
    return load_palette("dark")


def light_palette() -> QPalette:
    return load_palette("light")


def _render_svg(svg: bytes, color: QColor, size: int) -> QPixmap:
    # The view icons draw with `currentColor`: tint them before rendering.
    data = svg.replace(b"currentColor", color.name().encode())
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    QSvgRenderer(QByteArray(data)).render(painter, QRectF(0, 0, size, size))
    painter.end()
    return QPixmap.fromImage(image)


def view_icon(name: str) -> QIcon:
    """A sidebar view's icon: the accent colour, white on a selected (accent) row.

    The accent reads on both the light and the dark palette, so the icons need
    no re-rendering when the system switches schemes.
    """
    svg = (files(RESOURCES) / "views" / f"{name}.svg").read_bytes()
    icon = QIcon()
    for mode, color in ((QIcon.Mode.Normal, ACCENT), (QIcon.Mode.Selected, QColor("white"))):
        for size in (16, 20, 24, 32, 48, 64):
            icon.addPixmap(_render_svg(svg, color, size), mode)
    return icon


def add_view_items(view_list: QListWidget, names: Sequence[str]) -> None:
    """The sidebar's view rows, named `names`, with the VIEW_ICONS in order.

    A view added without an icon gets a plain row rather than stopping the app
    (tests/gui/test_main_window.py checks that every row has one). Small (16 px)
    icons: the rows stay as tall as the text, so the list's fixed height still
    shows them all without a scroll bar.
    """
    view_list.setIconSize(QSize(16, 16))
    for i, name in enumerate(names):
        item = QListWidgetItem(name, view_list)
        if i < len(VIEW_ICONS):
            item.setIcon(view_icon(VIEW_ICONS[i]))


def is_dark() -> bool:
    return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark


def apply(app: QApplication, dark: bool | None = None) -> None:
    """Fusion with a light or dark palette; None = follow the system."""
    app.setStyle("Fusion")
    app.setPalette(dark_palette() if (is_dark() if dark is None else dark) else light_palette())


def follow_system(app: QApplication) -> None:
    apply(app)
    app.styleHints().colorSchemeChanged.connect(lambda _scheme: apply(app))
