"""The Similar view: the query (a photo, a dropped or pasted file, a region) and its matches.

The view only shows things and asks for searches; the main window runs them in
a worker through `Library` and hands the results back with `show_results`.
Matches in folders that are offline now (their drive is not mounted: the photo
is known, its file cannot be opened) are marked: faded, an "Offline" badge and
a tooltip that says why.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from typing import Any

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QPainter, QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QStackedLayout,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core.images import IMAGE_EXTENSIONS
from dino_desktop.core.records import PhotoRow
from dino_desktop.gui.grid import PhotoGrid
from dino_desktop.gui.models import Index, PhotoListModel
from dino_desktop.gui.thumbnails import ThumbnailLoader

QUERY_EDGE = 96
HINT = (
    "<h3>Find similar photos</h3>"
    "<p>Select a photo and press <b>Ctrl+F</b> (or right-click → Find similar),<br>"
    "drop an image file here, paste one with <b>Ctrl+V</b>,<br>"
    "or draw a rectangle on a photo in the viewer to search by a region.</p>"
)
OFFLINE_BADGE = "Offline"
OFFLINE_TIP = "Offline: its folder's drive is not connected (the thumbnail is from the cache)"
OFFLINE_OPACITY = 0.4


def faded(pixmap: QPixmap, opacity: float = OFFLINE_OPACITY) -> QPixmap:
    """`pixmap` drawn at `opacity` on transparency (same size and pixel ratio)."""
    out = QPixmap(pixmap.size())
    out.setDevicePixelRatio(pixmap.devicePixelRatio())
    out.fill(Qt.GlobalColor.transparent)
    painter = QPainter(out)
    painter.setOpacity(opacity)
    painter.drawPixmap(0, 0, pixmap)
    painter.end()
    return out


class ResultsModel(PhotoListModel):
    """Search results: photos in offline folders faded, badged and explained."""

    def __init__(self, loader: ThumbnailLoader, parent: Any = None) -> None:
        super().__init__(loader, parent=parent)
        self._offline: frozenset[int] = frozenset()
        self._faded: dict[int, tuple[int, QPixmap]] = {}  # id -> (source cacheKey, faded)

    def set_results(
        self, rows: Sequence[PhotoRow], scores: Sequence[float], offline: Collection[int] = ()
    ) -> None:
        self._offline = frozenset(offline)
        self._faded.clear()
        self.set_rows([_badged(r) if r.id in self._offline else r for r in rows], scores)

    def is_offline(self, image_id: int) -> bool:
        return image_id in self._offline

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        value = super().data(index, role)
        photo = self.photo_at(index) if index.isValid() else None
        if photo is None or photo.id not in self._offline:
            return value
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{value}\n{OFFLINE_TIP}"
        if role == Qt.ItemDataRole.DecorationRole and isinstance(value, QPixmap):
            if value.cacheKey() in (self.placeholder().cacheKey(), self._broken.cacheKey()):
                return value
            hit = self._faded.get(photo.id)
            if hit is None or hit[0] != value.cacheKey():
                hit = self._faded[photo.id] = (value.cacheKey(), faded(value))
            return hit[1]
        return value


def _badged(row: PhotoRow) -> PhotoRow:
    return row._replace(badge=" · ".join(b for b in (row.badge, OFFLINE_BADGE) if b))


def image_paths_of(event: QDragEnterEvent | QDropEvent) -> list[str]:
    """Local image files carried by a drag (file URLs with an image extension)."""
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [
        url.toLocalFile()
        for url in mime.urls()
        if url.isLocalFile() and os.path.splitext(url.toLocalFile())[1].lower() in IMAGE_EXTENSIONS
    ]


class SimilarView(QWidget):
    """Query on top, best matches below with their similarity scores."""

    search_requested = Signal(str)  # an image file to search by (dropped or chosen)
    photo_activated = Signal(object)  # PhotoRow
    context_menu_requested = Signal(list, QPoint)  # list[PhotoRow], global position
    selection_changed = Signal(list)  # list[PhotoRow]

    def __init__(self, loader: ThumbnailLoader, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.query_image = QLabel()
        self.query_image.setFixedSize(QUERY_EDGE, QUERY_EDGE)
        self.query_image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.query_text = QLabel()
        self.query_text.setWordWrap(True)
        self.query_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.top_spin = QSpinBox()
        self.top_spin.setRange(10, 1000)
        self.top_spin.setSingleStep(10)
        self.top_spin.setValue(60)
        self.top_spin.setToolTip("How many similar photos to show")
        choose = QPushButton("Search by image file…")
        choose.clicked.connect(self.choose_file)
        header = QHBoxLayout()
        header.setContentsMargins(10, 8, 10, 8)
        header.addWidget(self.query_image)
        header.addWidget(self.query_text, 1)
        header.addWidget(QLabel("Show"))
        header.addWidget(self.top_spin)
        header.addWidget(choose)

        self.model = ResultsModel(loader, parent=self)
        self.grid = PhotoGrid()
        self.grid.setModel(self.model)
        self.grid.photo_activated.connect(self.photo_activated)
        self.grid.context_menu_requested.connect(self.context_menu_requested)
        selection = self.grid.selectionModel()
        selection.selectionChanged.connect(
            lambda *_: self.selection_changed.emit(self.grid.selected_photos())
        )
        self.hint = QLabel(HINT)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setTextFormat(Qt.TextFormat.RichText)
        self.stack = QStackedLayout()
        self.stack.addWidget(self.hint)
        self.stack.addWidget(self.grid)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addLayout(self.stack, 1)
        self.show_message("Nothing searched yet.")

    # ---- what the main window calls -------------------------------------------

    def top(self) -> int:
        return int(self.top_spin.value())

    def show_busy(self, text: str, query: QPixmap | None = None) -> None:
        self._set_query(text, query)
        self.hint.setText(
            "<h3>Searching…</h3><p>The first search after start-up also loads the model.</p>"
        )
        self.stack.setCurrentWidget(self.hint)

    def show_message(self, text: str) -> None:
        self._set_query(text, None)
        self.model.set_results([], [])
        self.hint.setText(HINT)
        self.stack.setCurrentWidget(self.hint)

    def show_results(
        self,
        text: str,
        rows: Sequence[PhotoRow],
        scores: Sequence[float],
        query: QPixmap | None = None,
        *,
        offline: Collection[int] = (),
    ) -> None:
        """The matches, best first; those whose image id is in `offline` are marked."""
        self._set_query(text, query)
        self.model.set_results(rows, scores, offline)
        self.stack.setCurrentWidget(self.grid)
        self.grid.scrollToTop()

    def selected_photos(self) -> list[PhotoRow]:
        return self.grid.selected_photos()

    def results(self) -> list[PhotoRow]:
        return self.model.rows()

    def choose_file(self) -> None:
        patterns = " ".join(f"*{ext}" for ext in sorted(IMAGE_EXTENSIONS))
        path, _ = QFileDialog.getOpenFileName(
            self, "Search by an image file", "", f"Images ({patterns})"
        )
        if path:
            self.search_requested.emit(path)

    def _set_query(self, text: str, query: QPixmap | None) -> None:
        self.query_text.setText(text)
        if query is None or query.isNull():
            self.query_image.clear()
            self.query_image.setVisible(False)
            return
        self.query_image.setVisible(True)
        self.query_image.setPixmap(
            query.scaled(
                QUERY_EDGE,
                QUERY_EDGE,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )
