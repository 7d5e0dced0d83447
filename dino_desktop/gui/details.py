"""The details panel: what a photo is, where it lives, when and with what it was taken."""

from __future__ import annotations

import os
from datetime import datetime

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QFormLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from dino_desktop.core.records import PhotoRow
from dino_desktop.gui.common import data_size
from dino_desktop.gui.models import display_path


def _when(taken: datetime | None) -> str:
    return taken.strftime("%d %B %Y, %H:%M") if taken else "unknown"


class DetailsPanel(QWidget):
    """Shows the selected photo's preview and metadata; several selected → a count."""

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumWidth(240)
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumHeight(180)
        self.preview.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self.title.setFont(font)
        self.fields: dict[str, QLabel] = {}
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        for key in ("Folder", "File size", "Dimensions", "Taken", "Camera"):
            label = QLabel()
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.fields[key] = label
            form.addRow(f"{key}:", label)
        layout = QVBoxLayout(self)
        layout.addWidget(self.preview)
        layout.addWidget(self.title)
        layout.addLayout(form)
        layout.addStretch(1)
        self.show_photos([])

    def show_photos(self, photos: list[PhotoRow], preview: QPixmap | None = None) -> None:
        if len(photos) != 1:
            self.preview.clear()
            self.title.setText(f"{len(photos)} photos selected" if photos else "No photo selected")
            for label in self.fields.values():
                label.clear()
            if len(photos) > 1:
                self.fields["File size"].setText(data_size(sum(p.size for p in photos)))
            return
        photo = photos[0]
        self.title.setText(display_path(os.path.basename(photo.path)))
        self.title.setToolTip(display_path(photo.path))
        self.fields["Folder"].setText(display_path(os.path.dirname(photo.path)))
        self.fields["File size"].setText(data_size(photo.size))
        self.fields["Dimensions"].setText(
            f"{photo.width} × {photo.height} ({photo.width * photo.height / 1e6:.1f} MP)"
        )
        self.fields["Taken"].setText(_when(photo.taken_at))
        self.fields["Camera"].setText(photo.camera or "unknown")
        self.set_preview(preview)

    def set_preview(self, pixmap: QPixmap | None) -> None:
        if pixmap is None or pixmap.isNull():
            self.preview.clear()
            return
        width = max(120, self.preview.width() - 8)
        self.preview.setPixmap(
            pixmap.scaled(
                width,
                self.preview.minimumHeight(),
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )
