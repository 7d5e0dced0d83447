"""The Similar view: the query (a photo, a dropped or pasted file, a region) and its matches.

The view only shows things and asks for searches; the main window runs them in
a worker through `Library` and hands the results back with `show_results`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QPixmap
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
from dino_desktop.gui.models import PhotoListModel
from dino_desktop.gui.thumbnails import ThumbnailLoader

QUERY_EDGE = 96
HINT = (
    "<h3>Find similar photos</h3>"
    "<p>Select a photo and press <b>Ctrl+F</b> (or right-click → Find similar),<br>"
    "drop an image file here, paste one with <b>Ctrl+V</b>,<br>"
    "or draw a rectangle on a photo in the viewer to search by a region.</p>"
)


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

        self.model = PhotoListModel(loader, parent=self)
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
        self.model.set_rows([])
        self.hint.setText(HINT)
        self.stack.setCurrentWidget(self.hint)

    def show_results(
        self,
        text: str,
        rows: Sequence[PhotoRow],
        scores: Sequence[float],
        query: QPixmap | None = None,
    ) -> None:
        self._set_query(text, query)
        self.model.set_rows(rows, scores)
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
